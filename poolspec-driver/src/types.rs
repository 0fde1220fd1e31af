//! The small types every stage of a run speaks of: how a step or task ended ([`Outcome`],
//! [`HandleKind`]), which callback ran ([`CallbackKind`]), and why the driver itself could
//! not go on ([`Failure`], with panics turned into failures).
//!
//! A leaf below programs, the coordinator client, tasks, steps, teardown and the serve
//! loop: each of them reports or returns these, so none of them may own them.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::exception::Exception;

/// How a step (or a task) ended, as its `return` (or `end`) report says: serializes as
/// `{"returned": V}`, `{"raised": {"type": T, "message": M}}` or `{"handle": "result"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The operation returned this value (`null` for `close`, `wait`, ...).
    Returned(Value),
    /// The operation raised this exception. An exception of the operation is an outcome,
    /// never a driver failure.
    Raised(Exception),
    /// The operation returned an AsyncResult or an iterator, kept for later steps.
    Handle(HandleKind),
}

impl Outcome {
    /// `{"returned": null}`.
    pub fn none() -> Outcome {
        Outcome::Returned(Value::Null)
    }

    /// What `next` gives on an exhausted iterator: `StopIteration` with an empty message.
    pub fn stop_iteration() -> Outcome {
        Outcome::Raised(Exception::new("StopIteration", ""))
    }

    /// What an `enter` step that returned the pool itself reports: `{"returned": "<pool>"}`.
    pub fn entered() -> Outcome {
        Outcome::Returned(Value::from("<pool>"))
    }

    /// A byte string the operation returned, as it is observed:
    /// [`bytes_summary`](crate::bytes_summary).
    pub fn bytes(bytes: &[u8]) -> Outcome {
        Outcome::Returned(crate::blob::bytes_summary(bytes))
    }
}

impl Outcome {
    /// A raised exception with its neutral kind filled in ([`Exception::classified`]).
    pub(crate) fn classified(self) -> Outcome {
        match self {
            Outcome::Raised(e) => Outcome::Raised(e.classified()),
            other => other,
        }
    }
}

impl<E: Into<Exception>> From<Result<Value, E>> for Outcome {
    fn from(r: Result<Value, E>) -> Outcome {
        match r {
            Ok(v) => Outcome::Returned(v),
            Err(e) => Outcome::Raised(e.into()),
        }
    }
}

/// What a step returns that later steps use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HandleKind {
    /// An AsyncResult (`apply_async`, `map_async`, `starmap_async`), for `get`, `wait`,
    /// `ready`, `successful`.
    Result,
    /// An iterator (`imap`, `imap_unordered`), for `next`, `collect`.
    Iterator,
}

impl HandleKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            HandleKind::Result => "result",
            HandleKind::Iterator => "iterator",
        }
    }
}

/// Which callback of a step: `callback` (success) or `error_callback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackKind {
    Callback,
    ErrorCallback,
}

impl CallbackKind {
    /// `callback` or `error_callback`.
    pub fn name(self) -> &'static str {
        match self {
            CallbackKind::Callback => "callback",
            CallbackKind::ErrorCallback => "error_callback",
        }
    }
}

/// Why a driver could not run a program (or start): answered as `error` with `message` and
/// `traceback`. Not for exceptions a pool operation raises: those are step outcomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// One line saying what went wrong.
    pub message: String,
    /// Optional detail (the runner shows its last line with the message).
    pub traceback: Option<String>,
}

impl Failure {
    /// A failure with this message and no traceback.
    pub fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            traceback: None,
        }
    }

    /// The same failure, with this traceback.
    pub fn with_traceback(mut self, traceback: impl Into<String>) -> Failure {
        self.traceback = Some(traceback.into());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::new(message)
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Failure {
        Failure::new(message)
    }
}

/// Runs `f`, turning a panic into the failure `driver failure: panic: <message>`.
pub fn catch_panic<T>(f: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => Err(Failure::new(format!(
            "driver failure: panic: {}",
            panic_message(p.as_ref())
        ))),
    }
}

/// The message a panic was raised with (`panic!("...")` or `panic_any(String)`), or `panic`.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outcomes_serialize_as_the_protocol_says() {
        let s = |o: Outcome| serde_json::to_string(&o).unwrap();
        assert_eq!(s(Outcome::Returned(json!([1, 2]))), r#"{"returned":[1,2]}"#);
        assert_eq!(s(Outcome::none()), r#"{"returned":null}"#);
        assert_eq!(
            s(Outcome::stop_iteration()),
            r#"{"raised":{"type":"StopIteration","message":""}}"#
        );
        assert_eq!(
            s(Outcome::Handle(HandleKind::Result)),
            r#"{"handle":"result"}"#
        );
        let raised: Outcome = Err::<Value, _>(Exception::new("ValueError", "x")).into();
        assert_eq!(raised, Outcome::Raised(Exception::new("ValueError", "x")));
    }

    #[test]
    fn panics_become_failures() {
        let r: Result<(), Failure> = catch_panic(|| panic!("boom"));
        assert_eq!(r.unwrap_err().message, "driver failure: panic: boom");
        let r: Result<(), Failure> = catch_panic(|| std::panic::panic_any(7));
        assert_eq!(r.unwrap_err().message, "driver failure: panic: panic");
    }
}
