//! Results: [`AsyncResult`], the iterators of `imap`/`imap_unordered`, and the jobs the
//! result-handler thread completes.
//!
//! A job is completed in CPython's order: store the value, run the callback, *then* mark it
//! ready. So a callback has always returned before `get` returns or `ready` turns true.

use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::codec::{decode_next, values};
use crate::error::PoolError;
use crate::lock::lock;

/// A callback run on the pool's result-handler thread with a successful value.
pub type Callback<T> = Box<dyn FnOnce(&T) + Send>;
/// A callback run on the pool's result-handler thread with the error (on its feeder thread
/// when the arguments could not be serialized, as CPython's task-handler thread does).
pub type ErrorCallback = Box<dyn FnOnce(&PoolError) + Send>;

/// The deadline `timeout` from now; `None` (no limit) also when it lies beyond what the clock
/// can represent, instead of panicking on overflow.
fn deadline_after(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// Waits on `cv` until `done` holds, or until `deadline` (if any). True if `done` holds.
fn wait_until<'a, T>(
    cv: &Condvar,
    mut guard: MutexGuard<'a, T>,
    deadline: Option<Instant>,
    done: impl Fn(&T) -> bool,
) -> (MutexGuard<'a, T>, bool) {
    loop {
        if done(&guard) {
            return (guard, true);
        }
        match deadline {
            None => guard = cv.wait(guard).unwrap_or_else(|e| e.into_inner()),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return (guard, false);
                }
                guard = cv
                    .wait_timeout(guard, d - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
    }
}

struct SlotState<T> {
    value: Option<Result<T, PoolError>>,
    /// Threads waiting on `ready`: completing wakes them only if there are any (most
    /// results are complete before anyone asks, and a wake-up is a system call).
    waiters: usize,
}

pub(crate) struct Slot<T> {
    state: Mutex<SlotState<T>>,
    ready: Condvar,
}

impl<T> Slot<T> {
    pub(crate) fn new() -> Arc<Slot<T>> {
        Arc::new(Slot {
            state: Mutex::new(SlotState {
                value: None,
                waiters: 0,
            }),
            ready: Condvar::new(),
        })
    }

    pub(crate) fn complete(&self, value: Result<T, PoolError>) {
        let mut state = lock(&self.state);
        state.value = Some(value);
        let waiting = state.waiters > 0;
        drop(state);
        if waiting {
            self.ready.notify_all();
        }
    }

    /// Waits until the value is in, or until `deadline`. True if it is in.
    fn wait(&self, deadline: Option<Instant>) -> (MutexGuard<'_, SlotState<T>>, bool) {
        let mut state = lock(&self.state);
        if state.value.is_some() {
            return (state, true);
        }
        state.waiters += 1;
        let (mut state, ok) = wait_until(&self.ready, state, deadline, |s| s.value.is_some());
        state.waiters -= 1;
        (state, ok)
    }
}

/// The handle `apply_async`, `map_async` and `starmap_async` return.
pub struct AsyncResult<T> {
    slot: Arc<Slot<T>>,
}

impl<T> std::fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &lock(&self.slot.state).value.is_some())
            .finish()
    }
}

impl<T: Clone> AsyncResult<T> {
    pub(crate) fn new(slot: Arc<Slot<T>>) -> AsyncResult<T> {
        AsyncResult { slot }
    }

    /// The value, or the task's error; waits at most `timeout` (`None`: without limit) and
    /// returns [`PoolError::Timeout`] then. Repeatable, like Python's `get`.
    pub fn get(&self, timeout: Option<Duration>) -> Result<T, PoolError> {
        let (state, ok) = self.slot.wait(deadline_after(timeout));
        match (&state.value, ok) {
            (Some(v), true) => v.clone(),
            _ => Err(PoolError::Timeout),
        }
    }

    /// The value, or the task's error, moved out instead of cloned: for a handle nobody
    /// else holds (`apply`, `map`), which is dropped right after.
    pub(crate) fn take(self) -> Result<T, PoolError> {
        let (mut state, _) = self.slot.wait(None);
        state.value.take().unwrap_or(Err(PoolError::Timeout))
    }

    /// Waits until ready, at most `timeout`.
    pub fn wait(&self, timeout: Option<Duration>) {
        let _ = self.slot.wait(deadline_after(timeout));
    }

    /// Whether the result (and its callback) is complete.
    pub fn ready(&self) -> bool {
        lock(&self.slot.state).value.is_some()
    }

    /// Whether the task succeeded; [`PoolError::NotReady`] before it is ready.
    pub fn successful(&self) -> Result<bool, PoolError> {
        match &lock(&self.slot.state).value {
            Some(v) => Ok(v.is_ok()),
            None => Err(PoolError::NotReady),
        }
    }
}

/// What the result-handler thread completes. `set` returns true when the job is done.
pub(crate) trait Job: Send {
    fn set(&mut self, index: u32, outcome: Result<&[u8], PoolError>) -> bool;
}

fn run_callback(f: impl FnOnce()) {
    // A panicking callback must not take the result-handler thread (and every later result)
    // with it, as a raising callback does in CPython.
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        eprintln!("pool-ref: a callback panicked; the result is delivered anyway");
    }
}

/// The values of an `O` record's body (a value list).
fn decode<R: DeserializeOwned>(body: &[u8]) -> Result<Vec<R>, PoolError> {
    let mut values =
        values(body).map_err(|_| PoolError::Serialization("malformed list of results".into()))?;
    (0..values.count)
        .map(|_| {
            decode_next(&mut values.decoder).map_err(|e| PoolError::Serialization(e.to_string()))
        })
        .collect()
}

/// `apply_async`: one task, one value.
pub(crate) struct ApplyJob<R> {
    pub slot: Arc<Slot<R>>,
    pub callback: Option<Callback<R>>,
    pub error_callback: Option<ErrorCallback>,
}

impl<R: DeserializeOwned + Send> Job for ApplyJob<R> {
    fn set(&mut self, _index: u32, outcome: Result<&[u8], PoolError>) -> bool {
        let value = outcome.and_then(|body| {
            decode::<R>(body)?
                .into_iter()
                .next()
                .ok_or_else(|| PoolError::Serialization("empty result".into()))
        });
        match &value {
            Ok(v) => {
                if let Some(cb) = self.callback.take() {
                    run_callback(|| cb(v));
                }
            }
            Err(e) => {
                if let Some(cb) = self.error_callback.take() {
                    run_callback(|| cb(e));
                }
            }
        }
        self.slot.complete(value);
        true
    }
}

/// `map_async`: many chunks, one list; ready only once every chunk is in, even after a
/// failure (the first failure to arrive is the one reported).
pub(crate) struct MapJob<R> {
    pub slot: Arc<Slot<Vec<R>>>,
    pub callback: Option<Callback<Vec<R>>>,
    pub error_callback: Option<ErrorCallback>,
    pub chunks: Vec<Option<Vec<R>>>,
    pub left: usize,
    pub error: Option<PoolError>,
}

impl<R: DeserializeOwned + Send> Job for MapJob<R> {
    fn set(&mut self, index: u32, outcome: Result<&[u8], PoolError>) -> bool {
        self.left = self.left.saturating_sub(1);
        match outcome.and_then(decode::<R>) {
            Ok(values) if self.error.is_none() => {
                if let Some(slot) = self.chunks.get_mut(index as usize) {
                    *slot = Some(values);
                }
            }
            Ok(_) => {}
            Err(e) => {
                if self.error.is_none() {
                    self.error = Some(e);
                    self.chunks.clear();
                }
            }
        }
        if self.left > 0 {
            return false;
        }
        let value = match self.error.take() {
            Some(e) => Err(e),
            None => Ok(std::mem::take(&mut self.chunks)
                .into_iter()
                .flatten()
                .flatten()
                .collect()),
        };
        match &value {
            Ok(v) => {
                if let Some(cb) = self.callback.take() {
                    run_callback(|| cb(v));
                }
            }
            Err(e) => {
                if let Some(cb) = self.error_callback.take() {
                    run_callback(|| cb(e));
                }
            }
        }
        self.slot.complete(value);
        true
    }
}

pub(crate) struct IterState<R> {
    /// Chunks that arrived out of order (ordered iteration only).
    unsorted: HashMap<u32, Result<Vec<R>, PoolError>>,
    /// Next chunk index to deliver (ordered iteration only).
    next_chunk: u32,
    /// Items ready to be yielded.
    items: VecDeque<Result<R, PoolError>>,
    /// Chunks not yet arrived.
    left: usize,
    /// An error ended a multi-item chunk: iteration stops after yielding it, as CPython's
    /// chunked imap (a generator) does.
    stopped: bool,
    /// Threads waiting for items: only then does a new chunk wake anyone.
    waiters: usize,
}

pub(crate) struct IterShared<R> {
    state: Mutex<IterState<R>>,
    changed: Condvar,
    ordered: bool,
    chunked: bool,
}

impl<R> IterShared<R> {
    pub(crate) fn new(chunks: usize, ordered: bool, chunked: bool) -> Arc<IterShared<R>> {
        Arc::new(IterShared {
            state: Mutex::new(IterState {
                unsorted: HashMap::new(),
                next_chunk: 0,
                items: VecDeque::new(),
                left: chunks,
                stopped: false,
                waiters: 0,
            }),
            changed: Condvar::new(),
            ordered,
            chunked,
        })
    }
}

impl<R> IterState<R> {
    fn push_chunk(&mut self, chunk: Result<Vec<R>, PoolError>, chunked: bool) {
        if self.stopped {
            return;
        }
        match chunk {
            Ok(values) => self.items.extend(values.into_iter().map(Ok)),
            Err(e) => {
                self.items.push_back(Err(e));
                if chunked {
                    self.stopped = true;
                }
            }
        }
    }
}

pub(crate) struct IterJob<R> {
    pub shared: Arc<IterShared<R>>,
}

impl<R: DeserializeOwned + Send> Job for IterJob<R> {
    fn set(&mut self, index: u32, outcome: Result<&[u8], PoolError>) -> bool {
        let chunk = outcome.and_then(decode::<R>);
        let shared = &self.shared;
        let mut st = lock(&shared.state);
        st.left = st.left.saturating_sub(1);
        if shared.ordered {
            st.unsorted.insert(index, chunk);
            loop {
                let next = st.next_chunk;
                let Some(c) = st.unsorted.remove(&next) else {
                    break;
                };
                st.next_chunk += 1;
                st.push_chunk(c, shared.chunked);
            }
        } else {
            st.push_chunk(chunk, shared.chunked);
        }
        let done = st.left == 0;
        let waiting = st.waiters > 0;
        drop(st);
        if waiting {
            shared.changed.notify_all();
        }
        done
    }
}

/// The iterator `imap` and `imap_unordered` return. Each item is the task's value or its
/// error; a failed item does not end iteration when chunks hold one item each.
pub struct IMapIter<R> {
    shared: Arc<IterShared<R>>,
}

impl<R> std::fmt::Debug for IMapIter<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IMapIter")
            .field("ordered", &self.shared.ordered)
            .finish()
    }
}

impl<R> IMapIter<R> {
    pub(crate) fn new(shared: Arc<IterShared<R>>) -> IMapIter<R> {
        IMapIter { shared }
    }

    /// The next item: `Ok(Some(value))`, `Ok(None)` at the end, `Err(Timeout)` if nothing
    /// arrived within `timeout`, or the item's own error. Python: `next(timeout)`.
    pub fn next_timeout(&mut self, timeout: Option<Duration>) -> Result<Option<R>, PoolError> {
        let deadline = deadline_after(timeout);
        let mut st = lock(&self.shared.state);
        st.waiters += 1;
        let (mut st, ok) = wait_until(&self.shared.changed, st, deadline, |st| {
            !st.items.is_empty() || st.left == 0 || st.stopped
        });
        st.waiters -= 1;
        match st.items.pop_front() {
            Some(item) => item.map(Some),
            None if ok => Ok(None),
            None => Err(PoolError::Timeout),
        }
    }
}

impl<R> Iterator for IMapIter<R> {
    type Item = Result<R, PoolError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_timeout(None).transpose()
    }
}
