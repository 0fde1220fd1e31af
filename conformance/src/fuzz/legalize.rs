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

use std::collections::{BTreeMap, BTreeSet};

use indexmap::IndexMap;

use super::generate::{Feature, RawProgram, SMALL_BLOB, mask};
use crate::spec::{
    AwaitCond, Case, Citation, GateRule, MapCall, OnHandle, OpenGate, Plain, Probe, Step, Submit,
    Task, TaskSpec, TimeoutTier,
};

/// The only timeout a legalized program uses: long enough to be a real wait, and only
/// ever where the outcome cannot be ready.
pub const SHORT_TIMEOUT: f64 = 0.05;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Done,
    Held,
    Queued,
    Skipped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PoolState {
    Running,
    Closed,
    Terminated,
}

#[derive(Debug, Clone)]
struct TaskM {
    gate: Option<String>,
    raises: bool,
    unserializable: bool,
}

impl TaskM {
    fn fails(&self) -> bool {
        self.raises || self.unserializable
    }
}

#[derive(Debug, Clone)]
struct Unit {
    tasks: Vec<usize>,
    /// A chunk of the map family: a raising task ends the whole chunk.
    chunk: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Apply,
    Map,
    Imap,
    ImapUnordered,
}

#[derive(Debug, Clone)]
struct HandleM {
    step: String,
    kind: Kind,
    units: Vec<usize>,
    /// The submission failed before reaching a worker (an unserializable argument).
    immediate_error: bool,
    known_ready: bool,
    /// A `get` showed its value (or error).
    got: bool,
    /// Iterators: chunks bigger than one item.
    chunked: bool,
    /// Ordered iterators: the next item's index.
    pos: usize,
    /// Unordered iterators: which units were consumed, and items left in the current one.
    consumed: Vec<bool>,
    partial: usize,
    /// A chunked iterator whose flattening generator raised: only `StopIteration` follows.
    dead: bool,
}

/// What the next `next()` of an iterator does, if it is forced.
enum NextOutcome {
    /// Returns or raises something certain (consuming the listed units).
    Certain,
    /// Nothing can arrive: a blocking call would hang, a timed one times out.
    Blocked,
    /// More than one result could come next.
    Racy,
}

struct Model {
    /// Whether a step may wait with a timeout for something that cannot come.
    timeouts: bool,
    processes: usize,
    maxtasksperchild: bool,
    with_block: bool,
    tasks: Vec<TaskM>,
    units: Vec<Unit>,
    open: BTreeSet<String>,
    state: PoolState,
    frozen: Option<Vec<Fate>>,
    handles: Vec<HandleM>,
    /// Tasks whose result is known to have reached the parent.
    delivered: BTreeSet<usize>,
    steps: Vec<Step>,
}

/// Legalizes a raw program into a case (expectations empty) with id `id`, leaving out the
/// `excluded` features.
pub fn legalize(raw: &RawProgram, id: &str, excluded: &BTreeSet<Feature>) -> Case {
    let raw = &mask(raw, excluded);
    let mut model = Model {
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
    };
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

fn step_tasks(step: &Step) -> Vec<Task> {
    step.task_specs().iter().map(TaskSpec::to_task).collect()
}

/// CPython's default chunksize for `map`/`map_async`/`starmap`/`starmap_async`.
fn default_chunksize(len: usize, processes: usize) -> usize {
    if len == 0 {
        return 0;
    }
    let (size, extra) = (len / (processes * 4), len % (processes * 4));
    size + usize::from(extra > 0)
}

impl Model {
    fn next_id(&self) -> String {
        format!("s{}", self.steps.len() + 1)
    }

    fn push(&mut self, step: Step) {
        self.steps.push(step);
    }

    /// Every task's settled fate (see the module docs).
    fn settle(&self) -> Vec<Fate> {
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

    fn unit_complete(&self, u: usize, fates: &[Fate]) -> bool {
        self.units[u]
            .tasks
            .iter()
            .all(|&t| matches!(fates[t], Fate::Done | Fate::Skipped))
    }

    fn unit_fails(&self, u: usize, fates: &[Fate]) -> bool {
        self.units[u]
            .tasks
            .iter()
            .any(|&t| fates[t] == Fate::Done && self.tasks[t].fails())
    }

    fn handle_complete(&self, h: &HandleM, fates: &[Fate]) -> bool {
        h.immediate_error || h.units.iter().all(|&u| self.unit_complete(u, fates))
    }

    /// Marks what a returned blocking `get`/`wait` of handle `i` proves.
    fn learn_ready(&mut self, i: usize) {
        let fates = self.settle();
        let h = &mut self.handles[i];
        h.known_ready = true;
        let units = h.units.clone();
        for u in units {
            self.learn_unit(u, &fates);
        }
    }

    fn learn_unit(&mut self, u: usize, fates: &[Fate]) {
        for &t in &self.units[u].tasks {
            if fates[t] == Fate::Done {
                self.delivered.insert(t);
            }
        }
    }

    fn resolve(&self, of: &str, iterators: bool) -> Option<usize> {
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
    fn iterator_rank(&self, i: usize) -> usize {
        self.handles[..i]
            .iter()
            .filter(|h| matches!(h.kind, Kind::Imap | Kind::ImapUnordered))
            .count()
    }

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
            Step::Await(_) => {}
        }
    }

    fn add_task(&mut self, task: &Task) -> usize {
        self.tasks.push(TaskM {
            gate: task.wait.first().cloned(),
            raises: task.raises.is_some(),
            unserializable: task.unserializable,
        });
        self.tasks.len() - 1
    }

    fn submit(&mut self, step: &Step, s: &Submit) {
        let id = self.next_id();
        let mut s = s.clone();
        s.id = None;
        // One gate per task keeps the held-task accounting exact.
        let mut task = s.task.to_task();
        task.wait.truncate(1);
        task.id = None;
        s.task = TaskSpec::Full(task.clone());
        let blocking = matches!(step, Step::Apply(_));
        if self.state != PoolState::Running {
            // Rejected with ValueError("Pool not running"): no handle, no task runs.
            self.push(if blocking {
                Step::Apply(s)
            } else {
                Step::ApplyAsync(s)
            });
            return;
        }
        let units = if s.unserializable_arg {
            Vec::new()
        } else {
            let t = self.add_task(&task);
            self.units.push(Unit {
                tasks: vec![t],
                chunk: false,
            });
            vec![self.units.len() - 1]
        };
        let mut handle = HandleM {
            step: id,
            kind: Kind::Apply,
            units,
            immediate_error: s.unserializable_arg,
            known_ready: false,
            got: false,
            chunked: false,
            pos: 0,
            consumed: Vec::new(),
            partial: 0,
            dead: false,
        };
        let fates = self.settle();
        if blocking && self.handle_complete(&handle, &fates) {
            handle.known_ready = true;
            self.handles.push(handle);
            let i = self.handles.len() - 1;
            self.learn_ready(i);
            // A blocking call hands out no handle.
            self.handles.pop();
            self.push(Step::Apply(s));
        } else {
            self.handles.push(handle);
            self.push(Step::ApplyAsync(s));
        }
    }

    fn map_family(&mut self, step: &Step, m: &MapCall) {
        let id = self.next_id();
        let mut m = m.clone();
        m.id = None;
        let star = matches!(step, Step::Starmap(_) | Step::StarmapAsync(_));
        let iterator = matches!(step, Step::Imap(_) | Step::ImapUnordered(_));
        let mut failing = 0;
        // A value that does not serialize fails its chunk with MaybeEncodingError, whose
        // message shows the repr of every value of the chunk: byte strings stay small there.
        let unsendable = m.tasks.iter().any(|t| t.to_task().unserializable);
        for spec in &mut m.tasks {
            let mut task = spec.to_task();
            task.id = None;
            task.wait.truncate(1);
            if let Some(b) = task.blob.as_mut().filter(|_| unsendable) {
                b.size = b.size.min(SMALL_BLOB);
            }
            if task.raises.is_some() || task.unserializable {
                failing += 1;
                // Which of two failing chunks a MapResult reports depends on arrival order.
                if failing > 1 && !iterator {
                    task.raises = None;
                    task.unserializable = false;
                    task.returns = Some(serde_json::json!(0));
                }
            }
            *spec = TaskSpec::Full(task);
        }
        if star {
            m.args.resize(m.tasks.len(), Vec::new());
        } else {
            m.args.clear();
        }
        if iterator {
            m.callback = None;
            m.error_callback = None;
        }
        let rebuild = |m: MapCall, async_form: bool| -> Step {
            match (step, async_form) {
                (Step::Map(_) | Step::MapAsync(_), false) => Step::Map(m),
                (Step::Map(_) | Step::MapAsync(_), true) => Step::MapAsync(m),
                (Step::Starmap(_) | Step::StarmapAsync(_), false) => Step::Starmap(m),
                (Step::Starmap(_) | Step::StarmapAsync(_), true) => Step::StarmapAsync(m),
                (Step::Imap(_), _) => Step::Imap(m),
                _ => Step::ImapUnordered(m),
            }
        };
        let blocking = matches!(step, Step::Map(_) | Step::Starmap(_));
        if self.state != PoolState::Running {
            self.push(rebuild(m, !blocking));
            return;
        }
        if m.then_raise.is_some() && !iterator {
            // `list(iterable)` raises before any task is sent: the call itself raises, at
            // once, whatever the gates; no task runs, no handle, no callback.
            self.push(rebuild(m, !blocking));
            return;
        }
        let mut tasks: Vec<Task> = m.tasks.iter().map(TaskSpec::to_task).collect();
        let chunksize = match (m.chunksize, iterator) {
            (Some(c), _) => c.max(1) as usize,
            (None, true) => 1,
            (None, false) => default_chunksize(tasks.len(), self.processes),
        };
        // imap's task handler reads a raising iterable lazily: the chunks read whole run,
        // the one being read when it raised is lost, and the exception becomes one more
        // task (`_helper_reraises_exception`) that a worker runs and that fails in position.
        let reraise = m.then_raise.is_some();
        if reraise {
            tasks.truncate(tasks.len() / chunksize * chunksize);
        }
        // CPython computes the default from the workers alive at that instant; while
        // maxtasksperchild replaces them there can be fewer (even none: ZeroDivisionError,
        // gh-82980). Make the size explicit there.
        // It divides even for an empty iterable.
        if self.maxtasksperchild && m.chunksize.is_none() && !iterator {
            m.chunksize = Some(chunksize.max(1) as u32);
        }
        let mut ids = Vec::new();
        for t in &tasks {
            ids.push(self.add_task(t));
        }
        let mut units = Vec::new();
        if chunksize > 0 {
            for chunk in ids.chunks(chunksize) {
                self.units.push(Unit {
                    tasks: chunk.to_vec(),
                    chunk: true,
                });
                units.push(self.units.len() - 1);
            }
        }
        if reraise {
            // No gate, always fails; not a task of the program (it reports nothing).
            self.tasks.push(TaskM {
                gate: None,
                raises: true,
                unserializable: false,
            });
            self.units.push(Unit {
                tasks: vec![self.tasks.len() - 1],
                chunk: true,
            });
            units.push(self.units.len() - 1);
        }
        let kind = match step {
            Step::Imap(_) => Kind::Imap,
            Step::ImapUnordered(_) => Kind::ImapUnordered,
            _ => Kind::Map,
        };
        let consumed = vec![false; units.len()];
        let handle = HandleM {
            step: id,
            kind,
            units,
            immediate_error: false,
            // An empty MapResult is ready at once and never calls its callbacks.
            known_ready: kind == Kind::Map && tasks.is_empty(),
            got: false,
            chunked: chunksize > 1,
            pos: 0,
            consumed,
            partial: 0,
            dead: false,
        };
        let fates = self.settle();
        let complete = self.handle_complete(&handle, &fates);
        self.handles.push(handle);
        if blocking && complete {
            let i = self.handles.len() - 1;
            self.learn_ready(i);
            self.handles.pop();
            self.push(rebuild(m, false));
        } else {
            // Not blocking, or blocking on a task that would never finish: the async form.
            self.push(rebuild(m, true));
        }
    }

    fn get_or_wait(&mut self, step: &Step, h: &OnHandle) {
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

    fn ready_or_successful(&mut self, step: &Step, h: &OnHandle) {
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

    /// Decides the next `next()` of iterator `i`, applying it to `handle` if certain.
    fn next_outcome(&self, handle: &mut HandleM, fates: &[Fate]) -> (NextOutcome, Vec<usize>) {
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

    /// `next` (one item) or `collect` (items until `StopIteration` or an exception) on an
    /// iterator, kept only when every item it takes is certain; a `next` that can only
    /// time out gets the short timeout.
    fn consume(&mut self, h: &OnHandle, all: bool) {
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

    fn join(&mut self) {
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
    fn terminate(&mut self, exit_with: bool) {
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
    fn epilogue(&mut self) {
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::fuzz::generate::raw_program;
    use crate::spec::{ErrorSpec, PoolParams, Processes, Scalar, program::compile};
    use indexmap::IndexMap;

    fn held(gate: &str, value: i64) -> TaskSpec {
        TaskSpec::Full(Task {
            wait: vec![gate.to_owned()],
            returns: Some(serde_json::json!(value)),
            ..Task::default()
        })
    }

    fn free(value: i64) -> TaskSpec {
        TaskSpec::Full(Task {
            returns: Some(serde_json::json!(value)),
            ..Task::default()
        })
    }

    fn raising() -> TaskSpec {
        TaskSpec::Full(Task {
            raises: Some(ErrorSpec {
                kind: "ValueError".into(),
                message: "boom".into(),
            }),
            ..Task::default()
        })
    }

    fn submit(task: TaskSpec) -> Submit {
        Submit {
            id: None,
            task,
            args: Vec::new(),
            unserializable_arg: false,
            unserializable_func: false,
            kwargs: IndexMap::new(),
            blob_arg: None,
            callback: None,
            error_callback: None,
        }
    }

    fn map_call(tasks: Vec<TaskSpec>) -> MapCall {
        MapCall {
            id: None,
            tasks,
            args: Vec::new(),
            chunksize: None,
            then_raise: None,
            unserializable_func: false,
            callback: None,
            error_callback: None,
        }
    }

    fn on(n: usize, timeout: Option<f64>) -> OnHandle {
        OnHandle {
            id: None,
            of: format!("h{n}"),
            timeout,
        }
    }

    fn legal(processes: u32, steps: Vec<Step>) -> Vec<Step> {
        let raw = RawProgram {
            pool: PoolParams {
                processes: Processes::Count(processes.into()),
                ..PoolParams::default()
            },
            steps,
        };
        let case = legalize(&raw, "T", &BTreeSet::new());
        compile(&case).expect("legalized programs compile");
        case.steps
    }

    fn ops(steps: &[Step]) -> Vec<&'static str> {
        steps.iter().map(Step::op).collect()
    }

    #[test]
    fn get_of_a_held_task_times_out_and_get_of_a_free_one_waits() {
        let steps = legal(
            2,
            vec![
                Step::ApplyAsync(submit(held("g1", 1))),
                Step::ApplyAsync(submit(free(2))),
                Step::Get(on(0, None)),
                Step::Get(on(1, Some(SHORT_TIMEOUT))),
            ],
        );
        assert!(
            matches!(&steps[2], Step::Get(h) if h.of == "s1" && h.timeout == Some(SHORT_TIMEOUT))
        );
        assert!(matches!(&steps[3], Step::Get(h) if h.of == "s2" && h.timeout.is_none()));
        // The epilogue opens the gate, closes, joins, and shows s1's value.
        assert_eq!(ops(&steps[4..]), ["open", "close", "join", "get"]);
    }

    #[test]
    fn a_task_queued_behind_held_workers_cannot_be_waited_for() {
        // One worker, held by s1: s2's task never starts, so blocking `apply` becomes async
        // and its `get` times out.
        let steps = legal(
            1,
            vec![
                Step::ApplyAsync(submit(held("g1", 1))),
                Step::Apply(submit(free(2))),
                Step::Get(on(1, None)),
            ],
        );
        assert_eq!(ops(&steps[..3]), ["apply_async", "apply_async", "get"]);
        assert!(matches!(&steps[2], Step::Get(h) if h.of == "s2" && h.timeout.is_some()));
    }

    #[test]
    fn terminate_waits_for_quiescence_first() {
        let steps = legal(
            2,
            vec![
                Step::ApplyAsync(submit(held("g1", 1))),
                Step::ApplyAsync(submit(free(2))),
                Step::ApplyAsync(submit(held("g1", 3))),
                Step::Terminate(Plain::default()),
            ],
        );
        // s2's result is waited for (it must not be in flight when workers are killed),
        // then both held tasks must be waiting on g1.
        assert_eq!(
            ops(&steps),
            [
                "apply_async",
                "apply_async",
                "apply_async",
                "wait",
                "await",
                "terminate"
            ]
        );
        assert!(matches!(&steps[3], Step::Wait(h) if h.of == "s2" && h.timeout.is_none()));
        assert!(
            matches!(&steps[4], Step::Await(a) if a.gate.as_deref() == Some("g1") && a.waiting == Some(2))
        );
    }

    #[test]
    fn terminate_is_dropped_while_a_finished_result_may_be_in_flight() {
        // s1-1 finishes, but its MapResult is still held by s1-0: its value may be on its
        // way when the workers would be killed.
        let steps = legal(
            2,
            vec![
                Step::MapAsync(map_call(vec![held("g1", 1), free(2)])),
                Step::Terminate(Plain::default()),
            ],
        );
        assert!(!ops(&steps).contains(&"terminate"), "{:?}", ops(&steps));
    }

    #[test]
    fn imap_unordered_next_is_kept_only_when_one_result_can_come() {
        let racy = legal(
            2,
            vec![
                Step::ImapUnordered(map_call(vec![free(1), free(2)])),
                Step::Next(on(0, None)),
            ],
        );
        assert_eq!(ops(&racy[..2]), ["imap_unordered", "close"]);
        let forced = legal(
            2,
            vec![
                Step::ImapUnordered(map_call(vec![held("g1", 1), free(2)])),
                Step::Next(on(0, Some(SHORT_TIMEOUT))),
                Step::Next(on(0, None)),
            ],
        );
        // The first `next` can only return s1-1's value (without a timeout); the second
        // can only time out.
        assert!(matches!(&forced[1], Step::Next(h) if h.timeout.is_none()));
        assert!(matches!(&forced[2], Step::Next(h) if h.timeout == Some(SHORT_TIMEOUT)));
    }

    #[test]
    fn a_map_reports_one_failure_at_most() {
        let steps = legal(
            2,
            vec![Step::MapAsync(map_call(vec![raising(), raising()]))],
        );
        let Step::MapAsync(m) = &steps[0] else {
            panic!("map_async expected, got {:?}", steps[0]);
        };
        let tasks: Vec<Task> = m.tasks.iter().map(TaskSpec::to_task).collect();
        assert!(tasks[0].raises.is_some());
        assert!(tasks[1].raises.is_none());
    }

    #[test]
    fn replaced_workers_get_an_explicit_chunksize() {
        let raw = RawProgram {
            pool: PoolParams {
                processes: Processes::Count(2),
                maxtasksperchild: Some(Scalar::Int(1)),
                ..PoolParams::default()
            },
            steps: vec![Step::MapAsync(map_call((0..9).map(free).collect()))],
        };
        let case = legalize(&raw, "T", &BTreeSet::new());
        assert!(matches!(&case.steps[0], Step::MapAsync(m) if m.chunksize == Some(2)));
    }

    fn raising_iterable(mut m: MapCall, chunksize: Option<u32>) -> MapCall {
        m.chunksize = chunksize;
        m.then_raise = Some(ErrorSpec {
            kind: "KeyError".into(),
            message: "k".into(),
        });
        m
    }

    #[test]
    fn a_raising_iterable_raises_at_the_call_in_map_and_in_position_in_imap() {
        // map: the call raises at once (no handle, no task), so a later `get` has nothing
        // to refer to, and nothing is held.
        let steps = legal(
            1,
            vec![
                Step::Map(raising_iterable(map_call(vec![held("g1", 1)]), None)),
                Step::MapAsync(raising_iterable(map_call(vec![free(1)]), None)),
                Step::Get(on(0, None)),
            ],
        );
        assert_eq!(ops(&steps), ["map", "map_async", "close", "join"]);
        // imap, chunksize 2, 5 items: 4 run, the 5th is lost; `collect` is certain (4
        // values, then the exception), and so is the `next` after it (StopIteration).
        let steps = legal(
            2,
            vec![
                Step::Imap(raising_iterable(
                    map_call((0..5).map(free).collect()),
                    Some(2),
                )),
                Step::Collect(on(0, None)),
                Step::Next(on(0, None)),
            ],
        );
        // (The epilogue collects what is left: nothing.)
        assert_eq!(
            ops(&steps),
            ["imap", "collect", "next", "close", "join", "collect"]
        );
        // With both workers held, the exception's task is queued behind them: a `next`
        // after the first free item can only time out.
        let steps = legal(
            2,
            vec![
                Step::Imap(raising_iterable(
                    map_call(vec![free(0), held("g1", 1), held("g2", 2)]),
                    None,
                )),
                Step::Next(on(0, None)),
                Step::Next(on(0, None)),
            ],
        );
        assert!(matches!(&steps[1], Step::Next(h) if h.timeout.is_none()));
        assert!(matches!(&steps[2], Step::Next(h) if h.timeout == Some(SHORT_TIMEOUT)));
        // imap_unordered: the exception arrives whenever its task ran, so a `next` is kept
        // only where it is the one result that can come.
        let steps = legal(
            1,
            vec![
                Step::ImapUnordered(raising_iterable(map_call(vec![]), Some(3))),
                Step::Next(on(0, None)),
                Step::Next(on(0, None)),
            ],
        );
        assert_eq!(ops(&steps[..3]), ["imap_unordered", "next", "next"]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Excluded features never appear, whatever is drawn.
        #[test]
        fn excluded_features_never_appear(raw in raw_program(10)) {
            let all: BTreeSet<Feature> = Feature::ALL.into_iter().collect();
            let case = legalize(&raw, "X", &all);
            prop_assert!(compile(&case).is_ok());
            prop_assert!(case.pool.maxtasksperchild.is_none() && case.pool.initializer.is_none());
            prop_assert!(case.pool.initargs.is_empty());
            prop_assert!(!case.pool.with_block);
            for step in &case.steps {
                prop_assert!(!matches!(step, Step::Terminate(_) | Step::ExitWith(_)));
                match step {
                    Step::Get(h) | Step::Wait(h) | Step::Next(h) => prop_assert!(h.timeout.is_none()),
                    Step::Apply(s) | Step::ApplyAsync(s) => {
                        prop_assert!(!s.unserializable_arg);
                        prop_assert!(s.callback.is_none() && s.error_callback.is_none());
                        prop_assert!(s.kwargs.is_empty() && s.blob_arg.is_none());
                    }
                    Step::MapAsync(m) | Step::StarmapAsync(m) => {
                        prop_assert!(m.callback.is_none() && m.error_callback.is_none());
                        prop_assert!(m.then_raise.is_none());
                    }
                    Step::Map(m) | Step::Starmap(m) | Step::Imap(m) | Step::ImapUnordered(m) => {
                        prop_assert!(m.then_raise.is_none());
                    }
                    _ => {}
                }
                for t in step_tasks(step) {
                    prop_assert!(t.raises.is_none() && !t.unserializable && !t.echo);
                    prop_assert!(!t.echo_all && !t.echo_initargs && t.blob.is_none());
                }
            }
        }

        /// Whatever is drawn, the legalized program is a valid case that ends with nothing
        /// in flight, and every timeout is the short one on a call that cannot be ready.
        #[test]
        fn every_legalized_program_is_a_valid_case(raw in raw_program(10)) {
            let case = legalize(&raw, "P", &BTreeSet::new());
            prop_assert!(compile(&case).is_ok(), "{:?}", compile(&case).err());
            // Every pool is joined or terminated; later steps are rejected or read results.
            let end = case.steps.iter().rposition(|s| matches!(s.op(), "join" | "terminate" | "exit_with"));
            prop_assert!(end.is_some(), "neither joined nor terminated");
            for step in &case.steps[end.unwrap_or_default()..] {
                prop_assert!(!matches!(step.op(), "open" | "await"), "{} after the end", step.op());
            }
            for step in &case.steps {
                match step {
                    Step::Get(h) | Step::Wait(h) | Step::Next(h) => {
                        prop_assert!(h.timeout.is_none() || h.timeout == Some(SHORT_TIMEOUT));
                    }
                    Step::Ready(h) | Step::Successful(h) | Step::Collect(h) => {
                        prop_assert!(h.timeout.is_none());
                    }
                    _ => {}
                }
            }
        }
    }
}
