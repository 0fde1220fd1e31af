//! The vocabulary of a smoke check's results: the kinds of driver mistake it recognizes
//! ([`Mistake`], for tests and tools) and one explained problem ([`Finding`], for people).

use serde::Serialize;

/// The kinds of mistake a smoke check recognizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mistake {
    /// The driver's program could not be executed at all.
    CannotStart,
    /// The driver died (or exited) before answering the runner's hello.
    DiedAtStart,
    /// The driver never answered the runner's hello.
    NoHello,
    /// The driver's answer to hello has a missing, unknown or mistyped field.
    MalformedHello,
    /// The driver answered hello with something else than a hello (`done`, say).
    NotAHello,
    /// The driver answered hello with an `error`.
    HelloRefused,
    /// The driver speaks another protocol version.
    ProtocolMismatch,
    /// The driver does not declare capabilities the basic operations need.
    MissingCapabilities,
    /// The hello declares a capability poolspec does not know (most likely misspelt).
    UnknownCapability,
    /// The driver printed a line on stdout that is not a driver message.
    StdoutGarbage,
    /// No `done` (or `error`) came after a `run` within the liveness guard.
    NoDone,
    /// A `done` came with another `seq` than the `run` it answers.
    WrongSeq,
    /// A message that makes no sense at this point (a second `hello`).
    UnexpectedMessage,
    /// The driver answered a `run` with `error`.
    DriverError,
    /// The driver died while running a case.
    Crashed,
    /// The driver exited with status 0 while running a case, without answering.
    ExitedEarly,
    /// The run was answered, but nothing reached the coordinator.
    NoReports,
    /// Reports reached the coordinator but broke its protocol (malformed, unknown gate).
    ProtocolViolation,
    /// A step's `call` or `return` report is missing (or names the wrong operation).
    StepNotReported,
    /// A task's `start` or `end` report is missing.
    TaskNotReported,
    /// A callback's `callback` or `callback_done` report is missing.
    CallbackNotReported,
    /// The case ran and was reported, but its observation does not satisfy its `expect`.
    CaseFailed,
}

/// One problem: what kind, on which case, explained.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub mistake: Mistake,
    /// The case being run when it happened (`None` at start-up and handshake).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    /// What went wrong and what to change, in plain words.
    pub explanation: String,
    /// Supporting material shown below the explanation: stderr lines, a diff, a list.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

impl Finding {
    pub(super) fn new(
        mistake: Mistake,
        case: Option<&str>,
        explanation: impl Into<String>,
    ) -> Finding {
        Finding {
            mistake,
            case: case.map(str::to_owned),
            explanation: explanation.into(),
            details: Vec::new(),
        }
    }

    pub(super) fn with_details(mut self, details: impl IntoIterator<Item = String>) -> Finding {
        self.details.extend(details);
        self
    }
}

/// The mistake's name as the report prints it (`no-hello`): its serde name.
pub(super) fn kebab(m: Mistake) -> String {
    serde_json::to_value(m)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
