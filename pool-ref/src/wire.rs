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
//! - A task frame is `T job:u64 index:u32 flags:u8 name_len:u16 name payload` (payload is
//!   a JSON array of arguments, one per item of the chunk; see [`TaskHead`] for the flags),
//!   or `X` (exit).
//! - A report record is `tag job:u64 index:u32 len:u32 body`: `S` started (no body), `O` ok
//!   (body: JSON array of results), `E` error (body: JSON `TaskError`), `F` the worker failed
//!   fatally (job and index 0; body: why). A worker's exit is no record: the pool learns it
//!   from reaping the process.

use crate::error::TaskError;

/// Largest frame, in bytes. Bigger arguments or results are refused with an error.
pub const MAX_FRAME: usize = 200 * 1024;

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
    /// the next one queued when done, so it looks before reporting (see [`crate::worker`]).
    /// Flag bit 1.
    pub more: bool,
    pub name: &'a str,
}

pub(crate) enum TaskFrame<'a> {
    Task {
        head: TaskHead<'a>,
        payload: &'a str,
    },
    Exit,
}

/// Appends a task frame to `out`: the header, then `payload` (a JSON array of the chunk's
/// arguments), which writes itself (to avoid a copy); its error is returned as is.
pub(crate) fn encode_task<E>(
    out: &mut Vec<u8>,
    head: &TaskHead<'_>,
    payload: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    // Task names are static strings of a program; one beyond 64 KiB is not a name.
    let name = &head.name.as_bytes()[..head.name.len().min(usize::from(u16::MAX))];
    out.push(b'T');
    out.extend_from_slice(&head.job.to_le_bytes());
    out.extend_from_slice(&head.index.to_le_bytes());
    out.push(u8::from(head.listed) | u8::from(head.more) << 1);
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name);
    payload(out)
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
            let payload = std::str::from_utf8(frame.get(16 + len..)?).ok()?;
            let head = TaskHead {
                job,
                index,
                listed: flags & 1 != 0,
                more: flags & 2 != 0,
                name,
            };
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
    let start = start_record(out, tag, job, index);
    out.extend_from_slice(body.as_bytes());
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
    out.extend_from_slice(&[0; 4]);
    start
}

/// Completes the record starting at `start`: its body is everything after its header.
pub(crate) fn finish_record(out: &mut [u8], start: usize) {
    let len = (out.len() - start - HEADER) as u32;
    out[start + 13..start + HEADER].copy_from_slice(&len.to_le_bytes());
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
        for (listed, more) in [(false, false), (true, false), (false, true), (true, true)] {
            let head = TaskHead {
                job: 42,
                index: 7,
                listed,
                more,
                name: "double",
            };
            let mut f = Vec::new();
            encode_task(&mut f, &head, |out| {
                out.extend_from_slice(b"[1,2]");
                Ok::<(), ()>(())
            })
            .unwrap();
            match decode_task(&f) {
                Some(TaskFrame::Task { head: got, payload }) => {
                    assert_eq!((got, payload), (head, "[1,2]"));
                }
                _ => panic!("not a task"),
            }
        }
    }
}
