//! The case format: the Rust types behind `spec/*.yaml`.
//!
//! `spec/README.md` is the normative prose; these types are its machine form, and the JSON
//! Schema in `spec/case.schema.json` is exported from them (`cargo xtask conformance schema`).
//! Every struct denies unknown fields, so a typo is an error with a location, never a silent
//! default.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use super::area::Area;
use super::step::Step;
use super::task::{Scalar, Task};
use super::unique::unique_keys;

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
    #[serde(default, deserialize_with = "unique_keys")]
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
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "unique_keys"
    )]
    pub versions: IndexMap<String, String>,
    /// Only for an added spec folder (`--spec DIR`): the implementations the claim is about,
    /// each a name or a name's prefix (`python:counting_pool`). Any other implementation gets
    /// `not-applicable`. Empty: every implementation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applies_to: Vec<String>,
    /// What judges the claim: CPython (the default, and the only oracle of the built-in
    /// suite), or, only in an added spec folder, the maintainer's own `--snapshots DIR`.
    #[serde(default, skip_serializing_if = "Oracle::is_cpython")]
    pub oracle: Oracle,
}

/// What a case's observations are compared with besides its `expect`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Oracle {
    /// CPython's Pool: reports diff every implementation's observation against `cpython-fork`.
    #[default]
    Cpython,
    /// The maintainer's own regression snapshots (`--snapshots DIR`): CPython has no such
    /// behaviour, so no report diffs the case against it.
    Snapshots,
}

impl Oracle {
    pub fn is_cpython(&self) -> bool {
        *self == Oracle::Cpython
    }
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
    /// Constructor arguments Pool does not have (`soft_timeout: 5`): keyword names to JSON
    /// values, passed to the pool's constructor. Each needs the capability `ext:NAME`.
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "unique_keys"
    )]
    pub extension: IndexMap<String, serde_json::Value>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Count {
    N(u32),
    Word(CountWord),
}

impl<'de> Deserialize<'de> for Count {
    // A visitor, not an untagged enum, so that a wrong value is named at its position
    // instead of "data did not match any variant".
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of waiters, or `processes`")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Count, E> {
                u32::try_from(n)
                    .map(Count::N)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(n), &self))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Count, E> {
                u64::try_from(n)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(n), &self))
                    .and_then(|n| self.visit_u64(n))
            }
            fn visit_str<E: serde::de::Error>(self, w: &str) -> Result<Count, E> {
                if w == "processes" {
                    Ok(Count::Word(CountWord::Processes))
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Str(w), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
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

/// The start methods a `pool.context` may name.
pub const START_METHODS: &[&str] = &["fork", "spawn", "forkserver"];
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
