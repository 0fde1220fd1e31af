//! The pool: its state, its parent threads, and the public API.
//!
//! As in CPython, the parent runs threads besides the caller's:
//!
//! - the **feeder** ([`crate::queue`]) sends the task frames a submitting thread could not
//!   send itself without blocking (the shared task socket was full), in order, so that
//!   submitting never blocks. Like CPython's task handler, it also fails the chunks whose
//!   arguments could not be encoded, in submission order, running their error callbacks;
//! - the **result handler** ([`crate::handler`]) reads every worker's report pipe, tracks
//!   which worker runs what, completes results and runs callbacks (one at a time; only the
//!   error callbacks of arguments that did not encode run elsewhere, on the feeder), and
//!   asks for replacements when workers exit. While it has no job to wait for, a caller that
//!   waits for its own job right away (`apply`, `map`, which take no callbacks) reads the
//!   reports itself instead, which saves two thread switches per result;
//! - the **supervisor** starts workers (so they die with it, via the parent-death signal, only
//!   when the pool's process dies), with one waiter thread per worker that reaps it and hands
//!   its exit status to the result handler.
//!
//! Lock order: `state`, then `jobs`; `workers`, then `state`, then `jobs`; the report
//! readers (held by whoever reads the reports), then a job's own lock, then `jobs`, or then
//! `workers`. A callback runs holding only the completing job's lock (see
//! [`Inner::deliver_to`]) and, on the result handler, the report readers, which no other
//! pool call waits for: a callback may submit work, close or terminate the pool.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle, ThreadId};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, setsockopt, socketpair, sockopt};
use nix::unistd::Pid;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{encode, encode_values};
use crate::error::PoolError;
use crate::handler::{Control, ControlTx, Reports, control_channel, handle_results, lead};
use crate::lock::{lock, wait_while};
use crate::memfile::memory_file;
use crate::queue::{Feed, Frames, TaskQueue};
use crate::registry::TaskRef;
use crate::result::{
    ApplyJob, AsyncResult, Callback, ErrorCallback, IMapIter, IterJob, IterShared, Job, MapJob,
    Slot,
};
use crate::wire::{Attachment, EXIT_FRAME, MAX_MESSAGE, TaskHead, encode_task};
use crate::worker::{WORKER_FLAG, WorkerConfig};

/// Builds a [`Pool`]; the counterpart of `multiprocessing.Pool(...)`'s arguments.
#[derive(Debug, Default, Clone)]
pub struct PoolBuilder {
    processes: Option<usize>,
    maxtasksperchild: Option<u32>,
    /// The initializer's name and its encoded arguments (or why they do not encode).
    initializer: Option<(String, Result<Vec<u8>, PoolError>)>,
}

impl PoolBuilder {
    /// Number of worker processes (default: [`Pool::default_processes`]).
    pub fn processes(mut self, n: usize) -> PoolBuilder {
        self.processes = Some(n);
        self
    }

    /// Replace each worker after it completed this many tasks (chunks).
    pub fn maxtasksperchild(mut self, n: u32) -> PoolBuilder {
        self.maxtasksperchild = Some(n);
        self
    }

    /// Run `task(args)` once in every worker, before its first task.
    ///
    /// The arguments travel on each worker's command line (in hexadecimal), where Linux
    /// allows 128 KiB per argument: their encoding must stay below about 60 KiB, or the
    /// workers cannot start ([`PoolError::Spawn`]). Tasks take arguments of any size.
    pub fn initializer<A: Serialize, R>(mut self, task: TaskRef<A, R>, args: A) -> PoolBuilder {
        let mut encoded = Vec::new();
        let encoded = encode(&mut encoded, &args)
            .map(|()| encoded)
            .map_err(|e| PoolError::Serialization(e.to_string()));
        self.initializer = Some((task.name().to_owned(), encoded));
        self
    }

    /// Starts the workers. Returns once every worker process has been started.
    pub fn build(self) -> Result<Pool, PoolError> {
        let processes = match self.processes {
            Some(0) => {
                return Err(PoolError::InvalidArgument(
                    "Number of processes must be at least 1".into(),
                ));
            }
            Some(n) => n,
            None => Pool::default_processes(),
        };
        if self.maxtasksperchild == Some(0) {
            return Err(PoolError::InvalidArgument(
                "maxtasksperchild must be a positive int or None".into(),
            ));
        }
        let initializer = match self.initializer {
            Some((name, Ok(encoded))) => Some((name, encoded)),
            Some((_, Err(e))) => return Err(e),
            None => None,
        };
        Pool::start(processes, self.maxtasksperchild, initializer)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Closed,
    Terminated,
}

/// A job, shared by the threads that complete it (the result handler, and the feeder for
/// chunks whose arguments did not encode); `None` once complete.
pub(crate) type JobCell = Arc<Mutex<Option<Box<dyn Job>>>>;

struct Jobs {
    map: HashMap<u64, JobCell>,
    /// Jobs not yet complete, including one a thread is completing right now.
    outstanding: usize,
    /// The result handler is idle: it found no job outstanding, and reads no reports until
    /// woken (see [`crate::handler`]). Changes only under this lock, so a submitter that
    /// counts its job here either is seen by the handler or sees it idle.
    handler_idle: bool,
}

struct Workers {
    /// Pids of the workers whose exit has not been handled yet, by worker id.
    live: HashMap<u32, u32>,
    next_id: u32,
    /// No more replacements: the pool is shutting down.
    retiring: bool,
}

/// Who waits for a job's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiter {
    /// Whoever, whenever (the `_async` calls, `imap`): the result handler reads for it.
    Anyone,
    /// The submitting thread, at once; and the job has no callbacks. It may read the reports
    /// itself ([`crate::handler::lead`]).
    Submitter,
}

enum SupervisorCmd {
    Spawn(usize, Option<Sender<Result<(), PoolError>>>),
    Shutdown,
}

pub(crate) struct Inner {
    processes: usize,
    maxtasks: Option<u32>,
    initializer: Option<(String, Vec<u8>)>,
    state: Mutex<State>,
    /// `state` is `Terminated`: read on every delivery, which must not wait for `state`
    /// (a submitting thread may hold it).
    terminated: AtomicBool,
    jobs: Mutex<Jobs>,
    jobs_done: Condvar,
    workers: Mutex<Workers>,
    workers_changed: Condvar,
    next_job: AtomicU64,
    tasks: TaskQueue,
    /// To the result handler.
    control: ControlTx,
    reports: Reports,
    supervisor: Mutex<Option<Sender<SupervisorCmd>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    result_thread: Mutex<Option<ThreadId>>,
    /// The end of the task socket workers read (kept to hand to new workers).
    task_worker_end: OwnedFd,
    finished: Mutex<bool>,
}

/// A pool of worker processes with `multiprocessing.Pool`'s semantics.
///
/// Dropping a pool terminates it, as leaving a `with Pool(...)` block does in Python.
pub struct Pool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("processes", &self.inner.processes)
            .field("state", &*lock(&self.inner.state))
            .finish()
    }
}

/// Memory files one submission writes its large arguments into as it encodes them, at
/// most; the payloads of more large chunks wait in its buffer, and get their files as they
/// are sent.
const FILES_AT_ONCE: usize = 16;

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

impl Pool {
    /// A builder; `Pool::builder().processes(4).build()`.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// A pool of `processes` workers with default settings.
    pub fn new(processes: usize) -> Result<Pool, PoolError> {
        Pool::builder().processes(processes).build()
    }

    /// The number of workers a pool gets when its builder is not given one: the parallelism
    /// available to this process (`std::thread::available_parallelism`, which follows the CPU
    /// affinity and cgroup quotas), 1 when unknown. Python: `os.process_cpu_count()` from
    /// 3.13, `os.cpu_count()` before.
    pub fn default_processes() -> usize {
        thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// The pool itself, while it is running; [`PoolError::NotRunning`] once it is closed or
    /// terminated. Python: `Pool.__enter__` (what `with pool:` calls), which checks the same.
    pub fn enter(&self) -> Result<&Pool, PoolError> {
        self.check_running()?;
        Ok(self)
    }

    fn start(
        processes: usize,
        maxtasks: Option<u32>,
        initializer: Option<(String, Vec<u8>)>,
    ) -> Result<Pool, PoolError> {
        let (task_tx, task_worker_end) = seqpacket_pair()?;
        let (tasks, feed_rx) = TaskQueue::new(task_tx);
        let (control, reports, control_rx) = control_channel()?;
        let (sup_tx, sup_rx) = channel::<SupervisorCmd>();
        let inner = Arc::new(Inner {
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
            supervisor: Mutex::new(Some(sup_tx.clone())),
            threads: Mutex::new(Vec::new()),
            result_thread: Mutex::new(None),
            task_worker_end,
            finished: Mutex::new(false),
        });
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
        let pool = Pool { inner };
        let (ack_tx, ack_rx) = channel();
        let _ = sup_tx.send(SupervisorCmd::Spawn(processes, Some(ack_tx)));
        match ack_rx.recv() {
            Ok(Ok(())) => Ok(pool),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(PoolError::Spawn("the supervisor stopped".into())),
        }
    }

    /// Number of worker processes.
    pub fn processes(&self) -> usize {
        self.inner.processes
    }

    /// Pids of the live worker processes, in no particular order.
    pub fn worker_pids(&self) -> Vec<u32> {
        lock(&self.inner.workers).live.values().copied().collect()
    }

    /// Registers job `id` and sends its feeds. With [`Waiter::Submitter`], may read the
    /// reports on this thread until the job completes (see [`crate::handler`]).
    fn submit(
        &self,
        id: u64,
        job: Box<dyn Job>,
        feeds: Vec<Feed>,
        waiter: Waiter,
    ) -> Result<(), PoolError> {
        let cell: JobCell = Arc::new(Mutex::new(Some(job)));
        let handler_idle = {
            // Under `state`, so that a `close` either refuses this job or counts it in the
            // work its `join` waits for.
            let state = lock(&self.inner.state);
            if *state != State::Running {
                return Err(PoolError::NotRunning);
            }
            let mut jobs = lock(&self.inner.jobs);
            jobs.map.insert(id, Arc::clone(&cell));
            jobs.outstanding += 1;
            jobs.handler_idle
        };
        // A chunk the feeder fails completes the job where a leader would not see it.
        let leadable =
            waiter == Waiter::Submitter && feeds.iter().all(|f| matches!(f, Feed::Frames(_)));
        let tasks: usize = feeds
            .iter()
            .map(|f| match f {
                Feed::Frames(frames) => frames.len(),
                Feed::Fail { .. } => 1,
            })
            .sum();
        // Not under `state`: the worker this wakes may finish before the submitter goes on,
        // and delivering its result must not wait for the submitter.
        if !self.inner.tasks.submit(feeds) {
            // Terminated meanwhile: the job will never complete.
            return Err(PoolError::NotRunning);
        }
        if handler_idle {
            if leadable {
                lead(&self.inner, id, &cell, tasks == 1);
            } else {
                self.inner.wake_handler();
            }
        }
        Ok(())
    }

    /// The feeder's work for a job: one task frame per chunk, or, for a chunk whose
    /// arguments cannot be encoded, its failure with [`PoolError::Serialization`]. As in
    /// CPython, that failure is no error of the submitting call: the chunk's result fails
    /// with it later, on a pool thread, and the other chunks run.
    fn feeds<A: Serialize>(
        &self,
        job: u64,
        name: &str,
        chunks: &[&[A]],
        listed: bool,
    ) -> Vec<Feed> {
        let mut feeds = Vec::new();
        // Most arguments are small: a few bytes after each header.
        let mut frames = Frames::with_capacity(chunks.len(), chunks.len() * (name.len() + 32));
        let mut files = 0;
        for (i, chunk) in chunks.iter().enumerate() {
            let index = i as u32;
            let encoded = frames.push(|out| {
                let head = TaskHead {
                    job,
                    index,
                    listed,
                    more: i + 1 < chunks.len(),
                    attached: false,
                    name,
                };
                encode_task(out, &head, |out| {
                    let file = || {
                        // Files made now stay open until sent: only a few per submission.
                        files += 1;
                        let spare = || self.inner.tasks.files.spare();
                        (files <= FILES_AT_ONCE).then(|| memory_file(spare()).ok())?
                    };
                    encode_values(out, chunk, file)
                        .map_err(|e| PoolError::Serialization(e.to_string()))
                })
            });
            if let Err(error) = encoded {
                if !frames.is_empty() {
                    feeds.push(Feed::Frames(std::mem::take(&mut frames)));
                }
                feeds.push(Feed::Fail { job, index, error });
            }
        }
        if !frames.is_empty() {
            feeds.push(Feed::Frames(frames));
        }
        feeds
    }

    fn check_running(&self) -> Result<(), PoolError> {
        if *lock(&self.inner.state) == State::Running {
            Ok(())
        } else {
            Err(PoolError::NotRunning)
        }
    }

    /// Runs `task(args)` in a worker and waits for its value. Python: `apply`.
    pub fn apply<A, R>(&self, task: TaskRef<A, R>, args: A) -> Result<R, PoolError>
    where
        A: Serialize,
        R: DeserializeOwned + Clone + Send + 'static,
    {
        self.apply_with(task, args, None, None, Waiter::Submitter)?
            .take()
    }

    /// Submits `task(args)` and returns at once. `callback` (on success) or `error_callback`
    /// (on failure) runs on the result-handler thread before the result becomes ready.
    /// Python: `apply_async`.
    ///
    /// Arguments that fail to serialize are no error of this call, as in CPython: the task
    /// never runs, and the result fails with [`PoolError::Serialization`], its
    /// `error_callback` running on the pool's feeder thread (CPython's task handler).
    pub fn apply_async<A, R>(
        &self,
        task: TaskRef<A, R>,
        args: A,
        callback: Option<Callback<R>>,
        error_callback: Option<ErrorCallback>,
    ) -> Result<AsyncResult<R>, PoolError>
    where
        A: Serialize,
        R: DeserializeOwned + Clone + Send + 'static,
    {
        self.apply_with(task, args, callback, error_callback, Waiter::Anyone)
    }

    fn apply_with<A, R>(
        &self,
        task: TaskRef<A, R>,
        args: A,
        callback: Option<Callback<R>>,
        error_callback: Option<ErrorCallback>,
        waiter: Waiter,
    ) -> Result<AsyncResult<R>, PoolError>
    where
        A: Serialize,
        R: DeserializeOwned + Clone + Send + 'static,
    {
        self.check_running()?;
        let job = self.inner.next_job.fetch_add(1, Ordering::Relaxed);
        let feeds = self.feeds(job, task.name(), &[std::slice::from_ref(&args)], false);
        let slot = Slot::new();
        self.submit(
            job,
            Box::new(ApplyJob {
                slot: Arc::clone(&slot),
                callback,
                error_callback,
            }),
            feeds,
            waiter,
        )?;
        Ok(AsyncResult::new(slot))
    }

    /// CPython's default chunksize for `map`: about four chunks per worker.
    fn default_chunksize(&self, len: usize) -> usize {
        len.div_ceil(self.inner.processes * 4).max(1)
    }

    /// Runs `task` on every item and waits for all values, in input order. Python: `map`.
    pub fn map<A, R>(
        &self,
        task: TaskRef<A, R>,
        items: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
    ) -> Result<Vec<R>, PoolError>
    where
        A: Serialize,
        R: DeserializeOwned + Clone + Send + 'static,
    {
        self.map_with(task, items, chunksize, None, None, Waiter::Submitter)?
            .take()
    }

    /// Like [`Pool::map`] but returns at once; the callback gets the whole list, once.
    /// Python: `map_async`. As in CPython, an empty input is ready at once and never calls
    /// the callback, and a chunk whose arguments fail to serialize fails the result (see
    /// [`Pool::apply_async`]) while the other chunks still run.
    pub fn map_async<A, R>(
        &self,
        task: TaskRef<A, R>,
        items: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
        callback: Option<Callback<Vec<R>>>,
        error_callback: Option<ErrorCallback>,
    ) -> Result<AsyncResult<Vec<R>>, PoolError>
    where
        A: Serialize,
        R: DeserializeOwned + Clone + Send + 'static,
    {
        self.map_with(
            task,
            items,
            chunksize,
            callback,
            error_callback,
            Waiter::Anyone,
        )
    }

    fn map_with<A, R>(
        &self,
        task: TaskRef<A, R>,
        items: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
        callback: Option<Callback<Vec<R>>>,
        error_callback: Option<ErrorCallback>,
        waiter: Waiter,
    ) -> Result<AsyncResult<Vec<R>>, PoolError>
    where
        A: Serialize,
        R: DeserializeOwned + Clone + Send + 'static,
    {
        self.check_running()?;
        let items: Vec<A> = items.into_iter().collect();
        let size = match chunksize {
            Some(0) => return Err(PoolError::InvalidArgument("chunksize must be >= 1".into())),
            Some(n) => n,
            None => self.default_chunksize(items.len()),
        };
        let slot = Slot::new();
        if items.is_empty() {
            slot.complete(Ok(Vec::new()));
            return Ok(AsyncResult::new(slot));
        }
        let chunks: Vec<&[A]> = items.chunks(size).collect();
        let job = self.inner.next_job.fetch_add(1, Ordering::Relaxed);
        let feeds = self.feeds(job, task.name(), &chunks, true);
        let n = chunks.len();
        self.submit(
            job,
            Box::new(MapJob {
                slot: Arc::clone(&slot),
                callback,
                error_callback,
                chunks: (0..n).map(|_| None).collect(),
                left: n,
                error: None,
            }),
            feeds,
            waiter,
        )?;
        Ok(AsyncResult::new(slot))
    }

    /// `map` for tasks of several arguments: each item is the argument tuple. In Rust the
    /// tuple already is the argument, so this is [`Pool::map`]; it exists for parity.
    pub fn starmap<A, R>(
        &self,
        task: TaskRef<A, R>,
        items: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
    ) -> Result<Vec<R>, PoolError>
    where
        A: Serialize,
        R: DeserializeOwned + Clone + Send + 'static,
    {
        self.map(task, items, chunksize)
    }

    /// `map_async` for tasks of several arguments; see [`Pool::starmap`].
    pub fn starmap_async<A, R>(
        &self,
        task: TaskRef<A, R>,
        items: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
        callback: Option<Callback<Vec<R>>>,
        error_callback: Option<ErrorCallback>,
    ) -> Result<AsyncResult<Vec<R>>, PoolError>
    where
        A: Serialize,
        R: DeserializeOwned + Clone + Send + 'static,
    {
        self.map_async(task, items, chunksize, callback, error_callback)
    }

    fn iterate<A, R>(
        &self,
        task: TaskRef<A, R>,
        items: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
        ordered: bool,
    ) -> Result<IMapIter<R>, PoolError>
    where
        A: Serialize,
        R: DeserializeOwned + Send + 'static,
    {
        self.check_running()?;
        let items: Vec<A> = items.into_iter().collect();
        let size = match chunksize {
            Some(0) => return Err(PoolError::InvalidArgument("chunksize must be >= 1".into())),
            Some(n) => n,
            None => 1,
        };
        let chunks: Vec<&[A]> = items.chunks(size).collect();
        let shared = IterShared::new(chunks.len(), ordered, size > 1);
        if chunks.is_empty() {
            return Ok(IMapIter::new(shared));
        }
        let job = self.inner.next_job.fetch_add(1, Ordering::Relaxed);
        // CPython's imap sends single items unwrapped, and chunks (chunksize > 1) as lists.
        let feeds = self.feeds(job, task.name(), &chunks, size > 1);
        self.submit(
            job,
            Box::new(IterJob {
                shared: Arc::clone(&shared),
            }),
            feeds,
            Waiter::Anyone,
        )?;
        Ok(IMapIter::new(shared))
    }

    /// Lazily yields the values in input order (chunksize defaults to 1). Python: `imap`.
    pub fn imap<A, R>(
        &self,
        task: TaskRef<A, R>,
        items: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
    ) -> Result<IMapIter<R>, PoolError>
    where
        A: Serialize,
        R: DeserializeOwned + Send + 'static,
    {
        self.iterate(task, items, chunksize, true)
    }

    /// Lazily yields the values in the order they arrive. Python: `imap_unordered`.
    pub fn imap_unordered<A, R>(
        &self,
        task: TaskRef<A, R>,
        items: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
    ) -> Result<IMapIter<R>, PoolError>
    where
        A: Serialize,
        R: DeserializeOwned + Send + 'static,
    {
        self.iterate(task, items, chunksize, false)
    }

    /// No more work will be submitted; outstanding work still runs. Python: `close`.
    pub fn close(&self) {
        let mut state = lock(&self.inner.state);
        if *state == State::Running {
            *state = State::Closed;
        }
    }

    /// Waits for the workers to exit, after `close` (once all outstanding work and its
    /// callbacks are done) or `terminate`. [`PoolError::StillRunning`] while running.
    /// Python: `join`.
    pub fn join(&self) -> Result<(), PoolError> {
        let state = *lock(&self.inner.state);
        match state {
            State::Running => Err(PoolError::StillRunning),
            State::Closed => {
                let jobs = lock(&self.inner.jobs);
                // Stop waiting also when another thread terminates the pool: the outstanding
                // work will then never finish (CPython's join returns then too).
                drop(wait_while(&self.inner.jobs_done, jobs, |j| {
                    j.outstanding > 0 && *lock(&self.inner.state) == State::Closed
                }));
                let terminated = *lock(&self.inner.state) == State::Terminated;
                self.shut_down(terminated);
                Ok(())
            }
            State::Terminated => {
                self.shut_down(true);
                Ok(())
            }
        }
    }

    /// Kills the workers at once; outstanding results never complete and their callbacks
    /// never run. Python: `terminate`.
    pub fn terminate(&self) {
        *lock(&self.inner.state) = State::Terminated;
        self.inner.terminated.store(true, Ordering::Release);
        // Wake a `join` waiting for outstanding work (taking the lock first, so the wakeup
        // cannot fall between its check and its wait).
        drop(lock(&self.inner.jobs));
        self.inner.jobs_done.notify_all();
        self.shut_down(true);
    }

    /// Stops workers and threads. Idempotent.
    fn shut_down(&self, kill_workers: bool) {
        let mut finished = lock(&self.inner.finished);
        if *finished {
            return;
        }
        let inner = &self.inner;
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

impl Drop for Pool {
    fn drop(&mut self) {
        self.terminate();
    }
}

impl Inner {
    pub(crate) fn reports(&self) -> &Reports {
        &self.reports
    }

    /// Wakes the result handler: it reads the reports for every outstanding job (and a
    /// leading caller steps down).
    pub(crate) fn wake_handler(&self) {
        self.control.wake();
    }

    /// A memory file is kept for the next large payload (see [`crate::queue::Files`]).
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
    fn deliver(&self, job: u64, index: u32, outcome: Result<&[u8], PoolError>) {
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
