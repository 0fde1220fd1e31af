//! Compiling a [`Case`] into the explicit [`Program`] a driver receives.
//!
//! Compilation fills in every default a driver would otherwise have to know (step ids, task
//! ids, the `returns` shorthand), and checks every reference between ids. Drivers therefore
//! see one canonical JSON shape and no YAML; the expectations never leave the runner.

use std::collections::{BTreeMap, HashMap};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

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

/// Compiles a case, checking that every id is unique and every reference resolves.
pub fn compile(case: &Case) -> Result<Program, ProgramError> {
    let mut ids: BTreeMap<String, IdKind> = BTreeMap::new();
    let mut claim = |id: &str, kind: IdKind| -> Result<(), ProgramError> {
        if id.is_empty() || id.contains(char::is_whitespace) || id.contains('.') {
            return Err(ProgramError::BadId { id: id.to_owned() });
        }
        if ids.insert(id.to_owned(), kind).is_some() {
            return Err(ProgramError::DuplicateId { id: id.to_owned() });
        }
        Ok(())
    };
    for gate in case.gates.keys() {
        claim(gate, IdKind::Gate)?;
    }
    let mut pool = case.pool.clone();
    if let Some(init) = &mut pool.initializer {
        let id = init.id.get_or_insert_with(|| "init".to_owned()).clone();
        claim(&id, IdKind::Initializer)?;
    }

    let mut steps = Vec::with_capacity(case.steps.len());
    for (index, step) in case.steps.iter().enumerate() {
        let step_id = step
            .explicit_id()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("s{}", index + 1));
        let mut step = step.clone();
        let (handle, callbacks) = match &mut step {
            Step::Apply(s) | Step::ApplyAsync(s) => {
                s.id = Some(step_id.clone());
                s.task = TaskSpec::Full(name_task(&s.task, || format!("{step_id}-0")));
                claim_task(&mut claim, &s.task)?;
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
                    *t = TaskSpec::Full(name_task(t, || format!("{step_id}-{i}")));
                    claim_task(&mut claim, t)?;
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
        };
        // Only the async variants hand out a handle.
        let handle = match &step {
            Step::ApplyAsync(_) | Step::MapAsync(_) | Step::StarmapAsync(_) => handle,
            Step::Imap(_) | Step::ImapUnordered(_) => Some(HandleKind::Iterator),
            _ => None,
        };
        claim(&step_id, IdKind::Step { handle, callbacks })?;
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

fn claim_task(
    claim: &mut impl FnMut(&str, IdKind) -> Result<(), ProgramError>,
    spec: &TaskSpec,
) -> Result<(), ProgramError> {
    match spec {
        TaskSpec::Full(Task { id: Some(id), .. }) => claim(id, IdKind::Task),
        _ => Err(ProgramError::UnnamedTask),
    }
}

fn check_references(case: &Case, program: &Program) -> Result<(), ProgramError> {
    let ids = &program.ids;
    let gate = |name: &str, whose: &str| -> Result<(), ProgramError> {
        match ids.get(name) {
            Some(IdKind::Gate) => Ok(()),
            _ => Err(ProgramError::NotAGate {
                whose: whose.to_owned(),
                name: name.to_owned(),
            }),
        }
    };
    for (name, rule) in &program.gates {
        if let GateRule::After(event) = rule {
            check_event_ref(ids, event).map_err(|source| ProgramError::GateEvent {
                gate: name.clone(),
                source,
            })?;
        }
    }
    for probe in &case.observe {
        if let Probe::Order { name, events } = probe {
            for e in events {
                check_event_ref(ids, e).map_err(|source| ProgramError::OrderEvent {
                    order: name.clone(),
                    source,
                })?;
            }
        }
    }
    if let Some(init) = &program.pool.initializer {
        for g in &init.wait {
            gate(g, "the initializer")?;
        }
    }
    let mut seen_steps: HashMap<&str, Option<HandleKind>> = HashMap::new();
    let mut dropped = false;
    for step in &program.steps {
        let id = step.explicit_id().unwrap_or_default();
        // Once the pool is dropped the driver holds nothing to call.
        if dropped && !matches!(step, Step::Open(_) | Step::Await(_)) {
            return Err(ProgramError::AfterDrop {
                step: id.to_owned(),
            });
        }
        match step {
            Step::Apply(s) | Step::ApplyAsync(s) => {
                check_task_gates(&s.task, &gate)?;
                for cb in s.callback.iter().chain(&s.error_callback) {
                    for g in &cb.wait {
                        gate(g, &format!("a callback of `{id}`"))?;
                    }
                }
            }
            Step::Map(m)
            | Step::MapAsync(m)
            | Step::Imap(m)
            | Step::ImapUnordered(m)
            | Step::Starmap(m)
            | Step::StarmapAsync(m) => {
                for t in &m.tasks {
                    check_task_gates(t, &gate)?;
                }
                for cb in m.callback.iter().chain(&m.error_callback) {
                    for g in &cb.wait {
                        gate(g, &format!("a callback of `{id}`"))?;
                    }
                }
                if m.chunksize == Some(0) {
                    return Err(ProgramError::ZeroChunksize {
                        step: id.to_owned(),
                    });
                }
            }
            Step::Get(h) | Step::Wait(h) | Step::Ready(h) | Step::Successful(h) => {
                expect_handle(&seen_steps, h, HandleKind::Result, step.op())?;
                if matches!(step, Step::Ready(_) | Step::Successful(_)) && h.timeout.is_some() {
                    return Err(ProgramError::NoTimeout {
                        step: id.to_owned(),
                        op: step.op(),
                    });
                }
            }
            Step::Next(h) | Step::Collect(h) => {
                expect_handle(&seen_steps, h, HandleKind::Iterator, step.op())?;
                if matches!(step, Step::Collect(_)) && h.timeout.is_some() {
                    return Err(ProgramError::NoTimeout {
                        step: id.to_owned(),
                        op: "collect",
                    });
                }
            }
            Step::Drop(_) => dropped = true,
            Step::ExitWith(_) if !program.pool.with_block => {
                return Err(ProgramError::ExitWithoutWithBlock);
            }
            Step::Open(o) => gate(&o.gate, &format!("step `{id}`"))?,
            Step::Await(AwaitCond {
                event,
                gate: g,
                waiting,
                ..
            }) => match (event, g, waiting) {
                (Some(e), None, None) => check_event_ref(ids, e)?,
                (None, Some(g), Some(n)) if *n > 0 => gate(g, &format!("step `{id}`"))?,
                _ => {
                    return Err(ProgramError::BadAwait {
                        step: id.to_owned(),
                    });
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
    gate: &impl Fn(&str, &str) -> Result<(), ProgramError>,
) -> Result<(), ProgramError> {
    if let TaskSpec::Full(t) = spec {
        for g in &t.wait {
            gate(g, &format!("task `{}`", t.id.as_deref().unwrap_or("?")))?;
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
