//! Reading newline-terminated messages with a size cap.
//!
//! `BufRead::lines()` grows its buffer until it finds a newline, so a driver that never writes
//! one makes the runner hold everything it sent. Every message the runner reads from a driver
//! (stdout lines, coordinator reports) goes through [`read_line_capped`] instead: at most
//! `limit` bytes are ever held for one message, and a longer one is reported as such without
//! reading the rest (the caller then stops reading that stream for good).

use std::io::{self, BufRead};

/// What [`read_line_capped`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Capped {
    /// One message, without its `\n` (a last one without `\n` before end of file counts too,
    /// as with `BufRead::lines`).
    Line(Vec<u8>),
    /// More than `limit` bytes came without a `\n`; the stream is left somewhere inside the
    /// message.
    TooLong,
    /// End of file, with nothing pending.
    Eof,
}

/// Reads one message of at most `limit` bytes (the `\n` not counted).
pub fn read_line_capped<R: BufRead>(reader: &mut R, limit: usize) -> io::Result<Capped> {
    let mut line = Vec::new();
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(if line.is_empty() {
                Capped::Eof
            } else {
                Capped::Line(line)
            });
        }
        let (take, found) = match available.iter().position(|b| *b == b'\n') {
            Some(at) => (at, true),
            None => (available.len(), false),
        };
        if line.len() + take > limit {
            return Ok(Capped::TooLong);
        }
        line.extend_from_slice(&available[..take]);
        reader.consume(take + usize::from(found));
        if found {
            return Ok(Capped::Line(line));
        }
    }
}

/// `limit` in words, for messages: `4 MiB`, `64 KiB`, `512 bytes`.
pub fn bytes_in_words(limit: usize) -> String {
    match limit {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufReader, Read};

    use super::*;

    fn all(input: &[u8], limit: usize, capacity: usize) -> Vec<Capped> {
        let mut r = BufReader::with_capacity(capacity, input);
        let mut out = Vec::new();
        loop {
            let next = read_line_capped(&mut r, limit).unwrap();
            let stop = matches!(next, Capped::Eof | Capped::TooLong);
            out.push(next);
            if stop {
                return out;
            }
        }
    }

    fn line(s: &str) -> Capped {
        Capped::Line(s.as_bytes().to_vec())
    }

    #[test]
    fn lines_up_to_the_limit_pass_whatever_the_buffer_size() {
        for capacity in [1, 2, 3, 64] {
            assert_eq!(
                all(b"abc\n\nde\nfgh", 3, capacity),
                [line("abc"), line(""), line("de"), line("fgh"), Capped::Eof],
                "capacity {capacity}"
            );
        }
    }

    #[test]
    fn a_line_over_the_limit_is_too_long_with_or_without_its_newline() {
        for capacity in [1, 2, 64] {
            assert_eq!(
                all(b"ab\nabcd\nx\n", 3, capacity),
                [line("ab"), Capped::TooLong]
            );
            assert_eq!(all(b"abcd", 3, capacity), [Capped::TooLong]);
        }
    }

    /// An endless stream without a newline: the reader stops after `limit` bytes and some
    /// buffer, instead of reading for ever.
    #[test]
    fn an_endless_line_is_cut_off_after_the_limit() {
        let endless = io::repeat(b'x');
        let mut counted = BufReader::with_capacity(4096, endless.take(u64::MAX));
        assert_eq!(
            read_line_capped(&mut counted, 100_000).unwrap(),
            Capped::TooLong
        );
        let read = u64::MAX - counted.get_ref().limit();
        assert!(read <= 100_000 + 4096, "read {read} bytes");
    }

    #[test]
    fn limits_in_words() {
        assert_eq!(bytes_in_words(4 << 20), "4 MiB");
        assert_eq!(bytes_in_words(64 << 10), "64 KiB");
        assert_eq!(bytes_in_words(1000), "1000 bytes");
    }
}
