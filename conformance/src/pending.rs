//! What was still pending when a liveness guard expired, read off the history the
//! coordinator recorded so far: the steps the driver had called and not returned from, the
//! tasks that had started and not ended, and the callbacks that had not finished, each with
//! the gate it was waiting on if that gate was still closed. A TIMEOUT's reason lists them,
//! so a hang names the step that never returned instead of only the guard's length.

use std::collections::{BTreeSet, HashMap};

use indexmap::IndexMap;

use crate::coordinator::History;
use crate::driver::DriverFault;
use crate::observe::task_ids;
use crate::protocol::ReportKind;
use crate::spec::Program;
use crate::spec::describe::operation;

/// How long the list of pending things may grow (in bytes) before the rest is counted: a
/// reason stays one line that fits a table (the fault tests hold reasons to 300 bytes).
const LISTED_BYTES: usize = 160;

/// The reason of a fault: its summary, and for a timeout what was pending
/// (`...; pending: s4 (get on h2, started), task t2 (waiting on gate g1)`).
pub fn fault_reason(fault: &DriverFault, program: &Program, history: &History) -> String {
    let summary = fault.summary();
    if !matches!(fault, DriverFault::Timeout { .. }) {
        return summary;
    }
    let constructed = history
        .events
        .iter()
        .any(|e| matches!(e.kind, ReportKind::Construct { .. }));
    let items = pending(program, history);
    if items.is_empty() {
        let why = if constructed {
            "nothing pending: every step called had returned"
        } else {
            "nothing reported: the driver hung before or while constructing the pool"
        };
        return format!("{summary}; {why}");
    }
    let total = items.len();
    let mut list: Vec<String> = Vec::new();
    for item in items {
        let used: usize = list.iter().map(|i| i.len() + 2).sum();
        if !list.is_empty() && used + item.len() > LISTED_BYTES {
            break;
        }
        list.push(item);
    }
    if list.len() < total {
        list.push(format!("{} more", total - list.len()));
    }
    format!("{summary}; pending: {}", list.join(", "))
}

/// What had begun and not finished: the step the main thread was in, then tasks and
/// callbacks in program order.
pub fn pending(program: &Program, history: &History) -> Vec<String> {
    // Keyed by who (a step, a task, `<step>.<kind>` for a callback), in order of beginning.
    let mut open: IndexMap<String, Begun> = IndexMap::new();
    let mut waiting: HashMap<String, String> = HashMap::new();
    let mut opened: BTreeSet<String> = BTreeSet::new();
    for event in &history.events {
        match &event.kind {
            ReportKind::Call { step, .. } => {
                open.insert(step.clone(), Begun::Step(step.clone()));
            }
            ReportKind::Return { step, .. } => {
                open.shift_remove(step);
            }
            ReportKind::Start { task } => {
                open.insert(task.clone(), Begun::Task(task.clone()));
                waiting.remove(task);
            }
            ReportKind::End { task, .. } | ReportKind::Exit { task, .. } => {
                open.shift_remove(task);
                waiting.remove(task);
            }
            ReportKind::Callback { step, kind, .. } => {
                let who = format!("{step}.{kind}");
                open.insert(who.clone(), Begun::Callback(step.clone(), kind.clone()));
            }
            ReportKind::CallbackDone { step, kind, .. } => {
                let who = format!("{step}.{kind}");
                open.shift_remove(&who);
                waiting.remove(&who);
            }
            ReportKind::Wait { who, gate } => {
                waiting.insert(who.clone(), gate.clone());
            }
            ReportKind::Open { gate } => {
                opened.insert(gate.clone());
            }
            ReportKind::Await { .. } | ReportKind::Construct { .. } => {}
        }
    }
    let on = |who: &str| {
        waiting
            .get(who)
            .filter(|g| !opened.contains(*g))
            .map(|g| format!("waiting on gate {g}"))
    };
    // Steps (one at most: the main thread runs them), then tasks and callbacks in program
    // order, so that the reason does not depend on which process reported first.
    let position = |begun: &Begun| -> (u8, usize) {
        let step_at = |id: &str| {
            program
                .steps
                .iter()
                .position(|s| s.explicit_id() == Some(id))
        };
        match begun {
            Begun::Step(id) => (0, step_at(id).unwrap_or(usize::MAX)),
            Begun::Task(id) => (
                1,
                task_ids(program)
                    .iter()
                    .position(|t| t == id)
                    .unwrap_or(usize::MAX),
            ),
            Begun::Callback(step, _) => (2, step_at(step).unwrap_or(usize::MAX)),
        }
    };
    let mut open: Vec<(String, Begun)> = open.into_iter().collect();
    open.sort_by_key(|(_, begun)| position(begun));
    open.iter()
        .map(|(who, begun)| match begun {
            Begun::Step(id) => {
                let op = crate::spec::describe::step(program, id)
                    .map(operation)
                    .unwrap_or_else(|| "unknown step".to_owned());
                format!("{id} ({op}, started)")
            }
            Begun::Task(id) => match on(who) {
                Some(w) => format!("task {id} ({w})"),
                None => format!("task {id} (started)"),
            },
            Begun::Callback(step, kind) => {
                let kind = kind.replace('_', " ");
                match on(who) {
                    Some(w) => format!("{kind} of {step} ({w})"),
                    None => format!("{kind} of {step} (started)"),
                }
            }
        })
        .collect()
}

/// Something that reported its beginning.
enum Begun {
    Step(String),
    Task(String),
    /// A callback: its step and kind (`callback`, `error_callback`).
    Callback(String, String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::{Event, Origin};
    use crate::protocol::Outcome;
    use crate::spec::load::{Suite, load_str};
    use std::path::Path;

    fn program() -> Program {
        let yaml = "format: 1
area: blocking
cases:
  - id: X-1
    claim: c.
    cite: [{test: t}]
    tags: [contract]
    gates: {g1: manual, g2: manual}
    steps:
      - apply_async: {id: h1, task: {id: t1, returns: 1}, callback: {wait: [g2]}}
      - apply_async: {id: h2, task: {id: t2, wait: [g1], returns: 2}}
      - get: {of: h1}
      - get: {of: h2}
      - open: {gate: g1}
    expect: {steps: {s4: {returned: 2}}}
";
        let mut suite = Suite::default();
        load_str(Path::new("t.yaml"), yaml, &mut suite);
        assert!(suite.errors.is_empty(), "{:?}", suite.errors);
        suite.cases.remove(0).program
    }

    fn history(kinds: Vec<ReportKind>) -> History {
        let events = kinds
            .into_iter()
            .enumerate()
            .map(|(seq, kind)| Event {
                seq: seq as u64,
                origin: Origin::Runner,
                kind,
            })
            .collect();
        History {
            events,
            ..History::default()
        }
    }

    fn call(step: &str) -> ReportKind {
        ReportKind::Call {
            step: step.into(),
            op: String::new(),
        }
    }

    fn ret(step: &str) -> ReportKind {
        ReportKind::Return {
            step: step.into(),
            outcome: Outcome::Returned(serde_json::Value::Null),
        }
    }

    #[test]
    fn a_hang_names_the_step_that_never_returned_and_the_held_task() {
        let p = program();
        let h = history(vec![
            call("h1"),
            ret("h1"),
            call("h2"),
            ret("h2"),
            ReportKind::Start { task: "t1".into() },
            ReportKind::End {
                task: "t1".into(),
                outcome: Outcome::Returned(serde_json::json!(1)),
            },
            ReportKind::Start { task: "t2".into() },
            ReportKind::Wait {
                who: "t2".into(),
                gate: "g1".into(),
            },
            ReportKind::Callback {
                step: "h1".into(),
                kind: "callback".into(),
                arg: serde_json::json!(1),
            },
            ReportKind::Wait {
                who: "h1.callback".into(),
                gate: "g2".into(),
            },
            call("s3"),
        ]);
        assert_eq!(
            pending(&p, &h),
            vec![
                "s3 (get on h1, started)",
                "task t2 (waiting on gate g1)",
                "callback of h1 (waiting on gate g2)",
            ]
        );
        let fault = DriverFault::Timeout {
            after_ms: 20_000,
            stderr: String::new(),
        };
        assert_eq!(
            fault_reason(&fault, &p, &h),
            "no answer within the liveness guard (20.0 s); process group killed; pending: s3 (get \
             on h1, started), task t2 (waiting on gate g1), callback of h1 (waiting on gate g2)"
        );
    }

    #[test]
    fn an_open_gate_is_not_waited_on_and_other_faults_keep_their_summary() {
        let p = program();
        let h = history(vec![
            ReportKind::Start { task: "t2".into() },
            ReportKind::Wait {
                who: "t2".into(),
                gate: "g1".into(),
            },
            ReportKind::Open { gate: "g1".into() },
        ]);
        assert_eq!(pending(&p, &h), vec!["task t2 (started)"]);
        let crash = DriverFault::ExitedEarly {
            stderr: String::new(),
        };
        assert_eq!(fault_reason(&crash, &p, &h), crash.summary());
        let fault = DriverFault::Timeout {
            after_ms: 1000,
            stderr: String::new(),
        };
        assert!(fault_reason(&fault, &p, &History::default()).ends_with(
            "; nothing reported: the driver hung before or while constructing the pool"
        ));
        let constructed = history(vec![ReportKind::Construct {
            outcome: Outcome::Returned(serde_json::Value::Null),
        }]);
        assert!(
            fault_reason(&fault, &p, &constructed)
                .ends_with("; nothing pending: every step called had returned")
        );
    }

    #[test]
    fn a_long_list_is_cut_and_counted() {
        let p = program();
        let starts = (0..20)
            .map(|i| ReportKind::Start {
                task: format!("a-task-with-a-long-name-{i:02}"),
            })
            .collect();
        let fault = DriverFault::Timeout {
            after_ms: 20_000,
            stderr: String::new(),
        };
        let reason = fault_reason(&fault, &p, &history(starts));
        assert!(reason.len() <= 300, "{reason}");
        assert!(reason.ends_with(" (started), 17 more"), "{reason}");
    }
}
