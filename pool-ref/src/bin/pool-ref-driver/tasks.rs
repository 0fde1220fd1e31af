//! The task function and callbacks as pool-ref sees them, and pool-ref's values and errors
//! as Python shows them. The task vocabulary itself (spec/README.md §4–5) is
//! poolspec-driver's [`run_task_with`] and [`run_callback`].
//!
//! Where the reference driver uses a lambda as a value pickle refuses (an `unserializable`
//! task's value, a submission's `unserializable_arg` or `unserializable_func`), this driver
//! uses [`Obj::Lambda`], whose serialization fails with the message of the `AttributeError`
//! pickle raises; an `unserializable_item` is [`Obj::Unpicklable`], which fails as
//! poolspec_tasks.py's `Unpicklable` does; and [`exception`] shows the errors that come of
//! them as CPython's.

use pool_ref::{PoolError, Registry, TaskError, TaskRef};
use poolspec_driver::{
    Callback, CallbackKind, Coord, Descriptor, Exception, TaskResult, bytes_summary, py_bytes_repr,
    py_repr_str, run_callback, run_task_with,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// The one registered task: a [`Call`], as CPython's worker calls `func(*args, **kwds)`.
pub const RUN_TASK: TaskRef<Call, Obj> = TaskRef::new("poolspec.run_task");

/// What a worker is asked to run: CPython's task tuple `(func, args, kwds)`, with the task
/// function as data (pickled by reference in Python: here named by [`Func`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Call {
    /// `func(desc, *args, **kwargs)`. `func` is serialized first, as pickle does with
    /// CPython's task tuple: a function that does not serialize fails the call before any
    /// argument is looked at.
    Task {
        func: Func,
        desc: Box<Descriptor>,
        args: Vec<Obj>,
        kwargs: Map<String, Value>,
    },
    /// The exception an input iterable raised, as CPython's task handler hands it to a
    /// worker: one more task at the next position, `_helper_reraises_exception`, which
    /// raises it there (`imap` and `imap_unordered` with `then_raise`).
    Reraise(Exception),
}

impl Call {
    /// `run_task(desc, *args, **kwargs)`.
    pub fn task(desc: Descriptor, args: Vec<Obj>, kwargs: Map<String, Value>) -> Call {
        Call::Task {
            func: Func::RunTask,
            desc: Box::new(desc),
            args,
            kwargs,
        }
    }
}

/// The function a [`Call`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// poolspec_tasks.run_task, the task vocabulary.
    RunTask,
    /// A function that cannot be sent to a worker (`unserializable_func`; Python: a lambda
    /// calling run_task). pool-ref's tasks are registered names, always sendable; a closure
    /// can only travel as a value, and this one fails to serialize where pickle fails on
    /// CPython's lambda.
    Closure,
}

impl Serialize for Func {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Func::RunTask => s.serialize_str("run_task"),
            Func::Closure => Err(serde::ser::Error::custom(Lambda::Function.refusal())),
        }
    }
}

impl<'de> Deserialize<'de> for Func {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Func, D::Error> {
        match String::deserialize(d)?.as_str() {
            "run_task" => Ok(Func::RunTask),
            other => Err(serde::de::Error::custom(format!(
                "unknown function {other}"
            ))),
        }
    }
}

/// A value a task takes or returns: JSON data; a byte string (`blob`, `blob_arg`); a lambda,
/// which cannot be serialized (pickle refuses functions it cannot import by name); or an
/// object whose serialization raises (`unserializable_item`). Only the first two ever
/// deserialize.
#[derive(Debug, Clone, PartialEq)]
pub enum Obj {
    Json(Value),
    Bytes(Vec<u8>),
    Lambda(Lambda),
    Unpicklable,
}

/// The lambdas of the reference driver, each named by where it is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lambda {
    /// `return lambda: None` in poolspec_tasks.run_task (an `unserializable` task).
    Returned,
    /// `args += (lambda: None,)` in poolspec_driver's Driver.execute (`unserializable_arg`).
    Argument,
    /// `run_task = lambda *a, **k: ...` in poolspec_driver's Driver.execute
    /// (`unserializable_func`): the same qualified name as [`Lambda::Argument`].
    Function,
}

/// `str()` of the `TypeError` pickling poolspec_tasks.Unpicklable raises (an
/// `unserializable_item`).
pub const UNPICKLABLE: &str = "cannot pickle 'poolspec_tasks.Unpicklable' object";

/// The kind of the [`TaskError`] a [`Call::Reraise`] fails with; its message is the
/// iterable's exception as JSON. (A task's own exception carries the worker-side context;
/// the iterable's is no task's, and [`step_exception`] says so.)
const ITERABLE_RAISED: &str = "poolspec.iterable_raised";

impl Lambda {
    const ALL: [Lambda; 3] = [Lambda::Returned, Lambda::Argument, Lambda::Function];

    fn qualname(self) -> &'static str {
        match self {
            Lambda::Returned => "run_task.<locals>.<lambda>",
            Lambda::Argument | Lambda::Function => "Driver.execute.<locals>.<lambda>",
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
    /// As the observation shows it: JSON as it is, a byte string as its
    /// [`bytes_summary`], anything else (never seen by a step or callback) as its repr.
    pub fn to_json(&self) -> Value {
        match self {
            Obj::Json(v) => v.clone(),
            Obj::Bytes(b) => bytes_summary(b),
            Obj::Lambda(l) => Value::String(l.repr()),
            Obj::Unpicklable => Value::String("<Unpicklable>".into()),
        }
    }
}

/// How a byte string crosses a human-readable wire (pool-ref's JSON):
/// `{"\u0000bytes": "<base64>"}`, a key no case value has (base64 keeps a 100 KiB value within
/// pool-ref's frame limit). A binary serde format gets the bytes as they are.
const BYTES_KEY: &str = "\u{0}bytes";

impl Serialize for Obj {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Obj::Json(v) => v.serialize(s),
            Obj::Bytes(b) if s.is_human_readable() => {
                use serde::ser::SerializeMap;
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry(BYTES_KEY, &crate::base64::encode(b))?;
                m.end()
            }
            Obj::Bytes(b) => s.serialize_bytes(b),
            Obj::Lambda(l) => Err(serde::ser::Error::custom(l.refusal())),
            Obj::Unpicklable => Err(serde::ser::Error::custom(UNPICKLABLE)),
        }
    }
}

/// A byte string of a binary serde format, and nothing else.
struct RawBytes(Vec<u8>);

impl<'de> Deserialize<'de> for RawBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawBytes, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RawBytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<RawBytes, E> {
                Ok(RawBytes(b.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, b: Vec<u8>) -> Result<RawBytes, E> {
                Ok(RawBytes(b))
            }
        }
        d.deserialize_bytes(V)
    }
}

impl<'de> Deserialize<'de> for Obj {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Obj, D::Error> {
        if !d.is_human_readable() {
            #[derive(Deserialize)]
            #[serde(untagged)]
            enum Binary {
                Bytes(RawBytes),
                Json(Value),
            }
            return Binary::deserialize(d).map(|b| match b {
                Binary::Bytes(RawBytes(b)) => Obj::Bytes(b),
                Binary::Json(v) => Obj::Json(v),
            });
        }
        let v = Value::deserialize(d)?;
        if let Value::Object(m) = &v
            && m.len() == 1
            && let Some(Value::String(text)) = m.get(BYTES_KEY)
        {
            return crate::base64::decode(text)
                .map(Obj::Bytes)
                .ok_or_else(|| serde::de::Error::custom("malformed byte string"));
        }
        Ok(Obj::Json(v))
    }
}

/// The tasks workers can run: [`RUN_TASK`], the task vocabulary with pool-ref's values.
pub fn registry() -> Registry {
    Registry::new().register(RUN_TASK, |call: Call| match call {
        Call::Task {
            desc, args, kwargs, ..
        } => {
            // A byte string reaches run_task as its summary, taken here from the bytes this
            // worker received.
            let args = args.iter().map(Obj::to_json).collect();
            match run_task_with(&desc, args, kwargs) {
                TaskResult::Returned(v) => Ok(Obj::Json(v)),
                TaskResult::Bytes(b) => Ok(Obj::Bytes(b)),
                TaskResult::Raised(e) => Err(TaskError::new(e.kind, e.message)),
                TaskResult::Unserializable => Ok(Obj::Lambda(Lambda::Returned)),
                TaskResult::Stopped => Ok(Obj::Json(Value::Null)),
            }
        }
        Call::Reraise(e) => Err(TaskError::new(
            ITERABLE_RAISED,
            serde_json::to_string(&e).unwrap_or_default(),
        )),
    })
}

/// The exception an input iterable raised, from the error of its [`Call::Reraise`].
fn iterable_raised(t: &TaskError) -> Option<Exception> {
    if t.kind != ITERABLE_RAISED {
        return None;
    }
    serde_json::from_str(&t.message).ok()
}

/// The exception a pool error shows as in Python: a task's own exception, or the
/// `multiprocessing` exception the pool raises. `handle` names the result class for the
/// `successful()`-before-ready message (`ApplyResult` or `MapResult`).
pub fn exception(e: &PoolError, handle: Option<&str>) -> Exception {
    if let PoolError::Task(t) = e
        && let Some(raised) = iterable_raised(t)
    {
        return Exception::new(raised.kind, raised.message);
    }
    let (kind, message) = match e {
        PoolError::Task(t) if t.kind == "MaybeEncodingError" => {
            (t.kind.clone(), maybe_encoding_message(&t.message))
        }
        PoolError::Task(t) => (t.kind.clone(), t.message.clone()),
        // pickle's own exception, raised by the task handler: AttributeError for a lambda.
        PoolError::Serialization(m) if Lambda::ALL.iter().any(|l| *m == l.refusal()) => {
            ("AttributeError".into(), m.clone())
        }
        // poolspec_tasks.Unpicklable.__reduce__ raises TypeError.
        PoolError::Serialization(m) if m == UNPICKLABLE => ("TypeError".into(), m.clone()),
        // Pool(...) refusing its arguments, and chunksize 0: ValueError(message).
        PoolError::InvalidArgument(m) => ("ValueError".into(), m.clone()),
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
        // The iterable's exception, reraised in a worker: no task's own.
        PoolError::Task(t) if t.kind == ITERABLE_RAISED => exception.with_traceback(false),
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
/// pool-ref's `<unserializable>`, Python's `b'...'` for the byte strings (which pool-ref shows
/// as the JSON they cross its wire as), and `repr()` of pickle's exception as the reason.
fn maybe_encoding_message(message: &str) -> String {
    let lambda = Lambda::Returned;
    let tail = format!("'. Reason: '{}'", lambda.refusal());
    match message.strip_suffix(&tail) {
        Some(head) => format!(
            "{}'. Reason: 'AttributeError({})'",
            bytes_as_python(&head.replace("<unserializable>", &lambda.repr())),
            py_repr_str(&lambda.refusal())
        ),
        None => message.to_owned(),
    }
}

/// `text` with every `{'\x00bytes': '<base64>'}` (pool-ref's repr of an [`Obj::Bytes`])
/// replaced by Python's repr of the bytes.
fn bytes_as_python(text: &str) -> String {
    let open = format!("{{{}: '", py_repr_str(BYTES_KEY));
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(&open) {
        let body = &rest[at + open.len()..];
        // Base64 has no quote: the first one closes the string.
        let decoded = body.split_once("'}").and_then(|(b64, after)| {
            crate::base64::decode(b64).map(|bytes| (py_bytes_repr(&bytes), after))
        });
        out.push_str(&rest[..at]);
        match decoded {
            Some((shown, after)) => {
                out.push_str(&shown);
                rest = after;
            }
            None => {
                out.push_str(&open);
                rest = body;
            }
        }
    }
    out.push_str(rest);
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use poolspec_driver::{Coord, Task};
    use serde_json::json;

    fn desc() -> Descriptor {
        let coord = Coord {
            path: "/s".into(),
            token: "T".into(),
        };
        Descriptor::new(&Task::default(), &coord)
    }

    #[test]
    fn byte_strings_cross_the_json_wire() {
        let bytes: Vec<u8> = (0..=255).chain(0..7).collect();
        let call = Call::task(
            desc(),
            vec![Obj::Bytes(bytes.clone()), Obj::Json(json!(1))],
            Map::new(),
        );
        let text = serde_json::to_string(&call).unwrap();
        let back: Call = serde_json::from_str(&text).unwrap();
        assert_eq!(back, call);
        // An object that merely looks similar stays JSON.
        let lookalike = json!({"\u{0}bytes": 3});
        let v: Obj = serde_json::from_value(lookalike.clone()).unwrap();
        assert_eq!(v, Obj::Json(lookalike));
        assert_eq!(Obj::Bytes(bytes.clone()).to_json(), bytes_summary(&bytes));
    }

    #[test]
    fn what_does_not_serialize_fails_as_pickle_does() {
        let fails = |call: &Call| serde_json::to_string(call).unwrap_err().to_string();
        let mut call = Call::task(desc(), vec![Obj::Lambda(Lambda::Argument)], Map::new());
        assert_eq!(fails(&call), Lambda::Argument.refusal());
        // The function is pickled before the arguments.
        if let Call::Task { func, args, .. } = &mut call {
            *func = Func::Closure;
            args.push(Obj::Unpicklable);
        }
        assert_eq!(fails(&call), Lambda::Function.refusal());
        let item = Call::task(desc(), vec![Obj::Unpicklable], Map::new());
        assert_eq!(fails(&item), UNPICKLABLE);
        let e = exception(&PoolError::Serialization(UNPICKLABLE.into()), None);
        assert_eq!(e, Exception::new("TypeError", UNPICKLABLE));
    }

    #[test]
    fn byte_strings_in_encoding_errors_are_shown_as_python_does() {
        // What pool-ref's worker writes for a chunk [lambda, b'\x00a\'', b''].
        let json_repr = |b: &[u8]| {
            let v = serde_json::to_value(Obj::Bytes(b.to_vec())).unwrap();
            poolspec_driver::py_value_repr(&v)
        };
        let pool_ref = format!(
            "Error sending result: '[<unserializable>, {}, {}]'. Reason: '{}'",
            json_repr(b"\x00a'"),
            json_repr(b""),
            Lambda::Returned.refusal()
        );
        let t = TaskError::new("MaybeEncodingError", pool_ref);
        assert_eq!(
            exception(&PoolError::Task(t), None).message,
            "Error sending result: '[<function run_task.<locals>.<lambda> at 0x7f0000000000>, \
             b\"\\x00a'\", b'']'. Reason: 'AttributeError(\"Can't pickle local object \
             'run_task.<locals>.<lambda>'\")'"
        );
        assert_eq!(
            bytes_as_python("{'\\x00bytes': '*'}"),
            "{'\\x00bytes': '*'}"
        );
    }

    #[test]
    fn the_iterables_exception_is_no_tasks_own() {
        let raised = Exception::new("KeyError", "'k'");
        let t =
            TaskError::new(ITERABLE_RAISED, serde_json::to_string(&raised).unwrap()).raised_in(7);
        let e = step_exception(&PoolError::Task(t), None);
        assert_eq!(e, raised.clone().with_neutral("task").with_traceback(false));
        let own = TaskError::new("KeyError", "'k'").raised_in(7);
        let e = step_exception(&PoolError::Task(own), None);
        assert_eq!(e, raised.with_neutral("task").with_traceback(true));
        let refused = PoolError::InvalidArgument("Number of processes must be at least 1".into());
        assert_eq!(
            step_exception(&refused, None),
            Exception::new("ValueError", "Number of processes must be at least 1")
                .with_neutral("invalid_argument")
        );
    }
}
