//! The first checks: does the driver start and answer the runner's hello, does its hello
//! name the implementation, and does it declare the operations the smoke cases use? Each
//! failure is explained with what to change.

use std::time::{Duration, Instant};

use super::finding::{Finding, Mistake};
use super::messages::{line_finding, over_limit_finding};
use super::report::Entry;
use super::text::{join_ticked, stderr_details};
use crate::capabilities::{EXTENSION_PREFIX, closest, is_known};
use crate::driver::{DriverFault, DriverSession};
use crate::implementations::Implementation;
use crate::protocol::{ImplementationInfo, PROTOCOL_VERSION};
use crate::runner::needed_capabilities;
use crate::spec::LoadedCase;

/// Starts the driver and shakes hands: the session and the line saying how it went, or the
/// explained reason it did not start.
pub(super) fn start(
    imp: &Implementation,
    guard: Duration,
) -> Result<(DriverSession, Entry), Finding> {
    let started = Instant::now();
    let session = DriverSession::start(&imp.command, guard)
        .map_err(|fault| handshake_finding(&fault, imp, guard))?;
    let info = &session.info;
    let entry = Entry::Ok {
        check: "handshake".into(),
        note: format!(
            "started and answered hello in {:.1} s: {} {} ({}{}), protocol {PROTOCOL_VERSION}, \
             {} capabilities",
            started.elapsed().as_secs_f64(),
            info.name,
            info.version,
            info.language,
            info.start_method
                .as_deref()
                .map(|m| format!(", start method {m}"))
                .unwrap_or_default(),
            session.capabilities.len()
        ),
    };
    Ok((session, entry))
}

/// A hello whose `implementation` leaves a name, version or language blank.
pub(super) fn blank_identity(info: &ImplementationInfo) -> Option<Finding> {
    let blanks: Vec<&str> = [
        ("name", &info.name),
        ("version", &info.version),
        ("language", &info.language),
    ]
    .into_iter()
    .filter(|(_, v)| v.trim().is_empty())
    .map(|(k, _)| k)
    .collect();
    if blanks.is_empty() {
        return None;
    }
    Some(Finding::new(
        Mistake::MalformedHello,
        None,
        format!(
            "the hello's `implementation` has an empty {}: reports and expectation files \
                 show these, so give the real values (e.g. \"name\": \"billiard\", \
                 \"version\": \"4.2.0\", \"language\": \"python\").",
            join_ticked(&blanks)
        ),
    ))
}

/// Whether the hello declares every operation the smoke cases use.
pub(super) fn capabilities(cases: &[LoadedCase], declared: &[String]) -> Entry {
    let mut needed: Vec<String> = Vec::new();
    for lc in cases {
        for c in needed_capabilities(lc) {
            if !needed.contains(&c) {
                needed.push(c);
            }
        }
    }
    let missing: Vec<String> = needed
        .iter()
        .filter(|c| !declared.contains(c))
        .cloned()
        .collect();
    if missing.is_empty() {
        return Entry::Ok {
            check: "capabilities".into(),
            note: format!(
                "declares every operation the smoke cases use ({})",
                needed.join(", ")
            ),
        };
    }
    let mut finding = Finding::new(
        Mistake::MissingCapabilities,
        None,
        format!(
            "the hello does not declare {} {}. These are basic operations: the smoke \
                 cases (and most of the suite) use them, and the runner never sends a case \
                 that needs an undeclared capability (its status is `unsupported`). List \
                 every operation you implement in `capabilities`, by its step name \
                 (PROTOCOL.md §3.2).",
            if missing.len() == 1 {
                "the capability"
            } else {
                "the capabilities"
            },
            join_ticked(&missing)
        ),
    );
    if declared.is_empty() {
        finding.details.push(
            "it declares no capability at all (an absent `capabilities` list means none)"
                .to_owned(),
        );
    } else {
        finding
            .details
            .push(format!("declared: {}", declared.join(", ")));
    }
    Entry::Problem(finding)
}

/// Capabilities in the hello that poolspec does not know (`capabilities.rs`), each with the
/// closest known name: a misspelt one makes every case needing the real one `unsupported`.
pub(super) fn unknown_capabilities(declared: &[String]) -> Option<Finding> {
    let unknown: Vec<&String> = declared.iter().filter(|c| !is_known(c)).collect();
    if unknown.is_empty() {
        return None;
    }
    let details = unknown.iter().map(|name| match closest(name) {
        Some(known) => format!("`{name}`: did you mean `{known}`?"),
        None => format!("`{name}`: no known capability is close"),
    });
    Some(
        Finding::new(
            Mistake::UnknownCapability,
            None,
            format!(
                "the hello declares {} poolspec does not know. No case of the suite needs an \
                 unknown name, so a misspelt capability is as good as missing: every case \
                 that needs the real one gets `unsupported`. Spell it as PROTOCOL.md §3.2 \
                 does; a capability of your pool's own (for your own cases) is named \
                 `{EXTENSION_PREFIX}NAME`.",
                if unknown.len() == 1 {
                    "a capability"
                } else {
                    "capabilities"
                },
            ),
        )
        .with_details(details),
    )
}

fn command_line(imp: &Implementation) -> String {
    std::iter::once(imp.command.program.as_str())
        .chain(imp.command.args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Explains why a driver did not get through its handshake.
pub(super) fn handshake_finding(
    fault: &DriverFault,
    imp: &Implementation,
    guard: Duration,
) -> Finding {
    let cmd = command_line(imp);
    match fault {
        DriverFault::Crashed { status, stderr } if status.starts_with("cannot start") => {
            Finding::new(
                Mistake::CannotStart,
                None,
                format!(
                    "the driver could not be started: {status}. The command was `{cmd}`: \
                     check that the path is right (relative paths are relative to the \
                     current directory), that the file is executable (chmod +x), and that a \
                     script starts with a #! line naming its interpreter."
                ),
            )
            .with_details((!stderr.is_empty()).then(|| stderr.clone()))
        }
        DriverFault::Crashed { status, stderr } => Finding::new(
            Mistake::DiedAtStart,
            None,
            format!(
                "the driver died before answering the runner's hello ({status}). It must \
                 start, read the hello line from stdin and answer it; the end of its stderr \
                 usually says why it did not (a missing module, a bad argument)."
            ),
        )
        .with_details(stderr_details(stderr)),
        DriverFault::ExitedEarly { stderr } => Finding::new(
            Mistake::DiedAtStart,
            None,
            "the driver exited (status 0) before answering the runner's hello. A driver \
             reads JSON lines from stdin and answers each one; it exits only on `stop` or at \
             the end of stdin.",
        )
        .with_details(stderr_details(stderr)),
        DriverFault::Timeout { .. } => Finding::new(
            Mistake::NoHello,
            None,
            format!(
                "the driver started but did not answer the runner's hello within {:.1} s. \
                 The runner writes {{\"type\":\"hello\",\"protocol\":{PROTOCOL_VERSION}}} and \
                 a newline to the driver's stdin; the driver must answer with one line on \
                 stdout: {{\"type\":\"hello\",\"protocol\":{PROTOCOL_VERSION},\
                 \"implementation\":{{\"name\":...,\"version\":...,\"language\":...}},\
                 \"capabilities\":[...]}}. Check that it reads stdin line by line, ends its \
                 answer with a newline and flushes stdout (Python: `python -u` or \
                 `flush=True`).",
                guard.as_secs_f64()
            ),
        ),
        DriverFault::Garbage { line } => line_finding(line, None, true),
        DriverFault::StdoutLineTooLong { .. } => over_limit_finding(None, true, &fault.summary()),
        DriverFault::CoordinatorLimit { .. } => over_limit_finding(None, false, &fault.summary()),
        DriverFault::Handshake { message } => {
            if let Some(rest) = message.strip_prefix("driver speaks protocol ") {
                let theirs = rest.split(',').next().unwrap_or(rest);
                Finding::new(
                    Mistake::ProtocolMismatch,
                    None,
                    format!(
                        "protocol version mismatch: the driver answered hello with \
                         \"protocol\": {theirs}, and this runner speaks protocol \
                         {PROTOCOL_VERSION} only (versions are never negotiated). Answer \
                         with \"protocol\": {PROTOCOL_VERSION} if the driver implements \
                         spec/PROTOCOL.md as it is now; otherwise update it first.{}",
                        if theirs.trim() == "1" {
                            " PROTOCOL.md's \"What changed in protocol 2\" lists what a \
                             protocol 1 driver must add."
                        } else {
                            ""
                        }
                    ),
                )
            } else if let Some(what) = message.strip_prefix("expected a hello, got ") {
                Finding::new(
                    Mistake::NotAHello,
                    None,
                    format!(
                        "the driver answered the runner's hello with {what} instead of a \
                         hello. The first line it prints must be its own hello: \
                         {{\"type\":\"hello\",\"protocol\":{PROTOCOL_VERSION},\
                         \"implementation\":{{...}},\"capabilities\":[...]}}."
                    ),
                )
            } else {
                Finding::new(
                    Mistake::HelloRefused,
                    None,
                    format!(
                        "the driver answered the runner's hello with an `error`: {message}. \
                         The runner asked for protocol {PROTOCOL_VERSION}; a driver answers \
                         `error` to hello only when it cannot serve at all (another \
                         protocol version, a start method this platform lacks)."
                    ),
                )
            }
        }
    }
}
