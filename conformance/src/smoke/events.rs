//! The checks of an answered run: did every report reach the coordinator (one function per
//! kind of report a driver can leave out), and, only when they did, does the observation
//! satisfy the case?

use super::diff::expectation_diff;
use super::finding::{Finding, Mistake};
use crate::coordinator::{Event, History};
use crate::expect::first_mismatch;
use crate::observe::{observe, task_ids};
use crate::protocol::ReportKind;
use crate::spec::LoadedCase;

/// Checks one answered run: were its reports there, and does its observation satisfy the
/// case? Reporting problems come first; a case is judged only when they are absent.
pub fn diagnose_run(lc: &LoadedCase, history: &History, socket: &str) -> Vec<Finding> {
    let id = Some(lc.id());
    let events = &history.events;
    if events.is_empty() && history.violations.is_empty() {
        return vec![no_reports(id, socket)];
    }
    let findings: Vec<Finding> = [
        violations(id, &history.violations),
        unreported_steps(lc, events),
        unreported_tasks(lc, events),
        unreported_callbacks(id, events),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !findings.is_empty() {
        return findings;
    }
    failed_case(lc, history).into_iter().collect()
}

/// Not one report reached the coordinator.
fn no_reports(id: Option<&str>, socket: &str) -> Finding {
    Finding::new(
        Mistake::NoReports,
        id,
        format!(
            "the driver answered `done`, but your driver did not report to the coordinator \
             socket given in the run message (\"coordinator\": \"{socket}\"): not one \
             `call`, `start` or any other report arrived. Every process and thread of the \
             implementation (the main thread around each step, the tasks in the workers, \
             the callbacks) must connect to that Unix socket, send one JSON report per \
             line tagged with the run's `token`, and read each acknowledgement before \
             going on (PROTOCOL.md §4). Reports with another token are refused with \
             {{\"ok\":false,\"reason\":\"case over\"}} and not recorded."
        ),
    )
}

/// Reports the coordinator refused.
fn violations(id: Option<&str>, violations: &[String]) -> Option<Finding> {
    if violations.is_empty() {
        return None;
    }
    Some(
        Finding::new(
            Mistake::ProtocolViolation,
            id,
            format!(
                "{} report{} broke the coordinator protocol and {} refused with ok:false. \
                 A report is one JSON object per line: `token`, `pid`, `thread`, `event` \
                 and the event's fields (PROTOCOL.md §4.1); `wait` and `open` must name a \
                 gate of the case.",
                violations.len(),
                if violations.len() == 1 { "" } else { "s" },
                if violations.len() == 1 { "was" } else { "were" },
            ),
        )
        .with_details(violations.iter().take(5).cloned()),
    )
}

/// Steps: a `call` and a `return` each, in order, naming the right operation.
fn unreported_steps(lc: &LoadedCase, events: &[Event]) -> Option<Finding> {
    let id = Some(lc.id());
    let mut step_problems = Vec::new();
    for step in &lc.program.steps {
        let step_id = step.explicit_id().unwrap_or_default();
        let op = step.op();
        let calls: Vec<&str> = events
            .iter()
            .filter_map(|e| match &e.kind {
                ReportKind::Call { step, op } if step == step_id => Some(op.as_str()),
                _ => None,
            })
            .collect();
        let returns = events
            .iter()
            .filter(|e| matches!(&e.kind, ReportKind::Return { step, .. } if step == step_id))
            .count();
        let name = format!("step `{step_id}` ({op})");
        match (calls.len(), returns) {
            (0, 0) => step_problems.push(format!("{name}: neither `call` nor `return` came")),
            (0, _) => step_problems.push(format!("{name}: `return` came without a `call`")),
            (_, 0) => step_problems.push(format!("{name}: `call` came but no `return`")),
            (1, 1) => {}
            (c, r) => step_problems.push(format!(
                "{name}: reported {c} `call` and {r} `return` (one each expected)"
            )),
        }
        if let Some(wrong) = calls.iter().find(|o| **o != op) {
            step_problems.push(format!(
                "{name}: its `call` says \"op\": \"{wrong}\", but the step is `{op}`"
            ));
        }
    }
    if step_problems.is_empty() {
        return None;
    }
    Some(
        Finding::new(
            Mistake::StepNotReported,
            id,
            "steps were not reported as the protocol requires. The driver's main thread \
             sends {\"event\":\"call\",\"step\":<id>,\"op\":<op>} before each step and \
             {\"event\":\"return\",\"step\":<id>,\"outcome\":{...}} after it, also when \
             the operation raised (the outcome is then {\"raised\":{\"type\",\"message\"}}), \
             and reads the acknowledgement of each (PROTOCOL.md §4.1, §5 rule 1).",
        )
        .with_details(step_problems),
    )
}

/// Tasks: a `start` and an `end` (or `exit`) each.
fn unreported_tasks(lc: &LoadedCase, events: &[Event]) -> Option<Finding> {
    let id = Some(lc.id());
    let mut task_problems = Vec::new();
    for task in task_ids(&lc.program) {
        let count = |f: &dyn Fn(&ReportKind) -> bool| events.iter().filter(|e| f(&e.kind)).count();
        let starts = count(&|k| matches!(k, ReportKind::Start { task: t } if *t == task));
        let ends = count(
            &|k| matches!(k, ReportKind::End { task: t, .. } | ReportKind::Exit { task: t, .. } if *t == task),
        );
        match (starts, ends) {
            (0, 0) => task_problems.push(format!("task `{task}`: neither `start` nor `end` came")),
            (0, _) => task_problems.push(format!("task `{task}`: `end` came without a `start`")),
            (_, 0) => task_problems.push(format!("task `{task}`: `start` came but no `end`")),
            _ => {}
        }
    }
    if task_problems.is_empty() {
        return None;
    }
    Some(
        Finding::new(
            Mistake::TaskNotReported,
            id,
            "tasks were not reported as the protocol requires. The function the pool runs \
             for a task (inside the worker) reports {\"event\":\"start\",\"task\":<id>} \
             first thing and {\"event\":\"end\",\"task\":<id>,\"outcome\":{...}} just \
             before returning or raising, over its own connection to the run's \
             coordinator socket, with the run's token (README §4, PROTOCOL.md §4.1). A \
             task that never reports usually did not get the socket path and token: pass \
             them to the worker along with the task.",
        )
        .with_details(task_problems),
    )
}

/// Callbacks: every `callback` is followed by its `callback_done`.
fn unreported_callbacks(id: Option<&str>, events: &[Event]) -> Option<Finding> {
    let mut callback_problems = Vec::new();
    for e in events {
        if let ReportKind::Callback { step, kind, .. } = &e.kind {
            let done = events.iter().any(|d| {
                d.seq > e.seq
                    && matches!(&d.kind, ReportKind::CallbackDone { step: s, kind: k, .. } if s == step && k == kind)
            });
            if !done {
                callback_problems.push(format!(
                    "step `{step}`: `{kind}` came but no `callback_done` with \"kind\": \"{kind}\""
                ));
            }
        }
    }
    if callback_problems.is_empty() {
        return None;
    }
    Some(
        Finding::new(
            Mistake::CallbackNotReported,
            id,
            "callbacks were not reported as the protocol requires: a callback reports \
             `callback` (with its argument) on entry and `callback_done` before returning \
             or raising (README §5, PROTOCOL.md §4.1).",
        )
        .with_details(callback_problems),
    )
}

/// Everything was reported: judge the case.
fn failed_case(lc: &LoadedCase, history: &History) -> Option<Finding> {
    let id = Some(lc.id());
    let observation = observe(&lc.case, &lc.program, history);
    let value = serde_json::to_value(&observation).unwrap_or_default();
    let reason = first_mismatch(&lc.case.expect, &value)?;
    Some(
        Finding::new(
            Mistake::CaseFailed,
            id,
            format!(
                "the case ran and every report arrived, but the observation does not \
                 satisfy the case: {reason}. The case claims: {} The diff below shows \
                 the expected values against what was observed (only the parts the case \
                 checks).",
                lc.case.claim
            ),
        )
        .with_details([expectation_diff(&lc.case.expect, &value)]),
    )
}
