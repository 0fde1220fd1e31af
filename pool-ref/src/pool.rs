//! The public API: [`Pool`] and [`PoolBuilder`], over the shared state of `inner.rs`.
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
//! Starting them is `start.rs`, submitting work `submit.rs`; the state they share and its
//! lock order, `inner.rs`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::encode;
use crate::error::PoolError;
use crate::inner::{Inner, State};
use crate::lock::{lock, wait_while};
use crate::registry::TaskRef;
use crate::result::{
    ApplyJob, AsyncResult, Callback, ErrorCallback, IMapIter, IterJob, IterShared, MapJob, Slot,
};
use crate::start::start;
use crate::submit::{Waiter, feeds, submit};

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
        start(processes, self.maxtasksperchild, initializer).map(|inner| Pool { inner })
    }
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

    /// Number of worker processes.
    pub fn processes(&self) -> usize {
        self.inner.processes
    }

    /// Pids of the live worker processes, in no particular order.
    pub fn worker_pids(&self) -> Vec<u32> {
        lock(&self.inner.workers).live.values().copied().collect()
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
        let feeds = feeds(
            &self.inner,
            job,
            task.name(),
            &[std::slice::from_ref(&args)],
            false,
        );
        let slot = Slot::new();
        submit(
            &self.inner,
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
        let feeds = feeds(&self.inner, job, task.name(), &chunks, true);
        let n = chunks.len();
        submit(
            &self.inner,
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
        let feeds = feeds(&self.inner, job, task.name(), &chunks, size > 1);
        submit(
            &self.inner,
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
                self.inner.shut_down(terminated);
                Ok(())
            }
            State::Terminated => {
                self.inner.shut_down(true);
                Ok(())
            }
        }
    }

    /// Kills the workers at once; outstanding results never complete and their callbacks
    /// never run. Python: `terminate`.
    pub fn terminate(&self) {
        self.inner.terminate();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.terminate();
    }
}
