//! Frames between the pool and its workers, and the encoding of values.
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
//! Integers are little-endian. Values are MessagePack ([`encode`], [`decode`]).
//!
//! - A task frame is `T job:u64 index:u32 flags:u8 name_len:u16 name payload` (see
//!   [`TaskHead`] for the flags; the payload is a value list of the chunk's arguments, in the
//!   message or attached), or `X` (exit).
//! - A report record is `tag job:u64 index:u32 len:u64 body`: `S` started (no body), `O` ok
//!   (body: the value list of results), `E` error (body: JSON `TaskError`), `F` the worker
//!   failed fatally (job and index 0; body: why). A worker's exit is no record: the pool
//!   learns it from reaping the process.
//! - A value list is `count:u32`, then the values' encodings back to back (MessagePack is
//!   self-delimiting): [`encode_values`], [`values`].
//!
//! Large byte strings are copied as little as possible: a task's arguments holding one are
//! written by the submitting thread straight into their file ([`encode_values`]), and a
//! worker writes a large value straight into its report pipe (see [`crate::worker`]); the
//! [`Sink`] an encoding goes to decides.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::unistd::{Whence, ftruncate, lseek};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::TaskError;
use poolspec_driver::{py_bytes_repr, py_float_repr, py_repr_str};

/// Largest payload a task frame carries in its message; a larger one is attached (see the
/// module docs). Below this size, copying through the socket costs less than making and
/// passing a file.
pub(crate) const INLINE_PAYLOAD: usize = 64 * 1024;

/// Bytes of a task frame before its name.
const TASK_HEAD: usize = 16;

/// Largest task message: header, the longest name, an inline payload. A worker's receive
/// buffer has this size.
pub(crate) const MAX_MESSAGE: usize = TASK_HEAD + u16::MAX as usize + INLINE_PAYLOAD;

/// The task frame that tells the worker reading it to exit.
pub(crate) const EXIT_FRAME: &[u8] = b"X";

/// A value that can be encoded (as MessagePack) into any [`Sink`], as often as needed: what
/// a registered task hands the worker, type erased.
pub(crate) trait Encode {
    fn encode(&self, sink: &mut Sink<'_>) -> Result<(), String>;
}

impl<T: Serialize + ?Sized> Encode for T {
    /// Structs are maps with field names (as in JSON, so skipped and defaulted fields work);
    /// byte strings (`serde_bytes`) are raw bytes.
    fn encode(&self, sink: &mut Sink<'_>) -> Result<(), String> {
        let mut serializer = rmp_serde::Serializer::new(sink).with_struct_map();
        self.serialize(&mut serializer).map_err(|e| e.to_string())
    }
}

/// Encodes `value`, appended to `out`. On error, `out` may hold part of the value: the
/// caller truncates it.
pub(crate) fn encode<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), String> {
    value.encode(&mut Sink::buffer(out, usize::MAX))
}

/// A decoder of values, reading a slice from its start.
pub(crate) type Decoder<'a> = rmp_serde::Deserializer<rmp_serde::decode::ReadRefReader<'a, [u8]>>;

/// The next value `decoder` holds.
pub(crate) fn decode_next<T: DeserializeOwned>(decoder: &mut Decoder<'_>) -> Result<T, String> {
    T::deserialize(decoder).map_err(|e| e.to_string())
}

/// Decodes a value [`encode`] wrote.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    decode_next(&mut Decoder::from_read_ref(bytes))
}

/// A single write at least this large (a byte string's or a string's bytes) is what makes a
/// value large enough to take the way that copies less.
pub(crate) const BIG_WRITE: usize = INLINE_PAYLOAD;

/// Where an encoding goes.
#[derive(Debug)]
pub(crate) enum Sink<'a> {
    /// Appended to a buffer; but a single write of more than `big` bytes is refused
    /// (`refused` is set, nothing is copied): the caller then encodes the value another way.
    Buffer {
        out: &'a mut Vec<u8>,
        big: usize,
        refused: bool,
    },
    /// Only counted.
    Count(u64),
    /// Written through to a descriptor (a pipe or a memory file), `limit` bytes at most:
    /// small writes gathered in `buf`, large ones written from the caller's own memory.
    Through {
        fd: BorrowedFd<'a>,
        buf: Vec<u8>,
        written: u64,
        limit: u64,
    },
}

impl<'a> Sink<'a> {
    pub(crate) fn buffer(out: &'a mut Vec<u8>, big: usize) -> Sink<'a> {
        Sink::Buffer {
            out,
            big,
            refused: false,
        }
    }

    pub(crate) fn through(fd: BorrowedFd<'a>, limit: u64) -> Sink<'a> {
        Sink::Through {
            fd,
            buf: Vec::with_capacity(GATHER),
            written: 0,
            limit,
        }
    }

    /// A write was refused as too large (see [`Sink::Buffer`]).
    pub(crate) fn refused(&self) -> bool {
        matches!(self, Sink::Buffer { refused: true, .. })
    }

    /// Bytes counted, or accepted for writing through.
    pub(crate) fn count(&self) -> u64 {
        match self {
            Sink::Buffer { out, .. } => out.len() as u64,
            Sink::Count(n) | Sink::Through { written: n, .. } => *n,
        }
    }
}

/// Bytes a [`Sink::Through`] gathers before it writes them.
const GATHER: usize = 64 * 1024;

/// Writes all of `bytes` to `fd` (blocking as needed).
pub(crate) fn write_fd(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

impl Write for Sink<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Buffer { out, big, refused } => {
                if data.len() > *big {
                    *refused = true;
                    return Err(std::io::Error::other("large: encoded another way"));
                }
                out.extend_from_slice(data);
            }
            Sink::Count(n) => *n += data.len() as u64,
            Sink::Through {
                fd,
                buf,
                written,
                limit,
            } => {
                if *written + data.len() as u64 > *limit {
                    return Err(std::io::Error::other("the value grew while it was written"));
                }
                *written += data.len() as u64;
                if buf.len() + data.len() <= GATHER {
                    buf.extend_from_slice(data);
                } else {
                    write_fd(*fd, buf)?;
                    buf.clear();
                    if data.len() < GATHER {
                        buf.extend_from_slice(data);
                    } else {
                        write_fd(*fd, data)?;
                    }
                }
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if let Sink::Through { fd, buf, .. } = self {
            write_fd(*fd, buf)?;
            buf.clear();
        }
        Ok(())
    }
}

/// A memory file for a payload: `spare` (a file used before, whose reader is done with it)
/// rewound, or a new one.
pub(crate) fn memory_file(spare: Option<OwnedFd>) -> Result<OwnedFd, Errno> {
    match spare {
        // The offset is shared with the descriptor its reader had, who left it at the end.
        Some(file) => lseek(&file, 0, Whence::SeekSet).map(|_| file),
        None => memfd_create("pool-ref-payload", MFdFlags::MFD_CLOEXEC),
    }
}

/// Ends a memory file written from its start at `len` bytes: what a former content left
/// beyond is cut off.
fn end_file(file: &OwnedFd, len: u64) -> Result<(), Errno> {
    ftruncate(file, i64::try_from(len).map_err(|_| Errno::EFBIG)?)
}

/// A memory file holding `payload` (see the module docs): `spare`, if given, rewritten.
pub(crate) fn payload_file(payload: &[u8], spare: Option<OwnedFd>) -> Result<OwnedFd, Errno> {
    let fd = memory_file(spare)?;
    write_fd(fd.as_fd(), payload)
        .map_err(|e| e.raw_os_error().map_or(Errno::EIO, Errno::from_raw))?;
    end_file(&fd, payload.len() as u64)?;
    Ok(fd)
}

/// Where [`encode_values`] put a value list.
#[derive(Debug)]
pub(crate) enum Payload {
    /// Appended to the buffer.
    Buffer,
    /// In a memory file, of its own.
    File(OwnedFd),
}

/// Encodes `items` as a value list, appended to `out`: in the buffer, unless an item holds
/// a byte string (or string) larger than [`BIG_WRITE`]; then the list is written straight
/// into the memory file `file` gives ([`memory_file`]), without a copy in between. (When it
/// gives none, it goes to the buffer all the same.) On error, `out` may hold part of the
/// list.
pub(crate) fn encode_values<T: Serialize>(
    out: &mut Vec<u8>,
    items: &[T],
    file: impl FnOnce() -> Option<OwnedFd>,
) -> Result<Payload, String> {
    let at = out.len();
    let count = (items.len() as u32).to_le_bytes();
    out.extend_from_slice(&count);
    let mut large = false;
    for item in items {
        let mut sink = Sink::buffer(out, BIG_WRITE);
        if let Err(e) = item.encode(&mut sink) {
            if !sink.refused() {
                return Err(e);
            }
            large = true;
            break;
        }
    }
    if !large {
        return Ok(Payload::Buffer);
    }
    out.truncate(at);
    let Some(file) = file() else {
        out.extend_from_slice(&count);
        for item in items {
            encode(out, item)?;
        }
        return Ok(Payload::Buffer);
    };
    let mut sink = Sink::through(file.as_fd(), u64::MAX);
    sink.write_all(&count).map_err(|e| e.to_string())?;
    for item in items {
        item.encode(&mut sink)?;
    }
    sink.flush().map_err(|e| e.to_string())?;
    end_file(&file, sink.count()).map_err(|e| e.to_string())?;
    Ok(Payload::File(file))
}

/// The values of a value list, decoded one at a time.
pub(crate) struct Values<'a> {
    /// How many there are.
    pub count: u32,
    pub decoder: Decoder<'a>,
}

impl std::fmt::Debug for Values<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Values")
            .field("count", &self.count)
            .finish()
    }
}

/// The values of the value list `bytes`, or `None` if it is too short to be one.
pub(crate) fn values(bytes: &[u8]) -> Option<Values<'_>> {
    let count = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
    Some(Values {
        count,
        decoder: Decoder::from_read_ref(&bytes[4..]),
    })
}

/// Any encoded value, in Python notation: how `repr()` shows the value Python would decode
/// it as (a map as a dict, a sequence as a list, a byte string as `b'...'`); for showing
/// values that are no concern of this crate's types.
#[derive(Debug)]
pub(crate) struct PyRepr(pub String);

impl<'de> Deserialize<'de> for PyRepr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PyRepr, D::Error> {
        d.deserialize_any(PyReprVisitor)
    }
}

struct PyReprVisitor;

impl<'de> serde::de::Visitor<'de> for PyReprVisitor {
    type Value = PyRepr;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<PyRepr, E> {
        Ok(PyRepr(if v { "True" } else { "False" }.to_owned()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<PyRepr, E> {
        Ok(PyRepr(v.to_string()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<PyRepr, E> {
        Ok(PyRepr(v.to_string()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<PyRepr, E> {
        Ok(PyRepr(py_float_repr(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<PyRepr, E> {
        Ok(PyRepr(py_repr_str(v)))
    }

    fn visit_bytes<E>(self, v: &[u8]) -> Result<PyRepr, E> {
        Ok(PyRepr(py_bytes_repr(v)))
    }

    fn visit_unit<E>(self) -> Result<PyRepr, E> {
        Ok(PyRepr("None".to_owned()))
    }

    fn visit_none<E>(self) -> Result<PyRepr, E> {
        Ok(PyRepr("None".to_owned()))
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<PyRepr, D::Error> {
        PyRepr::deserialize(d)
    }

    fn visit_newtype_struct<D: serde::Deserializer<'de>>(self, d: D) -> Result<PyRepr, D::Error> {
        PyRepr::deserialize(d)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<PyRepr, A::Error> {
        let mut items = Vec::new();
        while let Some(PyRepr(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(PyRepr(format!("[{}]", items.join(", "))))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<PyRepr, A::Error> {
        let mut entries = Vec::new();
        while let Some((PyRepr(k), PyRepr(v))) = map.next_entry()? {
            entries.push(format!("{k}: {v}"));
        }
        Ok(PyRepr(format!("{{{}}}", entries.join(", "))))
    }
}

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
/// arguments), which `payload` writes itself (to avoid a copy: see [`encode_values`]); its
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
    use serde_bytes::ByteBuf;
    use std::os::unix::fs::FileExt;

    /// The content of a file.
    fn content(file: &OwnedFd) -> Vec<u8> {
        let file = std::fs::File::from(file.try_clone().unwrap());
        let mut bytes = vec![0; file.metadata().unwrap().len() as usize];
        file.read_exact_at(&mut bytes, 0).unwrap();
        bytes
    }

    fn decode_all<T: DeserializeOwned>(list: &[u8]) -> Vec<T> {
        let mut values = values(list).expect("a value list");
        (0..values.count)
            .map(|_| decode_next(&mut values.decoder).expect("a value"))
            .collect()
    }

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
    fn values_encode_as_messagepack() {
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct S {
            a: u32,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            b: Option<String>,
            bytes: ByteBuf,
        }
        let s = S {
            a: 1,
            b: None,
            bytes: ByteBuf::from(vec![0u8; 1000]),
        };
        let mut out = Vec::new();
        encode(&mut out, &s).unwrap();
        // Field names, and the bytes as one MessagePack bin: no byte spends more than one.
        assert!(out.len() < 1000 + 20, "{} bytes", out.len());
        assert_eq!(decode::<S>(&out), Ok(s));
        let v = serde_json::json!({"k": [1, -2, 3.5, "x", null, true]});
        let mut out = Vec::new();
        encode(&mut out, &v).unwrap();
        assert_eq!(decode::<serde_json::Value>(&out), Ok(v));
        // Shown in Python notation, as `repr()` shows what Python would decode.
        let mut out = Vec::new();
        let shown = (
            ByteBuf::from(b"a'\x00".to_vec()),
            "x",
            serde_json::json!({"k": [1, -2, 3.5, null, true]}),
        );
        encode(&mut out, &shown).unwrap();
        assert_eq!(
            decode::<PyRepr>(&out).unwrap().0,
            r#"[b"a'\x00", 'x', {'k': [1, -2, 3.5, None, True]}]"#
        );
    }

    /// Small values go to the buffer; a byte string of more than [`BIG_WRITE`] bytes sends
    /// the whole list to a memory file, written there without a copy in between.
    #[test]
    fn value_lists_of_large_byte_strings_go_to_a_file() {
        for n in [0, 1, BIG_WRITE - 1, BIG_WRITE] {
            let items = [ByteBuf::from(vec![7; n]), ByteBuf::from(vec![8; 3])];
            let mut out = vec![9];
            let payload = encode_values(&mut out, &items, || None).unwrap();
            assert!(matches!(payload, Payload::Buffer), "{n} bytes");
            assert_eq!(decode_all::<ByteBuf>(&out[1..]), items);
        }
        for n in [BIG_WRITE + 1, 16 << 20] {
            let items = [ByteBuf::from(vec![8; 3]), ByteBuf::from(vec![7; n])];
            let mut out = vec![9];
            let Payload::File(file) =
                encode_values(&mut out, &items, || memory_file(None).ok()).unwrap()
            else {
                panic!("{n} bytes in the buffer");
            };
            assert_eq!(out, [9], "nothing left in the buffer");
            assert_eq!(decode_all::<ByteBuf>(&content(&file)), items);
        }
        // Many small values make no file, however many.
        let items: Vec<u64> = (0..100_000).collect();
        let mut out = Vec::new();
        assert!(matches!(
            encode_values(&mut out, &items, || None).unwrap(),
            Payload::Buffer
        ));
        assert_eq!(decode_all::<u64>(&out), items);
        // A value that does not serialize is an error, in either place.
        struct Refuse;
        impl Serialize for Refuse {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no"))
            }
        }
        assert!(encode_values(&mut Vec::new(), &[Refuse], || None).is_err());
    }

    /// A memory file written again holds the new payload alone, whatever it held before and
    /// wherever its offset was left.
    #[test]
    fn memory_files_are_rewritten_from_the_start() {
        let file = payload_file(&[1; 5000], None).unwrap();
        std::fs::File::from(file.try_clone().unwrap())
            .read_exact_at(&mut [0; 10], 0)
            .unwrap();
        let file = payload_file(&[2; 300], Some(file)).unwrap();
        assert_eq!(content(&file), vec![2; 300]);
        let items = [ByteBuf::from(vec![3; BIG_WRITE + 1])];
        let mut spare = Some(payload_file(&vec![4; 3 * BIG_WRITE], None).unwrap());
        let file = || memory_file(spare.take()).ok();
        let Payload::File(file) = encode_values(&mut Vec::new(), &items, file).unwrap() else {
            panic!("not in a file");
        };
        assert!(spare.is_none(), "the spare file was used");
        assert_eq!(decode_all::<ByteBuf>(&content(&file)), items);
        let file = payload_file(&[5; 7], Some(file)).unwrap();
        assert_eq!(content(&file), vec![5; 7]);
    }

    /// A sink writing through to a descriptor gathers small writes, passes large ones on
    /// as they are, and refuses to go beyond its limit.
    #[test]
    fn sinks_count_and_write_through() {
        let value = (
            ByteBuf::from(vec![5u8; 3 * GATHER]),
            vec![1u32; 5000],
            "end".to_owned(),
        );
        let mut counted = Sink::Count(0);
        value.encode(&mut counted).unwrap();
        let n = counted.count();
        let file = memfd_create("test", MFdFlags::MFD_CLOEXEC).unwrap();
        let mut sink = Sink::through(file.as_fd(), n);
        value.encode(&mut sink).unwrap();
        sink.flush().unwrap();
        assert_eq!(sink.count(), n);
        let written = content(&file);
        assert_eq!(written.len() as u64, n);
        assert_eq!(decode(&written), Ok(value.clone()));
        let mut short = Sink::through(file.as_fd(), n - 1);
        assert!(value.encode(&mut short).is_err());
        // A buffer refuses a large write without copying any of it.
        let mut out = Vec::new();
        let mut sink = Sink::buffer(&mut out, GATHER);
        assert!(value.encode(&mut sink).is_err());
        assert!(sink.refused());
        assert!(out.len() < 16, "{} bytes copied", out.len());
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
