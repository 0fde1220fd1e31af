//! Frames between the pool and its workers.
//!
//! Two kinds of channel, chosen for what each has to guarantee:
//!
//! - **Tasks** go through one `SOCK_SEQPACKET` socket pair whose reading end every worker
//!   holds. Every frame is one message: a reader gets a whole message or nothing, and the
//!   kernel hands each message to exactly one reader. That is what lets all workers pull
//!   tasks from one shared queue in FIFO order, as CPython's workers pull from one shared
//!   pipe, without a lock between processes. A message cannot be larger than the socket's
//!   send buffer (a few MiB at most, a system limit), and the pieces of one value split
//!   over several messages could go to different workers; so a payload above
//!   [`INLINE_PAYLOAD`] is not in the message at all: it is *attached*, written to an
//!   anonymous memory file (`memfd`) whose descriptor travels with the frame (`SCM_RIGHTS`).
//!   Whoever receives the frame receives the file, and the file is gone once both sides
//!   closed it, whatever happens to either.
//! - **Reports** go through one pipe per worker (the worker's stdout). Only one process
//!   writes each, so no framing is needed from the kernel: a report is a byte stream of
//!   records, and the pool reads many records per system call. A pipe is also the cheapest
//!   channel per message, and its end of file comes after everything its worker wrote. A
//!   record of any size streams through it, reassembled by the reader from as many reads as
//!   it takes (see [`next_record`]).
//!
//! Integers are little-endian. Values are MessagePack, in value lists (`codec.rs`).
//!
//! - A task frame is `T job:u64 index:u32 flags:u8 name_len:u16 name payload` (see
//!   [`TaskHead`] for the flags; the payload is a value list of the chunk's arguments, in the
//!   message or attached), or `X` (exit).
//! - A report record is `tag job:u64 index:u32 len:u64 body`: `S` started (no body), `O` ok
//!   (body: the value list of results), `E` error (body: JSON `TaskError`), `F` the worker
//!   failed fatally (job and index 0; body: why). A worker's exit is no record: the pool
//!   learns it from reaping the process.

use std::os::fd::OwnedFd;

use crate::codec::{BIG_WRITE, Payload};
use crate::error::TaskError;

/// Largest payload a task frame carries in its message; a larger one is attached (see the
/// module docs). Below this size, copying through the socket costs less than making and
/// passing a file.
pub(crate) const INLINE_PAYLOAD: usize = 64 * 1024;
// A value list with a write of `BIG_WRITE` bytes is encoded into a file at once, because it
// would be attached anyway.
const _: () = assert!(BIG_WRITE == INLINE_PAYLOAD);

/// Bytes of a task frame before its name.
const TASK_HEAD: usize = 16;

/// Largest task message: header, the longest name, an inline payload. A worker's receive
/// buffer has this size.
pub(crate) const MAX_MESSAGE: usize = TASK_HEAD + u16::MAX as usize + INLINE_PAYLOAD;

/// The task frame that tells the worker reading it to exit.
pub(crate) const EXIT_FRAME: &[u8] = b"X";

/// What a task frame says besides its arguments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TaskHead<'a> {
    pub job: u64,
    pub index: u32,
    /// The chunk's value is a list (map family), not its one item's value (`apply`). Flag
    /// bit 0.
    pub listed: bool,
    /// More frames of the same submission follow: whoever runs this task will likely find
    /// the next one queued when done, so it looks before reporting (see `worker.rs`).
    /// Flag bit 1.
    pub more: bool,
    /// The payload is not in the message but attached: the content of the file whose
    /// descriptor comes with it. Flag bit 2; set by [`encode_task`].
    pub attached: bool,
    pub name: &'a str,
}

pub(crate) enum TaskFrame<'a> {
    /// A task; `payload` is empty when the payload is attached.
    Task {
        head: TaskHead<'a>,
        payload: &'a [u8],
    },
    Exit,
}

/// Where a task frame's payload went: see [`encode_task`].
#[derive(Debug)]
pub(crate) enum Attachment {
    /// In the message.
    Inline,
    /// Attached: it starts at this position of the buffer, the message is what comes
    /// before; its file is made when the frame is sent.
    Buffer(usize),
    /// Attached: in this file already; the message is all of the frame.
    File(OwnedFd),
}

/// Appends a task frame to `out`: the header, then the payload (a value list of the chunk's
/// arguments), which `payload` writes itself (to avoid a copy: see [`encode_values`](crate::codec::encode_values)); its
/// error is returned as is. `head.attached` is ignored: a payload in a file, or larger than
/// [`INLINE_PAYLOAD`], is marked attached.
pub(crate) fn encode_task<E>(
    out: &mut Vec<u8>,
    head: &TaskHead<'_>,
    payload: impl FnOnce(&mut Vec<u8>) -> Result<Payload, E>,
) -> Result<Attachment, E> {
    // Task names are static strings of a program; one beyond 64 KiB is not a name.
    let name = &head.name.as_bytes()[..head.name.len().min(usize::from(u16::MAX))];
    let start = out.len();
    out.push(b'T');
    out.extend_from_slice(&head.job.to_le_bytes());
    out.extend_from_slice(&head.index.to_le_bytes());
    out.push(u8::from(head.listed) | u8::from(head.more) << 1);
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name);
    let at = out.len();
    let attachment = match payload(out)? {
        Payload::Buffer if out.len() - at <= INLINE_PAYLOAD => return Ok(Attachment::Inline),
        Payload::Buffer => Attachment::Buffer(at),
        Payload::File(file) => Attachment::File(file),
    };
    out[start + 13] |= 4;
    Ok(attachment)
}

pub(crate) fn decode_task(frame: &[u8]) -> Option<TaskFrame<'_>> {
    match frame.first()? {
        b'X' => Some(TaskFrame::Exit),
        b'T' => {
            let job = u64::from_le_bytes(frame.get(1..9)?.try_into().ok()?);
            let index = u32::from_le_bytes(frame.get(9..13)?.try_into().ok()?);
            let flags = *frame.get(13)?;
            let len = usize::from(u16::from_le_bytes(frame.get(14..16)?.try_into().ok()?));
            let name = std::str::from_utf8(frame.get(16..16 + len)?).ok()?;
            let payload = frame.get(16 + len..)?;
            let head = TaskHead {
                job,
                index,
                listed: flags & 1 != 0,
                more: flags & 2 != 0,
                attached: flags & 4 != 0,
                name,
            };
            if head.attached && !payload.is_empty() {
                return None;
            }
            Some(TaskFrame::Task { head, payload })
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
    /// The body is a value list.
    Ok {
        job: u64,
        index: u32,
        body: &'a [u8],
    },
    /// The body is a JSON [`TaskError`]; see [`task_error`].
    Err {
        job: u64,
        index: u32,
        body: &'a [u8],
    },
    Fatal {
        why: &'a [u8],
    },
}

/// Bytes of a record before its body.
pub(crate) const HEADER: usize = 21;

/// Appends a record to `out` (the worker's buffer of records not yet written).
pub(crate) fn push_record(out: &mut Vec<u8>, record: &Record<'_>) {
    let (tag, job, index, body): (u8, u64, u32, &[u8]) = match *record {
        Record::Started { job, index } => (b'S', job, index, b""),
        Record::Ok { job, index, body } => (b'O', job, index, body),
        Record::Err { job, index, body } => (b'E', job, index, body),
        Record::Fatal { why } => (b'F', 0, 0, why),
    };
    let start = start_record(out, tag, job, index);
    out.extend_from_slice(body);
    finish_record(out, start);
}

/// Appends the header of an `O` record whose body the caller then appends itself (to avoid
/// a copy); returns where the record starts, for [`finish_record`].
pub(crate) fn start_ok_record(out: &mut Vec<u8>, job: u64, index: u32) -> usize {
    start_record(out, b'O', job, index)
}

fn start_record(out: &mut Vec<u8>, tag: u8, job: u64, index: u32) -> usize {
    let start = out.len();
    out.push(tag);
    out.extend_from_slice(&job.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    start
}

/// Completes the record starting at `start`: its body is everything after its header.
pub(crate) fn finish_record(out: &mut [u8], start: usize) {
    let len = (out.len() - start - HEADER) as u64;
    out[start + 13..start + HEADER].copy_from_slice(&len.to_le_bytes());
}

/// The body of an `E` record.
pub(crate) fn error_body(error: &TaskError) -> String {
    serde_json::to_string(error).unwrap_or_default()
}

/// The error an `E` record's body describes (a body that is no `TaskError` is shown as is).
pub(crate) fn task_error(body: &[u8]) -> TaskError {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| TaskError::new("RuntimeError", String::from_utf8_lossy(body)))
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
    let mut word = [0u8; 8];
    word.copy_from_slice(&header[13..HEADER]);
    // A length beyond the address space is a corrupt stream: waiting for it never ends, as
    // the pool would wait for any record the worker never finished.
    let len = usize::try_from(u64::from_le_bytes(word)).unwrap_or(usize::MAX - HEADER);
    let total = HEADER.saturating_add(len);
    let Some(body) = stream.get(HEADER..total) else {
        return Next::Partial(total);
    };
    word.copy_from_slice(&header[1..9]);
    let job = u64::from_le_bytes(word);
    let index = u32::from_le_bytes([header[9], header[10], header[11], header[12]]);
    let record = match header[0] {
        b'S' => Some(Record::Started { job, index }),
        b'O' => Some(Record::Ok { job, index, body }),
        b'E' => Some(Record::Err { job, index, body }),
        b'F' => Some(Record::Fatal { why: body }),
        _ => None,
    };
    Next::Record(record, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memfile::payload_file;
    use crate::memfile::tests::content;

    #[test]
    fn records_round_trip_and_split_anywhere() {
        let error = error_body(&TaskError::new("ValueError", "boom"));
        let all = vec![
            Record::Started { job: 2, index: 3 },
            Record::Ok {
                job: 2,
                index: 3,
                body: b"\x01\x00\x00\x00\x04",
            },
            Record::Err {
                job: 8,
                index: 9,
                body: error.as_bytes(),
            },
            Record::Fatal { why: b"no" },
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
        assert_eq!(
            task_error(error.as_bytes()),
            TaskError::new("ValueError", "boom")
        );
        // Any prefix that cuts a record short asks for the rest of it.
        for cut in 1..HEADER + 3 {
            assert!(matches!(
                next_record(&stream[HEADER..][..cut]),
                Next::Partial(_)
            ));
        }
        assert_eq!(next_record(&stream[..5]), Next::Partial(HEADER));
    }

    /// A large record arrives in pieces of any size: the reader asks for its whole length as
    /// soon as it has the header, and decodes it once it has every byte, not before.
    #[test]
    fn a_large_record_is_reassembled_from_pieces() {
        let body: Vec<u8> = (0..3 * INLINE_PAYLOAD + 7)
            .map(|i| (i % 251) as u8)
            .collect();
        let mut stream = Vec::new();
        push_record(
            &mut stream,
            &Record::Ok {
                job: 1,
                index: 0,
                body: &body,
            },
        );
        push_record(&mut stream, &Record::Started { job: 2, index: 0 });
        let total = HEADER + body.len();
        for piece in [1, 7, 4096, 65536, 100_000] {
            let mut received = Vec::new();
            let mut offered = 0;
            let decoded = loop {
                match next_record(&received) {
                    Next::Record(record, used) => break (record, used),
                    Next::Partial(need) => {
                        let want = if received.len() >= HEADER {
                            total
                        } else {
                            HEADER
                        };
                        assert_eq!(need, want);
                        let end = (offered + piece).min(stream.len());
                        received.extend_from_slice(&stream[offered..end]);
                        offered = end;
                    }
                }
            };
            assert_eq!(decoded.1, total);
            assert_eq!(
                decoded.0,
                Some(Record::Ok {
                    job: 1,
                    index: 0,
                    body: &body
                })
            );
        }
    }

    #[test]
    fn tasks_round_trip() {
        for (listed, more) in [(false, false), (true, false), (false, true), (true, true)] {
            let head = TaskHead {
                job: 42,
                index: 7,
                listed,
                more,
                attached: false,
                name: "double",
            };
            let mut f = Vec::new();
            let at = encode_task(&mut f, &head, |out| {
                out.extend_from_slice(b"[1,2]");
                Ok::<_, ()>(Payload::Buffer)
            })
            .unwrap();
            assert!(matches!(at, Attachment::Inline));
            match decode_task(&f) {
                Some(TaskFrame::Task { head: got, payload }) => {
                    assert_eq!((got, payload), (head, &b"[1,2]"[..]));
                }
                _ => panic!("not a task"),
            }
        }
    }

    /// A payload of exactly [`INLINE_PAYLOAD`] bytes stays in the message; one byte more is
    /// attached, and the message is then the header alone; so is a payload in a file.
    #[test]
    fn payloads_beyond_the_inline_limit_are_attached() {
        let head = TaskHead {
            job: 1,
            index: 2,
            listed: true,
            more: false,
            attached: false,
            name: "n",
        };
        let attached = TaskHead {
            attached: true,
            ..head
        };
        for size in [0, 1, INLINE_PAYLOAD - 1, INLINE_PAYLOAD] {
            let mut f = vec![9, 9]; // frames lie back to back: this one starts at 2
            let at = encode_task(&mut f, &head, |out| {
                out.resize(out.len() + size, 5);
                Ok::<_, ()>(Payload::Buffer)
            })
            .unwrap();
            assert!(matches!(at, Attachment::Inline), "{size} bytes are inline");
            assert!(f.len() - 2 <= MAX_MESSAGE);
            match decode_task(&f[2..]) {
                Some(TaskFrame::Task { head: got, payload }) => {
                    assert_eq!(got, head);
                    assert_eq!(payload.len(), size);
                }
                _ => panic!("not a task"),
            }
        }
        for size in [INLINE_PAYLOAD + 1, 16 << 20] {
            let mut f = vec![9, 9];
            let Attachment::Buffer(at) = encode_task(&mut f, &head, |out| {
                out.resize(out.len() + size, 5);
                Ok::<_, ()>(Payload::Buffer)
            })
            .unwrap() else {
                panic!("{size} bytes are not attached");
            };
            assert_eq!(f.len() - at, size);
            match decode_task(&f[2..at]) {
                Some(TaskFrame::Task { head: got, payload }) => {
                    assert_eq!(got, attached);
                    assert!(payload.is_empty());
                }
                _ => panic!("not a task"),
            }
            // An attached frame that carries bytes anyway is malformed.
            assert!(decode_task(&f[2..at + 1]).is_none());
        }
        let mut f = Vec::new();
        let file = payload_file(b"abc", None).unwrap();
        let got = encode_task(&mut f, &head, |_| Ok::<_, ()>(Payload::File(file))).unwrap();
        let Attachment::File(file) = got else {
            panic!("no file");
        };
        assert_eq!(content(&file), b"abc");
        assert!(matches!(
            decode_task(&f),
            Some(TaskFrame::Task { head, .. }) if head == attached
        ));
    }
}
