//! A case's program in words, for people who have not opened its YAML: step labels
//! (`s5 (next on h)`) for failure reasons and pending lists, and a sentence per step, task
//! and gate for `cargo xtask conformance explain`.
//!
//! Everything here reads the compiled [`Program`], where every id is filled in, so a label
//! names the same ids the observation and the history use.

use serde_json::Value;

use super::model::{Count, CountWord, GateRule, PoolParams, Processes};
use super::program::Program;
use super::step::{Step, Submit};
use super::task::{Callback, ErrorSpec, Task, TaskSpec};

/// How many task ids an operation lists before it abbreviates (`map of t0, t1, … (9 tasks)`).
const LISTED_TASKS: usize = 3;

/// The step with id `id`, if the program has one.
pub fn step<'p>(program: &'p Program, id: &str) -> Option<&'p Step> {
    program.steps.iter().find(|s| s.explicit_id() == Some(id))
}

/// `s5 (next on h)` for a step id of `program`; `None` for any other id.
pub fn step_label(program: &Program, id: &str) -> Option<String> {
    step(program, id).map(|s| format!("{id} ({})", operation(s)))
}

/// A step's operation in a few words: `next on h`, `apply_async of t1`, `open g1`.
pub fn operation(step: &Step) -> String {
    let op = step.op();
    match step {
        Step::Get(h)
        | Step::Wait(h)
        | Step::Ready(h)
        | Step::Successful(h)
        | Step::Next(h)
        | Step::Collect(h) => format!("{op} on {}", h.of),
        Step::Open(o) => format!("open {}", o.gate),
        Step::Await(a) => match (&a.event, &a.gate, a.waiting) {
            (Some(e), _, _) => format!("await {e}"),
            (None, Some(g), Some(n)) => format!("await {n} waiting on {g}"),
            _ => "await".to_owned(),
        },
        Step::Apply(_)
        | Step::ApplyAsync(_)
        | Step::Map(_)
        | Step::MapAsync(_)
        | Step::Imap(_)
        | Step::ImapUnordered(_)
        | Step::Starmap(_)
        | Step::StarmapAsync(_) => match step.task_specs() {
            [] => format!("{op} of no task"),
            specs => format!("{op} of {}", task_list(specs)),
        },
        _ => op.to_owned(),
    }
}

fn task_id(spec: &TaskSpec) -> String {
    spec.to_task().id.unwrap_or_else(|| "?".to_owned())
}

fn task_list(specs: &[TaskSpec]) -> String {
    let ids: Vec<String> = specs.iter().map(task_id).collect();
    if ids.len() <= LISTED_TASKS {
        ids.join(", ")
    } else {
        format!(
            "{}, … {} ({} tasks)",
            ids[..LISTED_TASKS - 1].join(", "),
            ids[ids.len() - 1],
            ids.len()
        )
    }
}

/// The pool's construction in words: `Pool(processes=2)` plus what else the case sets.
pub fn pool(params: &PoolParams) -> String {
    let mut args = vec![match params.processes {
        Processes::Count(n) => format!("processes={n}"),
        Processes::Default => "processes=None (the pool's default)".to_owned(),
    }];
    if let Some(m) = &params.maxtasksperchild {
        args.push(format!(
            "maxtasksperchild={}",
            serde_json::to_string(m).unwrap_or_default()
        ));
    }
    if let Some(init) = &params.initializer {
        args.push(format!(
            "initializer={}",
            init.id.as_deref().unwrap_or("init")
        ));
    }
    if !params.initargs.is_empty() {
        args.push(format!("initargs={}", Value::from(params.initargs.clone())));
    }
    if params.uncallable_initializer {
        args.push("initializer=<not callable>".to_owned());
    }
    if let Some(c) = &params.context {
        args.push(format!("context={c}"));
    }
    let mut out = format!("Pool({})", args.join(", "));
    if params.with_block {
        out.push_str(", entered as a context manager (with block)");
    }
    if let Some(init) = &params.initializer {
        out.push_str(&format!(
            "; the initializer {}",
            task_behaviour(init, &Gates::none())
        ));
    }
    out
}

/// One line per step, in program order: `s2  apply_async of t1, with a callback`.
pub fn steps(program: &Program) -> Vec<String> {
    program
        .steps
        .iter()
        .map(|s| {
            let id = s.explicit_id().unwrap_or("?");
            format!("{id}  {}", step_sentence(s))
        })
        .collect()
}

/// A step's operation and its arguments in words.
pub fn step_sentence(step: &Step) -> String {
    let mut parts = vec![operation(step)];
    match step {
        Step::Apply(s) | Step::ApplyAsync(s) => submit_details(s, &mut parts),
        Step::Map(m)
        | Step::MapAsync(m)
        | Step::Imap(m)
        | Step::ImapUnordered(m)
        | Step::Starmap(m)
        | Step::StarmapAsync(m) => {
            if let Some(c) = m.chunksize {
                parts.push(format!("chunksize {c}"));
            }
            if !m.args.is_empty() {
                parts.push(format!("args {}", Value::from(m.args.clone())));
            }
            if let Some(e) = &m.then_raise {
                parts.push(format!("the input then raises {}", exception(e)));
            }
            if m.unserializable_func {
                parts.push("a function that cannot be serialized".to_owned());
            }
            callbacks(&m.callback, &m.error_callback, &mut parts);
        }
        Step::Get(h) | Step::Wait(h) | Step::Next(h) => {
            if let Some(t) = h.timeout {
                parts.push(format!("timeout {t} s"));
            }
        }
        Step::Drop(_) => parts.push("lets go of the pool without closing it".to_owned()),
        _ => {}
    }
    parts.join(", ")
}

fn submit_details(s: &Submit, parts: &mut Vec<String>) {
    if !s.args.is_empty() {
        parts.push(format!("args {}", Value::from(s.args.clone())));
    }
    if !s.kwargs.is_empty() {
        let map: serde_json::Map<String, Value> = s.kwargs.clone().into_iter().collect();
        parts.push(format!("kwargs {}", Value::Object(map)));
    }
    if let Some(b) = s.blob_arg {
        parts.push(format!("a {}-byte string argument", b.size));
    }
    if s.unserializable_arg {
        parts.push("an argument that cannot be serialized".to_owned());
    }
    if s.unserializable_func {
        parts.push("a function that cannot be serialized".to_owned());
    }
    callbacks(&s.callback, &s.error_callback, parts);
}

fn callbacks(callback: &Option<Callback>, error: &Option<Callback>, parts: &mut Vec<String>) {
    for (name, cb) in [("a callback", callback), ("an error callback", error)] {
        let Some(cb) = cb else { continue };
        let mut text = format!("with {name}");
        if !cb.wait.is_empty() {
            text.push_str(&format!(" that waits on {}", gate_list(&cb.wait)));
        }
        if let Some(e) = &cb.raises {
            text.push_str(&format!(" and raises {}", exception(e)));
        }
        parts.push(text);
    }
}

fn gate_list(gates: &[String]) -> String {
    let names: Vec<String> = gates.iter().map(|g| format!("gate {g}")).collect();
    names.join(" then ")
}

fn exception(e: &ErrorSpec) -> String {
    format!("{}({:?})", e.kind, e.message)
}

/// One sentence per task, in program order: `t1 (s2) waits on gate g1, opened when s3 (open
/// g1) returns; then returns 5.`
pub fn tasks(program: &Program) -> Vec<String> {
    let gates = Gates::of(program);
    program
        .steps
        .iter()
        .flat_map(|s| {
            let owner = s.explicit_id().unwrap_or("?").to_owned();
            s.task_specs()
                .iter()
                .map(move |t| (owner.clone(), t.to_task()))
        })
        .map(|(owner, t)| {
            let id = t.id.clone().unwrap_or_else(|| "?".to_owned());
            format!("{id} ({owner}) {}", task_behaviour(&t, &gates))
        })
        .collect()
}

/// What a task does, as a sentence without its subject: `waits on gate g1, ...; then returns 5.`
fn task_behaviour(task: &Task, gates: &Gates<'_>) -> String {
    let mut out = String::new();
    if task.unserializable_item {
        out.push_str("is carried by an item that cannot be serialized (it never runs); ");
    }
    if !task.wait.is_empty() {
        let waits: Vec<String> = task
            .wait
            .iter()
            .map(|g| match gates.opening(g) {
                Some(when) => format!("gate {g} ({when})"),
                None => format!("gate {g}"),
            })
            .collect();
        out.push_str(&format!("waits on {}, then ", waits.join(" then ")));
    }
    out.push_str(&ending(task));
    out.push('.');
    out
}

fn ending(t: &Task) -> String {
    if let Some(v) = &t.returns {
        return format!("returns {v}");
    }
    if let Some(e) = &t.raises {
        return format!("raises {}", exception(e));
    }
    if let Some(c) = t.exit {
        return format!("exits its process with code {c}");
    }
    if t.echo {
        return "returns its extra arguments".to_owned();
    }
    if t.echo_all {
        return "returns every argument it received".to_owned();
    }
    if t.echo_initargs {
        return "returns the initargs its worker's initializer received".to_owned();
    }
    if let Some(b) = t.blob {
        return format!("returns a {}-byte string", b.size);
    }
    if t.inherited {
        return "returns whether its process inherited the driver's memory".to_owned();
    }
    if t.unserializable {
        return "returns a value that cannot be serialized".to_owned();
    }
    "returns None".to_owned()
}

/// One sentence per gate: `gate g1: opens when t1 ends.`
pub fn gates(program: &Program) -> Vec<String> {
    let gates = Gates::of(program);
    program
        .gates
        .keys()
        .map(|g| format!("gate {g}: {}.", gates.opening(g).unwrap_or_default()))
        .collect()
}

/// The gates of a program and the steps that open them.
struct Gates<'p> {
    program: Option<&'p Program>,
}

impl<'p> Gates<'p> {
    fn of(program: &'p Program) -> Gates<'p> {
        Gates {
            program: Some(program),
        }
    }

    fn none() -> Gates<'static> {
        Gates { program: None }
    }

    /// When gate `name` opens, in words: `opened when s3 (open g1) returns`.
    fn opening(&self, name: &str) -> Option<String> {
        let program = self.program?;
        let rule = program.gates.get(name)?;
        let openers: Vec<String> = program
            .steps
            .iter()
            .filter(|s| matches!(s, Step::Open(o) if o.gate == name))
            .filter_map(|s| s.explicit_id())
            .map(str::to_owned)
            .collect();
        let by_step = if openers.is_empty() {
            None
        } else {
            Some(format!("opened by step {}", openers.join(", ")))
        };
        Some(match (rule, by_step) {
            (GateRule::Manual, Some(s)) => s,
            (GateRule::Manual, None) => {
                "never opened, so it holds its waiters until the case ends".to_owned()
            }
            (rule, by_step) => {
                let mut text = match rule {
                    GateRule::WhenWaiting(Count::N(n)) => {
                        format!("opens once {n} tasks or callbacks wait on it at once")
                    }
                    GateRule::WhenWaiting(Count::Word(CountWord::Processes)) => {
                        "opens once as many tasks or callbacks as the pool has processes wait on it"
                            .to_owned()
                    }
                    GateRule::After(event) => {
                        format!("opens when {}", event_in_words(program, event))
                    }
                    GateRule::Manual => String::new(),
                };
                if let Some(s) = by_step {
                    text.push_str(&format!(", or when {s}"));
                }
                text
            }
        })
    }
}

/// An event reference in words: `t1.end` → `t1 ends`, `s3.return` → `s3 (open g1) returns`.
pub fn event_in_words(program: &Program, reference: &str) -> String {
    let Some((id, event)) = reference.rsplit_once('.') else {
        return reference.to_owned();
    };
    let who = step_label(program, id).unwrap_or_else(|| {
        if program.gates.contains_key(id) {
            format!("gate {id}")
        } else {
            id.to_owned()
        }
    });
    let verb = match event {
        "call" => "is called",
        "return" => "returns",
        "start" => "starts",
        "wait" => "first waits on a gate",
        "end" => "ends",
        "exit" => "exits its process",
        "open" => "opens",
        "callback" => "calls its callback",
        "callback_done" => "has its callback finish",
        "error_callback" => "calls its error callback",
        "error_callback_done" => "has its error callback finish",
        other => return format!("{who} reports {other}"),
    };
    format!("{who} {verb}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::load::{Suite, load_str};
    use std::path::Path;

    fn program(yaml: &str) -> Program {
        let mut suite = Suite::default();
        load_str(Path::new("t.yaml"), yaml, &mut suite);
        assert!(suite.errors.is_empty(), "{:?}", suite.errors);
        suite.cases.remove(0).program
    }

    const CASE: &str = "format: 1
area: blocking
cases:
  - id: X-1
    claim: c.
    cite: [{source: pool.py:Pool.map}]
    tags: [contract]
    gates: {g1: manual, both: {when_waiting: 2}, later: {after: t1.end}, shut: manual}
    steps:
      - apply_async: {id: h, task: {id: t1, wait: [g1], returns: 5}, callback: {}}
      - imap: {id: it, tasks: [1, 2, 3, {id: four, wait: [both], returns: 4}, {id: last, wait: [both, later], raises: {type: ValueError, message: no}}], chunksize: 2}
      - open: {gate: g1}
      - get: {of: h, timeout: 0.5}
      - next: {of: it}
      - await: {event: t1.end}
      - close: {}
    expect: {steps: {s4: {returned: 5}}}
";

    #[test]
    fn labels_name_the_operation() {
        let p = program(CASE);
        assert_eq!(step_label(&p, "s5").as_deref(), Some("s5 (next on it)"));
        assert_eq!(
            step_label(&p, "h").as_deref(),
            Some("h (apply_async of t1)")
        );
        assert_eq!(
            step_label(&p, "it").as_deref(),
            Some("it (imap of it-0, it-1, … last (5 tasks))")
        );
        assert_eq!(step_label(&p, "s3").as_deref(), Some("s3 (open g1)"));
        assert_eq!(step_label(&p, "s6").as_deref(), Some("s6 (await t1.end)"));
        assert_eq!(step_label(&p, "s7").as_deref(), Some("s7 (close)"));
        assert_eq!(step_label(&p, "t1"), None);
    }

    #[test]
    fn steps_tasks_and_gates_in_sentences() {
        let p = program(CASE);
        let steps = steps(&p);
        assert_eq!(steps[0], "h  apply_async of t1, with a callback");
        assert_eq!(steps[3], "s4  get on h, timeout 0.5 s");
        let tasks = tasks(&p);
        assert_eq!(
            tasks[0],
            "t1 (h) waits on gate g1 (opened by step s3), then returns 5."
        );
        assert_eq!(tasks[1], "it-0 (it) returns 1.");
        assert_eq!(
            tasks[5],
            "last (it) waits on gate both (opens once 2 tasks or callbacks wait on it at once) \
             then gate later (opens when t1 ends), then raises ValueError(\"no\")."
        );
        assert_eq!(
            gates(&p),
            vec![
                "gate g1: opened by step s3.",
                "gate both: opens once 2 tasks or callbacks wait on it at once.",
                "gate later: opens when t1 ends.",
                "gate shut: never opened, so it holds its waiters until the case ends.",
            ]
        );
        assert_eq!(event_in_words(&p, "s3.return"), "s3 (open g1) returns");
        assert_eq!(pool(&p.pool), "Pool(processes=2)");
    }
}
