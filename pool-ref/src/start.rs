//! Starting a pool: the task socket, the control channel, the parent threads (feeder,
//! result handler, supervisor), and, on the supervisor thread, every worker process, each
//! with a waiter thread that reaps it and tells the result handler how it exited.

use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::thread;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, setsockopt, socketpair, sockopt};

use crate::error::PoolError;
use crate::handler::handle_results;
use crate::inner::{Inner, SupervisorCmd};
use crate::lock::lock;
use crate::queue::TaskQueue;
use crate::reports::{Control, control_channel};
use crate::wire::MAX_MESSAGE;
use crate::worker::{WORKER_FLAG, WorkerConfig};

/// The send buffer asked for the task socket (the kernel doubles it): how many bytes of
/// frames may wait in the socket before the feeder thread takes over.
const SOCKET_BUFFER: usize = 400 * 1024;
const _: () = assert!(SOCKET_BUFFER >= 2 * MAX_MESSAGE);

fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd), PoolError> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| PoolError::Spawn(format!("socketpair: {e}")))?;
    for fd in [&a, &b] {
        // Room for a few of the largest messages whatever the system default.
        let _ = setsockopt(fd, sockopt::SndBuf, &SOCKET_BUFFER);
    }
    Ok((a, b))
}

/// Starts a pool of `processes` workers: returns once every worker process was started,
/// or with the error that stopped one (the pool is then terminated).
pub(crate) fn start(
    processes: usize,
    maxtasks: Option<u32>,
    initializer: Option<(String, Vec<u8>)>,
) -> Result<Arc<Inner>, PoolError> {
    let (task_tx, task_worker_end) = seqpacket_pair()?;
    let (tasks, feed_rx) = TaskQueue::new(task_tx);
    let (control, reports, control_rx) = control_channel()?;
    let (sup_tx, sup_rx) = channel::<SupervisorCmd>();
    let inner = Arc::new(Inner::new(
        processes,
        maxtasks,
        initializer,
        tasks,
        control,
        reports,
        sup_tx.clone(),
        task_worker_end,
    ));
    let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
        thread::Builder::new()
            .name(name.to_owned())
            .spawn(f)
            .map_err(|e| PoolError::Spawn(format!("thread: {e}")))
    };
    let feeder = {
        let inner = Arc::clone(&inner);
        let fail = {
            let inner = Arc::clone(&inner);
            move |job, index, error| {
                inner.deliver(job, index, Err(error));
                // A caller may be reading the reports for this job (a chunk whose
                // attached payload could not be sent): have it look again.
                inner.wake_handler();
            }
        };
        spawn(
            "pool-ref-feeder",
            Box::new(move || inner.tasks.feed(feed_rx, fail)),
        )?
    };
    let results = {
        let inner = Arc::clone(&inner);
        spawn(
            "pool-ref-results",
            Box::new(move || handle_results(&inner, control_rx)),
        )?
    };
    *lock(&inner.result_thread) = Some(results.thread().id());
    let supervisor = {
        let inner = Arc::clone(&inner);
        spawn(
            "pool-ref-supervisor",
            Box::new(move || supervise(&inner, sup_rx)),
        )?
    };
    lock(&inner.threads).extend([feeder, results, supervisor]);
    let (ack_tx, ack_rx) = channel();
    let _ = sup_tx.send(SupervisorCmd::Spawn(processes, Some(ack_tx)));
    let started = match ack_rx.recv() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(PoolError::Spawn("the supervisor stopped".into())),
    };
    match started {
        Ok(()) => Ok(inner),
        Err(e) => {
            // What dropping the half-made `Pool` did: its threads and workers go.
            inner.terminate();
            Err(e)
        }
    }
}

fn supervise(inner: &Arc<Inner>, rx: Receiver<SupervisorCmd>) {
    for cmd in rx {
        match cmd {
            SupervisorCmd::Spawn(n, ack) => {
                let mut outcome = Ok(());
                for _ in 0..n {
                    if let Err(e) = spawn_worker(inner) {
                        outcome = Err(e);
                        break;
                    }
                }
                if let Some(ack) = ack {
                    let _ = ack.send(outcome);
                } else if let Err(e) = outcome {
                    eprintln!("pool-ref: cannot replace a worker: {e}");
                }
            }
            SupervisorCmd::Shutdown => return,
        }
    }
}

fn spawn_worker(inner: &Arc<Inner>) -> Result<(), PoolError> {
    // `/proc/self/exe` is this very binary even after the file was replaced or deleted (a
    // rebuild while the program runs), where `current_exe()` gives "<path> (deleted)".
    let proc_exe = std::path::Path::new("/proc/self/exe");
    let exe = if proc_exe.exists() {
        proc_exe.to_path_buf()
    } else {
        std::env::current_exe().map_err(|e| PoolError::Spawn(e.to_string()))?
    };
    let mut workers = lock(&inner.workers);
    if workers.retiring {
        return Ok(());
    }
    let id = workers.next_id;
    workers.next_id += 1;
    let config = WorkerConfig {
        id,
        parent: std::process::id(),
        maxtasks: inner.maxtasks,
        initializer: inner.initializer.clone(),
    };
    let tasks = inner
        .task_worker_end
        .try_clone()
        .map_err(|e| PoolError::Spawn(e.to_string()))?;
    let (reports, report_end) = report_pipe()?;
    let mut child = Command::new(exe)
        .arg(WORKER_FLAG)
        .arg(serde_json::to_string(&config).map_err(|e| PoolError::Spawn(e.to_string()))?)
        .stdin(Stdio::from(tasks))
        .stdout(Stdio::from(report_end))
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| PoolError::Spawn(e.to_string()))?;
    // The `Command` (and with it the parent's copy of the pipe's writing end) is gone: the
    // pipe ends when the worker and whatever it shares its stdout with do.
    let pid = child.id();
    workers.live.insert(id, pid);
    // Before the waiter can report the exit: the handler must know the worker by then.
    inner.control.send(Control::Worker { id, pid, reports });
    drop(workers);
    let waiter = Arc::clone(inner);
    thread::Builder::new()
        .name(format!("pool-ref-wait-{id}"))
        .spawn(move || {
            let how = match child.wait() {
                Ok(status) => status.to_string(),
                Err(e) => format!("lost: {e}"),
            };
            waiter.control.send(Control::Exited { id, how });
        })
        .map_err(|e| PoolError::Spawn(format!("thread: {e}")))?;
    Ok(())
}

/// A worker's report pipe: (the parent's reading end, non-blocking; the worker's end).
fn report_pipe() -> Result<(OwnedFd, OwnedFd), PoolError> {
    let fail = |e: nix::errno::Errno| PoolError::Spawn(format!("pipe: {e}"));
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(fail)?;
    // Only the parent's end: the worker writes with blocking writes.
    fcntl(&read, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(fail)?;
    Ok((read, write))
}
