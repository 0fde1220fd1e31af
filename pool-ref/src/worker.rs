//! The worker side: what a re-executed copy of the program does when [`crate::init`] finds
//! it was started as a pool worker.
//!
//! A worker reads tasks from the shared task socket (its stdin) and writes report records to
//! its own report pipe (its stdout); see [`crate::wire`]. Its real stdout is pointed at
//! stderr first, so a stray `println!` in a task cannot corrupt the reports. It dies with
//! the pool's parent (`PR_SET_PDEATHSIG`), so no worker outlives a parent that crashed or was
//! killed.
//!
//! Before running a task a worker reports `started`, so that the pool knows which result a
//! dying worker leaves unfinished. When the next task is already queued as a task finishes,
//! that `started` and the finished task's result go out in one write: one `recv` and one
//! `write` per task while the queue is busy. The worker looks for that next task (a `recv`
//! that does not block) only when the frame it ran said more of its submission followed;
//! after a lone task (an `apply`) it reports at once, saving the look that would find
//! nothing.
//!
//! A task whose arguments are attached (see [`crate::wire`]) comes with a file descriptor,
//! read in one system call after `started` went out. A result larger than a pipe holds by
//! default first enlarges the report pipe (to [`LARGE_PIPE`]), so that the pool reads it in
//! few, large pieces.

use std::io::{IoSliceMut, Read, Seek, SeekFrom, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
use serde::{Deserialize, Serialize};

use crate::codec::{BIG_WRITE, Decoder, Encode, EncodeError, Sink, decode, values};
use crate::error::TaskError;
use crate::memfile::write_fd;
use crate::pyrepr::PyRepr;
use crate::registry::{CallError, Registry};
use crate::wire::{
    HEADER, MAX_MESSAGE, Record, TaskFrame, TaskHead, decode_task, error_body, finish_record,
    push_record, start_ok_record,
};

/// The first argument that marks a worker process.
pub(crate) const WORKER_FLAG: &str = "--pool-ref-worker";

/// What a worker needs to know, passed as one JSON argument.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorkerConfig {
    pub id: u32,
    pub parent: u32,
    pub maxtasks: Option<u32>,
    /// Initializer task name and its encoded argument (hexadecimal in JSON: the config
    /// is a command-line argument).
    #[serde(with = "hex")]
    pub initializer: Option<(String, Vec<u8>)>,
}

/// Bytes as a hexadecimal string.
mod hex {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        v: &Option<(String, Vec<u8>)>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        v.as_ref()
            .map(|(name, bytes)| (name, hex(bytes)))
            .serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<(String, Vec<u8>)>, D::Error> {
        let Some((name, hex)) = Option::<(String, String)>::deserialize(d)? else {
            return Ok(None);
        };
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| serde::de::Error::custom("malformed hexadecimal"))?;
        Ok(Some((name, bytes)))
    }
}

/// Runs the worker loop if this process is a worker; never returns then.
pub(crate) fn run_if_worker(registry: &Registry) {
    let mut args = std::env::args();
    let _program = args.next();
    if args.next().as_deref() != Some(WORKER_FLAG) {
        return;
    }
    let config: Option<WorkerConfig> = args.next().and_then(|a| serde_json::from_str(&a).ok());
    let Some(config) = config else {
        eprintln!("pool-ref worker: missing or malformed configuration");
        std::process::exit(2);
    };
    let code = match serve(registry, &config) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("pool-ref worker {}: {e}", config.id);
            3
        }
    };
    std::process::exit(code);
}

fn io(e: Errno) -> std::io::Error {
    std::io::Error::from(e)
}

fn serve(registry: &Registry, config: &WorkerConfig) -> std::io::Result<()> {
    // Die with the parent; if it already died before this took effect, stop now.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io)?;
    if nix::unistd::getppid().as_raw() as u32 != config.parent {
        return Err(std::io::Error::other("the pool's parent is gone"));
    }
    // Close-on-exec copies: a process a task starts must not hold the report pipe, or the
    // pool would see its end of file only when that process exits.
    let tasks: OwnedFd = std::io::stdin().as_fd().try_clone_to_owned()?;
    let reports: OwnedFd = std::io::stdout().as_fd().try_clone_to_owned()?;
    nix::unistd::dup2_stdout(std::io::stderr()).map_err(io)?;
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(null);
    }

    let mut reports = Reports::new(reports);
    if let Some((name, args)) = &config.initializer
        && let Err(e) = initialize(registry, name, args)
    {
        let why = format!("initializer failed: {e}");
        let mut out = Vec::new();
        push_record(
            &mut out,
            &Record::Fatal {
                why: why.as_bytes(),
            },
        );
        let _ = reports.write_all(&out);
        return Err(std::io::Error::other(why));
    }
    serve_tasks(registry, config, &tasks, &mut reports)
}

/// Runs the initializer. Its value is discarded, so one that does not serialize is no
/// failure.
fn initialize(registry: &Registry, name: &str, args: &[u8]) -> Result<(), TaskError> {
    match registry.task(name)?(&mut Decoder::from_read_ref(args), &mut |_| Ok(())) {
        Err(CallError::Raised(e)) => Err(e),
        Ok(()) | Err(CallError::Unencodable(_)) => Ok(()),
    }
}

/// The task loop: pull a task from the shared queue, report it started, run it, report its
/// value; until an exit frame, the end of the queue, or `maxtasks`.
fn serve_tasks(
    registry: &Registry,
    config: &WorkerConfig,
    tasks: &OwnedFd,
    reports: &mut Reports,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    // Records not yet written: the last result waits here only while the next task is being
    // fetched without blocking, so that one write carries both "result" and "started".
    let mut out: Vec<u8> = Vec::new();
    // The last attached payload read.
    let mut attached: Vec<u8> = Vec::new();
    let mut done: u32 = 0;
    loop {
        let Message { len: n, file } =
            next_task(tasks, reports, &mut buf, &mut out, &mut attached)?;
        if n == 0 {
            // Every sender is gone: the pool's parent closed the queue.
            return reports.write_all(&out);
        }
        match decode_task(&buf[..n]) {
            Some(TaskFrame::Exit) => return reports.write_all(&out),
            None => {
                // Never produced by the pool: say so loudly rather than lose a task quietly.
                let why = format!("malformed task frame of {n} bytes");
                push_record(
                    &mut out,
                    &Record::Fatal {
                        why: why.as_bytes(),
                    },
                );
                reports.write_all(&out)?;
                return Err(std::io::Error::other(why));
            }
            Some(TaskFrame::Task { head, payload }) => {
                // Report the start before running: a task may block indefinitely, and the
                // pool must know what a worker was running if it dies.
                let (job, index) = (head.job, head.index);
                push_record(&mut out, &Record::Started { job, index });
                reports.write_all(&out)?;
                out.clear();
                let payload = if head.attached {
                    read_attached(file, &mut attached).map(|()| &attached[..])
                } else {
                    Ok(payload)
                };
                run_chunk(registry, &head, payload, &mut out, reports)?;
                done += 1;
                if config.maxtasks.is_some_and(|max| done >= max) {
                    return reports.write_all(&out);
                }
                if !head.more || out.len() > KEEP {
                    // Probably nothing queued behind it (or a large result that should not
                    // wait): report at once instead of looking.
                    reports.write_all(&out)?;
                    out.clear();
                    out.shrink_to(KEEP);
                }
            }
        }
    }
}

/// Bytes of a buffer kept between tasks. The buffer of attached payloads keeps what the
/// last one needed while tasks keep coming (another large task is likely to need as much,
/// and fresh memory costs more than copying into it), and gives back what is beyond this
/// once the worker waited [`IDLE`] for a task; records are written at this size.
const KEEP: usize = 1 << 20;

/// How long a worker holding a large buffer waits for a task before it gives the buffer
/// back.
const IDLE: u16 = 1000;

/// Size of a report pipe once a large result goes through it (the largest an unprivileged
/// process may ask for by default): a pipe's default capacity, 64 KiB, would have the pool
/// wake up for every 64 KiB of it.
const LARGE_PIPE: usize = 1 << 20;

/// The report pipe.
struct Reports {
    pipe: OwnedFd,
    /// It was enlarged to [`LARGE_PIPE`] (or that was tried).
    enlarged: bool,
}

impl Reports {
    fn new(pipe: OwnedFd) -> Reports {
        Reports {
            pipe,
            enlarged: false,
        }
    }

    /// Writes all of `bytes` (a big record may take several writes).
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.expect(bytes.len() as u64);
        write_fd(self.pipe.as_fd(), bytes)
    }

    /// Enlarges the pipe if `bytes` are more than its default capacity.
    fn expect(&mut self, bytes: u64) {
        if bytes > 64 * 1024 && !self.enlarged {
            self.enlarged = true;
            // Only a bigger buffer: a failure (a system limit) costs speed, not correctness.
            let _ = fcntl(&self.pipe, FcntlArg::F_SETPIPE_SZ(LARGE_PIPE as i32));
        }
    }
}

/// A message from the task socket: its length (0 when the queue ended) and the file that
/// came with it, if any.
struct Message {
    len: usize,
    file: Option<OwnedFd>,
}

/// Receives the next task frame into `buf`, and the file attached to it if any.
/// With records pending in `out` (the last task said more were coming), it first looks
/// without blocking: when the next task is already queued, its "started" joins them in one
/// write; otherwise they are written before it blocks.
/// Before it blocks while `spare` (the buffer of attached payloads) holds more than
/// [`KEEP`], it waits [`IDLE`] milliseconds for a task, and then gives that back.
fn next_task(
    tasks: &OwnedFd,
    reports: &mut Reports,
    buf: &mut [u8],
    out: &mut Vec<u8>,
    spare: &mut Vec<u8>,
) -> std::io::Result<Message> {
    if !out.is_empty() {
        if let Some(message) = receive(tasks, buf, RecvFlags::DONTWAIT)? {
            return Ok(message);
        }
        reports.write_all(out)?;
        out.clear();
    }
    if spare.capacity() > KEEP {
        let mut fds = [PollFd::new(tasks.as_fd(), PollFlags::POLLIN)];
        if matches!(poll(&mut fds, PollTimeout::from(IDLE)), Ok(0)) {
            *spare = Vec::new();
        }
    }
    let message = receive(tasks, buf, RecvFlags::empty())?;
    Ok(message.unwrap_or(Message { len: 0, file: None }))
}

/// One `recvmsg` from the task socket, with room for one attached file (received
/// close-on-exec: a process a task starts must not hold it). `None` if `flags` say not to
/// wait and nothing is queued.
fn receive(tasks: &OwnedFd, buf: &mut [u8], flags: RecvFlags) -> std::io::Result<Option<Message>> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    loop {
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let received = recvmsg(
            tasks,
            &mut [IoSliceMut::new(buf)],
            &mut control,
            flags | RecvFlags::CMSG_CLOEXEC,
        );
        match received {
            Ok(message) => {
                // Only the pool sends, one file at most; anything else is closed unread.
                let file = control.drain().find_map(|m| match m {
                    RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
                    _ => None,
                });
                let len = message.bytes;
                return Ok(Some(Message { len, file }));
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) if flags.contains(RecvFlags::DONTWAIT) => {
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads the content of an attached payload's file into `payload`; or says why it did not
/// arrive.
fn read_attached(file: Option<OwnedFd>, payload: &mut Vec<u8>) -> Result<(), TaskError> {
    let lost =
        |why: String| TaskError::new("OSError", format!("the task's arguments were lost: {why}"));
    // A receiver out of descriptors gets the message without its file.
    let mut file = std::fs::File::from(file.ok_or_else(|| lost("no file came with them".into()))?);
    // The file's offset is shared with the pool, which left it at the end of what it wrote.
    file.seek(SeekFrom::Start(0))
        .map_err(|e| lost(e.to_string()))?;
    payload.clear();
    // Sized from the file: one read of it all (and one that finds its end).
    file.read_to_end(payload).map_err(|e| lost(e.to_string()))?;
    Ok(())
}

/// Runs a task on every item of a chunk (a value list), as CPython's `mapstar` does, and
/// appends the chunk's record to `out`: `O` with the value list of its values, or `E`. The
/// first item that raises fails the chunk and the items after it do not run. A value that
/// fails to serialize fails the chunk only once every item ran (CPython pickles the whole
/// list), with `MaybeEncodingError`, unless a later item raises. A payload that did not
/// arrive (`Err`) fails the chunk with that error.
///
/// The large value of a chunk of one item is not appended but written to the report pipe
/// at once, with its record and everything `out` held before (see [`stream`]); `out` is
/// then empty.
fn run_chunk(
    registry: &Registry,
    head: &TaskHead<'_>,
    payload: Result<&[u8], TaskError>,
    out: &mut Vec<u8>,
    reports: &mut Reports,
) -> std::io::Result<()> {
    let (job, index) = (head.job, head.index);
    let record = start_ok_record(out, job, index);
    let outcome = payload.and_then(|payload| {
        append_values(
            registry,
            head.name,
            payload,
            out,
            &mut Streamer { reports, record },
        )
    });
    let outcome = match outcome {
        Ok(Appended::Streamed(written)) => return written,
        Ok(Appended::Values(values)) => check_values(&values, head.listed, out),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => finish_record(out, record),
        Err(e) => {
            out.truncate(record);
            let body = error_body(&e.raised_in(std::process::id()));
            push_record(
                out,
                &Record::Err {
                    job,
                    index,
                    body: body.as_bytes(),
                },
            );
        }
    }
    Ok(())
}

/// Where a value lies in `out`, or why it did not serialize.
type Value = Result<std::ops::Range<usize>, EncodeError>;

/// What [`append_values`] did.
enum Appended {
    /// Appended these values to `out`.
    Values(Vec<Value>),
    /// Wrote the chunk's one value to the report pipe, with its record: how that went.
    Streamed(std::io::Result<()>),
}

/// Writes a large value straight to the report pipe: see [`stream`].
struct Streamer<'a> {
    reports: &'a mut Reports,
    /// Where the value's `O` record starts in the buffer.
    record: usize,
}

/// Appends the value list of the task's values on the chunk's items to `out` (values are
/// encoded in place: no copy per item). A chunk of one item whose value holds a large byte
/// string (or string) goes to the report pipe instead, through `streamer`.
fn append_values(
    registry: &Registry,
    name: &str,
    payload: &[u8],
    out: &mut Vec<u8>,
    streamer: &mut Streamer<'_>,
) -> Result<Appended, TaskError> {
    let mut items =
        values(payload).map_err(|_| TaskError::new("TypeError", "malformed chunk of arguments"))?;
    let task = registry.task(name)?;
    // Only a chunk's single value is written through: a later item could still fail the
    // chunk of several.
    let big = if items.count == 1 {
        BIG_WRITE
    } else {
        usize::MAX
    };
    out.extend_from_slice(&items.count.to_le_bytes());
    let mut values = Vec::with_capacity(items.count as usize);
    let mut streamed = None;
    for _ in 0..items.count {
        let start = out.len();
        let mut emit = |value: &dyn Encode| {
            let mut sink = Sink::buffer(out, big);
            match value.encode(&mut sink) {
                Ok(()) => Ok(()),
                Err(e) => {
                    let refused = sink.refused();
                    out.truncate(start);
                    if !refused {
                        return Err(e);
                    }
                    streamed = Some(stream(value, out, streamer)?);
                    Ok(())
                }
            }
        };
        match task(&mut items.decoder, &mut emit) {
            Ok(()) => values.push(Ok(start..out.len())),
            Err(CallError::Unencodable(why)) => values.push(Err(why)),
            Err(CallError::Raised(e)) => return Err(e),
        }
        if let Some(written) = streamed.take() {
            return Ok(Appended::Streamed(written));
        }
    }
    Ok(Appended::Values(values))
}

/// Writes the value of a chunk of one item, whose `O` record (its header and the list's
/// count) ends `out`, to the report pipe: `out` first (with the record's length, now
/// known), then the value, encoded straight into the pipe: no copy of its large byte
/// strings in between. `Err` if it does not serialize (nothing written then); `Ok` with how
/// the writing went otherwise.
fn stream(
    value: &dyn Encode,
    out: &mut Vec<u8>,
    streamer: &mut Streamer<'_>,
) -> Result<std::io::Result<()>, EncodeError> {
    let mut counted = Sink::Count(0);
    value.encode(&mut counted)?;
    let n = counted.count();
    let record = streamer.record;
    let body = (out.len() - record - HEADER) as u64 + n;
    out[record + 13..record + HEADER].copy_from_slice(&body.to_le_bytes());
    let reports = &mut *streamer.reports;
    reports.expect(out.len() as u64 + n);
    let written = write_fd(reports.pipe.as_fd(), out).and_then(|()| {
        out.clear();
        let mut sink = Sink::through(reports.pipe.as_fd(), n);
        let encoded = value.encode(&mut sink);
        sink.flush()?;
        if encoded.is_err() || sink.count() < n {
            // Not what it was when counted (a `Serialize` that changes its mind): the
            // record must still have the length it announced, and fails to decode.
            let missing = usize::try_from(n - sink.count()).unwrap_or(usize::MAX);
            write_fd(reports.pipe.as_fd(), &vec![0xc1; missing])?;
        }
        Ok(())
    });
    Ok(written)
}

/// Fails the chunk with `MaybeEncodingError` if a value did not serialize.
fn check_values(values: &[Value], listed: bool, out: &[u8]) -> Result<(), TaskError> {
    let Some(why) = values.iter().find_map(|v| v.as_ref().err()) else {
        return Ok(());
    };
    let shown: Vec<Option<String>> = values
        .iter()
        .map(|v| v.as_ref().ok().map(|r| show(&out[r.clone()])))
        .collect();
    Err(encoding_error(&shown, listed, &why.to_string()))
}

/// Largest encoded value [`show`] decodes to show it.
const SHOWN_ENCODED_MAX: usize = 1 << 20;

/// An encoded value in Python notation ([`PyRepr`]); a value too large to be worth decoding
/// as its size.
fn show(encoded: &[u8]) -> String {
    if encoded.len() > SHOWN_ENCODED_MAX {
        return format!("<a value of {} bytes>", encoded.len());
    }
    match decode::<PyRepr>(encoded) {
        Ok(PyRepr(shown)) => shown,
        Err(e) => format!("<a value that does not decode: {e}>"),
    }
}

/// Longest value shown in an encoding error, so that the message stays readable.
const SHOWN_MAX: usize = 16 * 1024;

/// CPython's `MaybeEncodingError`: `Error sending result: '<value>'. Reason: '<why>'`. The
/// value is shown in Python notation (a list when `listed`), `<unserializable>` standing
/// for each item that did not serialize; `values` are the items in Python notation (`None`
/// for those that did not serialize).
fn encoding_error(values: &[Option<String>], listed: bool, why: &str) -> TaskError {
    let show = |v: &Option<String>| match v {
        Some(shown) => shown.clone(),
        None => "<unserializable>".to_owned(),
    };
    let shown = if listed || values.len() != 1 {
        let all: Vec<String> = values.iter().map(show).collect();
        format!("[{}]", all.join(", "))
    } else {
        show(&values[0])
    };
    TaskError::new(
        "MaybeEncodingError",
        format!(
            "Error sending result: '{}'. Reason: '{}'",
            truncate(shown, SHOWN_MAX),
            truncate(why.to_owned(), SHOWN_MAX / 4)
        ),
    )
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}
