//! The two wire protocols of `spec/PROTOCOL.md`: runner ⇄ driver over stdio, and
//! implementation ⇄ coordinator over a Unix socket. JSON lines both ways.

use serde::{Deserialize, Serialize};

use crate::spec::Program;

/// Version of `spec/PROTOCOL.md`. A driver speaking another version is refused at handshake.
pub const PROTOCOL_VERSION: u32 = 2;

/// The longest line the runner reads from a driver's stdout, `\n` not counted (PROTOCOL.md
/// §2.3). The longest any built-in driver writes is a `hello` of 747 bytes.
pub const MAX_STDOUT_LINE: usize = 1 << 20;

/// The longest report the coordinator reads, `\n` not counted (PROTOCOL.md §2.3). The
/// longest any built-in driver sent, over the suite and 400 fuzzed programs, is 4,238 bytes.
pub const MAX_REPORT: usize = 256 << 10;

/// The most coordinator connections open at once for one driver (PROTOCOL.md §2.3). Drivers
/// connect lazily, one connection per reporting process or thread: at most 19 were seen at
/// once, summed over four drivers running side by side.
pub const MAX_CONNECTIONS: usize = 256;

/// The most bytes of reports the coordinator accepts for one case (PROTOCOL.md §2.3). The
/// biggest history of the suite is about 8 KB.
pub const MAX_CASE_REPORTS: usize = 8 << 20;

/// The prefix of an extension's capability (PROTOCOL.md §3.5): `ext:soft_timeout` promises
/// that the driver passes the constructor argument, or calls the method, `soft_timeout`. Any
/// name after the prefix is a known capability.
pub const EXTENSION_CAPABILITY: &str = "ext:";

/// A message from the runner to a driver (one JSON line on the driver's stdin).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToDriver {
    Hello {
        protocol: u32,
    },
    /// Run one program against a fresh pool. Events go to `coordinator`, tagged with `token`.
    Run {
        seq: u64,
        token: String,
        coordinator: String,
        program: Box<Program>,
    },
    Stop,
}

/// A message from a driver to the runner (one JSON line on the driver's stdout).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FromDriver {
    Hello {
        protocol: u32,
        implementation: ImplementationInfo,
        #[serde(default)]
        capabilities: Vec<String>,
    },
    /// The program ran to its end (whatever its steps raised) and the pool is gone.
    Done { seq: u64 },
    /// The driver could not run the program: a bug or missing feature in the driver itself.
    Error {
        #[serde(default)]
        seq: Option<u64>,
        message: String,
        #[serde(default)]
        traceback: Option<String>,
    },
}

/// What a driver says about the implementation it wraps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImplementationInfo {
    pub name: String,
    pub version: String,
    pub language: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_class: Option<String>,
    /// The version of the language the pool runs on (Python: `3.11.7`, PyPy's language
    /// version, not PyPy's own); checked against a case's `versions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_version: Option<String>,
    /// How many processes the pool uses when `processes` is left to it (CPython:
    /// `os.process_cpu_count()` from 3.13, else `os.cpu_count()`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_processes: Option<u32>,
}

/// How a step ended, as reported in its `return` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Outcome {
    Returned(serde_json::Value),
    Raised(ErrorValue),
    /// The step returned an `AsyncResult` (`result`) or an iterator (`iterator`).
    Handle(String),
}

/// An exception, by type name and message (`str(exc)`). An exception a *step* raised also
/// says what it can be caught as: its neutral kind (one of [`ERROR_KINDS`]), for a task's
/// exception whether the worker-side traceback came with it, and from a Python driver its
/// class and the reference classes it is an instance of (PROTOCOL.md §4.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorValue {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    /// The neutral kind (`timeout`, `pool_not_running`, ...).
    #[serde(default, rename = "kind", skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// For kind `task`: whether the worker-side traceback travels with the exception.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceback: Option<bool>,
    /// Python drivers: `{class, isinstance: {reference class: bool}, cause}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<serde_json::Value>,
}

impl ErrorValue {
    /// A plain `{type, message}`, as tasks and callbacks report them.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> ErrorValue {
        ErrorValue {
            kind: kind.into(),
            message: message.into(),
            class: None,
            traceback: None,
            python: None,
        }
    }
}

/// The language-neutral kinds of exception a step can raise (PROTOCOL.md §4.3). Every SDK
/// maps its own types onto them, so a case can say "a timeout" without naming a class.
pub const ERROR_KINDS: &[(&str, &str)] = &[
    (
        "timeout",
        "a result did not arrive within the timeout (Python: multiprocessing.TimeoutError)",
    ),
    (
        "pool_not_running",
        "the pool was closed or terminated (Python: ValueError \"Pool not running\")",
    ),
    (
        "pool_running",
        "join() on a pool neither closed nor terminated (Python: ValueError \"Pool is still running\")",
    ),
    (
        "not_ready",
        "successful() before the result is ready (Python: ValueError \"... not ready\")",
    ),
    (
        "invalid_argument",
        "the pool refused a construction argument (Python: ValueError or TypeError from Pool(...))",
    ),
    (
        "serialization",
        "a function, argument or result could not be serialized (Python: pickling errors, MaybeEncodingError)",
    ),
    (
        "task",
        "the exception a task, the input iterable or a callback raised, re-raised as itself",
    ),
    ("other", "anything else"),
];

/// One report sent to the coordinator. Every report is acknowledged before the sender goes
/// on; `wait` and `await` are acknowledged only once their condition holds.
// No `deny_unknown_fields` here: serde does not support it together with `flatten`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The token of the case this report belongs to; reports of an earlier case are ignored.
    pub token: String,
    /// OS process id of the sender.
    pub pid: u32,
    /// Thread identity of the sender, unique within its process.
    pub thread: serde_json::Value,
    #[serde(flatten)]
    pub event: ReportKind,
}

/// The kinds of report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ReportKind {
    /// The main thread is about to run step `step`.
    Call { step: String, op: String },
    /// Step `step` finished.
    Return { step: String, outcome: Outcome },
    /// A task (or initializer) began.
    Start { task: String },
    /// A task finished with a value or an exception.
    End { task: String, outcome: Outcome },
    /// A task is about to end its process abruptly.
    Exit { task: String, code: i32 },
    /// A callback of step `step` was entered with `arg` (`kind`: callback or error_callback).
    Callback {
        step: String,
        kind: String,
        arg: serde_json::Value,
    },
    /// A callback of step `step` is about to return (or raise `raised`).
    CallbackDone {
        step: String,
        kind: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        raised: Option<ErrorValue>,
    },
    /// `who` (a task id or `<step>.<kind>` for a callback) waits until `gate` opens.
    Wait { who: String, gate: String },
    /// The main thread opens `gate`.
    Open { gate: String },
    /// The main thread constructed the pool (and entered it, for `with_block`), before any
    /// step: `returned: null`, or `raised` when the pool refused its arguments.
    Construct { outcome: Outcome },
    /// The main thread waits until `until_event` was recorded, or `gate` has `waiting` waiters.
    Await {
        #[serde(default)]
        until_event: Option<String>,
        #[serde(default)]
        gate: Option<String>,
        #[serde(default)]
        waiting: Option<u32>,
    },
}

/// The coordinator's answer to a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// `false` when the case is over (or the report was malformed); the sender should stop
    /// what it is doing and return as quietly as it can.
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bounded_read::bytes_in_words;

    /// The limits table of PROTOCOL.md §2.3 states the constants: `(row's first words, limit)`.
    #[test]
    fn protocol_md_states_the_limits_of_the_code() {
        let text = std::fs::read_to_string(crate::workspace_root().join("spec/PROTOCOL.md"))
            .expect("spec/PROTOCOL.md");
        let section = text
            .split("### 2.3 Limits")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("PROTOCOL.md has a section 2.3 Limits");
        let rows: Vec<Vec<&str>> = section
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| what"))
            .map(|l| l.split(" | ").map(|c| c.trim_matches(['|', ' '])).collect())
            .collect();
        let expected = [
            (
                "one line of the driver's stdout",
                bytes_in_words(MAX_STDOUT_LINE),
            ),
            ("one coordinator report", bytes_in_words(MAX_REPORT)),
            (
                "coordinator connections of one driver open at once",
                MAX_CONNECTIONS.to_string(),
            ),
            (
                "the reports of one case, summed",
                bytes_in_words(MAX_CASE_REPORTS),
            ),
        ];
        assert_eq!(rows.len(), expected.len(), "{rows:#?}");
        for (row, (what, limit)) in rows.iter().zip(&expected) {
            assert!(row[0].starts_with(what), "{row:?} is not about {what}");
            assert_eq!(row[1], limit, "PROTOCOL.md §2.3 on {what}");
        }
    }
}
