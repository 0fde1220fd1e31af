//! From a raw history to a normalized observation.
//!
//! The raw history names pids and thread ids and interleaves concurrent reports in whatever
//! order they happened to arrive. An observation keeps only what a case can force: what each
//! step returned, how each task and callback ended, and the probes the case asked for. Pids
//! and threads become roles; nothing depends on timing. Two runs of a conforming
//! implementation must give identical observations; `--verify` checks exactly that.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use indexmap::IndexMap;
use serde::Serialize;

use crate::coordinator::{Event, History, Origin};
use crate::protocol::{ErrorValue, Outcome, ReportKind};
use crate::rewordings;
use crate::spec::{Case, IdKind, Probe, Program, Step, TaskSpec};

/// The normalized observation of one run of one case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observation {
    /// How constructing the pool failed; absent when it succeeded (the usual case), so that
    /// only cases about construction mention it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub construct: Option<StepObs>,
    /// What every step returned or raised, in program order.
    pub steps: IndexMap<String, StepObs>,
    /// How every task of the program ran, in program order.
    pub tasks: IndexMap<String, TaskObs>,
    /// Callback invocations per step, for steps that registered callbacks.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub callbacks: IndexMap<String, Vec<CallbackObs>>,
    /// The probes the case asked for, by name.
    #[serde(flatten)]
    pub probes: IndexMap<String, serde_json::Value>,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepObs {
    Returned(serde_json::Value),
    Raised(ErrorValue),
    /// An `AsyncResult` (`result`) or an iterator (`iterator`).
    Handle(String),
    /// The step was called and never returned before the run ended.
    NeverReturned(bool),
    /// The step was never called (an earlier step never returned).
    NotReached(bool),
}

/// How one task ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskObs {
    /// How many times it started.
    pub runs: usize,
    /// Where it ran: `worker` (a process other than the pool's parent), `parent`, or
    /// `parent+worker` if different runs ran in both.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// How its last run ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<TaskEnd>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskEnd {
    Returned(serde_json::Value),
    Raised(ErrorValue),
    Exited(i32),
    /// Started but never reported an end (killed, terminated, or held when the run ended).
    Unfinished(bool),
}

/// One callback invocation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallbackObs {
    /// `callback` or `error_callback`.
    pub kind: String,
    pub arg: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raised: Option<ErrorValue>,
}

/// Replaces memory addresses (`0x7f3a…`) in a message, which differ on every run.
fn mask_addresses(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("0x") {
        out.push_str(&rest[..at]);
        let digits = rest[at + 2..]
            .bytes()
            .take_while(u8::is_ascii_hexdigit)
            .count();
        if digits >= 4 {
            out.push_str("0x…");
        } else {
            out.push_str(&rest[at..at + 2 + digits]);
        }
        rest = &rest[at + 2 + digits..];
    }
    out.push_str(rest);
    out
}

/// A message as an observation keeps it: addresses masked, and what CPython itself reworded
/// between versions in its canonical form (`rewordings.rs`), so that an observation does not
/// change with the interpreter.
fn normalize_text(message: &str) -> String {
    rewordings::canonical(&mask_addresses(message))
}

/// `normalize_text` applied to every string inside a JSON value.
fn mask_value(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::String(s) => serde_json::Value::String(normalize_text(s)),
        serde_json::Value::Array(items) => items.iter().map(mask_value).collect(),
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), mask_value(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        other => other.clone(),
    }
}

fn normalized(err: &ErrorValue) -> ErrorValue {
    ErrorValue {
        message: normalize_text(&err.message),
        python: err.python.as_ref().map(mask_value),
        ..err.clone()
    }
}

/// Who the parent is: the process and thread that ran the steps.
struct Roles {
    parent_pid: Option<u32>,
    main_thread: Option<String>,
}

impl Roles {
    fn of(history: &History) -> Roles {
        let first_call = history
            .events
            .iter()
            .find_map(|e| match (&e.kind, &e.origin) {
                (ReportKind::Call { .. }, Origin::Process { pid, thread }) => Some((*pid, thread)),
                _ => None,
            });
        Roles {
            parent_pid: first_call.map(|(pid, _)| pid),
            main_thread: first_call.map(|(_, t)| t.clone()),
        }
    }

    fn process(&self, origin: &Origin) -> &'static str {
        match origin {
            Origin::Process { pid, .. } if Some(*pid) == self.parent_pid => "parent",
            Origin::Process { .. } => "worker",
            Origin::Runner => "runner",
        }
    }
}

/// Every task id of the program, in program order.
pub fn task_ids(program: &Program) -> Vec<String> {
    tasks(program).into_iter().filter_map(|t| t.id).collect()
}

/// Every task of the program (not the initializer), in program order.
pub fn tasks(program: &Program) -> Vec<crate::spec::Task> {
    program
        .steps
        .iter()
        .flat_map(Step::task_specs)
        .map(TaskSpec::to_task)
        .collect()
}

/// Normalizes `history` for `case` (whose compiled program is `program`).
pub fn observe(case: &Case, program: &Program, history: &History) -> Observation {
    let roles = Roles::of(history);
    let events = &history.events;

    let mut steps = IndexMap::new();
    for step in &program.steps {
        let id = step.explicit_id().unwrap_or_default().to_owned();
        let called = events
            .iter()
            .any(|e| matches!(&e.kind, ReportKind::Call { step, .. } if *step == id));
        let ret = events.iter().find_map(|e| match &e.kind {
            ReportKind::Return { step, outcome } if *step == id => Some(outcome),
            _ => None,
        });
        let obs = match (called, ret) {
            (_, Some(Outcome::Returned(v))) => StepObs::Returned(mask_value(v)),
            (_, Some(Outcome::Raised(e))) => StepObs::Raised(normalized(e)),
            (_, Some(Outcome::Handle(h))) => StepObs::Handle(h.clone()),
            (true, None) => StepObs::NeverReturned(true),
            (false, None) => StepObs::NotReached(true),
        };
        steps.insert(id, obs);
    }

    let mut tasks: IndexMap<String, TaskObs> = task_ids(program)
        .into_iter()
        .map(|id| {
            let obs = TaskObs {
                runs: 0,
                process: None,
                ended: None,
            };
            (id, obs)
        })
        .collect();
    let mut places: HashMap<String, BTreeSet<&'static str>> = HashMap::new();
    for e in events {
        match &e.kind {
            ReportKind::Start { task } => {
                if let Some(t) = tasks.get_mut(task) {
                    t.runs += 1;
                    t.ended = Some(TaskEnd::Unfinished(true));
                    places
                        .entry(task.clone())
                        .or_default()
                        .insert(roles.process(&e.origin));
                }
            }
            ReportKind::End { task, outcome } => {
                if let Some(t) = tasks.get_mut(task) {
                    t.ended = Some(match outcome {
                        Outcome::Returned(v) => TaskEnd::Returned(v.clone()),
                        Outcome::Raised(err) => TaskEnd::Raised(normalized(err)),
                        Outcome::Handle(h) => TaskEnd::Returned(serde_json::json!(h)),
                    });
                }
            }
            ReportKind::Exit { task, code } => {
                if let Some(t) = tasks.get_mut(task) {
                    t.ended = Some(TaskEnd::Exited(*code));
                }
            }
            _ => {}
        }
    }
    for (id, t) in tasks.iter_mut() {
        t.process = places
            .get(id)
            .map(|p| p.iter().copied().collect::<Vec<_>>().join("+"));
    }

    let mut callbacks: IndexMap<String, Vec<CallbackObs>> = IndexMap::new();
    for step in &program.steps {
        let id = step.explicit_id().unwrap_or_default();
        if let Some(IdKind::Step {
            callbacks: true, ..
        }) = program.ids.get(id)
        {
            callbacks.insert(id.to_owned(), Vec::new());
        }
    }
    for e in events {
        match &e.kind {
            ReportKind::Callback { step, kind, arg } => {
                if let Some(list) = callbacks.get_mut(step) {
                    list.push(CallbackObs {
                        kind: kind.clone(),
                        arg: mask_value(arg),
                        raised: None,
                    });
                }
            }
            ReportKind::CallbackDone {
                step,
                raised: Some(err),
                ..
            } => {
                if let Some(last) = callbacks.get_mut(step).and_then(|l| l.last_mut()) {
                    last.raised = Some(normalized(err));
                }
            }
            _ => {}
        }
    }

    let mut probes = IndexMap::new();
    for probe in &case.observe {
        match probe {
            Probe::MaxConcurrency => {
                probes.insert(
                    "max_concurrency".into(),
                    max_concurrency(program, events).into(),
                );
            }
            Probe::WorkerProcesses => {
                probes.insert(
                    "worker_processes".into(),
                    worker_processes(&roles, events).into(),
                );
            }
            Probe::WorkersVsProcesses => {
                let workers = worker_processes(&roles, events);
                let relation = match history.processes {
                    None => "unknown".to_owned(),
                    Some(n) => match workers.cmp(&(n as usize)) {
                        std::cmp::Ordering::Less => "fewer",
                        std::cmp::Ordering::Equal => "equal",
                        std::cmp::Ordering::Greater => "more",
                    }
                    .to_owned(),
                };
                probes.insert("workers_vs_processes".into(), relation.into());
            }
            Probe::TasksByProcess => {
                probes.insert(
                    "tasks_by_process".into(),
                    serde_json::json!(tasks_by_process(program, events)),
                );
            }
            Probe::CallbackContext => {
                probes.insert("callback_context".into(), callback_context(&roles, events));
            }
            Probe::Order { name, events: refs } => {
                let entry = probes
                    .entry("order".to_owned())
                    .or_insert_with(|| serde_json::json!({}));
                if let Some(map) = entry.as_object_mut() {
                    map.insert(name.clone(), serde_json::json!(order(refs, events)));
                }
            }
        }
    }

    let construct = events.iter().find_map(|e| match &e.kind {
        ReportKind::Construct {
            outcome: Outcome::Raised(err),
        } => Some(StepObs::Raised(normalized(err))),
        _ => None,
    });

    Observation {
        construct,
        steps,
        tasks,
        callbacks,
        probes,
    }
}

/// How many distinct processes other than the parent reported a `start` (tasks and
/// initializers).
fn worker_processes(roles: &Roles, events: &[Event]) -> usize {
    events
        .iter()
        .filter_map(|e| match (&e.kind, &e.origin) {
            (ReportKind::Start { .. }, Origin::Process { pid, .. })
                if Some(*pid) != roles.parent_pid =>
            {
                Some(*pid)
            }
            _ => None,
        })
        .collect::<BTreeSet<u32>>()
        .len()
}

fn is_task(program: &Program, id: &str) -> bool {
    matches!(program.ids.get(id), Some(IdKind::Task))
}

fn max_concurrency(program: &Program, events: &[Event]) -> usize {
    let mut running: BTreeSet<&str> = BTreeSet::new();
    let mut max = 0;
    for e in events {
        match &e.kind {
            ReportKind::Start { task } if is_task(program, task) => {
                running.insert(task);
                max = max.max(running.len());
            }
            ReportKind::End { task, .. } | ReportKind::Exit { task, .. } => {
                running.remove(task.as_str());
            }
            _ => {}
        }
    }
    max
}

fn tasks_by_process(program: &Program, events: &[Event]) -> Vec<Vec<String>> {
    let order: HashMap<String, usize> = task_ids(program)
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, i))
        .collect();
    let mut by_pid: BTreeMap<u32, BTreeSet<(usize, String)>> = BTreeMap::new();
    for e in events {
        if let (ReportKind::Start { task }, Origin::Process { pid, .. }) = (&e.kind, &e.origin)
            && let Some(i) = order.get(task)
        {
            by_pid.entry(*pid).or_default().insert((*i, task.clone()));
        }
    }
    let mut groups: Vec<Vec<(usize, String)>> = by_pid
        .into_values()
        .map(|set| set.into_iter().collect())
        .collect();
    groups.sort();
    groups
        .into_iter()
        .map(|g| g.into_iter().map(|(_, id)| id).collect())
        .collect()
}

fn callback_context(roles: &Roles, events: &[Event]) -> serde_json::Value {
    let mut processes = BTreeSet::new();
    let mut threads = BTreeSet::new();
    let mut on_main = false;
    let mut inside = 0usize;
    let mut max_overlap = 0usize;
    for e in events {
        match (&e.kind, &e.origin) {
            (ReportKind::Callback { .. }, origin @ Origin::Process { pid, thread }) => {
                processes.insert(roles.process(origin));
                threads.insert((*pid, thread.clone()));
                on_main |=
                    Some(*pid) == roles.parent_pid && Some(thread) == roles.main_thread.as_ref();
                inside += 1;
                max_overlap = max_overlap.max(inside);
            }
            (ReportKind::CallbackDone { .. }, _) => inside = inside.saturating_sub(1),
            _ => {}
        }
    }
    serde_json::json!({
        "process": processes.into_iter().collect::<Vec<_>>().join("+"),
        "main_thread": on_main,
        "threads": threads.len(),
        "max_overlap": max_overlap,
    })
}

fn order(refs: &[String], events: &[Event]) -> Vec<String> {
    let mut found: Vec<(u64, &String)> = Vec::new();
    let mut absent = Vec::new();
    for r in refs {
        match events
            .iter()
            .find(|e| e.reference().as_deref() == Some(r.as_str()))
        {
            Some(e) => found.push((e.seq, r)),
            None => absent.push(format!("{r} (absent)")),
        }
    }
    found.sort();
    found
        .into_iter()
        .map(|(_, r)| r.clone())
        .chain(absent)
        .collect()
}

/// The raw history with pids and threads replaced by roles (`parent`, `worker#1`, ...;
/// `main`, `thread#1`, ...) in order of first appearance, for the debugging copy on disk.
pub fn annotate(history: &History) -> serde_json::Value {
    let roles = Roles::of(history);
    let mut workers: HashMap<u32, usize> = HashMap::new();
    let mut threads: HashMap<(u32, String), usize> = HashMap::new();
    let events: Vec<serde_json::Value> = history
        .events
        .iter()
        .map(|e| {
            let who = match &e.origin {
                Origin::Runner => "runner".to_owned(),
                Origin::Process { pid, thread } => {
                    let process = if Some(*pid) == roles.parent_pid {
                        "parent".to_owned()
                    } else {
                        let n = workers.len() + 1;
                        format!("worker#{}", workers.entry(*pid).or_insert(n))
                    };
                    let t = if Some(*pid) == roles.parent_pid
                        && Some(thread) == roles.main_thread.as_ref()
                    {
                        "main".to_owned()
                    } else {
                        let n = threads.len() + 1;
                        format!(
                            "thread#{}",
                            threads.entry((*pid, thread.clone())).or_insert(n)
                        )
                    };
                    format!("{process}/{t} (pid {pid})")
                }
            };
            serde_json::json!({"seq": e.seq, "who": who, "event": e.kind})
        })
        .collect();
    serde_json::json!({"events": events, "violations": history.violations})
}

#[cfg(test)]
mod tests {
    use super::{mask_addresses, mask_value, normalize_text};

    #[test]
    fn addresses_are_masked_and_short_hex_is_kept() {
        assert_eq!(
            mask_addresses("<ApplyResult object at 0x7f3a2c1b9d50> not ready"),
            "<ApplyResult object at 0x…> not ready"
        );
        assert_eq!(mask_addresses("code 0x1f"), "code 0x1f");
    }

    #[test]
    fn messages_and_values_are_normalized_across_interpreters() {
        let on_3_13 =
            "<function <lambda> at 0x7f3a2c1b9d50>: Can't get local object 'f.<locals>.g'";
        let on_3_11 = "<function <lambda> at 0x…>: Can't pickle local object 'f.<locals>.g'";
        assert_eq!(normalize_text(on_3_13), on_3_11);
        assert_eq!(
            mask_value(&serde_json::json!({"message": [on_3_13]})),
            serde_json::json!({"message": [on_3_11]})
        );
    }
}
