//! The worker side: what a re-executed copy of the program does when [`crate::init`] finds
//! it was started as a pool worker.
//!
//! A worker reads tasks from the shared task socket (its stdin) and writes report records to
//! the shared report socket (its stdout). Its real stdout is pointed at stderr first, so a
//! stray `println!` in a task cannot corrupt the reports. It dies with the pool's parent
//! (`PR_SET_PDEATHSIG`), so no worker outlives a parent that crashed or was killed.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::socket::{MsgFlags, recv, send};
use serde::{Deserialize, Serialize};

use crate::error::TaskError;
use crate::registry::{CallError, Registry};
use crate::repr::py_repr;
use crate::wire::{MAX_FRAME, Record, TaskFrame, decode_task, push_record};

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
    let tasks: OwnedFd = nix::unistd::dup(std::io::stdin()).map_err(io)?;
    let reports: OwnedFd = nix::unistd::dup(std::io::stdout()).map_err(io)?;
    nix::unistd::dup2_stdout(std::io::stderr()).map_err(io)?;
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(null);
    }

    let id = config.id;
    // The initializer's value is discarded, so one that does not serialize is no failure.
    if let Some((name, args)) = &config.initializer
        && let Err(CallError::Raised(e)) = registry.call(name, args)
    {
        let mut frame = Vec::new();
        let why = format!("initializer failed: {e}");
        push_record(
            &mut frame,
            &Record::Fatal {
                worker: id,
                why: why.clone(),
            },
        );
        let _ = send(reports.as_raw_fd(), &frame, MsgFlags::MSG_NOSIGNAL);
        return Err(std::io::Error::other(why));
    }

    let mut buf = vec![0u8; MAX_FRAME];
    // Records not yet sent: the last result waits here only while the next task is being
    // fetched without blocking, so that one send carries both "result" and "started".
    let mut out: Vec<u8> = Vec::new();
    let mut done: u32 = 0;
    loop {
        let mut got = None;
        if !out.is_empty() {
            match recv(tasks.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => got = Some(n),
                Err(Errno::EAGAIN) => {
                    send_all(&reports, &out)?;
                    out.clear();
                }
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(io(e)),
            }
        }
        let n = match got {
            Some(n) => n,
            None => match recv(tasks.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(io(e)),
            },
        };
        if n == 0 {
            // Every sender is gone: the pool's parent closed the queue.
            send_all(&reports, &out)?;
            return Ok(());
        }
        match decode_task(&buf[..n]) {
            Some(TaskFrame::Exit) => {
                send_all(&reports, &out)?;
                return Ok(());
            }
            None => {
                // Never produced by the pool: say so loudly rather than lose a task quietly.
                let why = format!("malformed task frame of {n} bytes");
                push_record(
                    &mut out,
                    &Record::Fatal {
                        worker: id,
                        why: why.clone(),
                    },
                );
                send_all(&reports, &out)?;
                return Err(std::io::Error::other(why));
            }
            Some(TaskFrame::Task {
                job,
                index,
                listed,
                name,
                payload,
            }) => {
                // Report the start before running: a task may block indefinitely, and the
                // pool must know what a worker was running if it dies.
                push_record(
                    &mut out,
                    &Record::Started {
                        worker: id,
                        job,
                        index,
                    },
                );
                send_all(&reports, &out)?;
                out.clear();
                let record = match run_chunk(registry, name, payload, listed) {
                    Ok(body) => Record::Ok {
                        worker: id,
                        job,
                        index,
                        body,
                    },
                    Err(error) => Record::Err {
                        worker: id,
                        job,
                        index,
                        error,
                    },
                };
                push_record(&mut out, &record);
                done += 1;
                if config.maxtasks.is_some_and(|max| done >= max) {
                    send_all(&reports, &out)?;
                    return Ok(());
                }
            }
        }
    }
}

/// Runs a task on every item of a chunk (a JSON array), as CPython's `mapstar` does: the
/// first item that raises fails the chunk and the items after it do not run. A value that
/// fails to serialize fails the chunk only once every item ran (CPython pickles the whole
/// list), with `MaybeEncodingError`, unless a later item raises.
fn run_chunk(
    registry: &Registry,
    name: &str,
    payload: &str,
    listed: bool,
) -> Result<String, TaskError> {
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_str(payload)
        .map_err(|e| TaskError::new("TypeError", format!("malformed chunk: {e}")))?;
    let mut values: Vec<Result<String, String>> = Vec::with_capacity(items.len());
    for item in &items {
        match registry.call(name, item.get()) {
            Ok(json) => values.push(Ok(json)),
            Err(CallError::Unencodable(why)) => values.push(Err(why)),
            Err(CallError::Raised(e)) => return Err(e),
        }
    }
    if let Some(why) = values.iter().find_map(|v| v.as_ref().err()) {
        return Err(encoding_error(&values, listed, why));
    }
    let mut body = String::with_capacity(payload.len() + 2);
    body.push('[');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(v.as_deref().unwrap_or("null"));
    }
    body.push(']');
    if body.len() > MAX_FRAME - 64 {
        let why = format!(
            "result of {} bytes exceeds the frame limit of {MAX_FRAME}",
            body.len()
        );
        return Err(encoding_error(&values, listed, &why));
    }
    Ok(body)
}

/// Longest value shown in an encoding error, so that the error itself fits in a frame.
const SHOWN_MAX: usize = 16 * 1024;

/// CPython's `MaybeEncodingError`: `Error sending result: '<value>'. Reason: '<why>'`. The
/// value is shown in Python notation (a list when `listed`), `<unserializable>` standing
/// for each item that did not serialize.
fn encoding_error(values: &[Result<String, String>], listed: bool, why: &str) -> TaskError {
    let show = |v: &Result<String, String>| match v {
        Ok(json) => serde_json::from_str::<serde_json::Value>(json)
            .map_or_else(|_| json.clone(), |v| py_repr(&v)),
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

fn send_all(fd: &OwnedFd, frame: &[u8]) -> std::io::Result<()> {
    if frame.is_empty() {
        return Ok(());
    }
    loop {
        match send(fd.as_raw_fd(), frame, MsgFlags::MSG_NOSIGNAL) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(io(e)),
        }
    }
}
