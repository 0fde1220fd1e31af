//! Rewriting the pool's lifecycle: `join` only where it returns, `terminate` (or leaving
//! the `with` block) only at quiescence, and the epilogue that opens every gate, closes and
//! joins so that nothing is left in flight for the teardown.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{Fate, Kind, Model, PoolState};
use crate::spec::{AwaitCond, OnHandle, OpenGate, Plain, Step};

impl Model {
    pub(super) fn join(&mut self) {
        match self.state {
            // ValueError("Pool is still running"): certain.
            PoolState::Running => self.push(Step::Join(Plain::default())),
            PoolState::Terminated => self.push(Step::Join(Plain::default())),
            PoolState::Closed => {
                let fates = self.settle();
                if fates.iter().any(|f| matches!(f, Fate::Held | Fate::Queued)) {
                    return;
                }
                self.push(Step::Join(Plain::default()));
                for i in 0..self.handles.len() {
                    if self.handles[i].kind == Kind::Apply || self.handles[i].kind == Kind::Map {
                        self.learn_ready(i);
                    }
                }
            }
        }
    }

    /// `terminate` (or leaving the `with` block) at quiescence.
    ///
    /// Quiescence here means more than "every task that will finish has finished": its
    /// result must have reached the parent too. CPython's workers hold the result queue's
    /// lock while they send; a worker terminated in that window leaves it held, and
    /// `terminate` then hangs forever joining the task handler (found by this fuzzer: one
    /// program in about 5,000 hung before this rule). So every complete result is first
    /// waited for, and a terminate that would leave a finished task's result in flight
    /// (part of a result still held by a gate, or an iterator's unread items) is dropped.
    pub(super) fn terminate(&mut self, exit_with: bool) {
        if self.state != PoolState::Terminated {
            let fates = self.settle();
            // Complete results are waited for: their values and callbacks (also an unsendable
            // argument's error callback, which has no task) must not race the kill.
            let complete: Vec<usize> = (0..self.handles.len())
                .filter(|&i| {
                    let h = &self.handles[i];
                    matches!(h.kind, Kind::Apply | Kind::Map)
                        && !h.known_ready
                        && self.handle_complete(h, &fates)
                })
                .collect();
            let mut delivered = self.delivered.clone();
            for &i in &complete {
                for &u in &self.handles[i].units {
                    delivered.extend(self.units[u].tasks.iter().copied());
                }
            }
            let in_flight = fates
                .iter()
                .enumerate()
                .any(|(t, f)| *f == Fate::Done && !delivered.contains(&t));
            if in_flight {
                return;
            }
            for i in complete {
                self.push(Step::Wait(OnHandle {
                    id: None,
                    of: self.handles[i].step.clone(),
                    timeout: None,
                }));
                self.learn_ready(i);
            }
            // Every held task is waiting on its gate (it has started, and holds its worker).
            let mut held: BTreeMap<String, u32> = BTreeMap::new();
            for (fate, task) in fates.iter().zip(&self.tasks) {
                if let (Fate::Held, Some(g)) = (fate, &task.gate) {
                    *held.entry(g.clone()).or_default() += 1;
                }
            }
            for (gate, waiting) in held {
                self.push(Step::Await(AwaitCond {
                    id: None,
                    event: None,
                    gate: Some(gate),
                    waiting: Some(waiting),
                }));
            }
            self.frozen = Some(fates);
            self.state = PoolState::Terminated;
        }
        self.push(if exit_with {
            Step::ExitWith(Plain::default())
        } else {
            Step::Terminate(Plain::default())
        });
    }

    /// Opens every gate, closes and joins: nothing is left in flight for the teardown.
    pub(super) fn epilogue(&mut self) {
        if self.state == PoolState::Terminated {
            return;
        }
        let fates = self.settle();
        let needed: BTreeSet<String> = (0..self.tasks.len())
            .filter(|&t| matches!(fates[t], Fate::Held | Fate::Queued))
            .filter_map(|t| self.tasks[t].gate.clone())
            .filter(|g| !self.open.contains(g))
            .collect();
        for gate in needed {
            self.open.insert(gate.clone());
            self.push(Step::Open(OpenGate { id: None, gate }));
        }
        if self.state == PoolState::Running {
            self.push(Step::Close(Plain::default()));
            self.state = PoolState::Closed;
        }
        self.join();
        // Everything is delivered now: show every value no step has shown yet.
        for i in 0..self.handles.len() {
            let h = &self.handles[i];
            let of = h.step.clone();
            match h.kind {
                Kind::Apply | Kind::Map if !h.got => {
                    self.push(Step::Get(OnHandle {
                        id: None,
                        of,
                        timeout: None,
                    }));
                    self.handles[i].got = true;
                }
                Kind::Imap => self.consume(
                    &OnHandle {
                        id: None,
                        of: format!("h{}", self.iterator_rank(i)),
                        timeout: None,
                    },
                    true,
                ),
                _ => {}
            }
        }
        if self.with_block {
            self.push(Step::ExitWith(Plain::default()));
        }
    }
}
