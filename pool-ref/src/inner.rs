//! The pool's shared state ([`Inner`]): its life cycle, its jobs and workers, and the
//! channels to its threads; delivering outcomes to jobs, and shutting it all down.
//!
//! Kept apart from `pool.rs` (the public API) and `handler.rs` (the result handler), which
//! both work on it, so that neither needs the other.
//!
//! Lock order: `state`, then `jobs`; `workers`, then `state`, then `jobs`; the report
//! readers (held by whoever reads the reports), then a job's own lock, then `jobs`, or then
//! `workers`. A callback runs holding only the completing job's lock (see
//! [`Inner::deliver_to`]) and, on the result handler, the report readers, which no other
//! pool call waits for: a callback may submit work, close or terminate the pool.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle, ThreadId};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::PoolError;
use crate::lock::{lock, wait_while};
use crate::queue::{Feed, Frames, TaskQueue};
use crate::reports::{Control, ControlTx, Reports};
use crate::result::Job;
use crate::wire::{Attachment, EXIT_FRAME};

/// Where the pool is in its life: `close` and `terminate` move it on, never back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Running,
    Closed,
    Terminated,
}

/// A job, shared by the threads that complete it (the result handler, and the feeder for
/// chunks whose arguments did not encode); `None` once complete.
pub(crate) type JobCell = Arc<Mutex<Option<Box<dyn Job>>>>;

/// The jobs not yet complete, and whether the result handler waits for them.
pub(crate) struct Jobs {
    pub(crate) map: HashMap<u64, JobCell>,
    /// Jobs not yet complete, including one a thread is completing right now.
    pub(crate) outstanding: usize,
    /// The result handler is idle: it found no job outstanding, and reads no reports until
    /// woken (see `handler.rs`). Changes only under this lock, so a submitter that
    /// counts its job here either is seen by the handler or sees it idle.
    pub(crate) handler_idle: bool,
}

/// The live workers, as the supervisor started them and the result handler saw them exit.
pub(crate) struct Workers {
    /// Pids of the workers whose exit has not been handled yet, by worker id.
    pub(crate) live: HashMap<u32, u32>,
    pub(crate) next_id: u32,
    /// No more replacements: the pool is shutting down.
    pub(crate) retiring: bool,
}

/// What the supervisor thread is asked to do (`start.rs`): start `n` workers, telling the
/// sender how that went (or, for a replacement, no one), or stop.
pub(crate) enum SupervisorCmd {
    Spawn(usize, Option<Sender<Result<(), PoolError>>>),
    Shutdown,
}

/// The pool's shared state: what `Pool`, the result handler, the feeder and the
/// supervisor all hold (see the module docs for the order of its locks).
pub(crate) struct Inner {
    pub(crate) processes: usize,
    pub(crate) maxtasks: Option<u32>,
    pub(crate) initializer: Option<(String, Vec<u8>)>,
    pub(crate) state: Mutex<State>,
    /// `state` is `Terminated`: read on every delivery, which must not wait for `state`
    /// (a submitting thread may hold it).
    pub(crate) terminated: AtomicBool,
    pub(crate) jobs: Mutex<Jobs>,
    pub(crate) jobs_done: Condvar,
    pub(crate) workers: Mutex<Workers>,
    pub(crate) workers_changed: Condvar,
    pub(crate) next_job: AtomicU64,
    pub(crate) tasks: TaskQueue,
    /// To the result handler.
    pub(crate) control: ControlTx,
    pub(crate) reports: Reports,
    pub(crate) supervisor: Mutex<Option<Sender<SupervisorCmd>>>,
    pub(crate) threads: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) result_thread: Mutex<Option<ThreadId>>,
    /// The end of the task socket workers read (kept to hand to new workers).
    pub(crate) task_worker_end: OwnedFd,
    pub(crate) finished: Mutex<bool>,
}

impl Inner {
    /// A running pool's state, with no job and no worker yet.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        processes: usize,
        maxtasks: Option<u32>,
        initializer: Option<(String, Vec<u8>)>,
        tasks: TaskQueue,
        control: ControlTx,
        reports: Reports,
        supervisor: Sender<SupervisorCmd>,
        task_worker_end: OwnedFd,
    ) -> Inner {
        Inner {
            processes,
            maxtasks,
            initializer,
            state: Mutex::new(State::Running),
            terminated: AtomicBool::new(false),
            jobs: Mutex::new(Jobs {
                map: HashMap::new(),
                outstanding: 0,
                handler_idle: false,
            }),
            jobs_done: Condvar::new(),
            workers: Mutex::new(Workers {
                live: HashMap::new(),
                next_id: 1,
                retiring: false,
            }),
            workers_changed: Condvar::new(),
            next_job: AtomicU64::new(1),
            tasks,
            control,
            reports,
            supervisor: Mutex::new(Some(supervisor)),
            threads: Mutex::new(Vec::new()),
            result_thread: Mutex::new(None),
            task_worker_end,
            finished: Mutex::new(false),
        }
    }

    pub(crate) fn reports(&self) -> &Reports {
        &self.reports
    }

    /// Wakes the result handler: it reads the reports for every outstanding job (and a
    /// leading caller steps down).
    pub(crate) fn wake_handler(&self) {
        self.control.wake();
    }

    /// A memory file is kept for the next large payload (see `Files` in `queue.rs`).
    pub(crate) fn keeps_a_file(&self) -> bool {
        self.tasks.files.has_spare()
    }

    /// Gives back the memory file kept for the next large payload.
    pub(crate) fn release_file(&self) {
        drop(self.tasks.files.spare());
    }

    /// Some job is outstanding: the result handler must read the reports.
    pub(crate) fn has_jobs(&self) -> bool {
        lock(&self.jobs).outstanding > 0
    }

    /// The result handler goes idle if no job is outstanding. True if it is idle.
    pub(crate) fn handler_idles(&self) -> bool {
        let mut jobs = lock(&self.jobs);
        jobs.handler_idle = jobs.outstanding == 0;
        jobs.handler_idle
    }

    /// The result handler was woken and reads the reports again.
    pub(crate) fn handler_wakes(&self) {
        lock(&self.jobs).handler_idle = false;
    }

    /// The job `id`, unless it is complete (or unknown).
    pub(crate) fn job(&self, id: u64) -> Option<JobCell> {
        lock(&self.jobs).map.get(&id).cloned()
    }

    /// Delivers chunk `index`'s outcome to job `job`.
    pub(crate) fn deliver(&self, job: u64, index: u32, outcome: Result<&[u8], PoolError>) {
        if let Some(cell) = self.job(job) {
            self.deliver_to(job, &cell, index, outcome);
        }
    }

    /// Delivers chunk `index`'s outcome to job `job`, whose cell is `cell`. True if that
    /// completed the job. Nothing is delivered once the pool is terminated.
    pub(crate) fn deliver_to(
        &self,
        job: u64,
        cell: &JobCell,
        index: u32,
        outcome: Result<&[u8], PoolError>,
    ) -> bool {
        self.tasks.files.returned(job, index);
        if self.terminated.load(Ordering::Acquire) {
            return false;
        }
        // Callbacks run here, holding only this job's lock (which orders the feeder's and the
        // result handler's deliveries to one job), so a callback may submit more work.
        let mut held = lock(cell);
        let Some(j) = held.as_mut() else {
            return false;
        };
        if !j.set(index, outcome) {
            return false;
        }
        *held = None;
        drop(held);
        let mut jobs = lock(&self.jobs);
        jobs.map.remove(&job);
        jobs.outstanding = jobs.outstanding.saturating_sub(1);
        // Only `join` waits for this, and only for the last job.
        if jobs.outstanding == 0 {
            self.jobs_done.notify_all();
        }
        true
    }

    /// The result handler handled worker `id`'s exit (after its last records). True if a
    /// replacement is due.
    pub(crate) fn worker_exited(&self, id: u32) -> bool {
        let mut workers = lock(&self.workers);
        workers.live.remove(&id);
        let state = *lock(&self.state);
        let pending = lock(&self.jobs).outstanding > 0;
        let replace =
            !workers.retiring && (state == State::Running || (state == State::Closed && pending));
        drop(workers);
        self.workers_changed.notify_all();
        replace
    }

    pub(crate) fn spawn_replacement(&self) {
        if let Some(sup) = lock(&self.supervisor).as_ref() {
            let _ = sup.send(SupervisorCmd::Spawn(1, None));
        }
    }

    /// Marks the pool terminated and kills the workers at once (`Pool::terminate`, and a
    /// pool whose workers could not all start).
    pub(crate) fn terminate(&self) {
        *lock(&self.state) = State::Terminated;
        self.terminated.store(true, Ordering::Release);
        // Wake a `join` waiting for outstanding work (taking the lock first, so the wakeup
        // cannot fall between its check and its wait).
        drop(lock(&self.jobs));
        self.jobs_done.notify_all();
        self.shut_down(true);
    }

    /// Stops workers and threads. Idempotent.
    pub(crate) fn shut_down(&self, kill_workers: bool) {
        let mut finished = lock(&self.finished);
        if *finished {
            return;
        }
        let inner = self;
        lock(&inner.workers).retiring = true;
        let on_result_thread = *lock(&inner.result_thread) == Some(thread::current().id());
        if kill_workers {
            for &pid in lock(&inner.workers).live.values() {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            inner.tasks.shut_down_socket();
        } else {
            // One exit frame per worker, queued behind every task.
            let live = lock(&inner.workers).live.len();
            let mut exits = Frames::default();
            for _ in 0..live {
                let _ = exits.push(|out| {
                    out.extend_from_slice(EXIT_FRAME);
                    Ok::<_, ()>(Attachment::Inline)
                });
            }
            if !exits.is_empty() {
                inner.tasks.submit([Feed::Frames(exits)]);
            }
        }
        if !on_result_thread {
            // Exits are handled by the result handler, which keeps `live` current.
            let workers = lock(&inner.workers);
            drop(wait_while(&inner.workers_changed, workers, |w| {
                !w.live.is_empty()
            }));
        }
        // Only now stop the supervisor: workers get the parent-death signal when the thread
        // that started them ends, and graceful exits must not be turned into kills.
        if let Some(sup) = lock(&inner.supervisor).take() {
            let _ = sup.send(SupervisorCmd::Shutdown);
        }
        inner.tasks.close();
        inner.control.send(Control::Stop);
        let handles: Vec<JoinHandle<()>> = lock(&inner.threads).drain(..).collect();
        for h in handles {
            if h.thread().id() != thread::current().id() {
                let _ = h.join();
            }
        }
        *finished = true;
    }
}
