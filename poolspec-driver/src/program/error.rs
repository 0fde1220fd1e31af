//! What can be wrong with a program a driver is sent: each message is the one
//! poolspec_driver.py answers `error` with, word for word (the runner shows it, and the
//! driver tests compare it), so a Rust driver and a Python one fail a program alike.

use serde_json::Value;

use crate::repr::py_repr_str;
use crate::types::Failure;

/// Why [`Program::from_json`](crate::Program::from_json) refused a program. Its `Display`
/// is the message to answer `error` with; the variants say which part of the program is at
/// fault, for a driver that wants to act on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProgramError {
    /// The program is not a JSON object.
    #[error("program is not a JSON object")]
    NotAnObject,
    /// Step `n` (from 1) is not an object with exactly one key, its op.
    #[error("step {n} is not a one-key object: {step}")]
    NotOneKey { n: usize, step: Value },
    /// Step `n` names an op this crate does not know.
    #[error("unknown op {} (step {n})", py_repr_str(op))]
    UnknownOp { n: usize, op: String },
    /// The body of step `n` is neither an object nor `null`.
    #[error("body of step {n} ({op}) is not an object")]
    BodyNotAnObject { n: usize, op: String },
    /// An `apply` or `apply_async` step without a task; `id` is the step's id as Python's
    /// `repr` shows it.
    #[error("step {id} has no task")]
    NoTask { id: String },
    /// An `open` step without a gate.
    #[error("open step {id} names no gate")]
    NoGate { id: String },
    /// An `await` step with nothing to wait for.
    #[error("await step {id} has neither event nor gate")]
    NothingToAwait { id: String },
    /// A map-family op other than `starmap` given per-item arguments.
    #[error("step {id}: {op} takes no args")]
    ArgsNotTaken { id: String, op: String },
    /// The body of step `n` does not have the shape of its op.
    #[error("step {n} ({op}): {source}")]
    Body {
        n: usize,
        op: String,
        #[source]
        source: serde_json::Error,
    },
    /// `pool.processes` is neither an integer nor `null`.
    #[error("pool.processes is not an integer or null: {0}")]
    Processes(Value),
    /// `pool.maxtasksperchild` is a list or an object.
    #[error("pool.maxtasksperchild is not a scalar: {0}")]
    Maxtasksperchild(Value),
    /// `pool.initializer` is not a task.
    #[error("pool.initializer: {0}")]
    Initializer(#[source] serde_json::Error),
    /// `pool.initargs` is not a list.
    #[error("pool.initargs is not a list: {0}")]
    Initargs(Value),
    /// `pool.context` is not a string.
    #[error("pool.context is not a string: {0}")]
    Context(Value),
    /// `pool.extension` is not an object.
    #[error("pool.extension is not an object: {0}")]
    Extension(Value),
}

/// A program the driver cannot read is the driver's failure to run it, with this message.
impl From<ProgramError> for Failure {
    fn from(e: ProgramError) -> Failure {
        Failure::new(e.to_string())
    }
}
