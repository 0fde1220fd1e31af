//! Gates that can never open and `await` steps that can never return, by construction.
//!
//! Every event of a case depends on others: a task ends only after its gates opened, a gate
//! opens after the event its rule names (or when an `open` step runs, or when enough waiters
//! arrive), a step is called only after the step before it returned. Assuming the best of
//! every pool (any task may run at any time, a pool call may return at any time), the events
//! that can happen at all are the least fixpoint of those rules. A gate something waits on
//! that is not among them deadlocks every run of the case, whatever the implementation does:
//! a task waiting on a gate that opens after the task ends, a cycle of gates through tasks, a
//! barrier with fewer possible waiters than its size, a `manual` gate whose only `open` steps
//! come after an `await` that waits for the gate's own waiters. Only those are rejected: a
//! `manual` gate that no step opens holds its waiters on purpose, and what depends on the pool
//! (a task held behind a busy worker) is a fact the case may observe.

use std::collections::HashSet;

use super::locate::YamlPath;
use super::model::GateRule;
use super::program::{Located, Program, step_path};
use super::step::{AwaitCond, Step};
use super::task::TaskSpec;

/// A case that can never run to its end on any implementation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LivenessError {
    #[error("gate `{gate}` can never open: {why}")]
    NeverOpens { gate: String, why: String },
    #[error("step `{step}` can never return: {why}")]
    NeverReturns { step: String, why: String },
}

/// An event, or a point of the program, that is possible or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Node {
    Call(usize),
    Return(usize),
    /// A step's callback (`false`) or error callback (`true`) is invoked.
    Callback(usize, bool),
    CallbackDone(usize, bool),
    Start(usize),
    /// Task `t` has passed its first `j` gates and reports its wait on gate `j` (or ends).
    Reach(usize, usize),
    /// A task's first wait.
    Wait(usize),
    End(usize),
    Exit(usize),
    Open(usize),
}

struct TaskInfo {
    id: String,
    /// The submitting step; `None` for the initializer, which runs in every worker.
    step: Option<usize>,
    waits: Vec<usize>,
    exits: bool,
}

struct Graph<'a> {
    program: &'a Program,
    gates: Vec<(&'a String, &'a GateRule)>,
    tasks: Vec<TaskInfo>,
    /// Gate waits of each step's callback and error callback, when registered.
    callbacks: Vec<[Option<Vec<usize>>; 2]>,
    processes: u32,
}

const KINDS: [&str; 2] = ["callback", "error_callback"];

impl<'a> Graph<'a> {
    fn new(program: &'a Program) -> Graph<'a> {
        let gates: Vec<_> = program.gates.iter().collect();
        let gate_index = |name: &String| gates.iter().position(|(g, _)| *g == name);
        let mut tasks = Vec::new();
        let mut task = |t: &super::task::Task, step| {
            tasks.push(TaskInfo {
                id: t.id.clone().unwrap_or_default(),
                step,
                waits: t.wait.iter().filter_map(gate_index).collect(),
                exits: t.exit.is_some(),
            });
        };
        if let Some(init) = &program.pool.initializer {
            task(init, None);
        }
        let mut callbacks = Vec::new();
        for (i, step) in program.steps.iter().enumerate() {
            for spec in step.task_specs() {
                if let TaskSpec::Full(t) = spec {
                    task(t, Some(i));
                }
            }
            let (cb, ecb) = match step {
                Step::Apply(s) | Step::ApplyAsync(s) => (&s.callback, &s.error_callback),
                Step::Map(m)
                | Step::MapAsync(m)
                | Step::Imap(m)
                | Step::ImapUnordered(m)
                | Step::Starmap(m)
                | Step::StarmapAsync(m) => (&m.callback, &m.error_callback),
                _ => (&None, &None),
            };
            let waits = |c: &Option<super::task::Callback>| {
                c.as_ref()
                    .map(|c| c.wait.iter().filter_map(gate_index).collect())
            };
            callbacks.push([waits(cb), waits(ecb)]);
        }
        let processes = program
            .pool
            .processes
            .count()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(1)
            .max(1);
        Graph {
            program,
            gates,
            tasks,
            callbacks,
            processes,
        }
    }

    fn step_id(&self, i: usize) -> &str {
        self.program.steps[i].explicit_id().unwrap_or_default()
    }

    /// The node an event reference names (references were checked by `compile`).
    fn node_of(&self, reference: &str) -> Option<Node> {
        let (id, event) = reference.rsplit_once('.')?;
        if let Some(t) = self.tasks.iter().position(|t| t.id == id) {
            return match event {
                "start" => Some(Node::Start(t)),
                "wait" => Some(Node::Wait(t)),
                "end" => Some(Node::End(t)),
                "exit" => Some(Node::Exit(t)),
                _ => None,
            };
        }
        if let Some(g) = self.gates.iter().position(|(g, _)| *g == id) {
            return Some(Node::Open(g));
        }
        let s = (0..self.program.steps.len()).find(|&i| self.step_id(i) == id)?;
        match event {
            "call" => Some(Node::Call(s)),
            "return" => Some(Node::Return(s)),
            "callback" => Some(Node::Callback(s, false)),
            "callback_done" => Some(Node::CallbackDone(s, false)),
            "error_callback" => Some(Node::Callback(s, true)),
            "error_callback_done" => Some(Node::CallbackDone(s, true)),
            _ => None,
        }
    }

    /// How many waiters gate `g` can have at once, at best.
    fn waiters(&self, g: usize, done: &HashSet<Node>) -> u32 {
        let mut n: u32 = 0;
        for (t, task) in self.tasks.iter().enumerate() {
            if let Some(j) = task.waits.iter().position(|w| *w == g)
                && done.contains(&Node::Reach(t, j))
            {
                // The initializer runs once in every worker, however many there are.
                n = n.saturating_add(if task.step.is_none() { u32::MAX } else { 1 });
            }
        }
        for (s, pair) in self.callbacks.iter().enumerate() {
            for (k, waits) in pair.iter().enumerate() {
                let Some(waits) = waits else { continue };
                if let Some(j) = waits.iter().position(|w| *w == g)
                    && done.contains(&Node::Callback(s, k == 1))
                    && waits[..j].iter().all(|w| done.contains(&Node::Open(*w)))
                {
                    n = n.saturating_add(1);
                }
            }
        }
        n
    }

    fn barrier(&self, rule: &GateRule) -> Option<u32> {
        match rule {
            GateRule::WhenWaiting(count) => count.resolve(Some(self.processes)),
            _ => None,
        }
    }

    /// Whether `node` can happen, given the nodes known to be possible.
    fn holds(&self, node: Node, done: &HashSet<Node>) -> bool {
        let has = |n: Node| done.contains(&n);
        match node {
            Node::Call(0) => true,
            Node::Call(i) => has(Node::Return(i - 1)),
            Node::Return(i) => {
                has(Node::Call(i))
                    && match &self.program.steps[i] {
                        Step::Await(AwaitCond { event: Some(e), .. }) => {
                            self.node_of(e).is_some_and(has)
                        }
                        Step::Await(AwaitCond {
                            gate: Some(g),
                            waiting: Some(n),
                            ..
                        }) => self
                            .gates
                            .iter()
                            .position(|(name, _)| *name == g)
                            .is_some_and(|g| has(Node::Open(g)) || self.waiters(g, done) >= *n),
                        _ => true,
                    }
            }
            Node::Callback(s, k) => {
                has(Node::Call(s)) && self.callbacks[s][usize::from(k)].is_some()
            }
            Node::CallbackDone(s, k) => {
                has(Node::Callback(s, k))
                    && self.callbacks[s][usize::from(k)]
                        .iter()
                        .flatten()
                        .all(|g| has(Node::Open(*g)))
            }
            Node::Start(t) => self.tasks[t].step.is_none_or(|s| has(Node::Call(s))),
            Node::Reach(t, 0) => has(Node::Start(t)),
            Node::Reach(t, j) => {
                has(Node::Reach(t, j - 1)) && has(Node::Open(self.tasks[t].waits[j - 1]))
            }
            Node::Wait(t) => has(Node::Start(t)) && !self.tasks[t].waits.is_empty(),
            Node::End(t) | Node::Exit(t) => {
                let task = &self.tasks[t];
                task.exits == matches!(node, Node::Exit(_)) && has(Node::Reach(t, task.waits.len()))
            }
            Node::Open(g) => {
                let opened_by_step = self.program.steps.iter().enumerate().any(|(i, s)| {
                    matches!(s, Step::Open(o) if o.gate == *self.gates[g].0) && has(Node::Call(i))
                });
                opened_by_step
                    || match self.gates[g].1 {
                        GateRule::Manual => false,
                        GateRule::After(e) => self.node_of(e).is_some_and(has),
                        rule => self
                            .barrier(rule)
                            .is_some_and(|n| self.waiters(g, done) >= n),
                    }
            }
        }
    }

    fn nodes(&self) -> Vec<Node> {
        let mut nodes = Vec::new();
        for i in 0..self.program.steps.len() {
            nodes.extend([Node::Call(i), Node::Return(i)]);
            for k in [false, true] {
                nodes.extend([Node::Callback(i, k), Node::CallbackDone(i, k)]);
            }
        }
        for (t, task) in self.tasks.iter().enumerate() {
            nodes.extend([Node::Start(t), Node::Wait(t), Node::End(t), Node::Exit(t)]);
            nodes.extend((0..=task.waits.len()).map(|j| Node::Reach(t, j)));
        }
        nodes.extend((0..self.gates.len()).map(Node::Open));
        nodes
    }

    /// Every node that can happen: the least fixpoint of [`Graph::holds`].
    fn possible(&self) -> HashSet<Node> {
        let nodes = self.nodes();
        let mut done = HashSet::new();
        loop {
            let new: Vec<Node> = nodes
                .iter()
                .filter(|n| !done.contains(*n) && self.holds(**n, &done))
                .copied()
                .collect();
            if new.is_empty() {
                return done;
            }
            done.extend(new);
        }
    }
}

/// Why impossible nodes are impossible, in words, following one cause at a time.
struct Explain<'g, 'a> {
    graph: &'g Graph<'a>,
    done: &'g HashSet<Node>,
    seen: Vec<Node>,
    words: Vec<String>,
}

impl Explain<'_, '_> {
    /// Adds the clauses that say why `node` cannot happen, following one cause at a time; the
    /// first clause calls the node the error is about `it`.
    fn why(&mut self, node: Node) {
        if self.seen.contains(&node) {
            if let Some(last) = self.words.last_mut() {
                last.push_str(", which closes a cycle");
            }
            return;
        }
        let first = self.seen.is_empty();
        self.seen.push(node);
        let g = self.graph;
        let has = |n: Node| self.done.contains(&n);
        match node {
            Node::Open(i) => {
                let name = g.gates[i].0;
                let subject = if first {
                    "it".to_owned()
                } else {
                    format!("gate `{name}`")
                };
                let open_step = (0..g.program.steps.len())
                    .find(|s| matches!(&g.program.steps[*s], Step::Open(o) if o.gate == *name));
                match (g.gates[i].1, open_step) {
                    (GateRule::After(e), _) => {
                        self.words.push(format!("{subject} opens after `{e}`"));
                        if let Some(n) = g.node_of(e) {
                            self.why(n);
                        }
                    }
                    (GateRule::Manual, None) => self
                        .words
                        .push(format!("{subject} is `manual` and no `open` step opens it")),
                    (GateRule::Manual, Some(s)) => {
                        self.words.push(format!(
                            "{subject} is opened only by step `{}`",
                            g.step_id(s)
                        ));
                        self.why(Node::Call(s));
                    }
                    (rule, _) => self.words.push(format!(
                        "{subject} opens when {} wait on it at once, and at most {} ever can",
                        g.barrier(rule).unwrap_or_default(),
                        g.waiters(i, self.done)
                    )),
                }
            }
            Node::Call(i) => {
                if let Some(s) = (0..i).find(|s| !has(Node::Return(*s))) {
                    self.words.push(format!(
                        "step `{}` comes after step `{}`",
                        g.step_id(i),
                        g.step_id(s)
                    ));
                    self.why(Node::Return(s));
                }
            }
            Node::Return(i) => {
                let subject = if first {
                    "it".to_owned()
                } else {
                    format!("step `{}`", g.step_id(i))
                };
                match &g.program.steps[i] {
                    Step::Await(AwaitCond { event: Some(e), .. }) => {
                        self.words.push(format!("{subject} awaits `{e}`"));
                        if let Some(n) = g.node_of(e) {
                            self.why(n);
                        }
                    }
                    Step::Await(AwaitCond {
                        gate: Some(name),
                        waiting: Some(n),
                        ..
                    }) => {
                        self.words
                            .push(format!("{subject} awaits {n} waiters on gate `{name}`"));
                        if let Some(gi) = g.gates.iter().position(|(x, _)| *x == name) {
                            self.why(Node::Open(gi));
                        }
                    }
                    _ => self.why(Node::Call(i)),
                }
            }
            Node::Callback(s, k) => {
                let kind = KINDS[usize::from(k)];
                if g.callbacks[s][usize::from(k)].is_none() {
                    self.words
                        .push(format!("step `{}` registers no {kind}", g.step_id(s)));
                } else {
                    self.why(Node::Call(s));
                }
            }
            Node::CallbackDone(s, k) => {
                let waits = g.callbacks[s][usize::from(k)].clone().unwrap_or_default();
                if let Some(w) = waits.iter().find(|w| !has(Node::Open(**w))) {
                    self.words.push(format!(
                        "the {} of `{}` waits on gate `{}`",
                        KINDS[usize::from(k)],
                        g.step_id(s),
                        g.gates[*w].0
                    ));
                    self.why(Node::Open(*w));
                } else {
                    self.why(Node::Callback(s, k));
                }
            }
            Node::Start(t) | Node::Reach(t, _) | Node::Wait(t) | Node::End(t) | Node::Exit(t) => {
                self.task(node, t);
            }
        }
    }

    fn task(&mut self, node: Node, t: usize) {
        let g = self.graph;
        let task = &g.tasks[t];
        let id = &task.id;
        match node {
            Node::Wait(_) if task.waits.is_empty() => {
                self.words.push(format!("task `{id}` waits on no gate"));
                return;
            }
            Node::End(_) if task.exits => {
                self.words
                    .push(format!("task `{id}` exits, so it never reports `end`"));
                return;
            }
            Node::Exit(_) if !task.exits => {
                self.words.push(format!("task `{id}` never exits"));
                return;
            }
            _ => {}
        }
        if !self.done.contains(&Node::Start(t)) {
            if let Some(s) = task.step {
                self.words.push(format!(
                    "task `{id}` is submitted by step `{}`",
                    g.step_id(s)
                ));
                self.why(Node::Call(s));
            }
            return;
        }
        let blocked = task
            .waits
            .iter()
            .find(|w| !self.done.contains(&Node::Open(**w)));
        if let Some(w) = blocked {
            self.words.push(format!(
                "task `{id}` waits on gate `{}` first",
                g.gates[*w].0
            ));
            self.why(Node::Open(*w));
        }
    }
}

/// Rejects a case with a gate that something waits on (a task, a callback, the initializer,
/// an `await`, another gate's rule) but that can never open, or with an `await` step that can
/// never return.
pub fn check_liveness(program: &Program) -> Result<(), Box<Located<LivenessError>>> {
    let graph = Graph::new(program);
    let done = graph.possible();
    let root = YamlPath::default();
    let explain = |node: Node| {
        let mut e = Explain {
            graph: &graph,
            done: &done,
            seen: Vec::new(),
            words: Vec::new(),
        };
        e.why(node);
        e.words.join("; ")
    };
    for (i, (name, rule)) in graph.gates.iter().enumerate() {
        // A `manual` gate that no step opens holds its waiters on purpose (spec/README.md §7:
        // a task may be provably held until the case ends); any other gate was meant to open.
        let held = **rule == GateRule::Manual && !opened_by_a_step(program, name);
        if !held && !done.contains(&Node::Open(i)) && waited_on(program, name) {
            return Err(Located::new(
                LivenessError::NeverOpens {
                    gate: (*name).clone(),
                    why: explain(Node::Open(i)),
                },
                root.key("gates").key(name),
            ));
        }
    }
    for (i, step) in program.steps.iter().enumerate() {
        if let Step::Await(a) = step
            && done.contains(&Node::Call(i))
            && !done.contains(&Node::Return(i))
        {
            let key = if a.event.is_some() { "event" } else { "gate" };
            let why = explain(Node::Return(i));
            return Err(Located::new(
                LivenessError::NeverReturns {
                    step: graph.step_id(i).to_owned(),
                    why,
                },
                step_path(i, step.op()).key(key),
            ));
        }
    }
    Ok(())
}

fn opened_by_a_step(program: &Program, name: &str) -> bool {
    program
        .steps
        .iter()
        .any(|s| matches!(s, Step::Open(o) if o.gate == name))
}

/// Whether anything depends on gate `name` opening.
fn waited_on(program: &Program, name: &str) -> bool {
    let opened = format!("{name}.open");
    let tasks = program
        .steps
        .iter()
        .flat_map(Step::task_specs)
        .filter_map(|t| match t {
            TaskSpec::Full(t) => Some(&t.wait),
            TaskSpec::Short(_) => None,
        })
        .chain(program.pool.initializer.iter().map(|t| &t.wait));
    let callbacks = program.steps.iter().flat_map(|s| match s {
        Step::Apply(s) | Step::ApplyAsync(s) => [&s.callback, &s.error_callback],
        Step::Map(m)
        | Step::MapAsync(m)
        | Step::Imap(m)
        | Step::ImapUnordered(m)
        | Step::Starmap(m)
        | Step::StarmapAsync(m) => [&m.callback, &m.error_callback],
        _ => [&None, &None],
    });
    let mut waits = tasks.chain(callbacks.flatten().map(|c| &c.wait));
    waits.any(|w| w.iter().any(|g| g == name))
        || program.steps.iter().any(|s| match s {
            Step::Await(a) => {
                a.gate.as_deref() == Some(name) || a.event.as_deref() == Some(&opened)
            }
            _ => false,
        })
        || program
            .gates
            .values()
            .any(|r| matches!(r, GateRule::After(e) if *e == opened))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::spec::load::{Suite, load_str};

    /// The errors of a one-case file with these `gates` and `steps` lines.
    fn errors(gates: &str, steps: &str) -> Vec<String> {
        let text = format!(
            "format: 1
area: blocking
cases:
  - id: T-1
    claim: c.
    cite: [{{source: pool.py:Pool}}]
    tags: [contract]
    gates: {{{gates}}}
    steps:
{steps}
    expect: {{}}
"
        );
        let mut suite = Suite::default();
        load_str(Path::new("t.yaml"), &text, &mut suite);
        suite.errors.iter().map(|e| e.message.clone()).collect()
    }

    #[test]
    fn gates_that_can_open_are_accepted() {
        let ok = [
            // Opens after the task's own start or first wait: both come before the wait.
            (
                "g: {after: t.start}",
                "      - apply: {task: {id: t, wait: [g]}}",
            ),
            (
                "g: {after: t.wait}",
                "      - apply: {task: {id: t, wait: [g]}}",
            ),
            // A rule that cannot fire, but an open step opens it.
            (
                "g: {after: t.end}",
                "      - apply_async: {task: {id: t, wait: [g]}}\n      - open: {gate: g}",
            ),
            // A manual gate no step opens holds its task on purpose.
            (
                "g: manual",
                "      - apply_async: {task: {id: t, wait: [g]}}",
            ),
            // A barrier nothing waits on is nobody's deadlock.
            ("b: {when_waiting: 5}", "      - apply: {task: 1}"),
            // A chain that ends: b opens after x ends, x waits on a, a opens after y starts.
            (
                "a: {after: y.start}, b: {after: x.end}",
                "      - map: {tasks: [{id: x, wait: [a]}, {id: y, wait: [b]}]}",
            ),
            // Callbacks count as waiters.
            (
                "b: {when_waiting: 2}",
                "      - apply_async: {task: {wait: [b]}, callback: {wait: [b]}}",
            ),
        ];
        for (gates, steps) in ok {
            assert_eq!(
                errors(gates, steps),
                Vec::<String>::new(),
                "{gates} / {steps}"
            );
        }
    }

    #[test]
    fn gates_that_cannot_open_are_rejected_with_the_cause() {
        let bad = [
            (
                "g: {after: t.exit}",
                "      - apply: {task: {id: t, wait: [g], exit: 1}}",
                "gate `g` can never open: it opens after `t.exit`; task `t` waits on gate `g` \
                 first, which closes a cycle",
            ),
            (
                "g: {after: s1.callback}",
                "      - apply_async: {task: {wait: [g]}, error_callback: {}}",
                "gate `g` can never open: it opens after `s1.callback`; step `s1` registers no \
                 callback",
            ),
            (
                "g: {after: s2.return}",
                "      - apply_async: {task: {id: t, wait: [g]}}\n      - await: {event: t.end}",
                "gate `g` can never open: it opens after `s2.return`; step `s2` awaits `t.end`; \
                 task `t` waits on gate `g` first, which closes a cycle",
            ),
        ];
        for (gates, steps, words) in bad {
            assert_eq!(errors(gates, steps), [words], "{gates} / {steps}");
        }
    }
}
