//! Whether a coordinator report fits the running program: every id it names exists with the
//! right kind, and it comes in causal order after what it presupposes.
//!
//! Only what no conforming driver can send is refused, so that a pool that misbehaves (a
//! callback called twice, a task run twice) is still observed and judged by the case (FAIL),
//! not refused as a broken driver (ERROR). What can never happen: an id the program does not
//! have, a task's `end` or `exit` without a run in progress (a run is a `start` not yet ended),
//! a step's `return` without its `call` or a second `call` or `return` of one step (the main
//! thread runs each step once), a `callback_done` without its `callback`.

use std::collections::BTreeMap;

use crate::protocol::ReportKind;
use crate::spec::IdKind;

/// Why a report does not fit: the violation recorded in the history, and the `reason` of the
/// `ok: false` acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misfit {
    pub violation: String,
    pub reason: &'static str,
}

fn unknown(violation: String) -> Option<Misfit> {
    Some(Misfit {
        violation,
        reason: "unknown id",
    })
}

fn out_of_order(violation: String) -> Option<Misfit> {
    Some(Misfit {
        violation,
        reason: "out of order",
    })
}

const CALLBACK_KINDS: [&str; 2] = ["callback", "error_callback"];

/// Checks `report` against the program's `ids`, given how many times each event reference
/// (`a.start`, `s1.call`, `m.callback`) was recorded so far.
pub fn misfit(
    ids: &BTreeMap<String, IdKind>,
    count: impl Fn(&str) -> u32,
    report: &ReportKind,
) -> Option<Misfit> {
    let step = |id: &str| matches!(ids.get(id), Some(IdKind::Step { .. }));
    let with_callbacks = |id: &str| {
        matches!(
            ids.get(id),
            Some(IdKind::Step {
                callbacks: true,
                ..
            })
        )
    };
    let task = |id: &str| matches!(ids.get(id), Some(IdKind::Task | IdKind::Initializer));
    match report {
        ReportKind::Call { step: id, .. } | ReportKind::Return { step: id, .. } => {
            let event = if matches!(report, ReportKind::Call { .. }) {
                "call"
            } else {
                "return"
            };
            if !step(id) {
                return unknown(format!("`{event}` of step `{id}`, which the program lacks"));
            }
            let (calls, returns) = (count(&format!("{id}.call")), count(&format!("{id}.return")));
            match event {
                "call" if calls > 0 => out_of_order(format!("a second `call` of step `{id}`")),
                "return" if returns > 0 => {
                    out_of_order(format!("a second `return` of step `{id}`"))
                }
                "return" if calls == 0 => {
                    out_of_order(format!("`return` of step `{id}` before its `call`"))
                }
                _ => None,
            }
        }
        ReportKind::Start { task: id } => {
            if !task(id) {
                unknown(format!("`start` of task `{id}`, which the program lacks"))
            } else {
                None
            }
        }
        ReportKind::End { task: id, .. } | ReportKind::Exit { task: id, .. } => {
            let event = if matches!(report, ReportKind::End { .. }) {
                "end"
            } else {
                "exit"
            };
            if !task(id) {
                return unknown(format!("`{event}` of task `{id}`, which the program lacks"));
            }
            let runs = count(&format!("{id}.start"));
            let ended = count(&format!("{id}.end")) + count(&format!("{id}.exit"));
            if ended < runs {
                None
            } else if runs == 0 {
                out_of_order(format!("`{event}` of task `{id}` before its `start`"))
            } else {
                out_of_order(format!(
                    "a second `end` or `exit` for one run of task `{id}` (`{event}`)"
                ))
            }
        }
        ReportKind::Callback { step: id, kind, .. }
        | ReportKind::CallbackDone { step: id, kind, .. } => {
            let done = matches!(report, ReportKind::CallbackDone { .. });
            let event = if done { "callback_done" } else { "callback" };
            if !with_callbacks(id) {
                return unknown(format!(
                    "`{event}` of step `{id}`, which has no callbacks in the program"
                ));
            }
            if !CALLBACK_KINDS.contains(&kind.as_str()) {
                return unknown(format!(
                    "`{event}` of kind `{kind}` (neither callback nor error_callback)"
                ));
            }
            let entered = count(&format!("{id}.{kind}"));
            let left = count(&format!("{id}.{kind}_done"));
            if done && left >= entered {
                out_of_order(format!(
                    "`callback_done` of step `{id}` ({kind}) without a `callback` in progress"
                ))
            } else {
                None
            }
        }
        ReportKind::Wait { who, .. } => {
            let known = match who.split_once('.') {
                Some((id, kind)) => with_callbacks(id) && CALLBACK_KINDS.contains(&kind),
                None => task(who),
            };
            if !known {
                unknown(format!(
                    "`wait` by `{who}`, neither a task nor a callback of the program"
                ))
            } else {
                None
            }
        }
        ReportKind::Await {
            until_event: Some(reference),
            ..
        } => {
            let known = reference.rsplit_once('.').is_some_and(|(id, event)| {
                ids.get(id).is_some_and(|k| k.events().contains(&event))
            });
            if !known {
                unknown(format!(
                    "`await` of `{reference}`, an event the program cannot have"
                ))
            } else {
                None
            }
        }
        ReportKind::Await { .. } | ReportKind::Open { .. } | ReportKind::Construct { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    fn ids() -> BTreeMap<String, IdKind> {
        let mut ids = BTreeMap::new();
        let step = |callbacks| IdKind::Step {
            handle: None,
            callbacks,
        };
        ids.insert("s1".into(), step(false));
        ids.insert("m".into(), step(true));
        ids.insert("a".into(), IdKind::Task);
        ids.insert("init".into(), IdKind::Initializer);
        ids.insert("g".into(), IdKind::Gate);
        ids
    }

    /// Feeds `reports` in order, counting the ones that fit, and returns each one's misfit.
    fn run(reports: &[serde_json::Value]) -> Vec<Option<String>> {
        let ids = ids();
        let mut counts: HashMap<String, u32> = HashMap::new();
        reports
            .iter()
            .map(|r| {
                let kind: ReportKind = serde_json::from_value(r.clone()).unwrap();
                let found = misfit(&ids, |r| counts.get(r).copied().unwrap_or(0), &kind);
                if found.is_none() {
                    let reference = match &kind {
                        ReportKind::Call { step, .. } => Some(format!("{step}.call")),
                        ReportKind::Return { step, .. } => Some(format!("{step}.return")),
                        ReportKind::Start { task } => Some(format!("{task}.start")),
                        ReportKind::End { task, .. } => Some(format!("{task}.end")),
                        ReportKind::Exit { task, .. } => Some(format!("{task}.exit")),
                        ReportKind::Callback { step, kind, .. } => Some(format!("{step}.{kind}")),
                        ReportKind::CallbackDone { step, kind, .. } => {
                            Some(format!("{step}.{kind}_done"))
                        }
                        _ => None,
                    };
                    if let Some(r) = reference {
                        *counts.entry(r).or_default() += 1;
                    }
                }
                found.map(|m| format!("{}: {}", m.reason, m.violation))
            })
            .collect()
    }

    #[test]
    fn a_conforming_sequence_fits() {
        let ok = run(&[
            json!({"event":"construct","outcome":{"returned":null}}),
            json!({"event":"start","task":"init"}),
            json!({"event":"end","task":"init","outcome":{"returned":null}}),
            json!({"event":"start","task":"init"}),
            json!({"event":"call","step":"m","op":"map_async"}),
            json!({"event":"start","task":"a"}),
            json!({"event":"wait","who":"a","gate":"g"}),
            json!({"event":"return","step":"m","outcome":{"handle":"result"}}),
            json!({"event":"exit","task":"a","code":3}),
            json!({"event":"start","task":"a"}),
            json!({"event":"end","task":"a","outcome":{"returned":1}}),
            json!({"event":"callback","step":"m","kind":"callback","arg":[1]}),
            json!({"event":"wait","who":"m.callback","gate":"g"}),
            json!({"event":"callback","step":"m","kind":"callback","arg":[1]}),
            json!({"event":"callback_done","step":"m","kind":"callback"}),
            json!({"event":"callback_done","step":"m","kind":"callback"}),
            json!({"event":"await","until_event":"a.end"}),
            json!({"event":"await","gate":"nowhere"}),
            json!({"event":"open","gate":"g"}),
        ]);
        assert!(ok.iter().all(Option::is_none), "{ok:#?}");
    }

    #[test]
    fn unknown_ids_do_not_fit() {
        let found = run(&[
            json!({"event":"start","task":"zz"}),
            json!({"event":"call","step":"a","op":"apply"}),
            json!({"event":"callback","step":"s1","kind":"callback","arg":1}),
            json!({"event":"callback","step":"m","kind":"other","arg":1}),
            json!({"event":"wait","who":"s1.callback","gate":"g"}),
            json!({"event":"await","until_event":"g.start"}),
        ]);
        let found: Vec<String> = found.into_iter().map(Option::unwrap).collect();
        assert_eq!(
            found,
            [
                "unknown id: `start` of task `zz`, which the program lacks",
                "unknown id: `call` of step `a`, which the program lacks",
                "unknown id: `callback` of step `s1`, which has no callbacks in the program",
                "unknown id: `callback` of kind `other` (neither callback nor error_callback)",
                "unknown id: `wait` by `s1.callback`, neither a task nor a callback of the program",
                "unknown id: `await` of `g.start`, an event the program cannot have",
            ]
        );
    }

    #[test]
    fn events_out_of_causal_order_do_not_fit() {
        let found = run(&[
            json!({"event":"end","task":"a","outcome":{"returned":1}}),
            json!({"event":"return","step":"s1","outcome":{"returned":1}}),
            json!({"event":"call","step":"s1","op":"apply"}),
            json!({"event":"call","step":"s1","op":"apply"}),
            json!({"event":"return","step":"s1","outcome":{"returned":1}}),
            json!({"event":"return","step":"s1","outcome":{"returned":1}}),
            json!({"event":"start","task":"a"}),
            json!({"event":"end","task":"a","outcome":{"returned":1}}),
            json!({"event":"end","task":"a","outcome":{"returned":1}}),
            json!({"event":"callback_done","step":"m","kind":"callback"}),
        ]);
        let found: Vec<Option<&str>> = found.iter().map(Option::as_deref).collect();
        assert_eq!(
            found,
            [
                Some("out of order: `end` of task `a` before its `start`"),
                Some("out of order: `return` of step `s1` before its `call`"),
                None,
                Some("out of order: a second `call` of step `s1`"),
                None,
                Some("out of order: a second `return` of step `s1`"),
                None,
                None,
                Some("out of order: a second `end` or `exit` for one run of task `a` (`end`)"),
                Some(
                    "out of order: `callback_done` of step `m` (callback) without a `callback` in progress"
                ),
            ]
        );
    }
}
