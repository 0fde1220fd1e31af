//! The pool: its state, its three parent threads, and the public API.
//!
//! As in CPython, the parent runs three threads besides the caller's:
//!
//! - the **feeder** writes task frames to the shared task socket, so submitting never
//!   blocks the caller even when the socket is full. Like CPython's task handler, it also
//!   fails the chunks whose arguments could not be encoded, in submission order, running
//!   their error callbacks;
//! - the **result handler** reads report records, tracks which worker runs what, completes
//!   results and runs callbacks (one at a time; only the error callbacks of arguments that
//!   did not encode run elsewhere, on the feeder), and asks for replacements when workers
//!   exit;
//! - the **supervisor** starts workers (so they die with it, via the parent-death signal, only
//!   when the pool's process dies) and waits on each of them, turning every exit into a
//!   report record so it is handled in order after that worker's last report.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle, ThreadId};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockType, recv, send, setsockopt, socketpair, sockopt,
};
use nix::unistd::Pid;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::PoolError;
use crate::registry::TaskRef;
use crate::result::{
    ApplyJob, AsyncResult, Callback, ErrorCallback, IMapIter, IterJob, IterShared, Job, MapJob,
    Slot, task_failed,
};
use crate::wire::{MAX_FRAME, Record, decode_records, encode_task, push_record};
use crate::worker::{WORKER_FLAG, WorkerConfig};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Builds a [`Pool`]; the counterpart of `multiprocessing.Pool(...)`'s arguments.
#[derive(Debug, Default, Clone)]
pub struct PoolBuilder {
    processes: Option<usize>,
    maxtasksperchild: Option<u32>,
    initializer: Option<(String, Result<String, String>)>,
}

impl PoolBuilder {
    /// Number of worker processes (default: the number of CPUs).
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
    pub fn initializer<A: Serialize, R>(mut self, task: TaskRef<A, R>, args: A) -> PoolBuilder {
        let json = serde_json::to_string(&args).map_err(|e| e.to_string());
        self.initializer = Some((task.name().to_owned(), json));
        self
    }

    /// Starts the workers. Returns once every worker process has been started.
    pub fn build(self) -> Result<Pool, PoolError> {
        let processes = match self.processes {
            Some(0) => {
                return Err(PoolError::InvalidArgument(
                    "processes must be at least 1".into(),
                ));
            }
            Some(n) => n,
            None => thread::available_parallelism().map_or(1, |n| n.get()),
        };
        if self.maxtasksperchild == Some(0) {
            return Err(PoolError::InvalidArgument(
                "maxtasksperchild must be a positive int or None".into(),
            ));
        }
        let initializer = match self.initializer {
            Some((name, Ok(json))) => Some((name, json)),
            Some((_, Err(e))) => return Err(PoolError::Serialization(e)),
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
type JobCell = Arc<Mutex<Option<Box<dyn Job>>>>;

struct Jobs {
    map: HashMap<u64, JobCell>,
    /// Jobs not yet complete, including one a thread is completing right now.
    outstanding: usize,
}

struct Worker {
    pid: u32,
    /// The (job, chunk) it reported starting and has not finished.
    inflight: Option<(u64, u32)>,
}

struct Workers {
    live: HashMap<u32, Worker>,
    next_id: u32,
    /// No more replacements: the pool is shutting down.
    retiring: bool,
}

/// What the feeder is asked to do, in submission order.
enum Feed {
    /// Write this frame to the task socket.
    Frame(Vec<u8>),
    /// Fail chunk `index` of `job`: its arguments could not be encoded. (CPython's task
    /// handler fails the job with the pickling error, and goes on with the next task.)
    Fail {
        job: u64,
        index: u32,
        error: PoolError,
    },
}

enum SupervisorCmd {
    Spawn(usize, Option<Sender<Result<(), PoolError>>>),
    Shutdown,
}

struct Inner {
    processes: usize,
    maxtasks: Option<u32>,
    initializer: Option<(String, String)>,
    state: Mutex<State>,
    jobs: Mutex<Jobs>,
    jobs_done: Condvar,
    workers: Mutex<Workers>,
    workers_changed: Condvar,
    next_job: AtomicU64,
    feeder: Mutex<Option<Sender<Feed>>>,
    supervisor: Mutex<Option<Sender<SupervisorCmd>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    result_thread: Mutex<Option<ThreadId>>,
    /// Parent's sending end of the task socket.
    task_tx: OwnedFd,
    /// The end of the task socket workers read (kept to hand to new workers).
    task_worker_end: OwnedFd,
    /// The end of the report socket workers write (kept for new workers, and so the
    /// supervisor can add exit records).
    report_worker_end: OwnedFd,
    /// Parent's receiving end of the report socket.
    report_rx: OwnedFd,
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

fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd), PoolError> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| PoolError::Spawn(format!("socketpair: {e}")))?;
    for fd in [&a, &b] {
        // Room for the largest frame whatever the system default.
        let _ = setsockopt(fd, sockopt::SndBuf, &(MAX_FRAME * 2));
    }
    Ok((a, b))
}

fn send_frame(fd: &OwnedFd, frame: &[u8]) -> Result<(), Errno> {
    loop {
        match send(fd.as_raw_fd(), frame, MsgFlags::MSG_NOSIGNAL) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
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

    fn start(
        processes: usize,
        maxtasks: Option<u32>,
        initializer: Option<(String, String)>,
    ) -> Result<Pool, PoolError> {
        let (task_tx, task_worker_end) = seqpacket_pair()?;
        let (report_rx, report_worker_end) = seqpacket_pair()?;
        let (feed_tx, feed_rx) = channel::<Feed>();
        let (sup_tx, sup_rx) = channel::<SupervisorCmd>();
        let inner = Arc::new(Inner {
            processes,
            maxtasks,
            initializer,
            state: Mutex::new(State::Running),
            jobs: Mutex::new(Jobs {
                map: HashMap::new(),
                outstanding: 0,
            }),
            jobs_done: Condvar::new(),
            workers: Mutex::new(Workers {
                live: HashMap::new(),
                next_id: 1,
                retiring: false,
            }),
            workers_changed: Condvar::new(),
            next_job: AtomicU64::new(1),
            feeder: Mutex::new(Some(feed_tx)),
            supervisor: Mutex::new(Some(sup_tx.clone())),
            threads: Mutex::new(Vec::new()),
            result_thread: Mutex::new(None),
            task_tx,
            task_worker_end,
            report_worker_end,
            report_rx,
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
            spawn("pool-ref-feeder", Box::new(move || feed(&inner, feed_rx)))?
        };
        let results = {
            let inner = Arc::clone(&inner);
            spawn("pool-ref-results", Box::new(move || handle_results(&inner)))?
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
        lock(&self.inner.workers)
            .live
            .values()
            .map(|w| w.pid)
            .collect()
    }

    fn submit(&self, id: u64, job: Box<dyn Job>, feeds: Vec<Feed>) -> Result<(), PoolError> {
        let state = lock(&self.inner.state);
        if *state != State::Running {
            return Err(PoolError::NotRunning);
        }
        let feeder = lock(&self.inner.feeder);
        let Some(feeder) = feeder.as_ref() else {
            return Err(PoolError::NotRunning);
        };
        {
            let mut jobs = lock(&self.inner.jobs);
            jobs.map.insert(id, Arc::new(Mutex::new(Some(job))));
            jobs.outstanding += 1;
        }
        for f in feeds {
            let _ = feeder.send(f);
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
        chunks
            .iter()
            .enumerate()
            .map(|(i, chunk)| {
                let index = i as u32;
                let fail = |error| Feed::Fail { job, index, error };
                match serde_json::to_string(chunk) {
                    Err(e) => fail(PoolError::Serialization(e.to_string())),
                    Ok(payload) if payload.len() + name.len() + 32 > MAX_FRAME => {
                        fail(PoolError::Serialization(format!(
                            "arguments of {} bytes exceed the frame limit of {MAX_FRAME}",
                            payload.len()
                        )))
                    }
                    Ok(payload) => Feed::Frame(encode_task(job, index, listed, name, &payload)),
                }
            })
            .collect()
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
        self.apply_async(task, args, None, None)?.get(None)
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
        self.map_async(task, items, chunksize, None, None)?
            .get(None)
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
                drop(
                    self.inner
                        .jobs_done
                        .wait_while(jobs, |j| {
                            j.outstanding > 0 && *lock(&self.inner.state) == State::Closed
                        })
                        .unwrap_or_else(|e| e.into_inner()),
                );
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
            for w in lock(&inner.workers).live.values() {
                let _ = kill(Pid::from_raw(w.pid as i32), Signal::SIGKILL);
            }
            // A feeder blocked on a full socket nobody reads any more: make its send fail.
            let _ = nix::sys::socket::shutdown(
                inner.task_tx.as_raw_fd(),
                nix::sys::socket::Shutdown::Write,
            );
        } else if let Some(feeder) = lock(&inner.feeder).as_ref() {
            // One exit frame per worker, queued behind every task.
            for _ in 0..lock(&inner.workers).live.len() {
                let _ = feeder.send(Feed::Frame(vec![b'X']));
            }
        }
        if !on_result_thread {
            // Exit records arrive through the result handler, which keeps `live` current.
            let workers = lock(&inner.workers);
            drop(
                inner
                    .workers_changed
                    .wait_while(workers, |w| !w.live.is_empty())
                    .unwrap_or_else(|e| e.into_inner()),
            );
        }
        // Only now stop the supervisor: workers get the parent-death signal when the thread
        // that started them ends, and graceful exits must not be turned into kills.
        if let Some(sup) = lock(&inner.supervisor).take() {
            let _ = sup.send(SupervisorCmd::Shutdown);
        }
        lock(&inner.feeder).take();
        let mut stop = Vec::new();
        push_record(&mut stop, &Record::Stop);
        let _ = send_frame(&inner.report_worker_end, &stop);
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

fn feed(inner: &Inner, rx: Receiver<Feed>) {
    for item in rx {
        match item {
            Feed::Frame(frame) => {
                if send_frame(&inner.task_tx, &frame).is_err() {
                    return;
                }
            }
            Feed::Fail { job, index, error } => deliver(inner, job, index, Err(error)),
        }
    }
}

fn deliver(inner: &Inner, job: u64, index: u32, outcome: Result<&str, PoolError>) {
    if *lock(&inner.state) == State::Terminated {
        return;
    }
    let cell = lock(&inner.jobs).map.get(&job).cloned();
    let Some(cell) = cell else { return };
    // Callbacks run here, holding only this job's lock (which orders the feeder's and the
    // result handler's deliveries to one job), so a callback may submit more work.
    let mut held = lock(&cell);
    let Some(j) = held.as_mut() else { return };
    if !j.set(index, outcome) {
        return;
    }
    *held = None;
    drop(held);
    let mut jobs = lock(&inner.jobs);
    jobs.map.remove(&job);
    jobs.outstanding = jobs.outstanding.saturating_sub(1);
    inner.jobs_done.notify_all();
}

fn handle_results(inner: &Inner) {
    let mut buf = vec![0u8; MAX_FRAME + 4096];
    loop {
        let n = match recv(inner.report_rx.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(0) => return,
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(_) => return,
        };
        for record in decode_records(&buf[..n]) {
            match record {
                Record::Started { worker, job, index } => {
                    if let Some(w) = lock(&inner.workers).live.get_mut(&worker) {
                        w.inflight = Some((job, index));
                    }
                }
                Record::Ok {
                    worker,
                    job,
                    index,
                    body,
                } => {
                    finish(inner, worker);
                    deliver(inner, job, index, Ok(&body));
                }
                Record::Err {
                    worker,
                    job,
                    index,
                    error,
                } => {
                    finish(inner, worker);
                    deliver(inner, job, index, Err(task_failed(error)));
                }
                Record::Exited { worker, how } => worker_exited(inner, worker, &how),
                Record::Fatal { worker, why } => {
                    eprintln!("pool-ref: worker {worker}: {why}");
                }
                Record::Stop => return,
            }
        }
    }
}

fn finish(inner: &Inner, worker: u32) {
    if let Some(w) = lock(&inner.workers).live.get_mut(&worker) {
        w.inflight = None;
    }
}

fn worker_exited(inner: &Inner, worker: u32, how: &str) {
    let (gone, replace) = {
        let mut workers = lock(&inner.workers);
        let gone = workers.live.remove(&worker);
        let state = *lock(&inner.state);
        let pending = lock(&inner.jobs).outstanding > 0;
        let replace =
            !workers.retiring && (state == State::Running || (state == State::Closed && pending));
        (gone, replace)
    };
    inner.workers_changed.notify_all();
    if let Some(Worker {
        pid,
        inflight: Some((job, index)),
    }) = gone
    {
        let lost = PoolError::WorkerLost {
            pid,
            status: how.to_owned(),
        };
        deliver(inner, job, index, Err(lost));
    }
    if replace && let Some(sup) = lock(&inner.supervisor).as_ref() {
        let _ = sup.send(SupervisorCmd::Spawn(1, None));
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
    let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| PoolError::Spawn(e.to_string()));
    let mut child = Command::new(exe)
        .arg(WORKER_FLAG)
        .arg(serde_json::to_string(&config).map_err(|e| PoolError::Spawn(e.to_string()))?)
        .stdin(Stdio::from(dup(&inner.task_worker_end)?))
        .stdout(Stdio::from(dup(&inner.report_worker_end)?))
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| PoolError::Spawn(e.to_string()))?;
    workers.live.insert(
        id,
        Worker {
            pid: child.id(),
            inflight: None,
        },
    );
    drop(workers);
    let reports = dup(&inner.report_worker_end)?;
    thread::Builder::new()
        .name(format!("pool-ref-wait-{id}"))
        .spawn(move || {
            let how = match child.wait() {
                Ok(status) => status.to_string(),
                Err(e) => format!("lost: {e}"),
            };
            let mut frame = Vec::new();
            push_record(&mut frame, &Record::Exited { worker: id, how });
            let _ = send_frame(&reports, &frame);
        })
        .map_err(|e| PoolError::Spawn(format!("thread: {e}")))?;
    Ok(())
}
