//! Frames between the pool and its workers.
//!
//! Two kinds of channel, chosen for what each has to guarantee:
//!
//! - **Tasks** go through one `SOCK_SEQPACKET` socket pair whose reading end every worker
//!   holds. Every frame is one message: a reader gets a whole message or nothing, and the
//!   kernel hands each message to exactly one reader. That is what lets all workers pull
//!   tasks from one shared queue in FIFO order, as CPython's workers pull from one shared
//!   pipe, without a lock between processes.
//! - **Reports** go through one pipe per worker (the worker's stdout). Only one process
//!   writes each, so no framing is needed from the kernel: a report is a byte stream of
//!   records, and the pool reads many records per system call. A pipe is also the cheapest
//!   channel per message, and its end of file comes after everything its worker wrote.
//!
//! Integers are little-endian; payloads are JSON.
//!
//! - A task frame is `T job:u64 index:u32 listed:u8 name_len:u16 name payload` (payload is
//!   a JSON array of arguments, one per item of the chunk; `listed` is 1 when the chunk's
//!   value is a list, as for the map family, and 0 when it is its one item's value, as for
//!   `apply`), or `X` (exit).
//! - A report record is `tag job:u64 index:u32 len:u32 body`: `S` started (no body), `O` ok
//!   (body: JSON array of results), `E` error (body: JSON `TaskError`), `F` the worker failed
//!   fatally (job and index 0; body: why). A worker's exit is no record: the pool learns it
//!   from reaping the process.

use crate::error::TaskError;

/// Largest frame, in bytes. Bigger arguments or results are refused with an error.
pub const MAX_FRAME: usize = 200 * 1024;

/// The task frame that tells the worker reading it to exit.
pub(crate) const EXIT_FRAME: &[u8] = b"X";

pub(crate) enum TaskFrame<'a> {
    Task {
        job: u64,
        index: u32,
        /// The chunk's value is a list (map family), not its one item's value (`apply`).
        listed: bool,
        name: &'a str,
        payload: &'a str,
    },
    Exit,
}

pub(crate) fn encode_task(
    job: u64,
    index: u32,
    listed: bool,
    name: &str,
    payload: &str,
) -> Vec<u8> {
    // Task names are static strings of a program; one beyond 64 KiB is not a name.
    let name = &name.as_bytes()[..name.len().min(usize::from(u16::MAX))];
    let mut out = Vec::with_capacity(16 + name.len() + payload.len());
    out.push(b'T');
    out.extend_from_slice(&job.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.push(u8::from(listed));
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name);
    out.extend_from_slice(payload.as_bytes());
    out
}

pub(crate) fn decode_task(frame: &[u8]) -> Option<TaskFrame<'_>> {
    match frame.first()? {
        b'X' => Some(TaskFrame::Exit),
        b'T' => {
            let job = u64::from_le_bytes(frame.get(1..9)?.try_into().ok()?);
            let index = u32::from_le_bytes(frame.get(9..13)?.try_into().ok()?);
            let listed = *frame.get(13)? != 0;
            let len = usize::from(u16::from_le_bytes(frame.get(14..16)?.try_into().ok()?));
            let name = std::str::from_utf8(frame.get(16..16 + len)?).ok()?;
            let payload = std::str::from_utf8(frame.get(16 + len..)?).ok()?;
            Some(TaskFrame::Task {
                job,
                index,
                listed,
                name,
                payload,
            })
        }
        _ => None,
    }
}

/// One report record, borrowing its body from the bytes it was decoded from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Record<'a> {
    Started {
        job: u64,
        index: u32,
    },
    Ok {
        job: u64,
        index: u32,
        body: &'a str,
    },
    /// The body is a JSON [`TaskError`]; see [`task_error`].
    Err {
        job: u64,
        index: u32,
        body: &'a str,
    },
    Fatal {
        why: &'a str,
    },
}

/// Bytes of a record before its body.
const HEADER: usize = 17;

/// Appends a record to `out` (the worker's buffer of records not yet written).
pub(crate) fn push_record(out: &mut Vec<u8>, record: &Record<'_>) {
    let (tag, job, index, body) = match *record {
        Record::Started { job, index } => (b'S', job, index, ""),
        Record::Ok { job, index, body } => (b'O', job, index, body),
        Record::Err { job, index, body } => (b'E', job, index, body),
        Record::Fatal { why } => (b'F', 0, 0, why),
    };
    out.push(tag);
    out.extend_from_slice(&job.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body.as_bytes());
}

/// The body of an `E` record.
pub(crate) fn error_body(error: &TaskError) -> String {
    serde_json::to_string(error).unwrap_or_default()
}

/// The error an `E` record's body describes (a body that is no `TaskError` is shown as is).
pub(crate) fn task_error(body: &str) -> TaskError {
    serde_json::from_str(body).unwrap_or_else(|_| TaskError::new("RuntimeError", body))
}

/// What the front of a report stream holds.
#[derive(Debug, PartialEq)]
pub(crate) enum Next<'a> {
    /// A whole record (`None` for an unknown tag, skipped) and the bytes it took.
    Record(Option<Record<'a>>, usize),
    /// Only part of a record: this many bytes are needed in all before it can be decoded.
    Partial(usize),
}

/// Decodes the record at the front of `stream`, without copying its body.
pub(crate) fn next_record(stream: &[u8]) -> Next<'_> {
    let Some(header) = stream.get(..HEADER) else {
        return Next::Partial(HEADER);
    };
    let word = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let len = word(13) as usize;
    let Some(body) = stream.get(HEADER..HEADER + len) else {
        return Next::Partial(HEADER + len);
    };
    let mut job = [0u8; 8];
    job.copy_from_slice(&header[1..9]);
    let (job, index) = (u64::from_le_bytes(job), word(9));
    // Workers write their own JSON and messages, so a body is UTF-8; a worker corrupting its
    // stdout shows as a replacement character, not as a lost record.
    let body = std::str::from_utf8(body).unwrap_or("\u{fffd}");
    let record = match header[0] {
        b'S' => Some(Record::Started { job, index }),
        b'O' => Some(Record::Ok { job, index, body }),
        b'E' => Some(Record::Err { job, index, body }),
        b'F' => Some(Record::Fatal { why: body }),
        _ => None,
    };
    Next::Record(record, HEADER + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_split_anywhere() {
        let error = error_body(&TaskError::new("ValueError", "boom"));
        let all = vec![
            Record::Started { job: 2, index: 3 },
            Record::Ok {
                job: 2,
                index: 3,
                body: "[4]",
            },
            Record::Err {
                job: 8,
                index: 9,
                body: &error,
            },
            Record::Fatal { why: "no" },
        ];
        let mut stream = Vec::new();
        for r in &all {
            push_record(&mut stream, r);
        }
        let mut got = Vec::new();
        let mut rest = &stream[..];
        while let Next::Record(record, used) = next_record(rest) {
            got.extend(record);
            rest = &rest[used..];
        }
        assert_eq!(got, all);
        assert!(rest.is_empty());
        assert_eq!(task_error(&error), TaskError::new("ValueError", "boom"));
        // Any prefix that cuts a record short asks for the rest of it.
        for cut in 1..HEADER + 3 {
            assert!(matches!(
                next_record(&stream[HEADER..][..cut]),
                Next::Partial(_)
            ));
        }
        assert_eq!(next_record(&stream[..5]), Next::Partial(HEADER));
    }

    #[test]
    fn tasks_round_trip() {
        for listed in [false, true] {
            let f = encode_task(42, 7, listed, "double", "[1,2]");
            match decode_task(&f) {
                Some(TaskFrame::Task {
                    job,
                    index,
                    listed: l,
                    name,
                    payload,
                }) => assert_eq!(
                    (job, index, l, name, payload),
                    (42, 7, listed, "double", "[1,2]")
                ),
                _ => panic!("not a task"),
            }
        }
    }
}
