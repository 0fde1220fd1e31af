//! Random pool programs, as proptest strategies over the case format's own types.
//!
//! A strategy here draws a *raw* program: pool parameters and a list of [`Step`]s whose
//! handle references are placeholders (`h0`, `h1`, … meaning "the n-th live handle, modulo
//! how many there are"). Raw programs are not yet safe to run: a `get` may wait on a task
//! whose gate never opens, a `ready` may race a result. [`super::legalize`] turns every raw
//! program into a case whose observations are all forced. Shrinking happens on the raw
//! program (fewer steps, fewer tasks, plainer values), and every shrunk raw program is
//! legalized again, so proptest's shrinking always yields valid, deterministic cases.

use proptest::collection::vec;
use proptest::prelude::*;

use crate::spec::{
    Callback, ErrorSpec, MapCall, OnHandle, OpenGate, Plain, PoolParams, Processes, Scalar, Step,
    Submit, Task, TaskSpec,
};

/// The gates a generated program may use; all are opened only by `open` steps.
pub const GATES: [&str; 3] = ["g1", "g2", "g3"];

/// A raw program: what the strategies draw and proptest shrinks.
#[derive(Debug, Clone, PartialEq)]
pub struct RawProgram {
    pub pool: PoolParams,
    pub steps: Vec<Step>,
}

/// Raw programs of up to `max_steps` steps.
pub fn raw_program(max_steps: usize) -> impl Strategy<Value = RawProgram> {
    (pool_params(), vec(step(), 1..=max_steps.max(1)))
        .prop_map(|(pool, steps)| RawProgram { pool, steps })
}

fn pool_params() -> impl Strategy<Value = PoolParams> {
    (
        1u32..=3,
        prop_oneof![3 => Just(None), 1 => (1u32..=3).prop_map(Some)],
        prop_oneof![4 => Just(false), 1 => Just(true)],
        prop_oneof![4 => Just(false), 1 => Just(true)],
    )
        .prop_map(
            |(processes, maxtasksperchild, initializer, with_block)| PoolParams {
                processes: Processes::Count(i64::from(processes)),
                maxtasksperchild: maxtasksperchild.map(|m| Scalar::Int(i64::from(m))),
                initializer: initializer.then(Task::default),
                with_block,
                ..PoolParams::default()
            },
        )
}

/// A small JSON value a task returns or takes.
fn value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        4 => (0i64..100).prop_map(serde_json::Value::from),
        1 => "[a-c]{1,3}".prop_map(serde_json::Value::from),
        1 => Just(serde_json::Value::Null),
    ]
}

fn error() -> impl Strategy<Value = ErrorSpec> {
    (
        prop::sample::select(crate::spec::ERROR_TYPES),
        prop_oneof![Just("boom"), Just("bad")],
    )
        .prop_map(|(kind, message)| ErrorSpec {
            kind: kind.to_owned(),
            message: message.to_owned(),
        })
}

fn gate() -> impl Strategy<Value = String> {
    prop::sample::select(&GATES[..]).prop_map(str::to_owned)
}

/// How a task ends. Worker exits are CPython quirks (the pool hangs), so they are left out.
#[derive(Debug, Clone)]
enum Ending {
    Returns(serde_json::Value),
    Echo,
    Raises(ErrorSpec),
    Unserializable,
}

fn ending() -> impl Strategy<Value = Ending> {
    prop_oneof![
        8 => value().prop_map(Ending::Returns),
        1 => Just(Ending::Echo),
        2 => error().prop_map(Ending::Raises),
        1 => Just(Ending::Unserializable),
    ]
}

/// A task: half of them wait on a gate, which is what lets programs force orders.
fn task() -> impl Strategy<Value = TaskSpec> {
    (prop::option::weighted(0.5, gate()), ending()).prop_map(|(wait, ending)| {
        let mut task = Task {
            wait: wait.into_iter().collect(),
            ..Task::default()
        };
        match ending {
            // `returns: null` is the default ending: spelled by leaving it out, as a
            // written case would (and as the YAML reads back).
            Ending::Returns(v) => task.returns = (!v.is_null()).then_some(v),
            Ending::Echo => task.echo = true,
            Ending::Raises(e) => task.raises = Some(e),
            Ending::Unserializable => task.unserializable = true,
        }
        TaskSpec::Full(task)
    })
}

fn callbacks() -> impl Strategy<Value = (Option<Callback>, Option<Callback>)> {
    (any::<bool>(), any::<bool>())
        .prop_map(|(cb, ecb)| (cb.then(Callback::default), ecb.then(Callback::default)))
}

fn submit(with_callbacks: bool) -> impl Strategy<Value = Submit> {
    (
        task(),
        vec(value(), 0..=2),
        prop::bool::weighted(0.05),
        callbacks(),
    )
        .prop_map(move |(task, args, unserializable_arg, (cb, ecb))| Submit {
            id: None,
            task,
            args,
            unserializable_arg,
            kwargs: Default::default(),
            blob_arg: None,
            unserializable_func: false,
            callback: if with_callbacks { cb } else { None },
            error_callback: if with_callbacks { ecb } else { None },
        })
}

fn map_call(with_callbacks: bool) -> impl Strategy<Value = MapCall> {
    (
        vec(task(), 0..=5),
        vec(vec(value(), 0..=2), 0..=5),
        prop_oneof![2 => Just(None), 1 => (1u32..=3).prop_map(Some)],
        callbacks(),
    )
        .prop_map(move |(tasks, args, chunksize, (cb, ecb))| MapCall {
            id: None,
            tasks,
            args,
            chunksize,
            then_raise: None,
            unserializable_func: false,
            callback: if with_callbacks { cb } else { None },
            error_callback: if with_callbacks { ecb } else { None },
        })
}

/// A reference to the n-th live handle (resolved by the legalizer).
fn on_handle() -> impl Strategy<Value = OnHandle> {
    (0usize..4, prop::option::weighted(0.3, Just(0.05))).prop_map(|(n, timeout)| OnHandle {
        id: None,
        of: format!("h{n}"),
        timeout,
    })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => submit(false).prop_map(Step::Apply),
        6 => submit(true).prop_map(Step::ApplyAsync),
        3 => map_call(false).prop_map(Step::Map),
        4 => map_call(true).prop_map(Step::MapAsync),
        4 => map_call(false).prop_map(Step::Imap),
        4 => map_call(false).prop_map(Step::ImapUnordered),
        1 => map_call(false).prop_map(Step::Starmap),
        2 => map_call(true).prop_map(Step::StarmapAsync),
        6 => on_handle().prop_map(Step::Get),
        2 => on_handle().prop_map(Step::Wait),
        2 => on_handle().prop_map(Step::Ready),
        2 => on_handle().prop_map(Step::Successful),
        6 => on_handle().prop_map(Step::Next),
        3 => on_handle().prop_map(Step::Collect),
        6 => gate().prop_map(|gate| Step::Open(OpenGate { id: None, gate })),
        1 => Just(Step::Close(Plain::default())),
        1 => Just(Step::Join(Plain::default())),
        1 => Just(Step::Terminate(Plain::default())),
        1 => Just(Step::ExitWith(Plain::default())),
    ]
}

/// Parts of the vocabulary a run can leave out (`cargo xtask fuzz --exclude ...`): to fuzz
/// past a divergence that is already known (an expectation, in fuzzing terms), or to aim
/// at what is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Feature {
    /// Unpicklable results and arguments.
    Unserializable,
    /// Tasks that raise.
    Raises,
    /// Tasks that return their arguments.
    Echo,
    /// `callback` and `error_callback`.
    Callbacks,
    /// `get`/`wait`/`next` with a timeout (steps that would need one are dropped instead).
    Timeouts,
    /// `terminate` and leaving the `with` block early.
    Terminate,
    /// `maxtasksperchild`.
    Maxtasksperchild,
    /// Pool initializers.
    Initializer,
    /// The `with` block.
    WithBlock,
}

impl Feature {
    pub const ALL: [Feature; 9] = [
        Feature::Unserializable,
        Feature::Raises,
        Feature::Echo,
        Feature::Callbacks,
        Feature::Timeouts,
        Feature::Terminate,
        Feature::Maxtasksperchild,
        Feature::Initializer,
        Feature::WithBlock,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Feature::Unserializable => "unserializable",
            Feature::Raises => "raises",
            Feature::Echo => "echo",
            Feature::Callbacks => "callbacks",
            Feature::Timeouts => "timeouts",
            Feature::Terminate => "terminate",
            Feature::Maxtasksperchild => "maxtasksperchild",
            Feature::Initializer => "initializer",
            Feature::WithBlock => "with-block",
        }
    }

    pub fn parse(name: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// `raw` without the excluded features (applied before legalizing, so shrinking is
/// unaffected: a shrunk program is masked the same way).
pub fn mask(raw: &RawProgram, excluded: &std::collections::BTreeSet<Feature>) -> RawProgram {
    let off = |f| excluded.contains(&f);
    let mut raw = raw.clone();
    if off(Feature::Maxtasksperchild) {
        raw.pool.maxtasksperchild = None;
    }
    if off(Feature::Initializer) {
        raw.pool.initializer = None;
    }
    if off(Feature::WithBlock) {
        raw.pool.with_block = false;
    }
    if off(Feature::Terminate) {
        raw.steps
            .retain(|s| !matches!(s, Step::Terminate(_) | Step::ExitWith(_)));
    }
    let plain_task = |spec: &mut TaskSpec| {
        let mut task = spec.to_task();
        let plain = (off(Feature::Unserializable) && task.unserializable)
            || (off(Feature::Raises) && task.raises.is_some())
            || (off(Feature::Echo) && task.echo);
        if plain {
            task.unserializable = false;
            task.raises = None;
            task.echo = false;
            task.returns = Some(serde_json::json!(0));
        }
        *spec = TaskSpec::Full(task);
    };
    for step in &mut raw.steps {
        match step {
            Step::Apply(s) | Step::ApplyAsync(s) => {
                plain_task(&mut s.task);
                if off(Feature::Unserializable) {
                    s.unserializable_arg = false;
                }
                if off(Feature::Callbacks) {
                    s.callback = None;
                    s.error_callback = None;
                }
            }
            Step::Map(m)
            | Step::MapAsync(m)
            | Step::Imap(m)
            | Step::ImapUnordered(m)
            | Step::Starmap(m)
            | Step::StarmapAsync(m) => {
                m.tasks.iter_mut().for_each(plain_task);
                if off(Feature::Callbacks) {
                    m.callback = None;
                    m.error_callback = None;
                }
            }
            Step::Get(h) | Step::Wait(h) | Step::Next(h) if off(Feature::Timeouts) => {
                h.timeout = None;
            }
            _ => {}
        }
    }
    raw
}
