//! Frames between the pool and its workers.
//!
//! Both channels are `SOCK_SEQPACKET` socket pairs, so every frame is one message: a reader
//! gets a whole message or nothing, and the kernel hands each message to exactly one reader.
//! That is what lets all workers pull tasks from one shared queue, as CPython's workers pull
//! from one shared pipe, without a lock between processes. Each frame starts with a one-byte
//! tag; integers are little-endian; payloads are JSON.
//!
//! - Tasks (pool → worker): `T job:u64 index:u32 listed:u8 name_len:u16 name payload` (payload
//!   is a JSON array of arguments, one per item of the chunk; `listed` is 1 when the chunk's
//!   value is a list, as for the map family, and 0 when it is its one item's value, as for
//!   `apply`), or `X` (exit).
//! - Reports (worker → pool): a frame is a sequence of records, each
//!   `tag worker:u32 job:u64 index:u32 len:u32 body`: `S` started, `O` ok (body: JSON array of
//!   results), `E` error (body: JSON `TaskError`), `D` the worker exited (body: how; sent by the
//!   pool itself once it reaped the worker), `F` the worker failed fatally (body: why), `Q`
//!   stop the result handler.

use crate::error::TaskError;

/// Largest frame, in bytes. Bigger arguments or results are refused with an error.
pub const MAX_FRAME: usize = 200 * 1024;

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

/// One record of a report frame.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Record {
    Started {
        worker: u32,
        job: u64,
        index: u32,
    },
    Ok {
        worker: u32,
        job: u64,
        index: u32,
        body: String,
    },
    Err {
        worker: u32,
        job: u64,
        index: u32,
        error: TaskError,
    },
    Exited {
        worker: u32,
        how: String,
    },
    Fatal {
        worker: u32,
        why: String,
    },
    Stop,
}

pub(crate) fn push_record(out: &mut Vec<u8>, record: &Record) {
    let (tag, worker, job, index, body): (u8, u32, u64, u32, std::borrow::Cow<'_, str>) =
        match record {
            Record::Started { worker, job, index } => (b'S', *worker, *job, *index, "".into()),
            Record::Ok {
                worker,
                job,
                index,
                body,
            } => (b'O', *worker, *job, *index, body.as_str().into()),
            Record::Err {
                worker,
                job,
                index,
                error,
            } => (
                b'E',
                *worker,
                *job,
                *index,
                serde_json::to_string(error).unwrap_or_default().into(),
            ),
            Record::Exited { worker, how } => (b'D', *worker, 0, 0, how.as_str().into()),
            Record::Fatal { worker, why } => (b'F', *worker, 0, 0, why.as_str().into()),
            Record::Stop => (b'Q', 0, 0, 0, "".into()),
        };
    out.push(tag);
    out.extend_from_slice(&worker.to_le_bytes());
    out.extend_from_slice(&job.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body.as_bytes());
}

/// Decodes every record of a frame; a malformed tail is dropped.
pub(crate) fn decode_records(mut frame: &[u8]) -> Vec<Record> {
    let mut records = Vec::new();
    while frame.len() >= 21 {
        let tag = frame[0];
        let word =
            |r: std::ops::Range<usize>| -> [u8; 4] { frame[r].try_into().unwrap_or_default() };
        let worker = u32::from_le_bytes(word(1..5));
        let job = u64::from_le_bytes(frame[5..13].try_into().unwrap_or_default());
        let index = u32::from_le_bytes(word(13..17));
        let len = u32::from_le_bytes(word(17..21)) as usize;
        let Some(body) = frame.get(21..21 + len) else {
            break;
        };
        let body = String::from_utf8_lossy(body).into_owned();
        frame = &frame[21 + len..];
        records.push(match tag {
            b'S' => Record::Started { worker, job, index },
            b'O' => Record::Ok {
                worker,
                job,
                index,
                body,
            },
            b'E' => Record::Err {
                worker,
                job,
                index,
                error: serde_json::from_str(&body)
                    .unwrap_or_else(|_| TaskError::new("RuntimeError", body)),
            },
            b'D' => Record::Exited { worker, how: body },
            b'F' => Record::Fatal { worker, why: body },
            b'Q' => Record::Stop,
            _ => continue,
        });
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let all = vec![
            Record::Started {
                worker: 1,
                job: 2,
                index: 3,
            },
            Record::Ok {
                worker: 1,
                job: 2,
                index: 3,
                body: "[4]".into(),
            },
            Record::Err {
                worker: 7,
                job: 8,
                index: 9,
                error: TaskError::new("ValueError", "boom"),
            },
            Record::Exited {
                worker: 5,
                how: "signal 9".into(),
            },
            Record::Stop,
        ];
        let mut frame = Vec::new();
        for r in &all {
            push_record(&mut frame, r);
        }
        assert_eq!(decode_records(&frame), all);
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
