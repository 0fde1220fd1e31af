//! Compiling a [`Case`] into the explicit [`Program`] a driver receives.
//!
//! Compilation fills in every default a driver would otherwise have to know (step ids, task
//! ids, the `returns` shorthand), and checks every reference between ids. Drivers therefore
//! see one canonical JSON shape and no YAML; the expectations never leave the runner.

use std::collections::{BTreeMap, HashMap};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::locate::YamlPath;
use super::model::{Case, GateRule, PoolParams, Probe};
use super::step::{AwaitCond, OnHandle, Step};
use super::task::{Task, TaskSpec};

/// What a driver runs: the case without its claim, citations and expectations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Program {
    pub id: String,
    pub pool: PoolParams,
    pub steps: Vec<Step>,
    /// Runner-side only: the gates and their rules.
    #[serde(skip)]
    pub gates: IndexMap<String, GateRule>,
    /// Runner-side only: every id of the case and what it names.
    #[serde(skip)]
    pub ids: BTreeMap<String, IdKind>,
}

/// What an id of a case names; decides which events can follow it in an event reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Step {
        handle: Option<HandleKind>,
        callbacks: bool,
    },
    Task,
    Initializer,
    Gate,
}

/// What a step returns that later steps can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleKind {
    /// An `AsyncResult` (apply_async, map_async, starmap_async).
    Result,
    /// An iterator (imap, imap_unordered).
    Iterator,
}

impl IdKind {
    /// The event names that may follow this id in a reference such as `a.start`.
    pub fn events(self) -> &'static [&'static str] {
        match self {
            IdKind::Step {
                callbacks: true, ..
            } => &[
                "call",
                "return",
                "callback",
                "callback_done",
                "error_callback",
                "error_callback_done",
            ],
            IdKind::Step { .. } => &["call", "return"],
            IdKind::Task => &["start", "wait", "end", "exit"],
            IdKind::Initializer => &["start", "wait", "end", "exit"],
            IdKind::Gate => &["open"],
        }
    }
}

/// Why a case does not compile: a broken reference between its ids, named so that the
/// message says which one (the messages are pinned by `tests/spec_errors.rs`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    #[error("id `{id}` must be non-empty, without spaces or dots")]
    BadId { id: String },
    #[error("id `{id}` is used twice in this case")]
    DuplicateId { id: String },
    /// A bug of the compiler itself: every task is named before it is claimed.
    #[error("internal: task left unnamed")]
    UnnamedTask,
    #[error("{whose} waits on `{name}`, which is not a gate of this case")]
    NotAGate { whose: String, name: String },
    #[error("step `{step}` opens `{name}`, which is not a gate of this case")]
    OpenNotAGate { step: String, name: String },
    #[error("gate `{gate}`: {source}")]
    GateEvent {
        gate: String,
        #[source]
        source: EventRefError,
    },
    #[error("order `{order}`: {source}")]
    OrderEvent {
        order: String,
        #[source]
        source: EventRefError,
    },
    /// An `await` on an event that does not exist.
    #[error(transparent)]
    AwaitEvent(#[from] EventRefError),
    #[error("step `{step}`: only `open` and `await` steps may follow `drop`")]
    AfterDrop { step: String },
    #[error("step `{step}`: chunksize 0 is not a valid case input")]
    ZeroChunksize { step: String },
    #[error("step `{step}`: {op} takes no timeout")]
    NoTimeout { step: String, op: &'static str },
    #[error("`exit_with` needs `pool: {{with_block: true}}`")]
    ExitWithoutWithBlock,
    #[error("step `{step}`: await takes either `event`, or `gate` with `waiting` ≥ 1")]
    BadAwait { step: String },
    #[error("`{op}` of `{of}`: that step does not return {want}")]
    NotAHandle {
        op: &'static str,
        of: String,
        want: &'static str,
    },
    #[error("`{op}` of `{of}`: no earlier step has that id")]
    NoSuchStep { op: &'static str, of: String },
}

/// Why an event reference (`<id>.<event>`) names no event of the case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventRefError {
    #[error("`{reference}` is not an event reference (`<id>.<event>`)")]
    NotAReference { reference: String },
    #[error("`{reference}`: no id `{id}` in this case")]
    NoSuchId { reference: String, id: String },
    #[error("`{reference}`: `{id}` has no event `{event}` (it has: {})", has.join(", "))]
    NoSuchEvent {
        reference: String,
        id: String,
        event: String,
        /// The events the id does have.
        has: &'static [&'static str],
    },
}

/// An error together with the node of the case it is about (a path relative to the case),
/// and for a duplicate the node of the first use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<E> {
    pub error: E,
    pub at: YamlPath,
    /// Where the same id (or name) was first used, for a duplicate.
    pub first: Option<YamlPath>,
}

impl<E> Located<E> {
    /// Boxed, as every `Err` that carries it: the error is large and made at most once per
    /// case.
    pub fn new(error: E, at: YamlPath) -> Box<Located<E>> {
        Box::new(Located {
            error,
            at,
            first: None,
        })
    }
}

/// The path of step `index` (whose operation is `op`) relative to the case: `steps[i].<op>`.
pub fn step_path(index: usize, op: &str) -> YamlPath {
    YamlPath::default().key("steps").index(index).key(op)
}

/// Compiles a case, checking that every id is unique and every reference resolves.
pub fn compile(case: &Case) -> Result<Program, ProgramError> {
    compile_located(case).map_err(|e| e.error)
}

/// [`compile`], saying which node of the case each error is about.
pub fn compile_located(case: &Case) -> Result<Program, Box<Located<ProgramError>>> {
    let mut ids: BTreeMap<String, IdKind> = BTreeMap::new();
    let mut places: HashMap<String, YamlPath> = HashMap::new();
    let mut claim =
        |id: &str, kind: IdKind, at: YamlPath| -> Result<(), Box<Located<ProgramError>>> {
            if id.is_empty() || id.contains(char::is_whitespace) || id.contains('.') {
                return Err(Located::new(ProgramError::BadId { id: id.to_owned() }, at));
            }
            if ids.insert(id.to_owned(), kind).is_some() {
                return Err(Box::new(Located {
                    error: ProgramError::DuplicateId { id: id.to_owned() },
                    at,
                    first: places.get(id).cloned(),
                }));
            }
            places.insert(id.to_owned(), at);
            Ok(())
        };
    let root = YamlPath::default();
    for gate in case.gates.keys() {
        claim(gate, IdKind::Gate, root.key("gates").the_key(gate))?;
    }
    let mut pool = case.pool.clone();
    if let Some(init) = &mut pool.initializer {
        let at = root.key("pool").key("initializer");
        let at = if init.id.is_some() { at.key("id") } else { at };
        let id = init.id.get_or_insert_with(|| "init".to_owned()).clone();
        claim(&id, IdKind::Initializer, at)?;
    }

    let mut steps = Vec::with_capacity(case.steps.len());
    for (index, step) in case.steps.iter().enumerate() {
        let at = step_path(index, step.op());
        let step_id = step
            .explicit_id()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("s{}", index + 1));
        let mut step = step.clone();
        let (handle, callbacks) = match &mut step {
            Step::Apply(s) | Step::ApplyAsync(s) => {
                s.id = Some(step_id.clone());
                let task_at = at.key("task");
                s.task = TaskSpec::Full(name_task(&s.task, || format!("{step_id}-0")));
                claim_task(&mut claim, &s.task, &task_at)?;
                let is_async = s.callback.is_some() || s.error_callback.is_some();
                (Some(HandleKind::Result), is_async)
            }
            Step::Map(m)
            | Step::MapAsync(m)
            | Step::Imap(m)
            | Step::ImapUnordered(m)
            | Step::Starmap(m)
            | Step::StarmapAsync(m) => {
                m.id = Some(step_id.clone());
                for (i, t) in m.tasks.iter_mut().enumerate() {
                    let task_at = at.key("tasks").index(i);
                    *t = TaskSpec::Full(name_task(t, || format!("{step_id}-{i}")));
                    claim_task(&mut claim, t, &task_at)?;
                }
                let is_async = m.callback.is_some() || m.error_callback.is_some();
                (Some(HandleKind::Result), is_async)
            }
            Step::Get(h)
            | Step::Wait(h)
            | Step::Ready(h)
            | Step::Successful(h)
            | Step::Next(h)
            | Step::Collect(h) => {
                h.id = Some(step_id.clone());
                (None, false)
            }
            Step::Close(p)
            | Step::Join(p)
            | Step::Terminate(p)
            | Step::ExitWith(p)
            | Step::Enter(p)
            | Step::Drop(p) => {
                p.id = Some(step_id.clone());
                (None, false)
            }
            Step::Open(o) => {
                o.id = Some(step_id.clone());
                (None, false)
            }
            Step::Await(a) => {
                a.id = Some(step_id.clone());
                (None, false)
            }
            Step::Extension(e) => {
                e.id = Some(step_id.clone());
                (None, false)
            }
        };
        // Only the async variants hand out a handle.
        let handle = match &step {
            Step::ApplyAsync(_) | Step::MapAsync(_) | Step::StarmapAsync(_) => handle,
            Step::Imap(_) | Step::ImapUnordered(_) => Some(HandleKind::Iterator),
            _ => None,
        };
        let id_at = if case.steps[index].explicit_id().is_some() {
            at.key("id")
        } else {
            root.key("steps").index(index).the_key(step.op())
        };
        claim(&step_id, IdKind::Step { handle, callbacks }, id_at)?;
        steps.push(step);
    }

    let program = Program {
        id: case.id.clone(),
        pool,
        steps,
        gates: case.gates.clone(),
        ids,
    };
    check_references(case, &program)?;
    Ok(program)
}

fn name_task(spec: &TaskSpec, default: impl FnOnce() -> String) -> Task {
    let mut task = spec.to_task();
    if task.id.is_none() {
        task.id = Some(default());
    }
    task
}

/// Claims a task's id; `original` is the task as written (to tell an explicit id from a
/// default one), `at` its node.
fn claim_task(
    claim: &mut impl FnMut(&str, IdKind, YamlPath) -> Result<(), Box<Located<ProgramError>>>,
    spec: &TaskSpec,
    at: &YamlPath,
) -> Result<(), Box<Located<ProgramError>>> {
    match spec {
        TaskSpec::Full(Task { id: Some(id), .. }) => claim(id, IdKind::Task, at.clone()),
        _ => Err(Located::new(ProgramError::UnnamedTask, at.clone())),
    }
}

fn check_references(case: &Case, program: &Program) -> Result<(), Box<Located<ProgramError>>> {
    let ids = &program.ids;
    let root = YamlPath::default();
    let gate = |name: &str, whose: &str, at: YamlPath| -> Result<(), Box<Located<ProgramError>>> {
        match ids.get(name) {
            Some(IdKind::Gate) => Ok(()),
            _ => Err(Located::new(
                ProgramError::NotAGate {
                    whose: whose.to_owned(),
                    name: name.to_owned(),
                },
                at,
            )),
        }
    };
    for (name, rule) in &program.gates {
        if let GateRule::After(event) = rule {
            check_event_ref(ids, event).map_err(|source| {
                Located::new(
                    ProgramError::GateEvent {
                        gate: name.clone(),
                        source,
                    },
                    root.key("gates").key(name).key("after"),
                )
            })?;
        }
    }
    for (p, probe) in case.observe.iter().enumerate() {
        if let Probe::Order { name, events } = probe {
            for (j, e) in events.iter().enumerate() {
                check_event_ref(ids, e).map_err(|source| {
                    Located::new(
                        ProgramError::OrderEvent {
                            order: name.clone(),
                            source,
                        },
                        root.key("observe")
                            .index(p)
                            .key("order")
                            .key("events")
                            .index(j),
                    )
                })?;
            }
        }
    }
    if let Some(init) = &program.pool.initializer {
        let at = root.key("pool").key("initializer").key("wait");
        for (j, g) in init.wait.iter().enumerate() {
            gate(g, "the initializer", at.index(j))?;
        }
    }
    let mut seen_steps: HashMap<&str, Option<HandleKind>> = HashMap::new();
    let mut dropped = false;
    for (index, step) in program.steps.iter().enumerate() {
        let at = step_path(index, step.op());
        let id = step.explicit_id().unwrap_or_default();
        // Once the pool is dropped the driver holds nothing to call.
        if dropped && !matches!(step, Step::Open(_) | Step::Await(_)) {
            return Err(Located::new(
                ProgramError::AfterDrop {
                    step: id.to_owned(),
                },
                root.key("steps").index(index).the_key(step.op()),
            ));
        }
        let callback_gates = |cb: &Option<super::task::Callback>, kind: &str| {
            for (j, g) in cb.iter().flat_map(|c| c.wait.iter()).enumerate() {
                gate(
                    g,
                    &format!("a callback of `{id}`"),
                    at.key(kind).key("wait").index(j),
                )?;
            }
            Ok::<(), Box<Located<ProgramError>>>(())
        };
        match step {
            Step::Apply(s) | Step::ApplyAsync(s) => {
                check_task_gates(&s.task, &gate, &at.key("task"))?;
                callback_gates(&s.callback, "callback")?;
                callback_gates(&s.error_callback, "error_callback")?;
            }
            Step::Map(m)
            | Step::MapAsync(m)
            | Step::Imap(m)
            | Step::ImapUnordered(m)
            | Step::Starmap(m)
            | Step::StarmapAsync(m) => {
                for (k, t) in m.tasks.iter().enumerate() {
                    check_task_gates(t, &gate, &at.key("tasks").index(k))?;
                }
                callback_gates(&m.callback, "callback")?;
                callback_gates(&m.error_callback, "error_callback")?;
                if m.chunksize == Some(0) {
                    return Err(Located::new(
                        ProgramError::ZeroChunksize {
                            step: id.to_owned(),
                        },
                        at.key("chunksize"),
                    ));
                }
            }
            Step::Get(h) | Step::Wait(h) | Step::Ready(h) | Step::Successful(h) => {
                expect_handle(&seen_steps, h, HandleKind::Result, step.op())
                    .map_err(|e| Located::new(e, at.key("of")))?;
                if matches!(step, Step::Ready(_) | Step::Successful(_)) && h.timeout.is_some() {
                    return Err(Located::new(
                        ProgramError::NoTimeout {
                            step: id.to_owned(),
                            op: step.op(),
                        },
                        at.the_key("timeout"),
                    ));
                }
            }
            Step::Next(h) | Step::Collect(h) => {
                expect_handle(&seen_steps, h, HandleKind::Iterator, step.op())
                    .map_err(|e| Located::new(e, at.key("of")))?;
                if matches!(step, Step::Collect(_)) && h.timeout.is_some() {
                    return Err(Located::new(
                        ProgramError::NoTimeout {
                            step: id.to_owned(),
                            op: "collect",
                        },
                        at.the_key("timeout"),
                    ));
                }
            }
            Step::Extension(e) => {
                if let Some(of) = &e.on
                    && !matches!(seen_steps.get(of.as_str()), Some(Some(_)))
                {
                    let error = match seen_steps.get(of.as_str()) {
                        Some(_) => ProgramError::NotAHandle {
                            op: "extension",
                            of: of.clone(),
                            want: "a handle",
                        },
                        None => ProgramError::NoSuchStep {
                            op: "extension",
                            of: of.clone(),
                        },
                    };
                    return Err(Located::new(error, at.key("on")));
                }
            }
            Step::Drop(_) => dropped = true,
            Step::ExitWith(_) if !program.pool.with_block => {
                return Err(Located::new(
                    ProgramError::ExitWithoutWithBlock,
                    root.key("steps").index(index).the_key(step.op()),
                ));
            }
            Step::Open(o) if !matches!(ids.get(&o.gate), Some(IdKind::Gate)) => {
                return Err(Located::new(
                    ProgramError::OpenNotAGate {
                        step: id.to_owned(),
                        name: o.gate.clone(),
                    },
                    at.key("gate"),
                ));
            }
            Step::Await(AwaitCond {
                event,
                gate: g,
                waiting,
                ..
            }) => match (event, g, waiting) {
                (Some(e), None, None) => {
                    check_event_ref(ids, e).map_err(|e| Located::new(e.into(), at.key("event")))?
                }
                (None, Some(g), Some(n)) if *n > 0 => {
                    gate(g, &format!("step `{id}`"), at.key("gate"))?;
                }
                _ => {
                    return Err(Located::new(
                        ProgramError::BadAwait {
                            step: id.to_owned(),
                        },
                        at,
                    ));
                }
            },
            _ => {}
        }
        let handle = match ids.get(id) {
            Some(IdKind::Step { handle, .. }) => *handle,
            _ => None,
        };
        seen_steps.insert(id, handle);
    }
    Ok(())
}

fn check_task_gates(
    spec: &TaskSpec,
    gate: &impl Fn(&str, &str, YamlPath) -> Result<(), Box<Located<ProgramError>>>,
    at: &YamlPath,
) -> Result<(), Box<Located<ProgramError>>> {
    if let TaskSpec::Full(t) = spec {
        for (j, g) in t.wait.iter().enumerate() {
            gate(
                g,
                &format!("task `{}`", t.id.as_deref().unwrap_or("?")),
                at.key("wait").index(j),
            )?;
        }
    }
    Ok(())
}

fn expect_handle(
    seen: &HashMap<&str, Option<HandleKind>>,
    h: &OnHandle,
    want: HandleKind,
    op: &'static str,
) -> Result<(), ProgramError> {
    match seen.get(h.of.as_str()) {
        Some(Some(kind)) if *kind == want => Ok(()),
        Some(_) => Err(ProgramError::NotAHandle {
            op,
            of: h.of.clone(),
            want: match want {
                HandleKind::Result => "an AsyncResult",
                HandleKind::Iterator => "an iterator",
            },
        }),
        None => Err(ProgramError::NoSuchStep {
            op,
            of: h.of.clone(),
        }),
    }
}

/// Checks an event reference such as `a.start` or `s3.return` against the case's ids.
pub fn check_event_ref(
    ids: &BTreeMap<String, IdKind>,
    reference: &str,
) -> Result<(), EventRefError> {
    let Some((id, event)) = reference.rsplit_once('.') else {
        return Err(EventRefError::NotAReference {
            reference: reference.to_owned(),
        });
    };
    let Some(kind) = ids.get(id) else {
        return Err(EventRefError::NoSuchId {
            reference: reference.to_owned(),
            id: id.to_owned(),
        });
    };
    if kind.events().contains(&event) {
        Ok(())
    } else {
        Err(EventRefError::NoSuchEvent {
            reference: reference.to_owned(),
            id: id.to_owned(),
            event: event.to_owned(),
            has: kind.events(),
        })
    }
}
