//! The task vocabulary (spec/README.md §4) and callbacks (§5), as pool-ref task functions.
//!
//! Mirrors fixtures/drivers/poolspec_tasks.py: one registered task, [`RUN_TASK`], takes the
//! task's descriptor (the program's task object plus `_coord: [socket path, token]`) and the
//! extra positional arguments; the initializer is the same function with no extra arguments.
//!
//! Where the reference driver uses a lambda as a value pickle refuses (an `unserializable`
//! task's value, a submission's `unserializable_arg`), this driver uses [`Obj::Lambda`],
//! whose serialization fails with the message of the `AttributeError` pickle raises; and
//! [`error_value`] shows the errors that come of it as CPython's.

use pool_ref::{PoolError, Registry, TaskError, TaskRef};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::coord::{Coord, report, stopped};
use crate::fields;

/// `run_task(desc, *extra)`.
pub const RUN_TASK: TaskRef<(Value, Vec<Obj>), Obj> = TaskRef::new("poolspec.run_task");

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

/// The exception types a case may ask for (model.rs: ERROR_TYPES).
const ERROR_TYPES: &[&str] = &[
    "ValueError",
    "RuntimeError",
    "KeyError",
    "TypeError",
    "ZeroDivisionError",
];

pub fn registry() -> Registry {
    Registry::new().register(RUN_TASK, |(desc, extra): (Value, Vec<Obj>)| {
        run_task(&desc, extra.iter().map(Obj::to_json).collect())
    })
}

/// Python's truthiness of a JSON value.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// `desc.get(key)`, with JSON null read as absent (Python's `desc.get(key) is not None`).
fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

/// Python's `repr()` of a str.
pub fn py_repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..=0xa0).contains(&(c as u32)) || c == '\u{ad}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// `{"type": ..., "message": str(exc)}` of the exception an ErrorSpec
/// (`{"type": ..., "message": ...}`) describes, as `make_exception` + `error_value` give it.
pub fn make_exception(spec: &Value) -> (String, String) {
    let kind = spec.get("type");
    match kind.and_then(Value::as_str) {
        Some(k) if ERROR_TYPES.contains(&k) => {
            let message = match spec.get("message") {
                None => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            // str(KeyError(m)) is repr(m); the other types give m itself.
            let message = if k == "KeyError" {
                py_repr_str(&message)
            } else {
                message
            };
            (k.to_owned(), message)
        }
        _ => {
            let shown = match kind {
                None | Some(Value::Null) => "None".to_owned(),
                Some(Value::String(s)) => py_repr_str(s),
                Some(other) => other.to_string(),
            };
            (
                "RuntimeError".to_owned(),
                format!("poolspec: unknown exception type {shown}"),
            )
        }
    }
}

/// The `{type, message}` a pool error shows as in Python: a task's own exception, or the
/// `multiprocessing` exception the pool raises. `handle` names the result class for the
/// `successful()`-before-ready message (`ApplyResult` or `MapResult`).
pub fn error_value(e: &PoolError, handle: Option<&str>) -> Value {
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
    error_json(kind, message)
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

pub fn error_json(kind: String, message: String) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), Value::String(kind));
    m.insert("message".into(), Value::String(message));
    Value::Object(m)
}

/// Runs one task (or the initializer) as its descriptor says: report `start`; report `wait`
/// for each gate (blocks until it opens); then end in exactly one way (`exit`, `raises`,
/// `unserializable`, `echo`, `returns`; the default returns null). When the coordinator
/// answers ok=false or cannot be reached, returns null at once, quietly.
pub fn run_task(desc: &Value, extra: Vec<Value>) -> Result<Obj, TaskError> {
    let Some(coord) = desc.get("_coord").and_then(Coord::from_json) else {
        return Err(TaskError::new("KeyError", "'_coord'"));
    };
    let task_id = desc.get("id").cloned().unwrap_or(Value::Null);
    if stopped(&report(
        &coord,
        fields! {"event" => "start", "task" => task_id.clone()},
    )) {
        return Ok(Obj::Json(Value::Null));
    }
    if let Some(Value::Array(gates)) = desc.get("wait") {
        for gate in gates {
            let ack = report(
                &coord,
                fields! {"event" => "wait", "who" => task_id.clone(), "gate" => gate.clone()},
            );
            if stopped(&ack) {
                return Ok(Obj::Json(Value::Null));
            }
        }
    }
    if let Some(exit) = field(desc, "exit") {
        let code = exit
            .as_i64()
            .or_else(|| exit.as_f64().map(|f| f as i64))
            .unwrap_or(1) as i32;
        report(
            &coord,
            fields! {"event" => "exit", "task" => task_id, "code" => code},
        );
        // os._exit(code): no result, no cleanup of the pool's worker loop.
        std::process::exit(code);
    }
    if let Some(spec) = field(desc, "raises") {
        let (kind, message) = make_exception(spec);
        let raised = error_json(kind.clone(), message.clone());
        report(
            &coord,
            fields! {"event" => "end", "task" => task_id, "outcome" => returned_or_raised("raised", raised)},
        );
        return Err(TaskError::new(kind, message));
    }
    if desc.get("unserializable").is_some_and(truthy) {
        report(
            &coord,
            fields! {"event" => "end", "task" => task_id, "outcome" => returned_or_raised("returned", Value::from("<unserializable>"))},
        );
        return Ok(Obj::Lambda(Lambda::Returned));
    }
    let value = if desc.get("echo").is_some_and(truthy) {
        Value::Array(extra)
    } else {
        desc.get("returns").cloned().unwrap_or(Value::Null)
    };
    report(
        &coord,
        fields! {"event" => "end", "task" => task_id, "outcome" => returned_or_raised("returned", value.clone())},
    );
    Ok(Obj::Json(value))
}

/// `{key: value}`: an outcome.
pub fn returned_or_raised(key: &str, value: Value) -> Value {
    let mut m = Map::new();
    m.insert(key.to_owned(), value);
    Value::Object(m)
}

/// The body of a callback of step `step_id` (`kind`: `callback` or `error_callback`) with its
/// argument already as JSON: report `callback`, wait on its gates (as `<step>.<kind>`), then
/// raise if asked (reporting `callback_done` with `raised` first) or report `callback_done`.
pub fn run_callback(coord: &Coord, step_id: &str, kind: &str, spec: &Value, arg: Value) {
    let who = format!("{step_id}.{kind}");
    let ack = report(
        coord,
        fields! {"event" => "callback", "step" => step_id, "kind" => kind, "arg" => arg},
    );
    if stopped(&ack) {
        return;
    }
    if let Some(Value::Array(gates)) = spec.get("wait") {
        for gate in gates {
            let ack = report(
                coord,
                fields! {"event" => "wait", "who" => who.as_str(), "gate" => gate.clone()},
            );
            if stopped(&ack) {
                return;
            }
        }
    }
    if let Some(raises) = field(spec, "raises") {
        let (k, message) = make_exception(raises);
        report(
            coord,
            fields! {
                "event" => "callback_done", "step" => step_id, "kind" => kind,
                "raised" => error_json(k.clone(), message.clone()),
            },
        );
        // Raising, in Rust terms. pool-ref catches a panicking callback on its
        // result-handler thread and delivers the result anyway (CPython's result handler
        // thread would die instead; see pool-ref's docs).
        std::panic::panic_any(format!("{k}: {message}"));
    }
    report(
        coord,
        fields! {"event" => "callback_done", "step" => step_id, "kind" => kind},
    );
}

/// The callback handed to pool-ref for a result of type `T`, shown as JSON by `show`.
pub fn make_callback<T: 'static>(
    coord: &Coord,
    step_id: &str,
    spec: &Value,
    show: fn(&T) -> Value,
) -> Box<dyn FnOnce(&T) + Send> {
    let (coord, step_id, spec) = (coord.clone(), step_id.to_owned(), spec.clone());
    Box::new(move |v: &T| run_callback(&coord, &step_id, "callback", &spec, show(v)))
}

/// The error callback handed to pool-ref: its argument is the error as `{type, message}`.
pub fn make_error_callback(
    coord: &Coord,
    step_id: &str,
    spec: &Value,
) -> Box<dyn FnOnce(&PoolError) + Send> {
    let (coord, step_id, spec) = (coord.clone(), step_id.to_owned(), spec.clone());
    Box::new(move |e: &PoolError| {
        run_callback(
            &coord,
            &step_id,
            "error_callback",
            &spec,
            error_value(e, None),
        )
    })
}
