//! The task function and callbacks as pool-ref sees them, and pool-ref's values and errors
//! as Python shows them. The task vocabulary itself (spec/README.md §4–5) is
//! poolspec-driver's [`run_task`] and [`run_callback`].
//!
//! Where the reference driver uses a lambda as a value pickle refuses (an `unserializable`
//! task's value, a submission's `unserializable_arg`), this driver uses [`Obj::Lambda`],
//! whose serialization fails with the message of the `AttributeError` pickle raises; and
//! [`exception`] shows the errors that come of it as CPython's.

use pool_ref::{PoolError, Registry, TaskError, TaskRef};
use poolspec_driver::{
    Callback, CallbackKind, Coord, Descriptor, Exception, TaskResult, py_repr_str, run_callback,
    run_task,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// `run_task(desc, *extra)`: the one task function, registered under this name.
pub const RUN_TASK: TaskRef<(Descriptor, Vec<Obj>), Obj> = TaskRef::new("poolspec.run_task");

/// A value a task takes or returns: JSON data, or a lambda, which cannot be serialized (pickle
/// refuses functions it cannot import by name). Only JSON data ever deserializes.
#[derive(Debug, Clone, PartialEq)]
pub enum Obj {
    Json(Value),
    Lambda(Lambda),
}

/// The lambdas of the reference driver, each named by where it is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lambda {
    /// `return lambda: None` in poolspec_tasks.run_task (an `unserializable` task).
    Returned,
    /// `args += (lambda: None,)` in cpython_driver's Driver.execute (`unserializable_arg`).
    Argument,
}

impl Lambda {
    const ALL: [Lambda; 2] = [Lambda::Returned, Lambda::Argument];

    fn qualname(self) -> &'static str {
        match self {
            Lambda::Returned => "run_task.<locals>.<lambda>",
            Lambda::Argument => "Driver.execute.<locals>.<lambda>",
        }
    }

    /// `str()` of the `AttributeError` pickling it raises (CPython 3.11); also the message of
    /// its serialization error.
    pub fn refusal(self) -> String {
        format!("Can't pickle local object '{}'", self.qualname())
    }

    /// Its `repr()`; the runner masks the address.
    pub fn repr(self) -> String {
        format!("<function {} at 0x7f0000000000>", self.qualname())
    }
}

impl Obj {
    /// As JSON; a lambda (never seen by a success callback) as its repr.
    pub fn to_json(&self) -> Value {
        match self {
            Obj::Json(v) => v.clone(),
            Obj::Lambda(l) => Value::String(l.repr()),
        }
    }
}

impl Serialize for Obj {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Obj::Json(v) => v.serialize(s),
            Obj::Lambda(l) => Err(serde::ser::Error::custom(l.refusal())),
        }
    }
}

impl<'de> Deserialize<'de> for Obj {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Obj, D::Error> {
        Value::deserialize(d).map(Obj::Json)
    }
}

/// The tasks workers can run: [`RUN_TASK`], the task vocabulary with pool-ref's values.
pub fn registry() -> Registry {
    Registry::new().register(
        RUN_TASK,
        |(desc, extra): (Descriptor, Vec<Obj>)| match run_task(
            &desc,
            extra.iter().map(Obj::to_json).collect(),
        ) {
            TaskResult::Returned(v) => Ok(Obj::Json(v)),
            TaskResult::Raised(e) => Err(TaskError::new(e.kind, e.message)),
            TaskResult::Unserializable => Ok(Obj::Lambda(Lambda::Returned)),
            TaskResult::Stopped => Ok(Obj::Json(Value::Null)),
        },
    )
}

/// The exception a pool error shows as in Python: a task's own exception, or the
/// `multiprocessing` exception the pool raises. `handle` names the result class for the
/// `successful()`-before-ready message (`ApplyResult` or `MapResult`).
pub fn exception(e: &PoolError, handle: Option<&str>) -> Exception {
    let (kind, message) = match e {
        PoolError::Task(t) if t.kind == "MaybeEncodingError" => {
            (t.kind.clone(), maybe_encoding_message(&t.message))
        }
        PoolError::Task(t) => (t.kind.clone(), t.message.clone()),
        // pickle's own exception, raised by the task handler: AttributeError for a lambda.
        PoolError::Serialization(m) if Lambda::ALL.iter().any(|l| *m == l.refusal()) => {
            ("AttributeError".into(), m.clone())
        }
        PoolError::NotRunning => ("ValueError".into(), "Pool not running".into()),
        PoolError::StillRunning => ("ValueError".into(), "Pool is still running".into()),
        // multiprocessing.TimeoutError() is raised without arguments.
        PoolError::Timeout => ("TimeoutError".into(), String::new()),
        // ValueError("{0!r} not ready".format(self)); the runner masks the address.
        PoolError::NotReady => (
            "ValueError".into(),
            format!(
                "<multiprocessing.pool.{} object at 0x7f0000000000> not ready",
                handle.unwrap_or("ApplyResult")
            ),
        ),
        // The pid varies from run to run; observations must not.
        PoolError::WorkerLost { status, .. } => (
            e.python_type().to_owned(),
            format!("a worker process died ({status}) while running this task"),
        ),
        other => (other.python_type().to_owned(), other.to_string()),
    };
    Exception::new(kind, message)
}

/// [`exception`] as a step that raised it reports it: with its neutral kind and, for a
/// task's own exception, whether the worker-side context came with it.
pub fn step_exception(e: &PoolError, handle: Option<&str>) -> Exception {
    let exception = exception(e, handle).with_neutral(neutral_kind(e));
    match e {
        PoolError::Task(t) if t.kind != "MaybeEncodingError" => {
            exception.with_traceback(t.worker.is_some())
        }
        _ => exception,
    }
}

/// The protocol's neutral kind of a pool error (PROTOCOL.md §4.3), known from its variant.
fn neutral_kind(e: &PoolError) -> &'static str {
    match e {
        PoolError::Task(t) if t.kind == "MaybeEncodingError" => "serialization",
        PoolError::Task(_) => "task",
        PoolError::Serialization(_) => "serialization",
        PoolError::NotRunning => "pool_not_running",
        PoolError::StillRunning => "pool_running",
        PoolError::Timeout => "timeout",
        PoolError::NotReady => "not_ready",
        PoolError::InvalidArgument(_) => "invalid_argument",
        _ => "other",
    }
}

/// CPython's message for a result holding an `unserializable` task's lambda, from pool-ref's:
/// the same `Error sending result: '<value>'. Reason: '<why>'`, with the lambda's repr for
/// pool-ref's `<unserializable>` and `repr()` of pickle's exception as the reason.
fn maybe_encoding_message(message: &str) -> String {
    let lambda = Lambda::Returned;
    let tail = format!("'. Reason: '{}'", lambda.refusal());
    match message.strip_suffix(&tail) {
        Some(head) => format!(
            "{}'. Reason: 'AttributeError({})'",
            head.replace("<unserializable>", &lambda.repr()),
            py_repr_str(&lambda.refusal())
        ),
        None => message.to_owned(),
    }
}

/// Raising, in Rust terms: pool-ref catches a panicking callback on its result-handler
/// thread and delivers the result anyway (CPython's result handler thread would die instead;
/// see pool-ref's docs).
fn raise(ran: Result<(), Exception>) {
    if let Err(e) = ran {
        std::panic::panic_any(e.to_string());
    }
}

/// The callback handed to pool-ref for a result of type `T`, shown as JSON by `show`.
pub fn callback<T: 'static>(
    coord: &Coord,
    step: Option<&str>,
    spec: &Callback,
    show: fn(&T) -> Value,
) -> Box<dyn FnOnce(&T) + Send> {
    let (coord, step, spec) = (coord.clone(), step.unwrap_or("").to_owned(), spec.clone());
    Box::new(move |v: &T| {
        let kind = CallbackKind::Callback;
        raise(run_callback(&coord, &step, kind, &spec, &show(v)));
    })
}

/// The error callback handed to pool-ref: its argument is the error as `{type, message}`.
pub fn error_callback(
    coord: &Coord,
    step: Option<&str>,
    spec: &Callback,
) -> Box<dyn FnOnce(&PoolError) + Send> {
    let (coord, step, spec) = (coord.clone(), step.unwrap_or("").to_owned(), spec.clone());
    Box::new(move |e: &PoolError| {
        let arg = serde_json::to_value(exception(e, None)).unwrap_or_default();
        raise(run_callback(
            &coord,
            &step,
            CallbackKind::ErrorCallback,
            &spec,
            &arg,
        ));
    })
}
