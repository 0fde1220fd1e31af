//! Reading the workers' reports: the result-handler thread, and callers that read for
//! themselves.
//!
//! The **result handler** waits in `poll` on every worker's report pipe and on a wake-up pipe
//! that carries [`Control`] messages (a new worker's pipe, a reaped worker's exit status,
//! stop). It tracks which task each worker runs, completes results and runs callbacks (one
//! at a time), and handles exits. A worker's exit is handled only once its pipe has been read
//! to the end, so it always comes after the worker's last records, whichever of the two the
//! handler sees first: a reaped worker writes nothing more, so what its pipe holds then is
//! all there is.
//!
//! **Leading.** Waking the handler thread and then the waiting caller costs two thread
//! switches per result, most of an `apply`'s round trip. So a caller that waits for its own
//! job right after submitting it (`apply`, `map`: no callbacks, which must run on the handler
//! thread) reads the pipes itself while the handler is idle, i.e. has no job to wait for:
//! the worker's write then wakes the caller directly. The pipes' reading state is one mutex,
//! [`Reports::readers`], held by whoever reads: the handler while it has jobs, or one
//! leading caller. A leader handles only its own job's results (and `started` records); it
//! steps down, handing everything else to the handler, as soon as it meets a record of
//! another job or the wake-up pipe becomes readable (some other job, or a control message,
//! needs the handler), and when its job completes. A leader waiting for a single task
//! looks for a while without sleeping before it sleeps ([`wait_as_leader`]).
//!
//! Whether the handler is idle is decided under the jobs lock (see [`Inner`]): it goes idle
//! only when no job is outstanding, and a submitter that finds it idle either leads or wakes
//! it, so no job is ever left without a reader.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, TryLockError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::error::PoolError;
use crate::inner::{Inner, JobCell};
use crate::lock::lock;
use crate::reports::{Control, Fill, Outcome, Reader, Reports};
use crate::wire::task_error;

/// How long the idle result handler waits before it gives back large reading buffers (see
/// [`KEEP`](crate::reports::KEEP)).
const IDLE: u16 = 1000;

/// A wake-up that brought less than this many bytes is a producer caught mid-stream.
const SMALL_READ: usize = 4096;

/// Lets runnable workers go on before this thread looks at the reports again: the result
/// handler calls it after a wake-up that brought little data (see [`SMALL_READ`]) while more
/// results are due, a leader when its look found nothing (see [`wait_as_leader`]). A reader woken
/// by each record preempts the worker that wrote it, reads that one record and sleeps again:
/// on a shared CPU that is two thread switches per task. Yielding lets the workers run on
/// until they block, and the next read takes all they wrote. Where nothing else is runnable
/// (an idle CPU of its own), it returns at once.
fn let_workers_run() {
    let _ = nix::sched::sched_yield();
}

fn outcome_of(outcome: Outcome<'_>) -> Result<&[u8], PoolError> {
    outcome.map_err(|body| PoolError::Task(task_error(body)))
}

/// Waits until the wake-up pipe or a report pipe is readable, or `timeout`; `ready` gets the
/// indexes of the readable report pipes. With `pipes` false, waits for the wake-up pipe
/// alone. True if the wake-up pipe is readable.
fn wait(
    wake: BorrowedFd<'_>,
    readers: &[Reader],
    pipes: bool,
    ready: &mut Vec<usize>,
    timeout: PollTimeout,
) -> bool {
    ready.clear();
    // Readers at end of file would be readable for ever: they wait for their exit status.
    let polled = || (0..readers.len()).filter(move |&i| pipes && !readers[i].eof);
    let mut fds = Vec::with_capacity(readers.len() + 1);
    fds.push(PollFd::new(wake, PollFlags::POLLIN));
    fds.extend(polled().map(|i| PollFd::new(readers[i].pipe.as_fd(), PollFlags::POLLIN)));
    loop {
        match poll(&mut fds, timeout) {
            Ok(_) => break,
            Err(Errno::EINTR) => continue,
            // Only a bug gets here (EFAULT, EINVAL); spinning would hide it no better.
            Err(e) => panic!("pool-ref: poll failed: {e}"),
        }
    }
    let readable = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
    ready.extend(
        polled()
            .zip(&fds[1..])
            .filter(|(_, fd)| readable(fd))
            .map(|(i, _)| i),
    );
    readable(&fds[0])
}

/// How long a leader waiting for a single task looks for its result before it sleeps: see
/// [`wait_as_leader`].
const SPIN: Duration = Duration::from_micros(50);

/// [`wait`] for a leader. It looks first, without sleeping; when nothing is there, it lets
/// the workers run (see [`let_workers_run`]), and then sleeps in `poll`; but when it waits
/// for a single task (`single`), it keeps looking and yielding for up to [`SPIN`] before it
/// sleeps. A thread that sleeps while the worker runs a short task is woken again a few
/// microseconds later, and waking a thread whose CPU went idle costs tens of microseconds
/// on many machines (virtual ones most): more than the task. A longer task costs the caller
/// that much CPU time before it sleeps. A leader waiting for many tasks sleeps at once: it
/// is woken once per batch of results, and the CPU it would spend looking is the workers'.
fn wait_as_leader(
    wake: BorrowedFd<'_>,
    readers: &[Reader],
    ready: &mut Vec<usize>,
    single: bool,
) -> bool {
    let start = Instant::now();
    loop {
        let woken = wait(wake, readers, true, ready, PollTimeout::ZERO);
        if woken || !ready.is_empty() {
            return woken;
        }
        let_workers_run();
        if !single || start.elapsed() >= SPIN {
            return wait(wake, readers, true, ready, PollTimeout::NONE);
        }
    }
}

/// Delivers outcomes to jobs, remembering the last job it looked up: consecutive records
/// mostly belong to one job (a map's chunks), so that saves a shared-map lookup per record.
struct Sink<'a> {
    inner: &'a Inner,
    last: Option<(u64, JobCell)>,
}

impl Sink<'_> {
    fn deliver(&mut self, job: u64, index: u32, outcome: Result<&[u8], PoolError>) {
        if self.last.as_ref().is_none_or(|(id, _)| *id != job) {
            self.last = self.inner.job(job).map(|cell| (job, cell));
        }
        if let Some((_, cell)) = &self.last
            && self.inner.deliver_to(job, cell, index, outcome)
        {
            self.last = None;
        }
    }
}

/// The result-handler thread's body.
pub(crate) fn handle_results(inner: &Inner, control: Receiver<Control>) {
    let reports = inner.reports();
    let mut sink = Sink { inner, last: None };
    let mut ready = Vec::new();
    loop {
        {
            let mut readers = lock(&reports.readers);
            if take_control(&control, reports, &mut readers, &mut sink) {
                return;
            }
            for r in readers.iter_mut() {
                r.decode(|job, index, outcome| {
                    sink.deliver(job, index, outcome_of(outcome));
                    true
                });
            }
            // Read while there is a job to read for, until a control message comes.
            while inner.has_jobs()
                && !wait(
                    reports.wake.as_fd(),
                    &readers,
                    true,
                    &mut ready,
                    PollTimeout::NONE,
                )
            {
                let mut read = 0;
                for &i in &ready {
                    read += read_and_handle(&mut readers[i], &mut sink, false);
                }
                if read < SMALL_READ && inner.has_jobs() {
                    let_workers_run();
                }
            }
        }
        if inner.handler_idles() {
            // Callers may lead now; only a control message wakes the handler. Large reading
            // buffers, and the memory file kept for large payloads, are given back if it
            // stays idle that long.
            let hoarding = reports.hoarding.load(Ordering::Relaxed) || inner.keeps_a_file();
            let timeout = if hoarding {
                PollTimeout::from(IDLE)
            } else {
                PollTimeout::NONE
            };
            let wake = reports.wake.as_fd();
            if !wait(wake, &[], false, &mut ready, timeout) && hoarding {
                // Unless a caller is reading for itself: then results are still coming.
                if let Ok(mut readers) = reports.readers.try_lock() {
                    reports.hoarding.store(false, Ordering::Relaxed);
                    readers.iter_mut().for_each(Reader::release);
                    inner.release_file();
                }
                wait(wake, &[], false, &mut ready, PollTimeout::NONE);
            }
            inner.handler_wakes();
        }
    }
}

/// Reads reader `r`'s pipe and handles its records: one read, or until it is empty
/// (`to_end`, once its worker is gone). Returns the bytes read.
fn read_and_handle(r: &mut Reader, sink: &mut Sink<'_>, to_end: bool) -> usize {
    let mut read = 0;
    loop {
        let more = match r.fill() {
            Fill::Read(n, full) => {
                read += n;
                full || to_end
            }
            Fill::Empty | Fill::Ended => false,
        };
        r.decode(|job, index, outcome| {
            sink.deliver(job, index, outcome_of(outcome));
            true
        });
        if !more {
            return read;
        }
    }
}

/// Handles every pending control message. True on `Stop`.
fn take_control(
    control: &Receiver<Control>,
    reports: &Reports,
    readers: &mut Vec<Reader>,
    sink: &mut Sink<'_>,
) -> bool {
    let mut drain = [0u8; 256];
    while matches!(nix::unistd::read(&reports.wake, &mut drain), Ok(n) if n > 0) {}
    while let Ok(message) = control.try_recv() {
        match message {
            Control::Worker {
                id,
                pid,
                reports: pipe,
            } => {
                let hoarding = Arc::clone(&reports.hoarding);
                readers.push(Reader::new(id, pid, pipe, hoarding));
            }
            Control::Exited { id, how } => exited(readers, sink, id, &how),
            Control::Stop => return true,
        }
    }
    false
}

/// Worker `id` was reaped: after its last records, fail the task it was running (if any)
/// and tell the pool.
fn exited(readers: &mut Vec<Reader>, sink: &mut Sink<'_>, id: u32, how: &str) {
    let reader = readers.iter().position(|r| r.id == id).map(|i| {
        read_and_handle(&mut readers[i], sink, true);
        readers.swap_remove(i)
    });
    let replace = sink.inner.worker_exited(id);
    if let Some(Reader {
        pid,
        inflight: Some((job, index)),
        ..
    }) = reader
    {
        let lost = PoolError::WorkerLost {
            pid,
            status: how.to_owned(),
        };
        sink.deliver(job, index, Err(lost));
    }
    if replace {
        sink.inner.spawn_replacement();
    }
}

/// Called by a caller that submitted job `job` (whose cell is `cell`, and which has no
/// callbacks) while the handler was idle: reads the reports itself until the job completes
/// or it must step down (see the module docs); then the handler takes over, woken here.
/// `single`: the job is one task.
pub(crate) fn lead(inner: &Inner, job: u64, cell: &JobCell, single: bool) {
    let reports = inner.reports();
    let mut readers = match reports.readers.try_lock() {
        Ok(guard) => guard,
        Err(TryLockError::Poisoned(e)) => e.into_inner(),
        // Another caller leads: let the handler read for both.
        Err(TryLockError::WouldBlock) => return inner.wake_handler(),
    };
    let mut mine = |j: u64, index: u32, outcome: Outcome<'_>| {
        if j != job {
            return false;
        }
        inner.deliver_to(job, cell, index, outcome_of(outcome));
        true
    };
    let mut ready = Vec::new();
    let completed = 'lead: loop {
        for r in readers.iter_mut() {
            if !r.decode(&mut mine) {
                break 'lead false;
            }
        }
        // Complete: by this thread, or by the handler before this one took the lead.
        if lock(cell).is_none() {
            break true;
        }
        if wait_as_leader(reports.wake.as_fd(), &readers, &mut ready, single) {
            break false;
        }
        for &i in &ready {
            readers[i].fill();
        }
    };
    drop(readers);
    if !completed {
        inner.wake_handler();
    }
}
