//! The legalizer's model of the pool: a FIFO queue of work units (an `apply`'s task, or
//! one chunk of the map family), `processes` workers, the open gates and the pool's state,
//! and the handles the program holds. Its queries (a task's settled fate, whether a result
//! is complete, what the next `next()` does) are what the step rewriting decides by.

use std::collections::BTreeSet;

use crate::fuzz::raw::{Feature, RawProgram};
use crate::spec::{Step, Task, TaskSpec};

/// The only timeout a legalized program uses: long enough to be a real wait, and only
/// ever where the outcome cannot be ready.
pub const SHORT_TIMEOUT: f64 = 0.05;

/// What a task will have done once nothing more can move (see the module docs of
/// `legalize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    Done,
    Held,
    Queued,
    Skipped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PoolState {
    Running,
    Closed,
    Terminated,
}

#[derive(Debug, Clone)]
pub(super) struct TaskM {
    pub(super) gate: Option<String>,
    pub(super) raises: bool,
    pub(super) unserializable: bool,
}

impl TaskM {
    pub(super) fn fails(&self) -> bool {
        self.raises || self.unserializable
    }
}

#[derive(Debug, Clone)]
pub(super) struct Unit {
    pub(super) tasks: Vec<usize>,
    /// A chunk of the map family: a raising task ends the whole chunk.
    pub(super) chunk: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Apply,
    Map,
    Imap,
    ImapUnordered,
}

#[derive(Debug, Clone)]
pub(super) struct HandleM {
    pub(super) step: String,
    pub(super) kind: Kind,
    pub(super) units: Vec<usize>,
    /// The submission failed before reaching a worker (an unserializable argument).
    pub(super) immediate_error: bool,
    pub(super) known_ready: bool,
    /// A `get` showed its value (or error).
    pub(super) got: bool,
    /// Iterators: chunks bigger than one item.
    pub(super) chunked: bool,
    /// Ordered iterators: the next item's index.
    pub(super) pos: usize,
    /// Unordered iterators: which units were consumed, and items left in the current one.
    pub(super) consumed: Vec<bool>,
    pub(super) partial: usize,
    /// A chunked iterator whose flattening generator raised: only `StopIteration` follows.
    pub(super) dead: bool,
}

/// What the next `next()` of an iterator does, if it is forced.
pub(super) enum NextOutcome {
    /// Returns or raises something certain (consuming the listed units).
    Certain,
    /// Nothing can arrive: a blocking call would hang, a timed one times out.
    Blocked,
    /// More than one result could come next.
    Racy,
}

/// The pool as the legalizer sees it after the steps kept so far, and those steps.
pub(super) struct Model {
    /// Whether a step may wait with a timeout for something that cannot come.
    pub(super) timeouts: bool,
    pub(super) processes: usize,
    pub(super) maxtasksperchild: bool,
    pub(super) with_block: bool,
    pub(super) tasks: Vec<TaskM>,
    pub(super) units: Vec<Unit>,
    pub(super) open: BTreeSet<String>,
    pub(super) state: PoolState,
    pub(super) frozen: Option<Vec<Fate>>,
    pub(super) handles: Vec<HandleM>,
    /// Tasks whose result is known to have reached the parent.
    pub(super) delivered: BTreeSet<usize>,
    pub(super) steps: Vec<Step>,
}

impl Model {
    /// An empty model of the pool `raw` builds, before its first step.
    pub(super) fn new(raw: &RawProgram, excluded: &BTreeSet<Feature>) -> Model {
        Model {
            timeouts: !excluded.contains(&Feature::Timeouts),
            processes: raw.pool.processes.count().unwrap_or(1).clamp(1, 64) as usize,
            maxtasksperchild: raw.pool.maxtasksperchild.is_some(),
            with_block: raw.pool.with_block,
            tasks: Vec::new(),
            units: Vec::new(),
            open: BTreeSet::new(),
            state: PoolState::Running,
            frozen: None,
            handles: Vec::new(),
            delivered: BTreeSet::new(),
            steps: Vec::new(),
        }
    }

    pub(super) fn next_id(&self) -> String {
        format!("s{}", self.steps.len() + 1)
    }

    pub(super) fn push(&mut self, step: Step) {
        self.steps.push(step);
    }

    /// Every task's settled fate (see the module docs).
    pub(super) fn settle(&self) -> Vec<Fate> {
        if let Some(frozen) = &self.frozen {
            return frozen.clone();
        }
        let mut fates = vec![Fate::Queued; self.tasks.len()];
        let mut held = 0;
        for unit in &self.units {
            if held >= self.processes {
                break;
            }
            let (mut blocked, mut aborted) = (false, false);
            for &t in &unit.tasks {
                let task = &self.tasks[t];
                fates[t] = if aborted {
                    Fate::Skipped
                } else if blocked {
                    Fate::Queued
                } else if task.gate.as_ref().is_some_and(|g| !self.open.contains(g)) {
                    blocked = true;
                    held += 1;
                    Fate::Held
                } else {
                    aborted = task.raises && unit.chunk;
                    Fate::Done
                };
            }
        }
        fates
    }

    pub(super) fn unit_complete(&self, u: usize, fates: &[Fate]) -> bool {
        self.units[u]
            .tasks
            .iter()
            .all(|&t| matches!(fates[t], Fate::Done | Fate::Skipped))
    }

    pub(super) fn unit_fails(&self, u: usize, fates: &[Fate]) -> bool {
        self.units[u]
            .tasks
            .iter()
            .any(|&t| fates[t] == Fate::Done && self.tasks[t].fails())
    }

    pub(super) fn handle_complete(&self, h: &HandleM, fates: &[Fate]) -> bool {
        h.immediate_error || h.units.iter().all(|&u| self.unit_complete(u, fates))
    }

    /// Marks what a returned blocking `get`/`wait` of handle `i` proves.
    pub(super) fn learn_ready(&mut self, i: usize) {
        let fates = self.settle();
        let h = &mut self.handles[i];
        h.known_ready = true;
        let units = h.units.clone();
        for u in units {
            self.learn_unit(u, &fates);
        }
    }

    pub(super) fn learn_unit(&mut self, u: usize, fates: &[Fate]) {
        for &t in &self.units[u].tasks {
            if fates[t] == Fate::Done {
                self.delivered.insert(t);
            }
        }
    }

    pub(super) fn resolve(&self, of: &str, iterators: bool) -> Option<usize> {
        let n: usize = of.trim_start_matches('h').parse().ok()?;
        let candidates: Vec<usize> = self
            .handles
            .iter()
            .enumerate()
            .filter(|(_, h)| matches!(h.kind, Kind::Imap | Kind::ImapUnordered) == iterators)
            .map(|(i, _)| i)
            .collect();
        if candidates.is_empty() {
            return None;
        }
        Some(candidates[n % candidates.len()])
    }

    /// The placeholder rank `resolve` maps to iterator `i`.
    pub(super) fn iterator_rank(&self, i: usize) -> usize {
        self.handles[..i]
            .iter()
            .filter(|h| matches!(h.kind, Kind::Imap | Kind::ImapUnordered))
            .count()
    }

    pub(super) fn add_task(&mut self, task: &Task) -> usize {
        self.tasks.push(TaskM {
            gate: task.wait.first().cloned(),
            raises: task.raises.is_some(),
            unserializable: task.unserializable,
        });
        self.tasks.len() - 1
    }

    /// Decides the next `next()` of iterator `i`, applying it to `handle` if certain.
    pub(super) fn next_outcome(
        &self,
        handle: &mut HandleM,
        fates: &[Fate],
    ) -> (NextOutcome, Vec<usize>) {
        if handle.dead {
            return (NextOutcome::Certain, Vec::new());
        }
        match handle.kind {
            Kind::Imap => {
                let sizes: Vec<usize> = handle
                    .units
                    .iter()
                    .map(|&u| self.units[u].tasks.len())
                    .collect();
                let total: usize = sizes.iter().sum();
                if handle.pos >= total {
                    return (NextOutcome::Certain, Vec::new());
                }
                let (mut u, mut start) = (0, 0);
                while start + sizes[u] <= handle.pos {
                    start += sizes[u];
                    u += 1;
                }
                let unit = handle.units[u];
                if !self.unit_complete(unit, fates) {
                    return (NextOutcome::Blocked, Vec::new());
                }
                if handle.chunked && self.unit_fails(unit, fates) {
                    handle.dead = true;
                } else {
                    handle.pos += 1;
                }
                (NextOutcome::Certain, vec![unit])
            }
            Kind::ImapUnordered => {
                if handle.partial > 0 {
                    handle.partial -= 1;
                    return (NextOutcome::Certain, Vec::new());
                }
                let left: Vec<usize> = (0..handle.units.len())
                    .filter(|&k| !handle.consumed[k])
                    .collect();
                if left.is_empty() {
                    return (NextOutcome::Certain, Vec::new());
                }
                let ready: Vec<usize> = left
                    .into_iter()
                    .filter(|&k| self.unit_complete(handle.units[k], fates))
                    .collect();
                match ready.as_slice() {
                    [] => (NextOutcome::Blocked, Vec::new()),
                    [k] => {
                        let unit = handle.units[*k];
                        handle.consumed[*k] = true;
                        if self.unit_fails(unit, fates) {
                            handle.dead = handle.chunked;
                        } else {
                            handle.partial = self.units[unit].tasks.len() - 1;
                        }
                        (NextOutcome::Certain, vec![unit])
                    }
                    _ => (NextOutcome::Racy, Vec::new()),
                }
            }
            _ => (NextOutcome::Racy, Vec::new()),
        }
    }
}

pub(super) fn step_tasks(step: &Step) -> Vec<Task> {
    step.task_specs().iter().map(TaskSpec::to_task).collect()
}
