//! Statuses and verdicts.
//!
//! A *status* is what happened when a case ran on an implementation. A *verdict* compares it
//! with what the implementation's expectation file says should happen: only an unexpected
//! verdict fails the run.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What happened when one case ran on one implementation.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The observation satisfied the case's expectations.
    Pass,
    /// The observation contradicts the case's expectations.
    Fail,
    /// The driver reported that it could not run the program, or broke the protocol of the
    /// coordinator.
    Error,
    /// The driver died, exited early or printed garbage.
    Crash,
    /// The liveness guard expired.
    Timeout,
    /// The implementation lacks a capability the case requires.
    Unsupported,
    /// The case's `versions` say its claim does not hold for this implementation's language
    /// version (a behaviour of the reference that arrived later); the case did not run.
    NotApplicable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Error => "error",
            Status::Crash => "crash",
            Status::Timeout => "timeout",
            Status::Unsupported => "unsupported",
            Status::NotApplicable => "not-applicable",
        }
    }
}

/// A status judged against the expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Passed, as expected.
    Pass,
    /// Did not pass, and the expectation file says so.
    ExpectedFail,
    /// Passed although the expectation file says it should not: remove the entry.
    UnexpectedPass,
    /// Did not pass, unexpectedly (or not in the expected way).
    Unexpected,
}

impl Verdict {
    pub fn judge(actual: Status, expected: Option<Status>) -> Verdict {
        match (actual, expected) {
            (Status::Pass | Status::NotApplicable, None) => Verdict::Pass,
            (Status::Pass | Status::NotApplicable, Some(_)) => Verdict::UnexpectedPass,
            (a, Some(e)) if a == e => Verdict::ExpectedFail,
            _ => Verdict::Unexpected,
        }
    }

    pub fn is_ok(self) -> bool {
        matches!(self, Verdict::Pass | Verdict::ExpectedFail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judging() {
        assert_eq!(Verdict::judge(Status::Pass, None), Verdict::Pass);
        assert_eq!(
            Verdict::judge(Status::Fail, Some(Status::Fail)),
            Verdict::ExpectedFail
        );
        assert_eq!(
            Verdict::judge(Status::Pass, Some(Status::Fail)),
            Verdict::UnexpectedPass
        );
        assert_eq!(
            Verdict::judge(Status::Timeout, Some(Status::Fail)),
            Verdict::Unexpected
        );
        assert_eq!(
            Verdict::judge(Status::Unsupported, None),
            Verdict::Unexpected
        );
        assert!(!Verdict::UnexpectedPass.is_ok());
        assert_eq!(Verdict::judge(Status::NotApplicable, None), Verdict::Pass);
    }
}
