//! Exceptions as the protocol reports them (PROTOCOL.md §4.3): Python's type name and
//! message, the language-neutral kind, and the exceptions a case asks a task or callback to
//! raise ([`ErrorSpec`]).
//!
//! A leaf: programs, events, tasks and steps all speak of exceptions, so they live below
//! every one of them.

use serde::{Deserialize, Serialize};

use crate::repr::py_repr_str;

/// An exception to raise: a registered type name and the single argument it is constructed
/// with (see [`Exception::from_spec`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorSpec {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub message: String,
}

/// The exception types a case may ask for (spec/README.md §4, "Registered exception types").
pub const ERROR_TYPES: &[&str] = &[
    "ValueError",
    "RuntimeError",
    "KeyError",
    "TypeError",
    "ZeroDivisionError",
];

/// An exception as the protocol reports it: Python's type name and `str(exc)`, and for an
/// exception a step raised, its language-neutral kind (PROTOCOL.md §4.3). Serializes as
/// `{"type": ..., "message": ..., "kind": ..., "traceback": ...}`, the last two only when set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Exception {
    /// The Python type name (`ValueError`, `TimeoutError`, `MaybeEncodingError`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// What Python's `str(exc)` gives.
    pub message: String,
    /// The neutral kind (`timeout`, `pool_not_running`, `task`, ...): set by the driver with
    /// [`Exception::with_neutral`], or guessed from the type and message by
    /// [`Exception::classified`] when a step's outcome is reported.
    #[serde(rename = "kind", default, skip_serializing_if = "Option::is_none")]
    pub neutral: Option<String>,
    /// For neutral kind `task`: whether the worker-side context (Python: the remote
    /// traceback) travels with the exception.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceback: Option<bool>,
}

impl Exception {
    /// An exception with this type name and message.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Exception {
        Exception {
            kind: kind.into(),
            message: message.into(),
            neutral: None,
            traceback: None,
        }
    }

    /// This exception, of neutral kind `neutral` (one of [`NEUTRAL_KINDS`]).
    pub fn with_neutral(mut self, neutral: &str) -> Exception {
        self.neutral = Some(neutral.to_owned());
        self
    }

    /// This exception, saying whether the worker-side context came with it.
    pub fn with_traceback(mut self, traceback: bool) -> Exception {
        self.traceback = Some(traceback);
        self
    }

    /// This exception with its neutral kind filled in where the driver left it out, from
    /// the Python type name and message the SDK's own exceptions use (the same rules as the
    /// Python SDK's `_neutral_kind`). A task's exception without a `traceback` is reported
    /// as carrying none: a driver that keeps the worker's context says so.
    pub fn classified(mut self) -> Exception {
        let neutral = match self.neutral.take() {
            Some(n) => n,
            None => neutral_kind(&self.kind, &self.message).to_owned(),
        };
        if neutral == "task" && self.traceback.is_none() {
            self.traceback = Some(false);
        }
        self.neutral = Some(neutral);
        self
    }

    /// This exception as the pool's constructor raised it (the `construct` report): its
    /// neutral kind is the driver's, or `invalid_argument` for a `ValueError` or `TypeError`
    /// (what Python's `Pool(...)` raises for arguments it refuses), else `other`.
    pub fn classified_construction(mut self) -> Exception {
        if self.neutral.is_none() {
            let refused = matches!(self.kind.as_str(), "ValueError" | "TypeError");
            self.neutral = Some(if refused { "invalid_argument" } else { "other" }.to_owned());
        }
        self
    }

    /// The exception a task's or callback's `raises` describes, as Python would show it:
    /// `str(KeyError(m))` is `repr(m)`, the other registered types give `m` itself. An
    /// unregistered type gives the `RuntimeError` poolspec_tasks.py raises for it.
    pub fn from_spec(spec: &ErrorSpec) -> Exception {
        if ERROR_TYPES.contains(&spec.kind.as_str()) {
            let message = if spec.kind == "KeyError" {
                py_repr_str(&spec.message)
            } else {
                spec.message.clone()
            };
            Exception::new(spec.kind.clone(), message)
        } else {
            Exception::new(
                "RuntimeError",
                format!(
                    "poolspec: unknown exception type {}",
                    py_repr_str(&spec.kind)
                ),
            )
        }
    }
}

/// The language-neutral kinds of exception (PROTOCOL.md §4.3).
pub const NEUTRAL_KINDS: &[&str] = &[
    "timeout",
    "pool_not_running",
    "pool_running",
    "not_ready",
    "invalid_argument",
    "serialization",
    "task",
    "other",
];

/// The neutral kind of an exception known only by its Python type name and message.
fn neutral_kind(kind: &str, message: &str) -> &'static str {
    match kind {
        "TimeoutError" => "timeout",
        "MaybeEncodingError" | "PicklingError" => "serialization",
        "ValueError" if message == "Pool not running" => "pool_not_running",
        "ValueError" if message == "Pool is still running" => "pool_running",
        "ValueError" if message.ends_with(" not ready") => "not_ready",
        "AttributeError" | "TypeError" if message.to_lowercase().contains("pickle") => {
            "serialization"
        }
        k if ERROR_TYPES.contains(&k) => "task",
        _ => "other",
    }
}

impl std::fmt::Display for Exception {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceptions_from_specs() {
        let spec = |kind: &str, message: &str| ErrorSpec {
            kind: kind.into(),
            message: message.into(),
        };
        assert_eq!(
            Exception::from_spec(&spec("ValueError", "boom")),
            Exception::new("ValueError", "boom")
        );
        assert_eq!(
            Exception::from_spec(&spec("KeyError", "k")),
            Exception::new("KeyError", "'k'")
        );
        assert_eq!(
            Exception::from_spec(&spec("OSError", "x")),
            Exception::new("RuntimeError", "poolspec: unknown exception type 'OSError'")
        );
        assert_eq!(
            serde_json::to_string(&Exception::new("TypeError", "t")).unwrap(),
            r#"{"type":"TypeError","message":"t"}"#
        );
    }

    #[test]
    fn construction_errors_are_invalid_arguments() {
        let c = |kind: &str| Exception::new(kind, "m").classified_construction();
        assert_eq!(c("ValueError").neutral.as_deref(), Some("invalid_argument"));
        assert_eq!(c("TypeError").neutral.as_deref(), Some("invalid_argument"));
        assert_eq!(c("OSError").neutral.as_deref(), Some("other"));
        let own = Exception::new("ValueError", "m").with_neutral("other");
        assert_eq!(
            own.classified_construction().neutral.as_deref(),
            Some("other")
        );
    }
}
