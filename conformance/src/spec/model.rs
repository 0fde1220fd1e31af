//! The case format: the Rust types behind `spec/*.yaml`.
//!
//! `spec/README.md` is the normative prose; these types are its machine form, and the JSON
//! Schema in `spec/case.schema.json` is exported from them (`cargo xtask conformance schema`).
//! Every struct denies unknown fields, so a typo is an error with a location, never a silent
//! default.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of the case format described in `spec/README.md`. Bump on any change of meaning.
pub const FORMAT_VERSION: u32 = 1;

/// One file of `spec/`: the cases of one area.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    /// Version of the case format this file is written in; must equal [`FORMAT_VERSION`].
    pub format: u32,
    /// The area every case of this file belongs to.
    pub area: Area,
    /// The cases, in the order they are reported.
    pub cases: Vec<Case>,
}

/// The areas of Pool behaviour. One file of `spec/` per area.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Area {
    Blocking,
    Ordering,
    Concurrency,
    CallbackProcess,
    Errors,
    Timeouts,
    Lifecycle,
    Workers,
    Chunking,
    Iteration,
    Faults,
    Arguments,
    Construction,
}

impl Area {
    pub fn as_str(self) -> &'static str {
        match self {
            Area::Blocking => "blocking",
            Area::Ordering => "ordering",
            Area::Concurrency => "concurrency",
            Area::CallbackProcess => "callback-process",
            Area::Errors => "errors",
            Area::Timeouts => "timeouts",
            Area::Lifecycle => "lifecycle",
            Area::Workers => "workers",
            Area::Chunking => "chunking",
            Area::Iteration => "iteration",
            Area::Faults => "faults",
            Area::Arguments => "arguments",
            Area::Construction => "construction",
        }
    }
}

/// One behaviour case: one claim, its evidence, a program, and what must be observed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Permanent identifier, `AREA-NNN` style (e.g. `ORD-003`). Never reused or renamed:
    /// expectation files, snapshots and reports are keyed by it.
    pub id: String,
    /// The behaviour, in one sentence, stated as a fact ("`map` returns ...").
    pub claim: String,
    /// Where CPython establishes the claim. At least one entry.
    pub cite: Vec<Citation>,
    /// `contract` (every Pool-compatible implementation must do this) or `quirk` (CPython
    /// happens to do this), plus optional tags from `spec/tags.yaml`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Capabilities the implementation must declare in its handshake, else `unsupported`.
    #[serde(default)]
    pub requires: Vec<String>,
    /// How the pool is constructed.
    #[serde(default)]
    pub pool: PoolParams,
    /// Gates tasks and callbacks can wait on, and when the runner opens them.
    #[serde(default)]
    pub gates: IndexMap<String, GateRule>,
    /// The program: pool operations run in order on the driver's main thread.
    pub steps: Vec<Step>,
    /// Optional observations beyond the always-recorded ones (see [`Probe`]).
    #[serde(default)]
    pub observe: Vec<Probe>,
    /// What the observation must contain: a partial observation matched by inclusion.
    pub expect: serde_json::Value,
    /// Liveness guard tier for the whole case (scaled by `--timeout-multiplier`).
    #[serde(default)]
    pub timeout: TimeoutTier,
    /// The language versions the claim holds for, by language (`python: ">=3.10"`). An
    /// implementation in that language whose version is outside the range gets the status
    /// `not-applicable` instead of running the case: the claim is about behaviour that
    /// arrived (or left) in a given version of the reference.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub versions: IndexMap<String, String>,
}

/// Evidence for a claim. Exactly one of the fields is set.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Citation {
    /// An anchor of `Doc/library/multiprocessing.rst`, e.g.
    /// `library/multiprocessing.html#multiprocessing.pool.Pool.map`, optionally followed by
    /// ` "quoted words"`.
    Doc(String),
    /// `Lib/multiprocessing/pool.py` plus a function or class, e.g. `pool.py:MapResult._set`.
    Source(String),
    /// A test in `Lib/test/_test_multiprocessing.py`, e.g. `_TestPool.test_map_async_callbacks`.
    Test(String),
    /// A CPython issue, e.g. `gh-83371`.
    Issue(String),
    /// A claim of one of the seed posts this case settles, by its id in `spec/claims.yaml`.
    Seed(String),
}

/// Pool construction parameters, as in `multiprocessing.Pool(...)`.
///
/// Values a pool must refuse (`processes: 0`, `maxtasksperchild: 0.5`, an initializer that
/// is not callable) are valid *case* input: construction is an outcome the case observes
/// (`construct` in the observation), not a driver error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolParams {
    /// `processes`: an integer (defaults to 2, so no case depends on the machine), or
    /// `default` to leave it to the pool (`Pool()`, the CPU count). Drivers receive `null`
    /// for `default`.
    #[serde(default)]
    pub processes: Processes,
    /// `maxtasksperchild`; absent means unlimited. Any scalar, so that cases can pass the
    /// values a pool must reject (`0`, `-1`, `0.5`, `"12"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxtasksperchild: Option<Scalar>,
    /// `initializer`: a task run once in every worker before its first task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initializer: Option<Task>,
    /// `initargs` after the initializer's task descriptor: JSON values the initializer
    /// receives (and `echo_initargs` tasks return). Needs `initializer`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub initargs: Vec<serde_json::Value>,
    /// Pass an initializer that is not callable (Python: the integer `1`); the pool must
    /// refuse it. Excludes `initializer`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub uncallable_initializer: bool,
    /// Start workers with this start method's context (`Pool(context=get_context(m))`):
    /// `fork`, `spawn` or `forkserver`. Needs the capability `context`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Enter the pool as a context manager (`with Pool(...) as pool:`); the program leaves the
    /// block with the `exit_with` step.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub with_block: bool,
}

/// `Pool(processes=...)`: a number (possibly one the pool must refuse), or the pool's own
/// default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processes {
    Count(i64),
    /// Leave it to the pool (`processes=None`).
    Default,
}

impl Default for Processes {
    fn default() -> Self {
        Processes::Count(2)
    }
}

impl Processes {
    /// The explicit count, if any.
    pub fn count(self) -> Option<i64> {
        match self {
            Processes::Count(n) => Some(n),
            Processes::Default => None,
        }
    }
}

impl Serialize for Processes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Processes::Count(n) => s.serialize_i64(*n),
            Processes::Default => s.serialize_none(),
        }
    }
}

impl<'de> Deserialize<'de> for Processes {
    // A visitor, not an untagged enum: an untagged enum buffers the value and its errors
    // lose their line and column.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Processes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an integer or `default`")
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Processes, E> {
                Ok(Processes::Count(n))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Processes, E> {
                i64::try_from(n)
                    .map(Processes::Count)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(n), &self))
            }
            fn visit_str<E: serde::de::Error>(self, w: &str) -> Result<Processes, E> {
                if w == "default" {
                    Ok(Processes::Default)
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Str(w), &self))
                }
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Processes, E> {
                Ok(Processes::Default)
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Processes, E> {
                Ok(Processes::Default)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Processes {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Processes".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An integer, or `default` (the pool's own default, the CPU count).",
            "anyOf": [{"type": "integer"}, {"const": "default"}]
        })
    }
}

/// When the runner opens a gate. Whatever the rule, an `open` step opens it too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum GateRule {
    /// Only an `open` step opens it.
    Manual,
    /// Opens when this many tasks or callbacks wait on it at once: a barrier. `processes`
    /// means the pool's number of processes (the driver's default count for
    /// `processes: default`).
    WhenWaiting(Count),
    /// Opens right after the referenced event was recorded (see [`EventRef`]).
    After(String),
}

impl Count {
    /// The number, with `processes` replaced by the pool's number of processes (`None` when
    /// that is unknown).
    pub fn resolve(self, processes: Option<u32>) -> Option<u32> {
        match self {
            Count::N(n) => Some(n),
            Count::Word(CountWord::Processes) => processes,
        }
    }
}

/// A barrier's size: a number, or the pool's number of processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Count {
    N(u32),
    Word(CountWord),
}

/// The symbolic barrier size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CountWord {
    /// The pool's number of processes.
    Processes,
}

/// Liveness-guard tiers. They bound how long a hung implementation can stall the run; they
/// never decide a verdict for one that is merely slow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutTier {
    /// 20 s.
    #[default]
    Normal,
    /// 60 s.
    Long,
}

impl TimeoutTier {
    pub fn base(self) -> std::time::Duration {
        match self {
            TimeoutTier::Normal => std::time::Duration::from_secs(20),
            TimeoutTier::Long => std::time::Duration::from_secs(60),
        }
    }
}

/// What a task (or initializer) does, in order: report `start`, wait on each gate in `wait`,
/// then finish in exactly one way (`returns`, `echo`, `raises`, `exit` or `unserializable`),
/// reporting `end` (or `exit`) first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// Unique within the case. Defaults to `<step id>-<index>` (`-0` for apply's one task).
    #[serde(default)]
    pub id: Option<String>,
    /// Gates to wait on, in order, after reporting `start`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wait: Vec<String>,
    /// Return this JSON value. The default when no other ending is given is `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returns: Option<serde_json::Value>,
    /// Return the extra positional arguments the task was called with, as a list.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub echo: bool,
    /// Raise an exception of a registered type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raises: Option<ErrorSpec>,
    /// End the worker process abruptly with this exit code (`os._exit`), without a result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<i32>,
    /// Return a value that cannot be serialized back to the parent (Python: a lambda). The
    /// `end` report says `returned: "<unserializable>"`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unserializable: bool,
    /// Return every argument the task was called with beyond its descriptor:
    /// `{args: [...], kwargs: {...}}`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub echo_all: bool,
    /// Return the `initargs` the initializer of this worker process received (a list), or
    /// `null` when no initializer ran in this process.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub echo_initargs: bool,
    /// Return a generated byte string (see [`Blob`]); observed as `{bytes, sha256}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<Blob>,
    /// Return whether the process running the task inherited the driver's memory as it was
    /// when the pool was built: `true` in a forked worker (or a thread of the driver),
    /// `false` in a worker that started fresh (spawn, forkserver, any exec).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inherited: bool,
    /// In the map family: the item that carries this task cannot be serialized to a worker
    /// (Python: an object whose pickling raises), so the task never runs. Not an ending.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unserializable_item: bool,
}

impl Task {
    /// How many endings the task gives (a valid task gives at most one).
    pub fn endings(&self) -> usize {
        usize::from(self.returns.is_some())
            + usize::from(self.echo)
            + usize::from(self.raises.is_some())
            + usize::from(self.exit.is_some())
            + usize::from(self.unserializable)
            + usize::from(self.echo_all)
            + usize::from(self.echo_initargs)
            + usize::from(self.blob.is_some())
            + usize::from(self.inherited)
    }
}

/// A generated byte string of `size` bytes, the same in every language: a 64 KiB block of
/// SHA-256 digests (`sha256("<seed>:<i>")` for i = 0, 1, ...), repeated, with the k-th
/// repetition XORed byte-wise with `k mod 256`, cut to `size`. Large values cross the pool
/// as native byte strings and are observed as length plus digest, never copied into
/// histories or reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Blob {
    pub size: u64,
    #[serde(default)]
    pub seed: u32,
}

/// Shorthand accepted wherever a task is: a scalar `v` means `{returns: v}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "a task: a scalar return value, or a map with keys among id, wait, returns, echo, echo_all, echo_initargs, blob, inherited, raises, exit, unserializable, unserializable_item"
)]
pub enum TaskSpec {
    Full(Task),
    Short(Scalar),
}

/// A JSON scalar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl TaskSpec {
    /// The task this spec denotes.
    pub fn to_task(&self) -> Task {
        match self {
            TaskSpec::Full(t) => t.clone(),
            TaskSpec::Short(s) => Task {
                returns: Some(serde_json::to_value(s).unwrap_or(serde_json::Value::Null)),
                ..Task::default()
            },
        }
    }
}

/// An exception a task or callback raises.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorSpec {
    /// One of the registered exception types (see [`ERROR_TYPES`]).
    #[serde(rename = "type")]
    pub kind: String,
    /// The single argument the exception is constructed with.
    #[serde(default)]
    pub message: String,
}

/// Exception types a task may raise. Each driver maps them to its language's equivalents and
/// reports them back under these names.
pub const ERROR_TYPES: &[&str] = &[
    "ValueError",
    "RuntimeError",
    "KeyError",
    "TypeError",
    "ZeroDivisionError",
];

/// The start methods a `pool.context` may name.
pub const START_METHODS: &[&str] = &["fork", "spawn", "forkserver"];

/// A callback or error callback. It reports `callback` (or `error_callback`) with its
/// argument, waits on its gates, optionally raises, and reports `callback_done` otherwise.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Callback {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wait: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raises: Option<ErrorSpec>,
}

/// One operation of the program. Each is reported as `<id>.call` and `<id>.return`.
/// Step ids default to `s1`, `s2`, ... by position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// `pool.apply(task, args)`.
    Apply(Submit),
    /// `pool.apply_async(task, args, callback=..., error_callback=...)`: a handle.
    ApplyAsync(Submit),
    /// `pool.map(task, tasks, chunksize)`.
    Map(MapCall),
    /// `pool.map_async(...)`: a handle.
    MapAsync(MapCall),
    /// `pool.imap(...)`: an iterator handle.
    Imap(MapCall),
    /// `pool.imap_unordered(...)`: an iterator handle.
    ImapUnordered(MapCall),
    /// `pool.starmap(task, [(task, *args), ...], chunksize)`.
    Starmap(MapCall),
    /// `pool.starmap_async(...)`: a handle.
    StarmapAsync(MapCall),
    /// `handle.get(timeout)`.
    Get(OnHandle),
    /// `handle.wait(timeout)`.
    Wait(OnHandle),
    /// `handle.ready()`.
    Ready(OnHandle),
    /// `handle.successful()`.
    Successful(OnHandle),
    /// `iterator.next(timeout)`.
    Next(OnHandle),
    /// `list(iterator)`: everything left, or the first exception.
    Collect(OnHandle),
    /// `pool.close()`.
    Close(Plain),
    /// `pool.join()`.
    Join(Plain),
    /// `pool.terminate()`.
    Terminate(Plain),
    /// Leave the `with` block (`pool.__exit__(None, None, None)`); needs `pool.with_block`.
    ExitWith(Plain),
    /// `pool.__enter__()`: returns `"<pool>"` when it returned the pool itself.
    Enter(Plain),
    /// Let go of the pool without closing it: the driver drops every reference it holds (the
    /// pool and every handle) and collects garbage. Returns the warnings that raised, as
    /// `[{category, message}]` (Python: `ResourceWarning` from `Pool.__del__`). Only `open`
    /// and `await` steps may follow.
    Drop(Plain),
    /// Open a gate now.
    Open(OpenGate),
    /// Block the main thread until a condition holds (reported like any other step).
    Await(AwaitCond),
}

/// Arguments of `apply` and `apply_async`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Submit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub task: TaskSpec,
    /// Extra positional arguments after the task descriptor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<serde_json::Value>,
    /// Keyword arguments (`kwds`): names (identifiers) to JSON values.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub kwargs: IndexMap<String, serde_json::Value>,
    /// One more positional argument after `args`: a generated byte string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob_arg: Option<Blob>,
    /// Submit, instead of the task function, one that cannot be serialized to a worker
    /// (Python: a lambda that calls the task function), so nothing reaches a worker.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unserializable_func: bool,
    /// Pass, after `args`, one more argument that cannot be serialized to a worker (Python:
    /// a lambda), so the submission itself fails to reach any worker.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unserializable_arg: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<Callback>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_callback: Option<Callback>,
}

/// Arguments of the map family. For `starmap`/`starmap_async` each item is called as
/// `task(descriptor, *args)`; for the others `args` must be empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MapCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The iterable, one task per item.
    pub tasks: Vec<TaskSpec>,
    /// For starmap: the extra arguments of each item, parallel to `tasks`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Vec<serde_json::Value>>,
    /// `chunksize`; absent means the implementation's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunksize: Option<u32>,
    /// The input iterable raises this exception (a registered type) once it has yielded
    /// every item of `tasks`, instead of ending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then_raise: Option<ErrorSpec>,
    /// Submit a function that cannot be serialized to a worker (see [`Submit`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unserializable_func: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<Callback>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_callback: Option<Callback>,
}

/// An operation on a handle returned by an earlier step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnHandle {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The id of the step that returned the handle.
    pub of: String,
    /// Seconds; absent means wait without limit. Only for get, wait and next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
}

/// A step without arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Plain {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// The `open` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenGate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub gate: String,
}

/// The `await` step: wait until an event was recorded, or until a gate has `waiting` waiters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwaitCond {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<u32>,
}

/// Optional observations a case asks for. Each is deterministic only when the case's gates
/// force it, which is why none is recorded by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Probe {
    /// The listed events in the order they were recorded (missing ones are listed as absent).
    Order { name: String, events: Vec<String> },
    /// The largest number of tasks running at once (between `start` and `end`/`exit`).
    MaxConcurrency,
    /// How many distinct worker processes ran tasks or initializers.
    WorkerProcesses,
    /// Tasks grouped by the process that ran them: each group in program order, the groups
    /// ordered by their first task's position in the program.
    TasksByProcess,
    /// Where callbacks ran: process role, whether on the main thread, how many distinct
    /// threads, and the largest number running at once.
    CallbackContext,
    /// `equal`, `fewer` or `more`: the number of distinct worker processes that ran tasks or
    /// initializers against the pool's number of processes (for `processes: default`, the
    /// count the driver reports as its pool's default). Machine-independent where
    /// `worker_processes` would not be.
    WorkersVsProcesses,
}

impl Step {
    /// The operation's name, as in the YAML (`apply_async`, ...).
    pub fn op(&self) -> &'static str {
        match self {
            Step::Apply(_) => "apply",
            Step::ApplyAsync(_) => "apply_async",
            Step::Map(_) => "map",
            Step::MapAsync(_) => "map_async",
            Step::Imap(_) => "imap",
            Step::ImapUnordered(_) => "imap_unordered",
            Step::Starmap(_) => "starmap",
            Step::StarmapAsync(_) => "starmap_async",
            Step::Get(_) => "get",
            Step::Wait(_) => "wait",
            Step::Ready(_) => "ready",
            Step::Successful(_) => "successful",
            Step::Next(_) => "next",
            Step::Collect(_) => "collect",
            Step::Close(_) => "close",
            Step::Join(_) => "join",
            Step::Terminate(_) => "terminate",
            Step::ExitWith(_) => "exit_with",
            Step::Enter(_) => "enter",
            Step::Drop(_) => "drop",
            Step::Open(_) => "open",
            Step::Await(_) => "await",
        }
    }

    /// The tasks this step submits, in order: `apply`'s one, the map family's items.
    pub fn task_specs(&self) -> &[TaskSpec] {
        match self {
            Step::Apply(s) | Step::ApplyAsync(s) => std::slice::from_ref(&s.task),
            Step::Map(m)
            | Step::MapAsync(m)
            | Step::Imap(m)
            | Step::ImapUnordered(m)
            | Step::Starmap(m)
            | Step::StarmapAsync(m) => &m.tasks,
            _ => &[],
        }
    }

    /// The explicit id, if the YAML gave one.
    pub fn explicit_id(&self) -> Option<&str> {
        match self {
            Step::Apply(s) | Step::ApplyAsync(s) => s.id.as_deref(),
            Step::Map(m)
            | Step::MapAsync(m)
            | Step::Imap(m)
            | Step::ImapUnordered(m)
            | Step::Starmap(m)
            | Step::StarmapAsync(m) => m.id.as_deref(),
            Step::Get(h)
            | Step::Wait(h)
            | Step::Ready(h)
            | Step::Successful(h)
            | Step::Next(h)
            | Step::Collect(h) => h.id.as_deref(),
            Step::Close(p)
            | Step::Join(p)
            | Step::Terminate(p)
            | Step::ExitWith(p)
            | Step::Enter(p)
            | Step::Drop(p) => p.id.as_deref(),
            Step::Open(o) => o.id.as_deref(),
            Step::Await(a) => a.id.as_deref(),
        }
    }
}
