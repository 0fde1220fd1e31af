//! Checks a case's `expect` against its program before anything runs: every key names a
//! part of the observation that exists (a step, a task, a step with callbacks, an observed
//! probe, an order probe and its events), so a typo or a dangling id is an error at load time
//! with its position, instead of a FAIL on every implementation at run time.
//!
//! The vocabulary is the observation's (`observe.rs`, spec/README.md §9); values are matched by
//! inclusion, so only keys are checked, never which keys are given.

use serde_json::Value;

use super::locate::YamlPath;
use super::model::{Case, Probe};
use super::program::{IdKind, Located, Program};
use super::suggest::{closest, did_you_mean};

/// Why an `expect` cannot match any observation of its case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpectError {
    /// A key that is not part of the observation at that place.
    #[error("`{path}`: unknown key `{key}` in {within}{} (known: {})", did_you_mean(suggestion), known.join(", "))]
    UnknownKey {
        path: String,
        key: String,
        within: String,
        suggestion: Option<String>,
        known: Vec<String>,
    },
    /// A step, task or order the case does not have.
    #[error("`expect.{section}.{id}`: the case has no {what} `{id}`{} (it has: {})", did_you_mean(suggestion), has.join(", "))]
    NoSuch {
        section: &'static str,
        what: &'static str,
        id: String,
        suggestion: Option<String>,
        has: Vec<String>,
    },
    /// A step that registers no callback, so the observation lists none for it.
    #[error("`expect.callbacks.{step}`: step `{step}` registers no callback or error_callback")]
    NoCallbacks { step: String },
    /// A probe the case does not ask for.
    #[error("`expect.{probe}`: the case does not observe `{probe}` (add `- {probe}` to `observe`)")]
    NotObserved { probe: String },
    /// An event in an expected order that its probe does not list.
    #[error("`expect.order.{order}`: `{reference}` is not an event of the order probe `{order}` (its events: {})", has.join(", "))]
    NotInOrder {
        order: String,
        reference: String,
        has: Vec<String>,
    },
    /// A task id in `tasks_by_process` the program does not have.
    #[error(
        "`expect.tasks_by_process`: the case has no task `{task}`{}",
        did_you_mean(suggestion)
    )]
    NoSuchTaskInGroup {
        task: String,
        suggestion: Option<String>,
    },
    /// A node of the wrong shape.
    #[error("`{path}` must be {what}")]
    WrongType { path: String, what: &'static str },
}

/// The observation's top-level keys other than the probes.
const TOP: &[&str] = &["construct", "steps", "tasks", "callbacks"];
/// The probes, by their key in the observation.
const PROBES: &[&str] = &[
    "order",
    "max_concurrency",
    "worker_processes",
    "tasks_by_process",
    "workers_vs_processes",
    "callback_context",
];
const STEP: &[&str] = &[
    "returned",
    "raised",
    "handle",
    "never_returned",
    "not_reached",
];
const ERROR: &[&str] = &["type", "message", "kind", "traceback", "python"];
const TASK: &[&str] = &["runs", "process", "ended"];
const ENDED: &[&str] = &["returned", "raised", "exited", "unfinished"];
const CALLBACK: &[&str] = &["kind", "arg", "raised"];
const CALLBACK_CONTEXT: &[&str] = &["process", "main_thread", "threads", "max_overlap"];

/// Boxed: the error is large and only ever made once per case.
type Result<T = ()> = std::result::Result<T, Box<Located<ExpectError>>>;

fn located(error: ExpectError, at: YamlPath) -> Box<Located<ExpectError>> {
    Located::new(error, at)
}

/// Checks every key of `case.expect` against `program` (compiled from `case`).
pub fn check_expect(case: &Case, program: &Program) -> Result {
    let at = YamlPath::default().key("expect");
    let Some(expect) = case.expect.as_object() else {
        return Ok(());
    };
    let observed: Vec<&'static str> = case.observe.iter().map(probe_key).collect();
    for (key, value) in expect {
        let here = at.key(key);
        match key.as_str() {
            "construct" => check_keys(value, &here, "`expect.construct`", &["raised"], nested)?,
            "steps" => check_steps(value, &here, program)?,
            "tasks" => check_tasks(value, &here, program)?,
            "callbacks" => check_callbacks(value, &here, program)?,
            probe if PROBES.contains(&probe) && !observed.contains(&probe) => {
                return Err(located(
                    ExpectError::NotObserved {
                        probe: probe.to_owned(),
                    },
                    at.the_key(key),
                ));
            }
            "order" => check_orders(value, &here, case)?,
            "tasks_by_process" => check_groups(value, &here, program)?,
            "callback_context" => check_keys(
                value,
                &here,
                "`expect.callback_context`",
                CALLBACK_CONTEXT,
                |_, _, _| Ok(()),
            )?,
            "max_concurrency" | "worker_processes" | "workers_vs_processes" => {}
            _ => {
                let known: Vec<&str> = TOP.iter().chain(PROBES).copied().collect();
                return Err(unknown(key, "`expect`", &known, &at));
            }
        }
    }
    Ok(())
}

/// The observation key of a probe.
fn probe_key(probe: &Probe) -> &'static str {
    match probe {
        Probe::Order { .. } => "order",
        Probe::MaxConcurrency => "max_concurrency",
        Probe::WorkerProcesses => "worker_processes",
        Probe::TasksByProcess => "tasks_by_process",
        Probe::WorkersVsProcesses => "workers_vs_processes",
        Probe::CallbackContext => "callback_context",
    }
}

/// An unknown `key` of the map at `parent`.
fn unknown(
    key: &str,
    within: &str,
    known: &[&str],
    parent: &YamlPath,
) -> Box<Located<ExpectError>> {
    located(
        ExpectError::UnknownKey {
            path: parent.to_string(),
            key: key.to_owned(),
            within: within.to_owned(),
            suggestion: closest(key, known.iter().copied()).map(str::to_owned),
            known: known.iter().map(|k| (*k).to_owned()).collect(),
        },
        parent.the_key(key),
    )
}

fn map<'v>(value: &'v Value, at: &YamlPath) -> Result<&'v serde_json::Map<String, Value>> {
    value.as_object().ok_or_else(|| {
        located(
            ExpectError::WrongType {
                path: at.to_string(),
                what: "a map",
            },
            at.clone(),
        )
    })
}

/// Checks that every key of the map `value` is in `known`, then each value with `inner`.
fn check_keys(
    value: &Value,
    at: &YamlPath,
    within: &str,
    known: &[&str],
    inner: impl Fn(&str, &Value, &YamlPath) -> Result,
) -> Result {
    for (key, v) in map(value, at)? {
        if !known.contains(&key.as_str()) {
            return Err(unknown(key, within, known, at));
        }
        inner(key, v, &at.key(key))?;
    }
    Ok(())
}

/// The keys below a step's, a task's or a callback's outcome: `raised` holds an exception,
/// `ended` a task's ending; other values (`returned: {...}`) are free.
fn nested(key: &str, value: &Value, at: &YamlPath) -> Result {
    match key {
        "raised" => check_keys(value, at, "an exception", ERROR, |_, _, _| Ok(())),
        "ended" => check_keys(value, at, "a task's ending", ENDED, nested),
        _ => Ok(()),
    }
}

/// Ids of the program of one kind, in id order.
fn ids_where(program: &Program, pick: impl Fn(&IdKind) -> bool) -> Vec<String> {
    program
        .ids
        .iter()
        .filter(|(_, kind)| pick(kind))
        .map(|(id, _)| id.clone())
        .collect()
}

fn no_such(
    section: &'static str,
    what: &'static str,
    id: &str,
    has: Vec<String>,
    at: YamlPath,
) -> Box<Located<ExpectError>> {
    located(
        ExpectError::NoSuch {
            section,
            what,
            id: id.to_owned(),
            suggestion: closest(id, has.iter().map(String::as_str)).map(str::to_owned),
            has,
        },
        at,
    )
}

fn check_steps(value: &Value, at: &YamlPath, program: &Program) -> Result {
    let steps = ids_where(program, |k| matches!(k, IdKind::Step { .. }));
    for (id, outcome) in map(value, at)? {
        if !steps.contains(id) {
            return Err(no_such("steps", "step", id, steps, at.the_key(id)));
        }
        check_keys(outcome, &at.key(id), "a step's outcome", STEP, nested)?;
    }
    Ok(())
}

fn check_tasks(value: &Value, at: &YamlPath, program: &Program) -> Result {
    let tasks = ids_where(program, |k| *k == IdKind::Task);
    for (id, obs) in map(value, at)? {
        if !tasks.contains(id) {
            return Err(no_such("tasks", "task", id, tasks, at.the_key(id)));
        }
        check_keys(obs, &at.key(id), "a task's observation", TASK, nested)?;
    }
    Ok(())
}

fn check_callbacks(value: &Value, at: &YamlPath, program: &Program) -> Result {
    let steps = ids_where(program, |k| matches!(k, IdKind::Step { .. }));
    for (id, calls) in map(value, at)? {
        match program.ids.get(id) {
            Some(IdKind::Step {
                callbacks: true, ..
            }) => {}
            Some(IdKind::Step { .. }) => {
                return Err(located(
                    ExpectError::NoCallbacks { step: id.clone() },
                    at.the_key(id),
                ));
            }
            _ => return Err(no_such("callbacks", "step", id, steps, at.the_key(id))),
        }
        let here = at.key(id);
        let Some(list) = calls.as_array() else {
            return Err(located(
                ExpectError::WrongType {
                    path: here.to_string(),
                    what: "a list of callback invocations",
                },
                here,
            ));
        };
        for (i, call) in list.iter().enumerate() {
            check_keys(
                call,
                &here.index(i),
                "a callback invocation",
                CALLBACK,
                nested,
            )?;
        }
    }
    Ok(())
}

fn check_orders(value: &Value, at: &YamlPath, case: &Case) -> Result {
    let orders: Vec<(&String, &Vec<String>)> = case
        .observe
        .iter()
        .filter_map(|p| match p {
            Probe::Order { name, events } => Some((name, events)),
            _ => None,
        })
        .collect();
    let names: Vec<String> = orders.iter().map(|(n, _)| (*n).clone()).collect();
    for (name, list) in map(value, at)? {
        let Some((_, events)) = orders.iter().find(|(n, _)| *n == name) else {
            return Err(no_such(
                "order",
                "order probe",
                name,
                names,
                at.the_key(name),
            ));
        };
        let here = at.key(name);
        let Some(list) = list.as_array() else {
            return Err(located(
                ExpectError::WrongType {
                    path: here.to_string(),
                    what: "a list of event references",
                },
                here,
            ));
        };
        for (i, item) in list.iter().enumerate() {
            let reference = item.as_str().unwrap_or_default();
            let bare = reference.strip_suffix(" (absent)").unwrap_or(reference);
            if !events.iter().any(|e| e == bare) {
                return Err(located(
                    ExpectError::NotInOrder {
                        order: name.clone(),
                        reference: item
                            .as_str()
                            .map_or_else(|| item.to_string(), str::to_owned),
                        has: events.to_vec(),
                    },
                    here.index(i),
                ));
            }
        }
    }
    Ok(())
}

fn check_groups(value: &Value, at: &YamlPath, program: &Program) -> Result {
    let tasks = ids_where(program, |k| *k == IdKind::Task);
    let wrong = || {
        located(
            ExpectError::WrongType {
                path: at.to_string(),
                what: "a list of lists of task ids",
            },
            at.clone(),
        )
    };
    for (g, group) in value.as_array().ok_or_else(wrong)?.iter().enumerate() {
        for (i, task) in group.as_array().ok_or_else(wrong)?.iter().enumerate() {
            let id = task.as_str().ok_or_else(wrong)?;
            if !tasks.iter().any(|t| t == id) {
                return Err(located(
                    ExpectError::NoSuchTaskInGroup {
                        task: id.to_owned(),
                        suggestion: closest(id, tasks.iter().map(String::as_str))
                            .map(str::to_owned),
                    },
                    at.index(g).index(i),
                ));
            }
        }
    }
    Ok(())
}
