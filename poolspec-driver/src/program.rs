//! Programs as typed values: what a `run` asks a driver to do (spec/README.md §2.4, §4–6).
//!
//! The runner sends compiled programs: every id and default filled in, one canonical JSON
//! shape. [`Program::from_json`] reads one leniently (unknown fields are ignored, so a newer
//! runner's additions do not break a driver) and checks what a driver cannot do without,
//! with the same messages as poolspec_driver.py.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::repr::{py_repr, py_repr_str};
use crate::tasks::truthy;

/// Every op of spec/README.md §6, in its order: the capabilities of a driver that implements
/// them all (add `initializer`, `processes`, `maxtasksperchild`, `task_exit`,
/// `start_method.<m>` as they apply, see spec/README.md §2.3).
pub const OPS: &[&str] = &[
    "apply",
    "apply_async",
    "map",
    "map_async",
    "imap",
    "imap_unordered",
    "starmap",
    "starmap_async",
    "get",
    "wait",
    "ready",
    "successful",
    "next",
    "collect",
    "close",
    "join",
    "terminate",
    "exit_with",
    "open",
    "await",
];

/// A program: a fresh pool and the steps to run on it, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    /// The case id (`BLK-001`), for messages.
    pub id: Option<String>,
    /// How to make the pool.
    pub pool: PoolParams,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// The pool a program runs on (spec/README.md §2.4).
#[derive(Debug, Clone, PartialEq)]
pub struct PoolParams {
    /// `processes` (2 when absent; never the CPU count).
    pub processes: usize,
    /// `maxtasksperchild`; `None` is unlimited.
    pub maxtasksperchild: Option<u32>,
    /// A task every worker runs once before its first task (its return value is ignored).
    pub initializer: Option<Task>,
    /// The program uses the pool as a context manager and leaves it with `exit_with`.
    pub with_block: bool,
}

/// A task (spec/README.md §4). A scalar `v` in a program reads as `{returns: v}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value")]
pub struct Task {
    /// The id its events are reported under (`start`, `wait`, `end`, `exit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Gates to wait on, in order, after `start`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wait: Vec<String>,
    /// Return this value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub returns: Option<Value>,
    /// Return the extra positional arguments, as a list.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub echo: bool,
    /// Raise this exception.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raises: Option<ErrorSpec>,
    /// End the whole process with this code, like `os._exit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<i32>,
    /// Return a value the pool cannot serialize back to the parent.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unserializable: bool,
}

/// How a task ends: the first of `exit`, `raises`, `unserializable`, `echo`, `returns` it
/// gives (a compiled program gives at most one).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ending<'a> {
    Exit(i32),
    Raises(&'a ErrorSpec),
    Unserializable,
    Echo,
    /// `returns`, or `null` when the task gives no ending.
    Returns(&'a Value),
}

static NULL: Value = Value::Null;

impl Task {
    /// How this task ends.
    pub fn ending(&self) -> Ending<'_> {
        if let Some(code) = self.exit {
            Ending::Exit(code)
        } else if let Some(spec) = &self.raises {
            Ending::Raises(spec)
        } else if self.unserializable {
            Ending::Unserializable
        } else if self.echo {
            Ending::Echo
        } else {
            Ending::Returns(self.returns.as_ref().unwrap_or(&NULL))
        }
    }
}

/// The fields of a [`Task`] object (a separate type so that `Task` can also read the scalar
/// shorthand).
#[derive(Deserialize)]
struct TaskFields {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    wait: Vec<String>,
    #[serde(default)]
    returns: Option<Value>,
    #[serde(default)]
    echo: bool,
    #[serde(default)]
    raises: Option<ErrorSpec>,
    #[serde(default)]
    exit: Option<i32>,
    #[serde(default)]
    unserializable: bool,
}

impl TryFrom<Value> for Task {
    type Error = serde_json::Error;

    fn try_from(v: Value) -> Result<Task, serde_json::Error> {
        if !v.is_object() {
            return Ok(Task {
                returns: Some(v),
                ..Task::default()
            });
        }
        let f: TaskFields = serde_json::from_value(v)?;
        Ok(Task {
            id: f.id,
            wait: f.wait,
            returns: f.returns,
            echo: f.echo,
            raises: f.raises,
            exit: f.exit,
            unserializable: f.unserializable,
        })
    }
}

/// An exception to raise: a registered type name and the single argument it is constructed
/// with (see [`Exception::from_spec`](crate::Exception::from_spec)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorSpec {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub message: String,
}

/// A callback or error callback (spec/README.md §5).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Callback {
    /// Gates to wait on, in order, after reporting its entry.
    #[serde(default)]
    pub wait: Vec<String>,
    /// Raise this at the end.
    #[serde(default)]
    pub raises: Option<ErrorSpec>,
}

/// One step (spec/README.md §6).
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Apply(Submit),
    ApplyAsync(Submit),
    Map(MapCall),
    MapAsync(MapCall),
    Imap(MapCall),
    ImapUnordered(MapCall),
    Starmap(MapCall),
    StarmapAsync(MapCall),
    Get(OnHandle),
    Wait(OnHandle),
    Ready(OnHandle),
    Successful(OnHandle),
    Next(OnHandle),
    Collect(OnHandle),
    Close(Plain),
    Join(Plain),
    Terminate(Plain),
    ExitWith(Plain),
    /// Handled by [`run_steps`](crate::run_steps) itself.
    Open(OpenGate),
    /// Handled by [`run_steps`](crate::run_steps) itself.
    Await(AwaitCond),
}

/// `apply` and `apply_async`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Submit {
    #[serde(default)]
    pub id: Option<String>,
    pub task: Task,
    /// Extra positional arguments after the descriptor.
    #[serde(default)]
    pub args: Vec<Value>,
    /// Pass one more argument, after `args`, that the pool cannot serialize.
    #[serde(default)]
    pub unserializable_arg: bool,
    #[serde(default)]
    pub callback: Option<Callback>,
    #[serde(default)]
    pub error_callback: Option<Callback>,
}

/// The map family: `map`, `map_async`, `imap`, `imap_unordered`, `starmap`, `starmap_async`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MapCall {
    #[serde(default)]
    pub id: Option<String>,
    /// One task per item.
    #[serde(default)]
    pub tasks: Vec<Task>,
    /// For `starmap`/`starmap_async`: each item's extra arguments, parallel to `tasks`
    /// (see [`MapCall::items`]). Always empty for the other ops.
    #[serde(default)]
    pub args: Vec<Value>,
    /// `None`: the implementation's default.
    #[serde(default)]
    pub chunksize: Option<u64>,
    #[serde(default)]
    pub callback: Option<Callback>,
    #[serde(default)]
    pub error_callback: Option<Callback>,
}

impl MapCall {
    /// Each item as (task, extra arguments): for `starmap` the item's entry of `args` (a list;
    /// a missing or null entry is no arguments, any other value one argument), else none.
    pub fn items(&self) -> Vec<(&Task, Vec<Value>)> {
        self.tasks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let extra = match self.args.get(i) {
                    Some(Value::Array(a)) => a.clone(),
                    Some(Value::Null) | None => Vec::new(),
                    Some(other) => vec![other.clone()],
                };
                (t, extra)
            })
            .collect()
    }
}

/// An operation on the handle an earlier step returned.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OnHandle {
    #[serde(default)]
    pub id: Option<String>,
    /// The id of the step that returned the handle.
    #[serde(default)]
    pub of: Option<String>,
    /// Seconds; `None` waits without limit (only `get`, `wait`, `next`).
    #[serde(default)]
    pub timeout: Option<f64>,
}

impl OnHandle {
    /// The timeout as a duration; a negative one waits not at all, as
    /// `threading.Event.wait` does.
    pub fn timeout(&self) -> Option<std::time::Duration> {
        std::time::Duration::try_from_secs_f64(self.timeout?.max(0.0)).ok()
    }
}

/// A step without arguments.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Plain {
    #[serde(default)]
    pub id: Option<String>,
}

/// `open`: open a gate now.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OpenGate {
    #[serde(default)]
    pub id: Option<String>,
    pub gate: String,
}

/// `await`: wait until an event was recorded, or until a gate has `waiting` waiters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AwaitCond {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub gate: Option<String>,
    #[serde(default)]
    pub waiting: Option<u64>,
}

impl Step {
    /// The op's name, as in the program and the `call` report.
    pub fn op(&self) -> &'static str {
        match self {
            Step::Apply(_) => "apply",
            Step::ApplyAsync(_) => "apply_async",
            Step::Map(_) => "map",
            Step::MapAsync(_) => "map_async",
            Step::Imap(_) => "imap",
            Step::ImapUnordered(_) => "imap_unordered",
            Step::Starmap(_) => "starmap",
            Step::StarmapAsync(_) => "starmap_async",
            Step::Get(_) => "get",
            Step::Wait(_) => "wait",
            Step::Ready(_) => "ready",
            Step::Successful(_) => "successful",
            Step::Next(_) => "next",
            Step::Collect(_) => "collect",
            Step::Close(_) => "close",
            Step::Join(_) => "join",
            Step::Terminate(_) => "terminate",
            Step::ExitWith(_) => "exit_with",
            Step::Open(_) => "open",
            Step::Await(_) => "await",
        }
    }

    /// The step's id.
    pub fn id(&self) -> Option<&str> {
        match self {
            Step::Apply(s) | Step::ApplyAsync(s) => s.id.as_deref(),
            Step::Map(m)
            | Step::MapAsync(m)
            | Step::Imap(m)
            | Step::ImapUnordered(m)
            | Step::Starmap(m)
            | Step::StarmapAsync(m) => m.id.as_deref(),
            Step::Get(h)
            | Step::Wait(h)
            | Step::Ready(h)
            | Step::Successful(h)
            | Step::Next(h)
            | Step::Collect(h) => h.id.as_deref(),
            Step::Close(p) | Step::Join(p) | Step::Terminate(p) | Step::ExitWith(p) => {
                p.id.as_deref()
            }
            Step::Open(o) => o.id.as_deref(),
            Step::Await(a) => a.id.as_deref(),
        }
    }

    /// Reads one step from its op and body (`null` is an empty body). `n` is its position
    /// (from 1), for messages.
    fn parse(n: usize, op: &str, body: &Value) -> Result<Step, String> {
        let mut body = match body {
            Value::Null => Map::new(),
            Value::Object(m) => m.clone(),
            _ => return Err(format!("body of step {n} ({op}) is not an object")),
        };
        let id = py_repr(body.get("id"));
        // What the Python driver only finds out when the step runs; the messages are its.
        let need = |key: &str, message: String| match body.get(key) {
            Some(_) => Ok(()),
            None => Err(message),
        };
        match op {
            "apply" | "apply_async" => need("task", format!("step {id} has no task"))?,
            "open" => need("gate", format!("open step {id} names no gate"))?,
            "await"
                if ["event", "gate", "waiting"]
                    .iter()
                    .all(|k| body.get(*k).is_none_or(Value::is_null)) =>
            {
                return Err(format!("await step {id} has neither event nor gate"));
            }
            "map" | "map_async" | "imap" | "imap_unordered" => {
                if let Some(Value::Array(args)) = body.get("args")
                    && args.iter().any(truthy)
                {
                    return Err(format!("step {id}: {op} takes no args"));
                }
                // Only starmap passes arguments; `items` must find none here.
                body.remove("args");
            }
            _ => {}
        }
        let v = Value::Object(body);
        let typed = |e: serde_json::Error| format!("step {n} ({op}): {e}");
        let submit = |v| serde_json::from_value::<Submit>(v).map_err(typed);
        let map = |v| serde_json::from_value::<MapCall>(v).map_err(typed);
        let handle = |v| serde_json::from_value::<OnHandle>(v).map_err(typed);
        let plain = |v| serde_json::from_value::<Plain>(v).map_err(typed);
        Ok(match op {
            "apply" => Step::Apply(submit(v)?),
            "apply_async" => Step::ApplyAsync(submit(v)?),
            "map" => Step::Map(map(v)?),
            "map_async" => Step::MapAsync(map(v)?),
            "imap" => Step::Imap(map(v)?),
            "imap_unordered" => Step::ImapUnordered(map(v)?),
            "starmap" => Step::Starmap(map(v)?),
            "starmap_async" => Step::StarmapAsync(map(v)?),
            "get" => Step::Get(handle(v)?),
            "wait" => Step::Wait(handle(v)?),
            "ready" => Step::Ready(handle(v)?),
            "successful" => Step::Successful(handle(v)?),
            "next" => Step::Next(handle(v)?),
            "collect" => Step::Collect(handle(v)?),
            "close" => Step::Close(plain(v)?),
            "join" => Step::Join(plain(v)?),
            "terminate" => Step::Terminate(plain(v)?),
            "exit_with" => Step::ExitWith(plain(v)?),
            "open" => Step::Open(serde_json::from_value(v).map_err(typed)?),
            "await" => Step::Await(serde_json::from_value(v).map_err(typed)?),
            other => return Err(format!("unknown op {} (step {n})", py_repr_str(other))),
        })
    }
}

impl Program {
    /// Reads the `program` of a `run` message. The error is the message to answer `error`
    /// with.
    pub fn from_json(program: &Value) -> Result<Program, String> {
        let Some(program) = program.as_object() else {
            return Err("program is not a JSON object".into());
        };
        let mut steps = Vec::new();
        if let Some(Value::Array(list)) = program.get("steps") {
            for (index, step) in list.iter().enumerate() {
                let n = index + 1;
                let one = step.as_object().filter(|m| m.len() == 1);
                let Some((op, body)) = one.and_then(|m| m.iter().next()) else {
                    return Err(format!("step {n} is not a one-key object: {step}"));
                };
                if !OPS.contains(&op.as_str()) {
                    return Err(format!("unknown op {} (step {n})", py_repr_str(op)));
                }
                steps.push(Step::parse(n, op, body)?);
            }
        }
        let params = program.get("pool").cloned().unwrap_or(Value::Null);
        let processes = params
            .get("processes")
            .map_or(Some(2), Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or("pool.processes is not a non-negative integer")?;
        let maxtasksperchild = match params.get("maxtasksperchild") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| format!("pool.maxtasksperchild is not valid: {v}"))?,
            ),
        };
        let initializer = match params.get("initializer") {
            None | Some(Value::Null) => None,
            Some(v) => {
                Some(Task::try_from(v.clone()).map_err(|e| format!("pool.initializer: {e}"))?)
            }
        };
        let with_block = params.get("with_block").is_some_and(truthy);
        Ok(Program {
            id: program.get("id").and_then(Value::as_str).map(str::to_owned),
            pool: PoolParams {
                processes,
                maxtasksperchild,
                initializer,
                with_block,
            },
            steps,
        })
    }

    /// Whether some task of the program (or its initializer) ends its process: a driver whose
    /// tasks run in its own process (a thread pool) must refuse such a program.
    pub fn has_exiting_task(&self) -> bool {
        let exits = |t: &Task| t.exit.is_some();
        self.pool.initializer.as_ref().is_some_and(exits)
            || self.steps.iter().any(|s| match s {
                Step::Apply(a) | Step::ApplyAsync(a) => exits(&a.task),
                Step::Map(m)
                | Step::MapAsync(m)
                | Step::Imap(m)
                | Step::ImapUnordered(m)
                | Step::Starmap(m)
                | Step::StarmapAsync(m) => m.tasks.iter().any(exits),
                _ => false,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Program, String> {
        Program::from_json(&v)
    }

    #[test]
    fn a_compiled_program() {
        let p = parse(json!({
            "id": "EX-001",
            "pool": {"processes": 3, "maxtasksperchild": 1, "initializer": {"id": "init", "returns": null}, "with_block": false},
            "steps": [
                {"imap": {"id": "it", "tasks": [{"id": "a", "wait": ["hold_a"], "returns": 1}, 2], "chunksize": 1}},
                {"starmap": {"id": "sm", "tasks": [{"id": "x", "echo": true}, {"id": "y", "echo": true}], "args": [[1, 2], null]}},
                {"apply_async": {"id": "s1", "task": {"id": "t", "raises": {"type": "ValueError", "message": "boom"}}, "args": [1], "error_callback": {"wait": ["g"]}}},
                {"next": {"id": "s2", "of": "it", "timeout": 0.5}},
                {"await": {"id": "s3", "event": "a.end"}},
                {"open": {"id": "s4", "gate": "hold_a"}},
                {"close": null},
            ]
        }))
        .unwrap();
        assert_eq!(p.id.as_deref(), Some("EX-001"));
        assert_eq!(p.pool.processes, 3);
        assert_eq!(p.pool.maxtasksperchild, Some(1));
        assert_eq!(
            p.pool.initializer.as_ref().unwrap().id.as_deref(),
            Some("init")
        );
        let ops: Vec<_> = p.steps.iter().map(Step::op).collect();
        assert_eq!(
            ops,
            [
                "imap",
                "starmap",
                "apply_async",
                "next",
                "await",
                "open",
                "close"
            ]
        );
        let ids: Vec<_> = p.steps.iter().map(Step::id).collect();
        assert_eq!(
            ids,
            [
                Some("it"),
                Some("sm"),
                Some("s1"),
                Some("s2"),
                Some("s3"),
                Some("s4"),
                None
            ]
        );
        let Step::Imap(m) = &p.steps[0] else { panic!() };
        assert_eq!(m.tasks[0].wait, ["hold_a"]);
        assert_eq!(m.tasks[1].ending(), Ending::Returns(&json!(2)));
        let Step::Starmap(m) = &p.steps[1] else {
            panic!()
        };
        let items = m.items();
        assert_eq!(items[0].1, [json!(1), json!(2)]);
        assert!(items[1].1.is_empty());
        assert_eq!(items[1].0.ending(), Ending::Echo);
        let Step::ApplyAsync(s) = &p.steps[2] else {
            panic!()
        };
        assert!(matches!(s.task.ending(), Ending::Raises(e) if e.kind == "ValueError"));
        assert!(s.callback.is_none());
        assert_eq!(s.error_callback.as_ref().unwrap().wait, ["g"]);
        let Step::Next(h) = &p.steps[3] else { panic!() };
        assert_eq!(h.timeout(), Some(std::time::Duration::from_millis(500)));
        assert!(!p.has_exiting_task());
    }

    #[test]
    fn defaults() {
        let p = parse(json!({"steps": [{"apply": {"task": 7}}]})).unwrap();
        assert_eq!(p.pool.processes, 2);
        assert_eq!(p.pool.maxtasksperchild, None);
        let Step::Apply(s) = &p.steps[0] else {
            panic!()
        };
        assert_eq!(s.task.ending(), Ending::Returns(&json!(7)));
        assert_eq!(Task::default().ending(), Ending::Returns(&Value::Null));
        let t: Task = serde_json::from_value(json!({"exit": 3, "returns": 1})).unwrap();
        assert_eq!(t.ending(), Ending::Exit(3));
        let p = parse(json!({"pool": {"initializer": {"exit": 1}}})).unwrap();
        assert!(p.has_exiting_task());
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            (json!([]), "program is not a JSON object"),
            (
                json!({"steps": [{"apply": {}, "map": {}}]}),
                "step 1 is not a one-key object",
            ),
            (json!({"steps": [{"fly": {}}]}), "unknown op 'fly' (step 1)"),
            (
                json!({"steps": [{"close": 3}]}),
                "body of step 1 (close) is not an object",
            ),
            (
                json!({"steps": [{"apply": {"id": "s1"}}]}),
                "step 's1' has no task",
            ),
            (
                json!({"steps": [{"open": {"id": "s1"}}]}),
                "open step 's1' names no gate",
            ),
            (
                json!({"steps": [{"await": {"id": "s1"}}]}),
                "await step 's1' has neither event nor gate",
            ),
            (
                json!({"steps": [{"map": {"id": "s1", "tasks": [], "args": [[1]]}}]}),
                "step 's1': map takes no args",
            ),
            (
                json!({"steps": [{"get": {"of": 3}}]}),
                "step 1 (get): invalid type",
            ),
            (
                json!({"pool": {"processes": -1}}),
                "pool.processes is not a non-negative integer",
            ),
            (
                json!({"pool": {"maxtasksperchild": "x"}}),
                "pool.maxtasksperchild is not valid: \"x\"",
            ),
        ];
        for (program, message) in cases {
            let err = parse(program.clone()).unwrap_err();
            assert!(err.starts_with(message), "{program}: {err}");
        }
    }
}
