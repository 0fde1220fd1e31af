//! Tasks by name: what a worker process can run.
//!
//! Workers are fresh executions of the current binary, so closures cannot cross to them;
//! instead every program registers its task functions under names, and the pool sends the
//! name with the arguments. [`TaskRef`] gives the name a type, so `pool.apply(DOUBLE, 21)`
//! is checked at compile time.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{Decoder, Encode, EncodeError, decode_next};
use crate::error::TaskError;

/// A typed name of a registered task taking `A` and returning `R`.
#[derive(Debug)]
pub struct TaskRef<A, R> {
    name: &'static str,
    _types: PhantomData<fn(A) -> R>,
}

impl<A, R> TaskRef<A, R> {
    pub const fn new(name: &'static str) -> TaskRef<A, R> {
        TaskRef {
            name,
            _types: PhantomData,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl<A, R> Clone for TaskRef<A, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A, R> Copy for TaskRef<A, R> {}

/// What a task's value is handed to, to be encoded (as the worker sees fit); the error is
/// why it does not serialize.
pub(crate) type Emit<'a> = dyn FnMut(&dyn Encode) -> Result<(), EncodeError> + 'a;

/// A task on encoded values: its argument decoded from the decoder (which is left after
/// it), its value handed to `emit` (nothing handed when it fails).
pub(crate) type Erased =
    dyn Fn(&mut Decoder<'_>, &mut Emit<'_>) -> Result<(), CallError> + Send + Sync;

/// Why a registered task produced no encoded result.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The task raised (or panicked), or its arguments did not decode.
    Raised(TaskError),
    /// The task returned, but its value failed to serialize: why.
    Unencodable(EncodeError),
}

/// The tasks a program's workers can run.
#[derive(Default)]
pub struct Registry {
    tasks: HashMap<&'static str, Box<Erased>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.tasks.keys().collect();
        names.sort();
        f.debug_struct("Registry").field("tasks", &names).finish()
    }
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers `f` under `task`'s name. A panic in `f` becomes a [`TaskError`] of kind
    /// `Panic`; the worker survives it. So does a value of `f` that fails to serialize: the
    /// task fails with a [`TaskError`] of kind `MaybeEncodingError`, as in CPython.
    pub fn register<A, R, F>(mut self, task: TaskRef<A, R>, f: F) -> Registry
    where
        A: DeserializeOwned + 'static,
        R: Serialize + 'static,
        F: Fn(A) -> Result<R, TaskError> + Send + Sync + 'static,
    {
        let erased = move |args: &mut Decoder<'_>, emit: &mut Emit<'_>| {
            let args: A = decode_next(args).map_err(|e| {
                CallError::Raised(TaskError::new("TypeError", format!("bad arguments: {e}")))
            })?;
            let value = catch_unwind(AssertUnwindSafe(|| f(args)))
                .map_err(|p| {
                    let msg = p
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "task panicked".to_owned());
                    TaskError::new("Panic", msg)
                })
                .and_then(|r| r)
                .map_err(CallError::Raised)?;
            emit(&value).map_err(CallError::Unencodable)
        };
        self.tasks.insert(task.name(), Box::new(erased));
        self
    }

    /// The task `name`: call it with a decoder at its argument and what its value is
    /// handed to.
    pub(crate) fn task(&self, name: &str) -> Result<&Erased, TaskError> {
        self.tasks.get(name).map(Box::as_ref).ok_or_else(|| {
            TaskError::new(
                "AttributeError",
                format!("no task named `{name}` is registered in the worker"),
            )
        })
    }
}
