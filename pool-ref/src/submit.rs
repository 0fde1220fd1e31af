//! Submitting a job: its chunks encoded into task frames (a chunk whose arguments do not
//! encode becomes a failure the feeder delivers, as CPython's task handler does), the job
//! registered, and the frames sent; a caller that waits for its own job at once may then
//! read the reports itself (leading, `handler.rs`).

use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::codec::encode_values;
use crate::error::PoolError;
use crate::handler::lead;
use crate::inner::{Inner, JobCell, State};
use crate::lock::lock;
use crate::memfile::memory_file;
use crate::queue::{Feed, Frames};
use crate::result::Job;
use crate::wire::{TaskHead, encode_task};

/// Who waits for a job's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waiter {
    /// Whoever, whenever (the `_async` calls, `imap`): the result handler reads for it.
    Anyone,
    /// The submitting thread, at once; and the job has no callbacks. It may read the reports
    /// itself ([`lead`]).
    Submitter,
}

/// Memory files one submission writes its large arguments into as it encodes them, at
/// most; the payloads of more large chunks wait in its buffer, and get their files as they
/// are sent.
const FILES_AT_ONCE: usize = 16;

/// Registers job `id` and sends its feeds. With [`Waiter::Submitter`], may read the
/// reports on this thread until the job completes (see `handler.rs`).
pub(crate) fn submit(
    inner: &Inner,
    id: u64,
    job: Box<dyn Job>,
    feeds: Vec<Feed>,
    waiter: Waiter,
) -> Result<(), PoolError> {
    let cell: JobCell = Arc::new(Mutex::new(Some(job)));
    let handler_idle = {
        // Under `state`, so that a `close` either refuses this job or counts it in the
        // work its `join` waits for.
        let state = lock(&inner.state);
        if *state != State::Running {
            return Err(PoolError::NotRunning);
        }
        let mut jobs = lock(&inner.jobs);
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
    if !inner.tasks.submit(feeds) {
        // Terminated meanwhile: the job will never complete.
        return Err(PoolError::NotRunning);
    }
    if handler_idle {
        if leadable {
            lead(inner, id, &cell, tasks == 1);
        } else {
            inner.wake_handler();
        }
    }
    Ok(())
}

/// The feeder's work for a job: one task frame per chunk, or, for a chunk whose
/// arguments cannot be encoded, its failure with [`PoolError::Serialization`]. As in
/// CPython, that failure is no error of the submitting call: the chunk's result fails
/// with it later, on a pool thread, and the other chunks run.
pub(crate) fn feeds<A: Serialize>(
    inner: &Inner,
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
                    let spare = || inner.tasks.files.spare();
                    (files <= FILES_AT_ONCE).then(|| memory_file(spare()).ok())?
                };
                encode_values(out, chunk, file).map_err(|e| PoolError::Serialization(e.to_string()))
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
