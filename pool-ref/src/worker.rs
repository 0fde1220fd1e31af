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

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::socket::{MsgFlags, recv};
use serde::{Deserialize, Serialize};

use crate::error::TaskError;
use crate::registry::{CallError, Registry};
use crate::wire::{
    MAX_FRAME, Record, TaskFrame, TaskHead, decode_task, error_body, finish_record, push_record,
    start_ok_record,
};
use poolspec_driver::py_value_repr;

/// The first argument that marks a worker process.
pub(crate) const WORKER_FLAG: &str = "--pool-ref-worker";

/// What a worker needs to know, passed as one JSON argument.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorkerConfig {
    pub id: u32,
    pub parent: u32,
    pub maxtasks: Option<u32>,
    /// Initializer task name and its JSON argument.
    pub initializer: Option<(String, String)>,
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

    if let Some((name, args)) = &config.initializer
        && let Err(e) = initialize(registry, name, args)
    {
        let why = format!("initializer failed: {e}");
        let mut out = Vec::new();
        push_record(&mut out, &Record::Fatal { why: &why });
        let _ = write_all(&reports, &out);
        return Err(std::io::Error::other(why));
    }
    serve_tasks(registry, config, &tasks, &reports)
}

/// Runs the initializer. Its value is discarded, so one that does not serialize is no
/// failure.
fn initialize(registry: &Registry, name: &str, args: &str) -> Result<(), TaskError> {
    match registry.task(name)?(args, &mut Vec::new()) {
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
    reports: &OwnedFd,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_FRAME];
    // Records not yet written: the last result waits here only while the next task is being
    // fetched without blocking, so that one write carries both "result" and "started".
    let mut out: Vec<u8> = Vec::new();
    let mut done: u32 = 0;
    loop {
        let n = next_task(tasks, reports, &mut buf, &mut out)?;
        if n == 0 {
            // Every sender is gone: the pool's parent closed the queue.
            return write_all(reports, &out);
        }
        match decode_task(&buf[..n]) {
            Some(TaskFrame::Exit) => return write_all(reports, &out),
            None => {
                // Never produced by the pool: say so loudly rather than lose a task quietly.
                let why = format!("malformed task frame of {n} bytes");
                push_record(&mut out, &Record::Fatal { why: &why });
                write_all(reports, &out)?;
                return Err(std::io::Error::other(why));
            }
            Some(TaskFrame::Task { head, payload }) => {
                // Report the start before running: a task may block indefinitely, and the
                // pool must know what a worker was running if it dies.
                let (job, index) = (head.job, head.index);
                push_record(&mut out, &Record::Started { job, index });
                write_all(reports, &out)?;
                out.clear();
                run_chunk(registry, &head, payload, &mut out);
                done += 1;
                if config.maxtasks.is_some_and(|max| done >= max) {
                    return write_all(reports, &out);
                }
                if !head.more {
                    // Probably nothing queued behind it: report at once instead of looking.
                    write_all(reports, &out)?;
                    out.clear();
                }
            }
        }
    }
}

/// Receives the next task frame into `buf` and returns its length (0: the queue ended).
/// With records pending in `out` (the last task said more were coming), it first looks
/// without blocking: when the next task is already queued, its "started" joins them in one
/// write; otherwise they are written before it blocks.
fn next_task(
    tasks: &OwnedFd,
    reports: &OwnedFd,
    buf: &mut [u8],
    out: &mut Vec<u8>,
) -> std::io::Result<usize> {
    if !out.is_empty() {
        loop {
            match recv(tasks.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => return Ok(n),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => break,
                Err(e) => return Err(io(e)),
            }
        }
        write_all(reports, out)?;
        out.clear();
    }
    loop {
        match recv(tasks.as_raw_fd(), buf, MsgFlags::empty()) {
            Ok(n) => return Ok(n),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(io(e)),
        }
    }
}

/// Runs a task on every item of a chunk (a JSON array), as CPython's `mapstar` does, and
/// appends the chunk's record to `out`: `O` with the JSON array of values, or `E`. The first
/// item that raises fails the chunk and the items after it do not run. A value that fails to
/// serialize fails the chunk only once every item ran (CPython pickles the whole list), with
/// `MaybeEncodingError`, unless a later item raises.
fn run_chunk(registry: &Registry, head: &TaskHead<'_>, payload: &str, out: &mut Vec<u8>) {
    let (job, index) = (head.job, head.index);
    let record = start_ok_record(out, job, index);
    let array = out.len();
    let outcome = append_values(registry, head.name, payload, out)
        .and_then(|values| check_values(&values, head.listed, out, array));
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
                    body: &body,
                },
            );
        }
    }
}

/// Where a value lies in `out`, or why it did not serialize.
type Value = Result<std::ops::Range<usize>, String>;

/// Appends the JSON array of the task's values on the chunk's items to `out` (values are
/// written in place: no copy per item).
fn append_values(
    registry: &Registry,
    name: &str,
    payload: &str,
    out: &mut Vec<u8>,
) -> Result<Vec<Value>, TaskError> {
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_str(payload)
        .map_err(|e| TaskError::new("TypeError", format!("malformed chunk: {e}")))?;
    let task = registry.task(name)?;
    let mut values = Vec::with_capacity(items.len());
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let start = out.len();
        match task(item.get(), out) {
            Ok(()) => values.push(Ok(start..out.len())),
            Err(CallError::Unencodable(why)) => values.push(Err(why)),
            Err(CallError::Raised(e)) => return Err(e),
        }
    }
    out.push(b']');
    Ok(values)
}

/// Fails the chunk with `MaybeEncodingError` if a value did not serialize, or if the array
/// of values (`out[array..]`) does not fit in a frame.
fn check_values(values: &[Value], listed: bool, out: &[u8], array: usize) -> Result<(), TaskError> {
    let size = out.len() - array;
    let why = match values.iter().find_map(|v| v.as_ref().err()) {
        Some(why) => why.clone(),
        None if size <= MAX_FRAME - 64 => return Ok(()),
        None => format!("result of {size} bytes exceeds the frame limit of {MAX_FRAME}"),
    };
    let shown: Vec<Result<String, String>> = values
        .iter()
        .map(|v| {
            v.clone()
                .map(|r| String::from_utf8_lossy(&out[r]).into_owned())
        })
        .collect();
    Err(encoding_error(&shown, listed, &why))
}

/// Longest value shown in an encoding error, so that the error itself fits in a frame.
const SHOWN_MAX: usize = 16 * 1024;

/// CPython's `MaybeEncodingError`: `Error sending result: '<value>'. Reason: '<why>'`. The
/// value is shown in Python notation (a list when `listed`), `<unserializable>` standing
/// for each item that did not serialize.
fn encoding_error(values: &[Result<String, String>], listed: bool, why: &str) -> TaskError {
    let show = |v: &Result<String, String>| match v {
        Ok(json) => serde_json::from_str::<serde_json::Value>(json)
            .map_or_else(|_| json.clone(), |v| py_value_repr(&v)),
        Err(_) => "<unserializable>".to_owned(),
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

/// Writes all of `bytes` to the report pipe (a big record may take several writes).
fn write_all(fd: &OwnedFd, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(io(e)),
        }
    }
    Ok(())
}
