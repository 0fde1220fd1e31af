//! Rewriting operations on handles: `get`/`wait` (blocking only where the result will
//! come, with the short timeout only where it cannot), `ready`/`successful` (preceded by a
//! `wait()` where the result is complete but not yet known to be), and `next`/`collect`
//! on iterators (kept only where every item they take is certain).

use super::model::{Model, NextOutcome, PoolState, SHORT_TIMEOUT};
use crate::spec::{OnHandle, Step};

impl Model {
    pub(super) fn get_or_wait(&mut self, step: &Step, h: &OnHandle) {
        let Some(i) = self.resolve(&h.of, false) else {
            return;
        };
        let fates = self.settle();
        let handle = &self.handles[i];
        let complete = self.handle_complete(handle, &fates);
        let timeout = if handle.known_ready {
            h.timeout
        } else if self.state == PoolState::Terminated {
            // Results in flight when the pool was terminated may or may not have arrived.
            return;
        } else if complete {
            None
        } else if self.timeouts {
            Some(SHORT_TIMEOUT)
        } else {
            return;
        };
        let on = OnHandle {
            id: None,
            of: handle.step.clone(),
            timeout,
        };
        self.push(match step {
            Step::Get(_) => Step::Get(on),
            _ => Step::Wait(on),
        });
        if complete && timeout.is_none() {
            self.learn_ready(i);
        }
        if matches!(step, Step::Get(_)) && self.handles[i].known_ready {
            self.handles[i].got = true;
        }
    }

    pub(super) fn ready_or_successful(&mut self, step: &Step, h: &OnHandle) {
        let Some(i) = self.resolve(&h.of, false) else {
            return;
        };
        let fates = self.settle();
        let handle = &self.handles[i];
        let of = handle.step.clone();
        if !handle.known_ready {
            if self.state == PoolState::Terminated {
                return;
            }
            if self.handle_complete(handle, &fates) {
                // Complete but perhaps not yet delivered: make it known first.
                self.push(Step::Wait(OnHandle {
                    id: None,
                    of: of.clone(),
                    timeout: None,
                }));
                self.learn_ready(i);
            }
        }
        let on = OnHandle {
            id: None,
            of,
            timeout: None,
        };
        self.push(match step {
            Step::Ready(_) => Step::Ready(on),
            _ => Step::Successful(on),
        });
    }

    /// `next` (one item) or `collect` (items until `StopIteration` or an exception) on an
    /// iterator, kept only when every item it takes is certain; a `next` that can only
    /// time out gets the short timeout.
    pub(super) fn consume(&mut self, h: &OnHandle, all: bool) {
        let Some(i) = self.resolve(&h.of, true) else {
            return;
        };
        if self.state == PoolState::Terminated {
            return;
        }
        let fates = self.settle();
        let mut handle = self.handles[i].clone();
        let mut learned = Vec::new();
        let mut timeout = None;
        loop {
            let before = (
                handle.pos,
                handle.partial,
                handle.consumed.clone(),
                handle.dead,
            );
            let (outcome, units) = self.next_outcome(&mut handle, &fates);
            match outcome {
                NextOutcome::Certain => {}
                // A chunked iterator is a generator: next(timeout) is a CPython quirk there.
                NextOutcome::Blocked if !all && !handle.chunked && self.timeouts => {
                    timeout = Some(SHORT_TIMEOUT);
                    break;
                }
                NextOutcome::Blocked | NextOutcome::Racy => return,
            }
            let raised = units.iter().any(|&u| self.unit_fails(u, &fates));
            learned.extend(units);
            // StopIteration changes nothing; an exception ends `list()`.
            let stopped = before
                == (
                    handle.pos,
                    handle.partial,
                    handle.consumed.clone(),
                    handle.dead,
                );
            if !all || stopped || raised {
                break;
            }
        }
        let on = OnHandle {
            id: None,
            of: handle.step.clone(),
            timeout,
        };
        self.handles[i] = handle;
        for u in learned {
            self.learn_unit(u, &fates);
        }
        self.push(if all {
            Step::Collect(on)
        } else {
            Step::Next(on)
        });
    }
}
