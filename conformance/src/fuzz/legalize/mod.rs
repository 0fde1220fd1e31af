//! From a raw generated program to a case whose every observation is forced.
//!
//! The legalizer walks the raw steps with a model of the pool: a FIFO queue of work units
//! (an `apply`'s task, or one chunk of the map family), `processes` workers, and which gates
//! are open. From that it knows, for every task, its *settled fate*: what it will have done
//! once nothing more can move (`Done`; `Held` on a closed gate, keeping its worker;
//! `Queued` behind held units; `Skipped` because an earlier task of its chunk raised). The
//! settled fate depends only on the queue and the open gates, never on timing.
//!
//! A step is kept only when what it observes is the same in every interleaving that can
//! lead to it; otherwise it is rewritten into one that is, or dropped:
//! - a blocking call (`get`, `wait`, `next`, `collect`, `join`, `apply`, `map`) only where
//!   everything it waits for will complete; a blocking `apply`/`map`/`starmap` that would
//!   not becomes its `_async` form;
//! - a timeout only where the outcome cannot be ready (the call then times out, however
//!   slow or fast the implementation is); where the outcome is certain, the timeout is
//!   removed, so a slow implementation is never mistaken for a divergent one;
//! - `ready`/`successful` on a result that is complete but not yet known to be is preceded
//!   by a `wait()`; `imap_unordered` steps only where exactly one result can come next;
//! - `terminate` only at quiescence: every finished task's result delivered to the parent
//!   (complete results are waited for first), every held task waiting on its gate (an
//!   `await` makes sure);
//! - an explicit chunksize for the `map` family when workers get replaced (CPython's
//!   default depends on how many are alive at that instant);
//! - at most one failing task per `map`-family call (which error is reported first would
//!   otherwise depend on arrival order);
//! - the program ends by opening every gate, `close` and `join`, so nothing is left in
//!   flight when the driver tears the pool down.
//!
//! CPython quirks that hang (worker exits, raising callbacks) are never generated.

use std::collections::BTreeSet;

use indexmap::IndexMap;

mod handles;
mod lifecycle;
mod model;
mod submit;

use super::raw::{Feature, RawProgram, mask};
use crate::spec::{AwaitCond, Case, Citation, GateRule, OpenGate, Plain, Probe, Step, TimeoutTier};
use model::{Model, PoolState, step_tasks};

pub use model::SHORT_TIMEOUT;

/// Legalizes a raw program into a case (expectations empty) with id `id`, leaving out the
/// `excluded` features.
pub fn legalize(raw: &RawProgram, id: &str, excluded: &BTreeSet<Feature>) -> Case {
    let raw = &mask(raw, excluded);
    let mut model = Model::new(raw, excluded);
    for step in &raw.steps {
        model.step(step);
    }
    model.epilogue();

    let mut gates: BTreeSet<String> = BTreeSet::new();
    for step in &model.steps {
        match step {
            Step::Open(o) => {
                gates.insert(o.gate.clone());
            }
            Step::Await(AwaitCond { gate: Some(g), .. }) => {
                gates.insert(g.clone());
            }
            _ => {
                for t in step_tasks(step) {
                    gates.extend(t.wait.iter().cloned());
                }
            }
        }
    }
    let has_callbacks = model.steps.iter().any(|s| match s {
        Step::ApplyAsync(s) => s.callback.is_some() || s.error_callback.is_some(),
        Step::MapAsync(m) | Step::StarmapAsync(m) => {
            m.callback.is_some() || m.error_callback.is_some()
        }
        _ => false,
    });
    // CPython calls the error callback of an argument that cannot be sent from its task
    // handler thread, not the result handler: then two threads run callbacks, and whether
    // they overlap is up to the scheduler.
    let two_callback_threads = model.steps.iter().any(
        |s| matches!(s, Step::ApplyAsync(s) if s.unserializable_arg && s.error_callback.is_some()),
    );
    Case {
        id: id.to_owned(),
        claim: "A generated program (cargo xtask fuzz).".to_owned(),
        cite: vec![Citation::Source("pool.py:Pool".to_owned())],
        tags: vec!["contract".to_owned(), "fuzz".to_owned()],
        requires: Vec::new(),
        versions: IndexMap::new(),
        applies_to: Vec::new(),
        oracle: Default::default(),
        pool: raw.pool.clone(),
        gates: gates
            .into_iter()
            .map(|g| (g, GateRule::Manual))
            .collect::<IndexMap<_, _>>(),
        steps: model.steps,
        // Where callbacks run (parent, never the main thread, one at a time) is forced.
        observe: if has_callbacks && !two_callback_threads {
            vec![Probe::CallbackContext]
        } else {
            Vec::new()
        },
        expect: serde_json::json!({}),
        timeout: TimeoutTier::Normal,
    }
}

impl Model {
    /// Rewrites one raw step (see the module docs), appending what is kept.
    fn step(&mut self, step: &Step) {
        match step {
            Step::Apply(s) | Step::ApplyAsync(s) => self.submit(step, s),
            Step::Map(m)
            | Step::MapAsync(m)
            | Step::Imap(m)
            | Step::ImapUnordered(m)
            | Step::Starmap(m)
            | Step::StarmapAsync(m) => self.map_family(step, m),
            Step::Get(h) | Step::Wait(h) => self.get_or_wait(step, h),
            Step::Ready(h) | Step::Successful(h) => self.ready_or_successful(step, h),
            Step::Next(h) => self.consume(h, false),
            Step::Collect(h) => self.consume(h, true),
            Step::Close(_) => {
                if self.state == PoolState::Running {
                    self.state = PoolState::Closed;
                }
                self.push(Step::Close(Plain::default()));
            }
            Step::Join(_) => self.join(),
            Step::Terminate(_) => self.terminate(false),
            Step::ExitWith(_) => self.terminate(self.with_block),
            // Not drawn: entering is a construction-time matter, and dropping the pool a
            // garbage-collection one, that the cases cover.
            Step::Enter(_) | Step::Drop(_) => {}
            Step::Open(o) => {
                if self.state != PoolState::Terminated && !self.open.contains(&o.gate) {
                    self.open.insert(o.gate.clone());
                    self.push(Step::Open(OpenGate {
                        id: None,
                        gate: o.gate.clone(),
                    }));
                }
            }
            // Neither is generated: the fuzzer compares with CPython, which has no extensions.
            Step::Await(_) | Step::Extension(_) => {}
        }
    }
}

#[cfg(test)]
mod tests;
