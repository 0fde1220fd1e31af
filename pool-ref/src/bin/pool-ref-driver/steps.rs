//! One program on one fresh pool: the steps of spec/README.md §6, then the teardown
//! (spec/PROTOCOL.md §5, rule 5). Mirrors `Driver.run_program` of poolspec_driver.py.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use pool_ref::{AsyncResult, IMapIter, Pool, PoolError};
use serde_json::{Map, Value};

use crate::coord::{self, Coord, report_loud};
use crate::fields;
use crate::tasks::{
    Lambda, Obj, RUN_TASK, error_value, make_callback, make_error_callback, returned_or_raised,
};

/// The ops this driver implements (and declares).
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

/// How long tearing a pool down may take before the run is reported as a driver error.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(15);

/// Why the steps stopped early.
enum Stop {
    /// The coordinator answered ok=false to a main-thread report: the case is over.
    CaseOver,
    /// The driver cannot run the program (bad program, lost coordinator, ...).
    Driver(String),
}

impl From<String> for Stop {
    fn from(s: String) -> Stop {
        Stop::Driver(s)
    }
}

/// A failure to report as `error`: message and optional traceback.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub traceback: Option<String>,
}

/// What a step returned that later steps use.
enum Handle {
    /// `apply_async`: an `ApplyResult`.
    Apply(AsyncResult<Obj>),
    /// `map_async` / `starmap_async`: a `MapResult`.
    Map(AsyncResult<Vec<Obj>>),
    /// `imap` / `imap_unordered`.
    Iter(IMapIter<Obj>),
}

/// Python's `repr()` of a JSON value, for messages (strings quoted, null as None).
fn repr(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "None".into(),
        Some(Value::String(s)) => crate::tasks::py_repr_str(s),
        Some(other) => other.to_string(),
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Runs one program on a fresh pool; `None`, or the failure to answer with `error`.
pub fn run_program(coord: &Coord, program: &Value) -> Option<Failure> {
    let mut pool: Option<Pool> = None;
    let ran = catch_unwind(AssertUnwindSafe(|| -> Result<(), Stop> {
        let steps = check_program(program)?;
        let params = program.get("pool").cloned().unwrap_or(Value::Null);
        let p = pool.insert(make_pool(&params, coord)?);
        let mut handles: HashMap<String, Handle> = HashMap::new();
        for (op, body) in &steps {
            run_step(p, coord, op, body, &mut handles)?;
        }
        Ok(())
    }));
    let mut failure = match ran {
        Ok(Ok(())) | Ok(Err(Stop::CaseOver)) => None,
        Ok(Err(Stop::Driver(message))) => Some(Failure {
            message,
            traceback: None,
        }),
        Err(p) => Some(Failure {
            message: format!("driver failure: panic: {}", panic_message(p.as_ref())),
            traceback: None,
        }),
    };
    let problem = teardown(pool);
    coord::close_connections();
    if failure.is_none()
        && let Some(problem) = problem
    {
        failure = Some(Failure {
            message: problem,
            traceback: None,
        });
    }
    failure
}

/// The program's steps, each as (op, body).
type Steps = Vec<(String, Map<String, Value>)>;

fn check_program(program: &Value) -> Result<Steps, Stop> {
    let Some(program) = program.as_object() else {
        return Err(Stop::Driver("program is not a JSON object".into()));
    };
    let mut steps = Vec::new();
    let empty = Vec::new();
    let list = match program.get("steps") {
        Some(Value::Array(a)) => a,
        _ => &empty,
    };
    for (index, step) in list.iter().enumerate() {
        let n = index + 1;
        let one = step.as_object().filter(|m| m.len() == 1);
        let Some((op, body)) = one.and_then(|m| m.iter().next()) else {
            return Err(Stop::Driver(format!(
                "step {n} is not a one-key object: {step}"
            )));
        };
        if !OPS.contains(&op.as_str()) {
            return Err(Stop::Driver(format!(
                "unknown op {} (step {n})",
                crate::tasks::py_repr_str(op)
            )));
        }
        let body = match body {
            Value::Null => Map::new(),
            Value::Object(m) => m.clone(),
            _ => {
                return Err(Stop::Driver(format!(
                    "body of step {n} ({op}) is not an object"
                )));
            }
        };
        steps.push((op.clone(), body));
    }
    Ok(steps)
}

/// The task object as run_task receives it: the program's task plus `_coord`.
fn descriptor(task: &Value, coord: &Coord) -> Value {
    let mut desc = match task {
        Value::Object(m) => m.clone(),
        // The scalar shorthand; compiled programs never carry it, but be lenient.
        other => {
            let mut m = Map::new();
            m.insert("returns".into(), other.clone());
            m
        }
    };
    desc.insert("_coord".into(), coord.to_json());
    Value::Object(desc)
}

fn make_pool(params: &Value, coord: &Coord) -> Result<Pool, Stop> {
    let processes = params
        .get("processes")
        .map_or(Some(2), Value::as_u64)
        .ok_or_else(|| Stop::Driver("pool.processes is not a non-negative integer".into()))?;
    let mut builder = Pool::builder().processes(processes as usize);
    match params.get("maxtasksperchild") {
        None | Some(Value::Null) => {}
        Some(v) => {
            let n = v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| Stop::Driver(format!("pool.maxtasksperchild is not valid: {v}")))?;
            builder = builder.maxtasksperchild(n);
        }
    }
    if let Some(init) = params.get("initializer").filter(|v| !v.is_null()) {
        builder = builder.initializer(RUN_TASK, (descriptor(init, coord), Vec::new()));
    }
    // with_block: `Pool.__enter__` only checks the pool is running and returns it.
    builder.build().map_err(|e| {
        let ev = error_value(&e, None);
        Stop::Driver(format!(
            "creating the pool raised {}: {}",
            ev["type"].as_str().unwrap_or("?"),
            ev["message"].as_str().unwrap_or("")
        ))
    })
}

fn main_report(coord: &Coord, fields: Map<String, Value>) -> Result<(), Stop> {
    let ack = report_loud(coord, fields)?;
    if ack.get("ok") == Some(&Value::Bool(true)) {
        Ok(())
    } else {
        Err(Stop::CaseOver)
    }
}

fn run_step(
    pool: &Pool,
    coord: &Coord,
    op: &str,
    body: &Map<String, Value>,
    handles: &mut HashMap<String, Handle>,
) -> Result<(), Stop> {
    let step_id = body.get("id").cloned().unwrap_or(Value::Null);
    main_report(
        coord,
        fields! {"event" => "call", "step" => step_id.clone(), "op" => op},
    )?;
    let outcome = execute(pool, coord, op, body, handles)?;
    main_report(
        coord,
        fields! {"event" => "return", "step" => step_id, "outcome" => outcome},
    )
}

fn timeout_of(body: &Map<String, Value>) -> Option<Duration> {
    let t = body.get("timeout")?.as_f64()?;
    // A negative timeout waits not at all, as threading.Event.wait does.
    Duration::try_from_secs_f64(t.max(0.0)).ok()
}

fn returned(v: Value) -> Value {
    returned_or_raised("returned", v)
}

fn returned_all(v: &[Obj]) -> Value {
    returned(Value::Array(v.iter().map(Obj::to_json).collect()))
}

fn raised(e: &PoolError, handle: Option<&str>) -> Value {
    returned_or_raised("raised", error_value(e, handle))
}

fn stop_iteration() -> Value {
    returned_or_raised(
        "raised",
        crate::tasks::error_json("StopIteration".into(), String::new()),
    )
}

fn handle_outcome(kind: &str) -> Value {
    let mut m = Map::new();
    m.insert("handle".into(), Value::String(kind.into()));
    Value::Object(m)
}

/// Runs one step; returns its outcome. Errors of the operation are outcomes; anything
/// wrong with the program itself is a `Stop::Driver`.
fn execute(
    pool: &Pool,
    coord: &Coord,
    op: &str,
    body: &Map<String, Value>,
    handles: &mut HashMap<String, Handle>,
) -> Result<Value, Stop> {
    let id_value = body.get("id").cloned().unwrap_or(Value::Null);
    let step_id = id_value.as_str().unwrap_or("").to_owned();
    let callback_spec = |kind: &str| body.get(kind).filter(|v| !v.is_null()).cloned();
    let chunksize = body
        .get("chunksize")
        .and_then(Value::as_u64)
        .map(|n| n as usize);

    match op {
        "apply" | "apply_async" => {
            let Some(task) = body.get("task") else {
                return Err(Stop::Driver(format!(
                    "step {} has no task",
                    repr(Some(&id_value))
                )));
            };
            let desc = descriptor(task, coord);
            let mut args: Vec<Obj> = match body.get("args") {
                Some(Value::Array(a)) => a.iter().cloned().map(Obj::Json).collect(),
                _ => Vec::new(),
            };
            if body
                .get("unserializable_arg")
                .is_some_and(crate::tasks::truthy)
            {
                // Fails to serialize: the pool fails the result with it, as pickle in
                // CPython's task handler.
                args.push(Obj::Lambda(Lambda::Argument));
            }
            if op == "apply" {
                return Ok(match pool.apply(RUN_TASK, (desc, args)) {
                    Ok(v) => returned(v.to_json()),
                    Err(e) => raised(&e, None),
                });
            }
            let callback = callback_spec("callback")
                .map(|spec| make_callback::<Obj>(coord, &step_id, &spec, Obj::to_json));
            let error_callback = callback_spec("error_callback")
                .map(|spec| make_error_callback(coord, &step_id, &spec));
            Ok(
                match pool.apply_async(RUN_TASK, (desc, args), callback, error_callback) {
                    Ok(h) => {
                        handles.insert(step_id, Handle::Apply(h));
                        handle_outcome("result")
                    }
                    Err(e) => raised(&e, None),
                },
            )
        }
        "map" | "map_async" | "imap" | "imap_unordered" | "starmap" | "starmap_async" => {
            let descs: Vec<Value> = match body.get("tasks") {
                Some(Value::Array(ts)) => ts.iter().map(|t| descriptor(t, coord)).collect(),
                _ => Vec::new(),
            };
            let extra: Vec<Value> = match body.get("args") {
                Some(Value::Array(a)) => a.clone(),
                _ => Vec::new(),
            };
            let items: Vec<(Value, Vec<Obj>)> = if op.starts_with("starmap") {
                descs
                    .into_iter()
                    .enumerate()
                    .map(|(i, d)| {
                        let more = match extra.get(i) {
                            Some(Value::Array(a)) => a.clone(),
                            Some(Value::Null) | None => Vec::new(),
                            Some(other) => vec![other.clone()],
                        };
                        (d, more.into_iter().map(Obj::Json).collect())
                    })
                    .collect()
            } else {
                if extra.iter().any(crate::tasks::truthy) {
                    return Err(Stop::Driver(format!(
                        "step {}: {op} takes no args",
                        repr(Some(&id_value))
                    )));
                }
                descs.into_iter().map(|d| (d, Vec::new())).collect()
            };
            match op {
                "map" | "starmap" => Ok(match pool.map(RUN_TASK, items, chunksize) {
                    Ok(v) => returned_all(&v),
                    Err(e) => raised(&e, None),
                }),
                "map_async" | "starmap_async" => {
                    let callback = callback_spec("callback").map(|spec| {
                        make_callback::<Vec<Obj>>(coord, &step_id, &spec, |v| {
                            Value::Array(v.iter().map(Obj::to_json).collect())
                        })
                    });
                    let error_callback = callback_spec("error_callback")
                        .map(|spec| make_error_callback(coord, &step_id, &spec));
                    Ok(
                        match pool.map_async(RUN_TASK, items, chunksize, callback, error_callback) {
                            Ok(h) => {
                                handles.insert(step_id, Handle::Map(h));
                                handle_outcome("result")
                            }
                            Err(e) => raised(&e, None),
                        },
                    )
                }
                _ => {
                    let it = if op == "imap" {
                        pool.imap(RUN_TASK, items, chunksize)
                    } else {
                        pool.imap_unordered(RUN_TASK, items, chunksize)
                    };
                    Ok(match it {
                        Ok(it) => {
                            handles.insert(step_id, Handle::Iter(it));
                            handle_outcome("iterator")
                        }
                        Err(e) => raised(&e, None),
                    })
                }
            }
        }
        "get" | "wait" | "ready" | "successful" => {
            let timeout = timeout_of(body);
            let handle = lookup(handles, body, "result")?;
            Ok(match (op, handle) {
                ("get", Handle::Apply(h)) => match h.get(timeout) {
                    Ok(v) => returned(v.to_json()),
                    Err(e) => raised(&e, Some("ApplyResult")),
                },
                ("get", Handle::Map(h)) => match h.get(timeout) {
                    Ok(v) => returned_all(&v),
                    Err(e) => raised(&e, Some("MapResult")),
                },
                ("wait", Handle::Apply(h)) => {
                    h.wait(timeout);
                    returned(Value::Null)
                }
                ("wait", Handle::Map(h)) => {
                    h.wait(timeout);
                    returned(Value::Null)
                }
                ("ready", Handle::Apply(h)) => returned(Value::Bool(h.ready())),
                ("ready", Handle::Map(h)) => returned(Value::Bool(h.ready())),
                (_, Handle::Apply(h)) => match h.successful() {
                    Ok(b) => returned(Value::Bool(b)),
                    Err(e) => raised(&e, Some("ApplyResult")),
                },
                (_, Handle::Map(h)) => match h.successful() {
                    Ok(b) => returned(Value::Bool(b)),
                    Err(e) => raised(&e, Some("MapResult")),
                },
                (_, Handle::Iter(_)) => unreachable_handle(),
            })
        }
        "next" => {
            let timeout = timeout_of(body);
            let Handle::Iter(it) = lookup(handles, body, "iterator")? else {
                return Ok(unreachable_handle());
            };
            Ok(match it.next_timeout(timeout) {
                Ok(Some(v)) => returned(v.to_json()),
                Ok(None) => stop_iteration(),
                Err(e) => raised(&e, None),
            })
        }
        "collect" => {
            let Handle::Iter(it) = lookup(handles, body, "iterator")? else {
                return Ok(unreachable_handle());
            };
            let mut all = Vec::new();
            loop {
                match it.next_timeout(None) {
                    Ok(Some(v)) => all.push(v),
                    Ok(None) => return Ok(returned_all(&all)),
                    Err(e) => return Ok(raised(&e, None)),
                }
            }
        }
        "close" => {
            pool.close();
            Ok(returned(Value::Null))
        }
        "join" => Ok(match pool.join() {
            Ok(()) => returned(Value::Null),
            Err(e) => raised(&e, None),
        }),
        // `Pool.__exit__` calls terminate().
        "terminate" | "exit_with" => {
            pool.terminate();
            Ok(returned(Value::Null))
        }
        "open" => {
            let Some(gate) = body.get("gate") else {
                return Err(Stop::Driver(format!(
                    "open step {} names no gate",
                    repr(Some(&id_value))
                )));
            };
            main_report(coord, fields! {"event" => "open", "gate" => gate.clone()})?;
            Ok(returned(Value::Null))
        }
        "await" => {
            let mut f = fields! {"event" => "await"};
            if let Some(e) = body.get("event").filter(|v| !v.is_null()) {
                f.insert("until_event".into(), e.clone());
            }
            for key in ["gate", "waiting"] {
                if let Some(v) = body.get(key).filter(|v| !v.is_null()) {
                    f.insert(key.into(), v.clone());
                }
            }
            if f.len() == 1 {
                return Err(Stop::Driver(format!(
                    "await step {} has neither event nor gate",
                    repr(Some(&id_value))
                )));
            }
            main_report(coord, f)?;
            Ok(returned(Value::Null))
        }
        other => Err(Stop::Driver(format!(
            "op {} is not implemented",
            crate::tasks::py_repr_str(other)
        ))),
    }
}

/// Never happens: `lookup` checked the kind.
fn unreachable_handle() -> Value {
    returned(Value::Null)
}

fn lookup<'a>(
    handles: &'a mut HashMap<String, Handle>,
    body: &Map<String, Value>,
    want: &str,
) -> Result<&'a mut Handle, Stop> {
    let of = body.get("of");
    let key = of.and_then(Value::as_str).unwrap_or("");
    let Some(handle) = handles.get_mut(key) else {
        return Err(Stop::Driver(format!("no handle from a step {}", repr(of))));
    };
    let kind = match handle {
        Handle::Apply(_) | Handle::Map(_) => "result",
        Handle::Iter(_) => "iterator",
    };
    if kind != want {
        return Err(Stop::Driver(format!(
            "step {} returned an {kind}, not an {want}",
            repr(of)
        )));
    }
    Ok(handle)
}

/// Pids of this process's children (alive or not yet reaped).
fn children() -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// terminate() + join() the pool, and make sure no worker process outlives the run. Returns
/// a description of what went wrong, or None.
fn teardown(pool: Option<Pool>) -> Option<String> {
    let pool = pool?;
    // The program is over: wake any callback thread of this process still blocked on the
    // coordinator (a gate that will never open), else terminate() would wait for it. Worker
    // processes blocked the same way are killed by terminate().
    coord::abort_connections();
    let mut problems = Vec::new();
    let (tx, rx) = mpsc::channel();
    let work = move || {
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.terminate();
            let joined = pool.join();
            drop(pool);
            joined
        }));
        let _ = tx.send(r);
    };
    let spawned = thread::Builder::new()
        .name("poolspec-teardown".into())
        .spawn(work);
    if let Err(e) = spawned {
        problems.push(format!("cannot start the teardown thread: {e}"));
    } else {
        let deadline = Instant::now() + TEARDOWN_TIMEOUT;
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(Ok(Ok(()))) => break,
                Ok(Ok(Err(e))) => {
                    problems.push(format!("pool teardown raised: {e}"));
                    break;
                }
                Ok(Err(p)) => {
                    problems.push(format!(
                        "pool teardown panicked: {}",
                        panic_message(p.as_ref())
                    ));
                    break;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    problems.push("the teardown thread vanished".into());
                    break;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if Instant::now() >= deadline {
                        problems.push(format!(
                            "pool.terminate()/join() did not finish within {} s",
                            TEARDOWN_TIMEOUT.as_secs()
                        ));
                        break;
                    }
                    // A thread that was connecting while the first abort ran may be
                    // blocked by now.
                    coord::abort_connections();
                }
            }
        }
    }
    for pid in children() {
        problems.push(format!("worker pid {pid} outlived the pool; killed"));
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    for p in &problems {
        eprintln!("pool-ref-driver: {p}");
    }
    if problems.is_empty() {
        None
    } else {
        Some(problems.join("; "))
    }
}
