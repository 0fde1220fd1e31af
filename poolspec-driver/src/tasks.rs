//! The task vocabulary (spec/README.md §4) and callbacks (§5), independent of any pool.
//!
//! A driver hands its pool one task function that takes a [`Descriptor`] (the program's
//! [`Task`] plus the [`Coord`] to report to) and the extra positional arguments, and calls
//! [`run_task`] with them; it maps the [`TaskResult`] onto whatever the pool's tasks return.
//! Callbacks call [`run_callback`] with their argument as JSON. Both report every event
//! themselves and stop quietly when the coordinator says so.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::blob::{blob, bytes_summary};
use crate::coord::{Coord, Event};
use crate::exception::Exception;
use crate::program::{Callback, Ending, Task};
use crate::types::{CallbackKind, Outcome};

/// What a pool's task function receives besides its extra arguments: the program's task
/// and where to report. Serializes as the task object plus `"_coord": [socket path, token]`
/// (and `"_init": true` for the initializer: the shape poolspec_tasks.py's `run_task` takes),
/// so it can cross into a worker process with any serde format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Descriptor {
    /// The task, as the program gives it.
    #[serde(flatten)]
    pub task: Task,
    /// Where the task reports.
    #[serde(rename = "_coord")]
    pub coord: Coord,
    /// This is the pool's initializer: [`run_task`] remembers its extra arguments (the
    /// `initargs`) in this process, for `echo_initargs` tasks.
    #[serde(rename = "_init", default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
}

impl Descriptor {
    /// `task` reporting to `coord`.
    pub fn new(task: &Task, coord: &Coord) -> Descriptor {
        Descriptor {
            task: task.clone(),
            coord: coord.clone(),
            init: false,
        }
    }

    /// The pool's initializer `task`, reporting to `coord`. Run it as any task, with the
    /// program's `initargs` as its extra arguments.
    pub fn initializer(task: &Task, coord: &Coord) -> Descriptor {
        Descriptor {
            init: true,
            ..Descriptor::new(task, coord)
        }
    }
}

/// The `initargs` the initializer of this process received (`None`: no initializer ran here).
static INITARGS: Mutex<Option<Vec<Value>>> = Mutex::new(None);

/// The token of the program whose pool this process (the driver) is building: a forked
/// worker inherits it, a worker started fresh does not (the `inherited` ending).
static PARENT_TOKEN: Mutex<Option<String>> = Mutex::new(None);

fn initargs() -> std::sync::MutexGuard<'static, Option<Vec<Value>>> {
    INITARGS.lock().unwrap_or_else(|e| e.into_inner())
}

fn parent_token() -> std::sync::MutexGuard<'static, Option<String>> {
    PARENT_TOKEN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Forgets what an earlier program's initializer left in this process (the `initargs` an
/// `echo_initargs` task returns), and marks this process's memory with the run's `token`
/// (an `inherited` task returns whether its process carries the mark of its own run: a
/// forked worker does, a worker started fresh does not). [`run_program`](crate::run_program)
/// calls it before making each pool.
pub fn reset_process_state(token: Option<&str>) {
    *initargs() = None;
    *parent_token() = token.map(str::to_owned);
}

/// How a task ended, for the pool's task function to turn into its own return value or
/// error. (A task that exits never returns: [`run_task`] ends the process.)
#[derive(Debug, Clone, PartialEq)]
pub enum TaskResult {
    /// Return this value (`returns`, `echo`, `echo_all`, `echo_initargs`, or no ending:
    /// `null`).
    Returned(Value),
    /// Return this byte string (`blob`): a native byte string of the pool (Python: `bytes`),
    /// which the driver shows as [`bytes_summary`] once it reached the
    /// parent.
    Bytes(Vec<u8>),
    /// Raise this exception (`raises`), mapped to the pool's error type; report it back under
    /// `kind` (README §4: the driver maps each registered type to its language's equivalent).
    Raised(Exception),
    /// Return a value the pool cannot serialize back to the parent (`unserializable`); a pool
    /// that serializes nothing returns something harmless instead.
    Unserializable,
    /// The coordinator refused a report or cannot be reached: return at once, quietly (as
    /// Python's `None`): no exception, no exit, no more reports.
    Stopped,
}

/// Runs one task (or the initializer) as its descriptor says, with `extra` as its extra
/// positional arguments and no keyword arguments: [`run_task_with`].
pub fn run_task(desc: &Descriptor, extra: Vec<Value>) -> TaskResult {
    run_task_with(desc, extra, Map::new())
}

/// Runs one task (or the initializer) as its descriptor says, reporting as it goes: `start`;
/// a `wait` for each gate (each blocks until the gate opens); then exactly one ending, reported
/// first: `exit` (then ends the process with `std::process::exit`), `raises`,
/// `unserializable`, `echo` (returns `args` as a list), `echo_all` (returns
/// `{"args": args, "kwargs": kwargs}`), `echo_initargs` (the `initargs` this process's
/// initializer received, or null), `blob` (returns the byte string), `inherited` (whether
/// this process inherited the driver's memory, see [`reset_process_state`]), `returns` (the
/// default returns null). Call it in the worker, from the pool's task function.
///
/// `args` and `kwargs` are the task's arguments beyond its descriptor, as JSON. A byte-string
/// argument (`blob_arg`) is passed as its [`bytes_summary`], computed
/// by the task function from the bytes the worker received (so the digest says whether they
/// arrived intact), which is how an echo shows it anyway.
pub fn run_task_with(
    desc: &Descriptor,
    args: Vec<Value>,
    kwargs: Map<String, Value>,
) -> TaskResult {
    let (task, coord) = (&desc.task, &desc.coord);
    let id = task.id.as_deref();
    if desc.init {
        *initargs() = Some(args.clone());
    }
    if !coord.report(&Event::Start { task: id }) {
        return TaskResult::Stopped;
    }
    for gate in &task.wait {
        if !coord.report(&Event::Wait { who: id, gate }) {
            return TaskResult::Stopped;
        }
    }
    let returned = |v: Value| (TaskResult::Returned(v.clone()), Outcome::Returned(v));
    let (result, outcome) = match task.ending() {
        Ending::Exit(code) => {
            coord.report(&Event::Exit { task: id, code });
            // os._exit(code): no result, no cleanup of the pool's worker loop.
            std::process::exit(code);
        }
        Ending::Raises(spec) => {
            let e = Exception::from_spec(spec);
            (TaskResult::Raised(e.clone()), Outcome::Raised(e))
        }
        Ending::Unserializable => (
            TaskResult::Unserializable,
            Outcome::Returned(Value::from("<unserializable>")),
        ),
        Ending::Echo => returned(Value::Array(args)),
        Ending::EchoAll => {
            let mut all = Map::new();
            all.insert("args".into(), Value::Array(args));
            all.insert("kwargs".into(), Value::Object(kwargs));
            returned(Value::Object(all))
        }
        Ending::EchoInitargs => returned(initargs().clone().map_or(Value::Null, Value::Array)),
        Ending::Blob(b) => {
            let bytes = blob(b.size, b.seed);
            let shown = Outcome::Returned(bytes_summary(&bytes));
            (TaskResult::Bytes(bytes), shown)
        }
        Ending::Inherited => returned(Value::Bool(
            parent_token().as_deref() == Some(coord.token.as_str()),
        )),
        Ending::Returns(v) => returned(v.clone()),
    };
    coord.report(&Event::End {
        task: id,
        outcome: &outcome,
    });
    result
}

/// The body of a callback of step `step` with its argument as JSON (the result value; for an
/// error callback the exception as `{type, message}`, see [`Exception`]): reports `callback`,
/// waits on its gates (as `<step>.<kind>`), then reports `callback_done`. `Err` means the
/// callback must raise this exception now (`callback_done` already said so); how a callback
/// raises is up to the pool (pool-ref's callbacks panic). A refused report ends it quietly
/// with `Ok`.
pub fn run_callback(
    coord: &Coord,
    step: &str,
    kind: CallbackKind,
    spec: &Callback,
    arg: &Value,
) -> Result<(), Exception> {
    let who = format!("{step}.{}", kind.name());
    if !coord.report(&Event::Callback { step, kind, arg }) {
        return Ok(());
    }
    for gate in &spec.wait {
        if !coord.report(&Event::Wait {
            who: Some(&who),
            gate,
        }) {
            return Ok(());
        }
    }
    let raised = spec.raises.as_ref().map(Exception::from_spec);
    coord.report(&Event::CallbackDone {
        step,
        kind,
        raised: raised.as_ref(),
    });
    raised.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endings_of_protocol_2() {
        let _lock = crate::connections_lock();
        let fake = crate::fake::FakeCoordinator::start("endings");
        let task = |v: Value| -> Descriptor {
            Descriptor::new(&serde_json::from_value(v).unwrap(), &fake.coord)
        };
        let mut kwargs = Map::new();
        kwargs.insert("b".into(), json!(2));
        kwargs.insert("a".into(), json!([1]));
        let r = run_task_with(
            &task(json!({"id": "all", "echo_all": true})),
            vec![json!(1), json!("x")],
            kwargs,
        );
        let all = json!({"args": [1, "x"], "kwargs": {"b": 2, "a": [1]}});
        assert_eq!(r, TaskResult::Returned(all.clone()));
        // No initializer ran in this process yet; its memory is marked with another run.
        reset_process_state(Some("another run"));
        let echo_init = task(json!({"id": "ei", "echo_initargs": true}));
        assert_eq!(
            run_task(&echo_init, vec![]),
            TaskResult::Returned(Value::Null)
        );
        let init = Descriptor::initializer(&Task::default(), &fake.coord);
        assert_eq!(
            run_task(&init, vec![json!(1), json!(null)]),
            TaskResult::Returned(Value::Null)
        );
        assert_eq!(
            run_task(&echo_init, vec![json!("ignored")]),
            TaskResult::Returned(json!([1, null]))
        );
        reset_process_state(None);
        assert_eq!(
            run_task(&echo_init, vec![]),
            TaskResult::Returned(Value::Null)
        );
        let r = run_task(
            &task(json!({"id": "b", "blob": {"size": 5, "seed": 1}})),
            vec![],
        );
        assert_eq!(r, TaskResult::Bytes(crate::blob(5, 1)));
        // Not marked with this run: a process started fresh. Marked: the driver's own (or a
        // forked worker).
        let inherited = task(json!({"id": "in", "inherited": true}));
        assert_eq!(
            run_task(&inherited, vec![]),
            TaskResult::Returned(json!(false))
        );
        reset_process_state(Some("T"));
        assert_eq!(
            run_task(&inherited, vec![]),
            TaskResult::Returned(json!(true))
        );
        let ends: Vec<Value> = fake
            .reports()
            .into_iter()
            .filter(|r| r["event"] == "end")
            .map(|r| r["outcome"].clone())
            .collect();
        assert_eq!(
            ends,
            [
                json!({"returned": all}),
                json!({"returned": null}),
                json!({"returned": null}),
                json!({"returned": [1, null]}),
                json!({"returned": null}),
                json!({"returned": crate::bytes_summary(&crate::blob(5, 1))}),
                json!({"returned": false}),
                json!({"returned": true}),
            ]
        );
        crate::close_connections();
    }

    #[test]
    fn descriptors_carry_the_task_and_coord() {
        let task: Task =
            serde_json::from_value(json!({"id": "a", "wait": ["g"], "returns": 1})).unwrap();
        let coord = Coord {
            path: "/s".into(),
            token: "T".into(),
        };
        let desc = Descriptor::new(&task, &coord);
        let v = serde_json::to_value(&desc).unwrap();
        assert_eq!(
            v,
            json!({"id": "a", "wait": ["g"], "returns": 1, "_coord": ["/s", "T"]})
        );
        assert_eq!(serde_json::from_value::<Descriptor>(v).unwrap(), desc);
        let init = Descriptor::initializer(&task, &coord);
        let v = serde_json::to_value(&init).unwrap();
        assert_eq!(v["_init"], json!(true));
        let back = serde_json::from_value::<Descriptor>(v).unwrap();
        assert!(back.init);
        assert_eq!(back.task, task);
    }
}
