//! The one public error type, and the error a task raises.

use serde::{Deserialize, Serialize};

/// An error raised by a task: an exception kind (a type name such as `ValueError`, or `Panic`
/// for a task that panicked) and its message.
///
/// A task whose value fails to serialize fails with kind `MaybeEncodingError` and CPython's
/// message for it, `Error sending result: '<value>'. Reason: '<why>'`: the value in Python
/// notation (a list for a chunk of the map family, or of `imap` with chunksize > 1; maps as
/// dicts, sequences as lists, byte strings as `b'...'`; an item whose encoding exceeds 1 MiB
/// as `<a value of N bytes>`), with `<unserializable>` standing for each item that did not
/// serialize, and the serializer's message as the reason. Values have no size limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct TaskError {
    pub kind: String,
    pub message: String,
    /// The worker process it was raised in: the worker-side context that travels with a
    /// task's exception (CPython's `RemoteTraceback` plays this part). `None` for an error
    /// the parent made up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<u32>,
}

impl TaskError {
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> TaskError {
        TaskError {
            kind: kind.into(),
            message: message.into(),
            worker: None,
        }
    }

    /// This error, as raised in worker process `pid`.
    pub fn raised_in(mut self, pid: u32) -> TaskError {
        self.worker = Some(pid);
        self
    }
}

/// Everything that can go wrong with a pool. Each variant names its `multiprocessing`
/// counterpart, so a program ported from Python knows what to expect.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PoolError {
    /// Work was submitted to a pool that is closed or terminated.
    /// Python: `ValueError("Pool not running")`.
    #[error("Pool not running")]
    NotRunning,
    /// `join` was called on a pool that is still running (call `close` or `terminate` first).
    /// Python: `ValueError("Pool is still running")`.
    #[error("Pool is still running")]
    StillRunning,
    /// A timed wait (`get`, `next_timeout`) expired. Python: `multiprocessing.TimeoutError`.
    #[error("timed out")]
    Timeout,
    /// `successful` was asked before the result was ready. Python: `ValueError(... not ready)`.
    #[error("result is not ready")]
    NotReady,
    /// The task raised (or panicked). Python: the task's own exception, re-raised.
    #[error("task failed: {0}")]
    Task(TaskError),
    /// The worker process running the task died before returning a result. Python hangs
    /// forever in this situation; this pool fails the affected result instead and replaces
    /// the worker.
    #[error("worker process {pid} died ({status}) while running this task")]
    WorkerLost { pid: u32, status: String },
    /// A value could not be encoded or decoded: the serializer's message. Arguments that do
    /// not serialize fail the submitted result (asynchronously) with this, as in CPython.
    /// Python: `PicklingError` and friends. (A task's value that does not serialize is a
    /// [`TaskError`] of kind `MaybeEncodingError` instead.)
    #[error("cannot encode or decode a value: {0}")]
    Serialization(String),
    /// A worker process could not be started.
    #[error("cannot start a worker process: {0}")]
    Spawn(String),
    /// A parameter is out of range (`processes` = 0, `maxtasksperchild` = 0, `chunksize` = 0).
    /// Python: `ValueError`.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl PoolError {
    /// The name of the Python exception this error corresponds to.
    pub fn python_type(&self) -> &str {
        match self {
            PoolError::NotRunning
            | PoolError::StillRunning
            | PoolError::NotReady
            | PoolError::InvalidArgument(_) => "ValueError",
            PoolError::Timeout => "TimeoutError",
            PoolError::Task(e) => &e.kind,
            PoolError::WorkerLost { .. } => "WorkerLostError",
            PoolError::Serialization(_) => "PicklingError",
            PoolError::Spawn(_) => "OSError",
        }
    }
}
