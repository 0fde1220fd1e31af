//! `cargo xtask conformance smoke`: a first check of a new driver.
//!
//! The full matrix judges an implementation; it assumes the driver speaks
//! `spec/PROTOCOL.md`. When a driver is new, most failures are protocol mistakes, and a matrix
//! of 100 `crash` or `error` cells says little about which one. The smoke check starts the
//! driver once, checks its handshake field by field, runs a handful of trivial cases
//! ([`SMOKE_CASES`]) one at a time, and explains every mistake it finds in plain words, with
//! what to change: a driver that does not start, a malformed hello, a protocol version
//! mismatch, missing capabilities, stdout garbage, no `done`, a `done` with the wrong `seq`,
//! reports that never reached the coordinator, steps or tasks that were not reported, and
//! finally cases that ran but failed (with a diff of what was expected against what was
//! observed).
//!
//! Each problem carries a [`Mistake`] (for tests and tools) and an explanation (for people).
//! Unlike the matrix, the smoke check stops at the first fault (the driver died, hung or
//! printed garbage): the cases after it would only repeat it.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use similar::TextDiff;

use crate::coordinator::{Coordinator, History, Origin};
use crate::driver::{DriverFault, DriverSession};
use crate::expect::first_mismatch;
use crate::implementations::Implementation;
use crate::observe::{observe, task_ids};
use crate::protocol::{FromDriver, ImplementationInfo, PROTOCOL_VERSION, ReportKind, ToDriver};
use crate::runner::needed_capabilities;
use crate::spec::{LoadedCase, TimeoutTier};

/// The trivial cases a smoke check runs, in order: `apply` (BLK-001), `apply_async` with a
/// gate, `await`, `ready`, `open` and `get` (BLK-002), `apply` with arguments (ORD-009), an
/// exception and callbacks (ERR-001), and every map-like operation on an empty input
/// (ITR-001).
pub const SMOKE_CASES: [&str; 5] = ["BLK-001", "BLK-002", "ORD-009", "ERR-001", "ITR-001"];

/// How to run a smoke check.
#[derive(Debug, Clone)]
pub struct SmokeOptions {
    /// Scales the liveness guards (20 s for the handshake and for each case).
    pub timeout_multiplier: f64,
}

impl Default for SmokeOptions {
    fn default() -> Self {
        SmokeOptions {
            timeout_multiplier: 1.0,
        }
    }
}

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
    fn new(mistake: Mistake, case: Option<&str>, explanation: impl Into<String>) -> Finding {
        Finding {
            mistake,
            case: case.map(str::to_owned),
            explanation: explanation.into(),
            details: Vec::new(),
        }
    }

    fn with_details(mut self, details: impl IntoIterator<Item = String>) -> Finding {
        self.details.extend(details);
        self
    }
}

/// One line of a smoke report.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// A check that passed.
    Ok { check: String, note: String },
    /// A check that found a problem.
    Problem(Finding),
    /// A check that was not made, and why.
    Skipped { check: String, note: String },
}

/// The result of a smoke check.
#[derive(Debug, Clone, Serialize)]
pub struct SmokeReport {
    pub implementation: String,
    /// What the driver said about itself, when its handshake succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<ImplementationInfo>,
    pub capabilities: Vec<String>,
    pub entries: Vec<Entry>,
    /// The liveness guard used for the handshake and each case.
    pub guard_ms: u64,
}

impl SmokeReport {
    /// Every problem found, in order.
    pub fn problems(&self) -> impl Iterator<Item = &Finding> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Problem(f) => Some(f),
            _ => None,
        })
    }

    /// Whether the driver passed every check.
    pub fn passed(&self) -> bool {
        self.problems().next().is_none()
    }

    /// The first problem of kind `mistake`, if any.
    pub fn find(&self, mistake: Mistake) -> Option<&Finding> {
        self.problems().find(|f| f.mistake == mistake)
    }

    /// The report as text for a terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "smoke check of `{}` (protocol {PROTOCOL_VERSION}; liveness guard {:.1} s for the \
             handshake and for each case)",
            self.implementation,
            self.guard_ms as f64 / 1000.0
        );
        let mut explained: Vec<&Finding> = Vec::new();
        for entry in &self.entries {
            match entry {
                Entry::Ok { check, note } => {
                    let _ = writeln!(out, "  ok       {check:10} {note}");
                }
                Entry::Skipped { check, note } => {
                    let _ = writeln!(out, "  skipped  {check:10} {note}");
                }
                Entry::Problem(f) => {
                    let check = f.case.as_deref().unwrap_or("driver");
                    let _ = writeln!(out, "  PROBLEM  {check:10} [{}]", kebab(f.mistake));
                    if let Some(earlier) = explained.iter().find(|e| e.explanation == f.explanation)
                    {
                        let _ = writeln!(
                            out,
                            "           the same as for {} above",
                            earlier.case.as_deref().unwrap_or("the driver")
                        );
                    } else {
                        explained.push(f);
                        for line in wrap(&f.explanation, 88) {
                            let _ = writeln!(out, "           {line}");
                        }
                    }
                    for detail in &f.details {
                        for line in detail.lines() {
                            let _ = writeln!(out, "             {line}");
                        }
                    }
                }
            }
        }
        let problems = self.problems().count();
        if problems == 0 {
            let _ = writeln!(
                out,
                "result: every check passed. Next: run the whole suite, \
                 `cargo xtask conformance --impl {}`.",
                if self.implementation.contains(char::is_whitespace) {
                    format!("'{}'", self.implementation)
                } else {
                    self.implementation.clone()
                }
            );
        } else {
            let _ = writeln!(
                out,
                "result: {problems} problem{} found. The protocol is described in \
                 spec/PROTOCOL.md (checklist in §9).",
                if problems == 1 { "" } else { "s" }
            );
        }
        out
    }
}

fn kebab(m: Mistake) -> String {
    serde_json::to_value(m)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Greedy word wrap (explanations are single paragraphs).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Picks the smoke cases out of the suite's cases, in [`SMOKE_CASES`] order.
pub fn smoke_cases(all: &[LoadedCase]) -> Result<Vec<LoadedCase>, String> {
    SMOKE_CASES
        .iter()
        .map(|id| {
            all.iter()
                .find(|c| c.id() == *id)
                .cloned()
                .ok_or_else(|| format!("smoke case {id} is not in spec/ (or did not load)"))
        })
        .collect()
}

/// Runs the smoke check of `imp` on `cases` (normally [`smoke_cases`]).
pub fn smoke(imp: &Implementation, cases: &[LoadedCase], options: &SmokeOptions) -> SmokeReport {
    let multiplier = options.timeout_multiplier.max(0.01);
    let handshake_guard = TimeoutTier::Normal.base().mul_f64(multiplier);
    let mut report = SmokeReport {
        implementation: imp.name.clone(),
        info: None,
        capabilities: Vec::new(),
        entries: Vec::new(),
        guard_ms: handshake_guard.as_millis() as u64,
    };
    let skip_all = |report: &mut SmokeReport, note: &str| {
        for lc in cases {
            report.entries.push(Entry::Skipped {
                check: lc.id().to_owned(),
                note: note.to_owned(),
            });
        }
    };

    // 1. Start and handshake.
    let started = Instant::now();
    let session = match DriverSession::start(&imp.command, handshake_guard) {
        Ok(s) => s,
        Err(fault) => {
            report.entries.push(Entry::Problem(handshake_finding(
                &fault,
                imp,
                handshake_guard,
            )));
            skip_all(&mut report, "not run: the driver did not start");
            return report;
        }
    };
    let info = session.info.clone();
    report.info = Some(info.clone());
    report.capabilities = session.capabilities.clone();
    report.entries.push(Entry::Ok {
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
    });
    let blanks: Vec<&str> = [
        ("name", &info.name),
        ("version", &info.version),
        ("language", &info.language),
    ]
    .into_iter()
    .filter(|(_, v)| v.trim().is_empty())
    .map(|(k, _)| k)
    .collect();
    if !blanks.is_empty() {
        report.entries.push(Entry::Problem(Finding::new(
            Mistake::MalformedHello,
            None,
            format!(
                "the hello's `implementation` has an empty {}: reports and expectation files \
                 show these, so give the real values (e.g. \"name\": \"billiard\", \
                 \"version\": \"4.2.0\", \"language\": \"python\").",
                join_ticked(&blanks)
            ),
        )));
    }

    // 2. Capabilities: every operation the smoke cases use.
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
        .filter(|c| !session.capabilities.contains(c))
        .cloned()
        .collect();
    if missing.is_empty() {
        report.entries.push(Entry::Ok {
            check: "capabilities".into(),
            note: format!(
                "declares every operation the smoke cases use ({})",
                needed.join(", ")
            ),
        });
    } else {
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
        if session.capabilities.is_empty() {
            finding.details.push(
                "it declares no capability at all (an absent `capabilities` list means none)"
                    .to_owned(),
            );
        } else {
            finding
                .details
                .push(format!("declared: {}", session.capabilities.join(", ")));
        }
        report.entries.push(Entry::Problem(finding));
    }

    // 3. The cases, one at a time.
    let coordinator = match Coordinator::start() {
        Ok(c) => c,
        Err(e) => {
            // The runner's own failure, not the driver's: say so and stop.
            report.entries.push(Entry::Skipped {
                check: "cases".into(),
                note: format!("not run: cannot start the coordinator socket: {e}"),
            });
            session.stop();
            return report;
        }
    };
    let mut session = Some(session);
    let mut seq: u64 = 0;
    for lc in cases {
        let id = lc.id();
        let Some(s) = session.as_mut() else {
            report.entries.push(Entry::Skipped {
                check: id.to_owned(),
                note: "not run: fix the problem above first".into(),
            });
            continue;
        };
        let lacking: Vec<String> = needed_capabilities(lc)
            .into_iter()
            .filter(|c| !s.capabilities.contains(c))
            .collect();
        if !lacking.is_empty() {
            report.entries.push(Entry::Skipped {
                check: id.to_owned(),
                note: format!("not run: needs {}", lacking.join(", ")),
            });
            continue;
        }
        seq += 1;
        let token = format!("smoke/{id}/{seq}");
        let guard = lc.case.timeout.base().mul_f64(multiplier);
        let socket = coordinator.path().display().to_string();
        coordinator.begin(&token, &lc.program.gates);
        let started = Instant::now();
        let answer = s
            .send(&ToDriver::Run {
                seq,
                token,
                coordinator: socket.clone(),
                program: Box::new(lc.program.clone()),
            })
            .and_then(|()| s.receive(started + guard));
        let history = coordinator.finish();
        let elapsed = started.elapsed();
        match answer {
            Ok(FromDriver::Done { seq: got }) if got == seq => {
                let findings = diagnose_run(lc, &history, &socket);
                if findings.is_empty() {
                    report.entries.push(Entry::Ok {
                        check: id.to_owned(),
                        note: format!("pass ({:.2} s; {})", elapsed.as_secs_f64(), ops(lc)),
                    });
                } else {
                    report
                        .entries
                        .extend(findings.into_iter().map(Entry::Problem));
                }
            }
            Ok(FromDriver::Done { seq: got }) => {
                report.entries.push(Entry::Problem(Finding::new(
                    Mistake::WrongSeq,
                    Some(id),
                    format!(
                        "the driver answered `done` with seq {got}, but the `run` it answers \
                         had seq {seq}. Echo the `seq` of the run message you are answering \
                         (it is unique and increasing; never count runs yourself). The runner \
                         treats a `done` with another seq as garbage and kills the driver."
                    ),
                )));
                if let Some(mut s) = session.take() {
                    s.kill();
                }
            }
            Ok(FromDriver::Error {
                message, traceback, ..
            }) => {
                let mut f = Finding::new(
                    Mistake::DriverError,
                    Some(id),
                    format!(
                        "the driver answered the run with `error`: {message}. An `error` \
                         means the driver itself could not run the program (a bug, a missing \
                         feature, a lost coordinator); exceptions raised by pool operations \
                         are outcomes, reported in the step's `return`, and the run still \
                         ends with `done`."
                    ),
                );
                if let Some(tb) = traceback.as_deref() {
                    f.details
                        .push(format!("traceback (last lines):\n{}", tail(tb, 6)));
                }
                report.entries.push(Entry::Problem(f));
            }
            Ok(FromDriver::Hello { .. }) => {
                report.entries.push(Entry::Problem(Finding::new(
                    Mistake::UnexpectedMessage,
                    Some(id),
                    "the driver answered a `run` with a second `hello`. The hello is \
                     answered once, to the runner's hello; each `run` is answered by exactly \
                     one `done` or `error` carrying its seq.",
                )));
                if let Some(mut s) = session.take() {
                    s.kill();
                }
            }
            Err(fault) => {
                let mut finding = run_fault_finding(&fault, id, guard, &history);
                if matches!(fault, DriverFault::Timeout { .. })
                    && let Some(s) = session.as_ref()
                {
                    let stderr = s.stderr_text();
                    if !stderr.trim().is_empty() {
                        finding.details = stderr_details(&stderr);
                    }
                }
                report.entries.push(Entry::Problem(finding));
                // The session killed the driver's process group already.
                session = None;
            }
        }
    }
    if let Some(s) = session {
        s.stop();
    }
    report
}

/// The operations a case's program uses, in order of first use.
fn ops(lc: &LoadedCase) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for step in &lc.program.steps {
        if !seen.contains(&step.op()) {
            seen.push(step.op());
        }
    }
    seen.join(", ")
}

fn join_ticked(items: &[impl AsRef<str>]) -> String {
    items
        .iter()
        .map(|i| format!("`{}`", i.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The last `n` non-empty lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn stderr_details(stderr: &str) -> Vec<String> {
    if stderr.trim().is_empty() {
        vec!["its stderr was empty".to_owned()]
    } else {
        vec![format!("its stderr ended with:\n{}", tail(stderr, 8))]
    }
}

fn command_line(imp: &Implementation) -> String {
    std::iter::once(imp.command.program.as_str())
        .chain(imp.command.args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Explains why a driver did not get through its handshake.
fn handshake_finding(fault: &DriverFault, imp: &Implementation, guard: Duration) -> Finding {
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

/// Explains why a `run` got no proper answer.
fn run_fault_finding(
    fault: &DriverFault,
    case: &str,
    guard: Duration,
    history: &History,
) -> Finding {
    match fault {
        DriverFault::Timeout { .. } => {
            let progress = if history.events.is_empty() {
                "Nothing reached the coordinator during the run either: does the driver read \
                 the `run` line, and does it connect to the `coordinator` socket of the run \
                 message?"
                    .to_owned()
            } else {
                format!(
                    "{} reports reached the coordinator; the last one was {}.",
                    history.events.len(),
                    history
                        .events
                        .last()
                        .map(describe_event)
                        .unwrap_or_default()
                )
            };
            Finding::new(
                Mistake::NoDone,
                Some(case),
                format!(
                    "no `done` (nor `error`) came within {:.1} s of sending the `run`. After \
                     the program's last step, and once the pool is terminated and joined, the \
                     driver must answer {{\"type\":\"done\",\"seq\":<the run's seq>}} on \
                     stdout and flush it. {progress} The runner killed the driver's process \
                     group.",
                    guard.as_secs_f64()
                ),
            )
        }
        DriverFault::Crashed { status, stderr } => Finding::new(
            Mistake::Crashed,
            Some(case),
            format!(
                "the driver died while running the case ({status}), without answering the \
                 run. Whatever a task or a pool operation does, the driver itself must \
                 survive and answer `done` (or `error` for its own failures)."
            ),
        )
        .with_details(stderr_details(stderr)),
        DriverFault::ExitedEarly { stderr } => Finding::new(
            Mistake::ExitedEarly,
            Some(case),
            "the driver exited (status 0) while running the case, without answering the run. \
             Answer every `run` with `done` (or `error`), and exit only on `stop` or at the \
             end of stdin.",
        )
        .with_details(stderr_details(stderr)),
        DriverFault::Garbage { line } => line_finding(line, Some(case), false),
        DriverFault::Handshake { message } => Finding::new(
            Mistake::UnexpectedMessage,
            Some(case),
            format!("unexpected handshake failure during a run: {message}"),
        ),
    }
}

/// One event of a history, for a sentence.
fn describe_event(e: &crate::coordinator::Event) -> String {
    let who = match &e.origin {
        Origin::Runner => "the runner".to_owned(),
        Origin::Process { pid, .. } => format!("pid {pid}"),
    };
    let what = e.reference().unwrap_or_else(|| "an `await`".to_owned());
    format!("`{what}` from {who}")
}

/// The fields of each driver message: (type, required, optional).
const MESSAGES: &[(&str, &[&str], &[&str])] = &[
    ("hello", &["protocol", "implementation"], &["capabilities"]),
    ("done", &["seq"], &[]),
    ("error", &["message"], &["seq", "traceback"]),
];
const IMPLEMENTATION_FIELDS: (&[&str], &[&str]) = (
    &["name", "version", "language"],
    &[
        "start_method",
        "interpreter",
        "pool_class",
        "language_version",
        "default_processes",
    ],
);

/// Explains a stdout line the runner could not take as a driver message.
fn line_finding(line: &str, case: Option<&str>, handshake: bool) -> Finding {
    let when = if handshake {
        "in answer to the runner's hello"
    } else {
        "while running the case"
    };
    let shown: String = line.chars().take(200).collect();
    let stdout_rule = "Stdout carries protocol messages only, one JSON object per line: send \
                       logs, prints and warnings to stderr, and keep pool workers from writing \
                       to the stdout pipe (PROTOCOL.md §2.1 and §8).";
    if line.trim().is_empty() {
        return Finding::new(
            Mistake::StdoutGarbage,
            case,
            format!("the driver printed an empty line on stdout {when}. {stdout_rule}"),
        );
    }
    let value: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(_) => {
            return Finding::new(
                Mistake::StdoutGarbage,
                case,
                format!(
                    "the driver printed a line on stdout that is not JSON {when}: {shown:?}. \
                     {stdout_rule}"
                ),
            );
        }
    };
    let Some(object) = value.as_object() else {
        return Finding::new(
            Mistake::StdoutGarbage,
            case,
            format!(
                "the driver printed JSON that is not an object {when}: {shown}. Every driver \
                 message is an object with a `type`. {stdout_rule}"
            ),
        );
    };
    let kind = object.get("type").and_then(Value::as_str);
    let problems = message_problems(object);
    let mistake = if handshake && (kind == Some("hello") || kind.is_none()) {
        Mistake::MalformedHello
    } else {
        Mistake::StdoutGarbage
    };
    let what = match kind {
        Some(k) => format!("a `{k}` message"),
        None => "a message".to_owned(),
    };
    Finding::new(
        mistake,
        case,
        format!(
            "the driver printed {what} {when} that the runner cannot accept: {}. Driver \
             messages are closed: a missing required field, an unknown field or a value of \
             the wrong type makes the whole line garbage (PROTOCOL.md §3.2).",
            problems.join("; ")
        ),
    )
    .with_details([format!("the line: {shown}")])
}

/// Every problem with the fields of one driver message, in words.
fn message_problems(object: &serde_json::Map<String, Value>) -> Vec<String> {
    let types: Vec<&str> = MESSAGES.iter().map(|(t, _, _)| *t).collect();
    let Some(kind) = object.get("type") else {
        let mut p = vec![format!(
            "it has no `type` field (one of {})",
            join_ticked(&types)
        )];
        if object.contains_key("protocol") || object.contains_key("implementation") {
            p.push("it looks like a hello: add \"type\": \"hello\"".to_owned());
        }
        return p;
    };
    let Some((name, required, optional)) =
        MESSAGES.iter().find(|(t, _, _)| Some(*t) == kind.as_str())
    else {
        return vec![format!(
            "its type {kind} is not a driver message (one of {})",
            join_ticked(&types)
        )];
    };
    let mut problems = Vec::new();
    fields_problems(
        &format!("the {name}"),
        object,
        required,
        optional,
        &["type"],
        &mut problems,
    );
    let check_type =
        |field: &str, ok: fn(&Value) -> bool, want: &str, problems: &mut Vec<String>| {
            if let Some(v) = object.get(field)
                && !ok(v)
            {
                problems.push(format!("`{field}` must be {want}, not {v}"));
            }
        };
    match *name {
        "hello" => {
            check_type("protocol", |v| v.is_u64(), "an integer", &mut problems);
            check_type(
                "capabilities",
                |v| v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
                "a list of strings",
                &mut problems,
            );
            match object.get("implementation") {
                Some(Value::Object(imp)) => {
                    let (req, opt) = IMPLEMENTATION_FIELDS;
                    fields_problems("`implementation`", imp, req, opt, &[], &mut problems);
                    for (k, v) in imp {
                        let optional = opt.contains(&k.as_str());
                        if (req.contains(&k.as_str()) || optional)
                            && !(v.is_string() || (optional && v.is_null()))
                        {
                            problems
                                .push(format!("`implementation.{k}` must be a string, not {v}"));
                        }
                    }
                }
                Some(other) => problems.push(format!(
                    "`implementation` must be an object with `name`, `version` and `language`, \
                     not {other}"
                )),
                None => {}
            }
        }
        "done" => check_type(
            "seq",
            |v| v.is_u64(),
            "the run's seq (an integer)",
            &mut problems,
        ),
        "error" => {
            check_type("message", |v| v.is_string(), "a string", &mut problems);
            check_type(
                "seq",
                |v| v.is_u64() || v.is_null(),
                "the run's seq or null",
                &mut problems,
            );
            check_type(
                "traceback",
                |v| v.is_string() || v.is_null(),
                "a string or null",
                &mut problems,
            );
        }
        _ => {}
    }
    if problems.is_empty() {
        // Something the field checks above do not cover: fall back on the parser's words.
        if let Err(e) = serde_json::from_value::<FromDriver>(Value::Object(object.clone())) {
            problems.push(e.to_string());
        }
    }
    problems
}

/// Missing required fields and unknown fields of `object`.
fn fields_problems(
    what: &str,
    object: &serde_json::Map<String, Value>,
    required: &[&str],
    optional: &[&str],
    also: &[&str],
    problems: &mut Vec<String>,
) {
    let known: Vec<&str> = required
        .iter()
        .chain(optional)
        .chain(also)
        .copied()
        .collect();
    for field in required {
        if !object.contains_key(*field) {
            problems.push(format!("{what} lacks the required field `{field}`"));
        }
    }
    for field in object.keys() {
        if !known.contains(&field.as_str()) {
            let hint = known
                .iter()
                .filter(|k| !object.contains_key(**k))
                .map(|k| (edit_distance(field, k), *k))
                .filter(|(d, k)| *d <= 2.max(k.len() / 4))
                .min()
                .map(|(_, k)| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            problems.push(format!(
                "{what} has the unknown field `{field}`{hint}; its fields are {}",
                join_ticked(&required.iter().chain(optional).copied().collect::<Vec<_>>())
            ));
        }
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Checks one answered run: were its reports there, and does its observation satisfy the
/// case? Reporting problems come first; a case is judged only when they are absent.
pub fn diagnose_run(lc: &LoadedCase, history: &History, socket: &str) -> Vec<Finding> {
    let id = Some(lc.id());
    let events = &history.events;
    if events.is_empty() && history.violations.is_empty() {
        return vec![Finding::new(
            Mistake::NoReports,
            id,
            format!(
                "the driver answered `done`, but your driver did not report to the coordinator \
                 socket given in the run message (\"coordinator\": \"{socket}\"): not one \
                 `call`, `start` or any other report arrived. Every process and thread of the \
                 implementation (the main thread around each step, the tasks in the workers, \
                 the callbacks) must connect to that Unix socket, send one JSON report per \
                 line tagged with the run's `token`, and read each acknowledgement before \
                 going on (PROTOCOL.md §4). Reports with another token are refused with \
                 {{\"ok\":false,\"reason\":\"case over\"}} and not recorded."
            ),
        )];
    }
    let mut findings = Vec::new();
    if !history.violations.is_empty() {
        findings.push(
            Finding::new(
                Mistake::ProtocolViolation,
                id,
                format!(
                    "{} report{} broke the coordinator protocol and {} refused with ok:false. \
                     A report is one JSON object per line: `token`, `pid`, `thread`, `event` \
                     and the event's fields (PROTOCOL.md §4.1); `wait` and `open` must name a \
                     gate of the case.",
                    history.violations.len(),
                    if history.violations.len() == 1 {
                        ""
                    } else {
                        "s"
                    },
                    if history.violations.len() == 1 {
                        "was"
                    } else {
                        "were"
                    },
                ),
            )
            .with_details(history.violations.iter().take(5).cloned()),
        );
    }

    // Steps: a `call` and a `return` each, in order, naming the right operation.
    let mut step_problems = Vec::new();
    for step in &lc.program.steps {
        let step_id = step.explicit_id().unwrap_or_default();
        let op = step.op();
        let calls: Vec<&str> = events
            .iter()
            .filter_map(|e| match &e.kind {
                ReportKind::Call { step, op } if step == step_id => Some(op.as_str()),
                _ => None,
            })
            .collect();
        let returns = events
            .iter()
            .filter(|e| matches!(&e.kind, ReportKind::Return { step, .. } if step == step_id))
            .count();
        let name = format!("step `{step_id}` ({op})");
        match (calls.len(), returns) {
            (0, 0) => step_problems.push(format!("{name}: neither `call` nor `return` came")),
            (0, _) => step_problems.push(format!("{name}: `return` came without a `call`")),
            (_, 0) => step_problems.push(format!("{name}: `call` came but no `return`")),
            (1, 1) => {}
            (c, r) => step_problems.push(format!(
                "{name}: reported {c} `call` and {r} `return` (one each expected)"
            )),
        }
        if let Some(wrong) = calls.iter().find(|o| **o != op) {
            step_problems.push(format!(
                "{name}: its `call` says \"op\": \"{wrong}\", but the step is `{op}`"
            ));
        }
    }
    if !step_problems.is_empty() {
        findings.push(
            Finding::new(
                Mistake::StepNotReported,
                id,
                "steps were not reported as the protocol requires. The driver's main thread \
                 sends {\"event\":\"call\",\"step\":<id>,\"op\":<op>} before each step and \
                 {\"event\":\"return\",\"step\":<id>,\"outcome\":{...}} after it, also when \
                 the operation raised (the outcome is then {\"raised\":{\"type\",\"message\"}}), \
                 and reads the acknowledgement of each (PROTOCOL.md §4.1, §5 rule 1).",
            )
            .with_details(step_problems),
        );
    }

    // Tasks: a `start` and an `end` (or `exit`) each.
    let mut task_problems = Vec::new();
    for task in task_ids(&lc.program) {
        let count = |f: &dyn Fn(&ReportKind) -> bool| events.iter().filter(|e| f(&e.kind)).count();
        let starts = count(&|k| matches!(k, ReportKind::Start { task: t } if *t == task));
        let ends = count(
            &|k| matches!(k, ReportKind::End { task: t, .. } | ReportKind::Exit { task: t, .. } if *t == task),
        );
        match (starts, ends) {
            (0, 0) => task_problems.push(format!("task `{task}`: neither `start` nor `end` came")),
            (0, _) => task_problems.push(format!("task `{task}`: `end` came without a `start`")),
            (_, 0) => task_problems.push(format!("task `{task}`: `start` came but no `end`")),
            _ => {}
        }
    }
    if !task_problems.is_empty() {
        findings.push(
            Finding::new(
                Mistake::TaskNotReported,
                id,
                "tasks were not reported as the protocol requires. The function the pool runs \
                 for a task (inside the worker) reports {\"event\":\"start\",\"task\":<id>} \
                 first thing and {\"event\":\"end\",\"task\":<id>,\"outcome\":{...}} just \
                 before returning or raising, over its own connection to the run's \
                 coordinator socket, with the run's token (README §4, PROTOCOL.md §4.1). A \
                 task that never reports usually did not get the socket path and token: pass \
                 them to the worker along with the task.",
            )
            .with_details(task_problems),
        );
    }

    // Callbacks: every `callback` is followed by its `callback_done`.
    let mut callback_problems = Vec::new();
    for e in events {
        if let ReportKind::Callback { step, kind, .. } = &e.kind {
            let done = events.iter().any(|d| {
                d.seq > e.seq
                    && matches!(&d.kind, ReportKind::CallbackDone { step: s, kind: k, .. } if s == step && k == kind)
            });
            if !done {
                callback_problems.push(format!(
                    "step `{step}`: `{kind}` came but no `callback_done` with \"kind\": \"{kind}\""
                ));
            }
        }
    }
    if !callback_problems.is_empty() {
        findings.push(
            Finding::new(
                Mistake::CallbackNotReported,
                id,
                "callbacks were not reported as the protocol requires: a callback reports \
                 `callback` (with its argument) on entry and `callback_done` before returning \
                 or raising (README §5, PROTOCOL.md §4.1).",
            )
            .with_details(callback_problems),
        );
    }
    if !findings.is_empty() {
        return findings;
    }

    // Everything was reported: judge the case.
    let observation = observe(&lc.case, &lc.program, history);
    let value = serde_json::to_value(&observation).unwrap_or_default();
    if let Some(reason) = first_mismatch(&lc.case.expect, &value) {
        findings.push(
            Finding::new(
                Mistake::CaseFailed,
                id,
                format!(
                    "the case ran and every report arrived, but the observation does not \
                     satisfy the case: {reason}. The case claims: {} The diff below shows \
                     the expected values against what was observed (only the parts the case \
                     checks).",
                    lc.case.claim
                ),
            )
            .with_details([expectation_diff(&lc.case.expect, &value)]),
        );
    }
    findings
}

/// The part of `observed` that `expected` talks about: the same keys, recursively (lists and
/// scalars are taken whole, and so is a map that lacks an expected key, to show what it has
/// instead).
fn project(expected: &Value, observed: &Value) -> Value {
    match (expected, observed) {
        (Value::Object(want), Value::Object(have)) if want.keys().all(|k| have.contains_key(k)) => {
            Value::Object(
                want.iter()
                    .filter_map(|(k, w)| have.get(k).map(|h| (k.clone(), project(w, h))))
                    .collect(),
            )
        }
        (_, h) => h.clone(),
    }
}

/// A unified diff of the expected YAML against the matching part of the observation.
pub fn expectation_diff(expected: &Value, observed: &Value) -> String {
    let a = serde_yaml::to_string(expected).unwrap_or_default();
    let b = serde_yaml::to_string(&project(expected, observed)).unwrap_or_default();
    TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(3)
        .header("expected", "observed")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(v: Value) -> Vec<String> {
        message_problems(v.as_object().unwrap())
    }

    #[test]
    fn a_hello_without_implementation_says_so() {
        let p = problems(json!({"type": "hello", "protocol": 1, "capabilities": []}));
        assert_eq!(p, ["the hello lacks the required field `implementation`"]);
    }

    #[test]
    fn a_misspelt_field_gets_a_suggestion() {
        let p = problems(json!({"type": "hello", "protocol": 1, "capabilites": [],
            "implementation": {"name": "x", "version": "1", "language": "c"}}));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with(
                "the hello has the unknown field `capabilites` (did you mean `capabilities`?)"
            ),
            "{p:?}"
        );
    }

    #[test]
    fn implementation_fields_are_checked() {
        let p = problems(json!({"type": "hello", "protocol": "1",
            "implementation": {"name": "x", "lang": "c", "version": 3}}));
        assert!(
            p.contains(&"`protocol` must be an integer, not \"1\"".to_owned()),
            "{p:?}"
        );
        assert!(
            p.contains(&"`implementation` lacks the required field `language`".to_owned()),
            "{p:?}"
        );
        assert!(
            p.iter().any(|s| s.contains("unknown field `lang`")),
            "{p:?}"
        );
        assert!(
            p.contains(&"`implementation.version` must be a string, not 3".to_owned()),
            "{p:?}"
        );
    }

    #[test]
    fn a_done_with_an_extra_field_is_explained() {
        let p = problems(json!({"type": "done", "seq": 1, "ok": true}));
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("unknown field `ok`"), "{p:?}");
    }

    #[test]
    fn non_json_is_garbage() {
        let f = line_finding("Starting pool...", Some("BLK-001"), false);
        assert_eq!(f.mistake, Mistake::StdoutGarbage);
        assert!(f.explanation.contains("not JSON"), "{}", f.explanation);
    }

    #[test]
    fn the_diff_shows_only_what_the_case_checks() {
        let expected = json!({"steps": {"s1": {"returned": 7}}});
        let observed = json!({"steps": {"s1": {"returned": null}, "s2": {"returned": 1}},
            "tasks": {}});
        let d = expectation_diff(&expected, &observed);
        assert!(d.contains("-    returned: 7"), "{d}");
        assert!(d.contains("+    returned: null"), "{d}");
        assert!(!d.contains("s2"), "{d}");
    }

    #[test]
    fn wrapping_keeps_words() {
        assert_eq!(wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
    }

    /// Pins every explanation the smoke check can give (the text a driver author reads), so
    /// that reshaping the module cannot change a word of it.
    #[test]
    fn explanations_are_pinned() {
        use crate::coordinator::Event;
        use crate::driver::DriverCommand;
        use crate::protocol::Outcome;

        let imp = Implementation {
            name: "my driver".to_owned(),
            command: DriverCommand {
                program: "./my-driver".to_owned(),
                args: vec!["--flag".to_owned()],
                env: Vec::new(),
            },
        };
        let guard = Duration::from_secs(20);
        let stderr = "Traceback:\n  line 1\n\nValueError: boom\n".to_owned();
        let faults = [
            DriverFault::Crashed {
                status: "cannot start: No such file or directory".into(),
                stderr: String::new(),
            },
            DriverFault::Crashed {
                status: "cannot start: Permission denied".into(),
                stderr: "denied".into(),
            },
            DriverFault::Crashed {
                status: "exit status 1".into(),
                stderr: stderr.clone(),
            },
            DriverFault::Crashed {
                status: "signal 9".into(),
                stderr: String::new(),
            },
            DriverFault::ExitedEarly {
                stderr: stderr.clone(),
            },
            DriverFault::Timeout {
                after_ms: 20_000,
                stderr: String::new(),
            },
            DriverFault::Garbage {
                line: "Starting pool...".into(),
            },
            DriverFault::Garbage { line: "  ".into() },
            DriverFault::Garbage {
                line: "[1, 2]".into(),
            },
            DriverFault::Garbage {
                line: r#"{"type":"hello","protocol":2,"capabilites":[],"implementation":{"name":"x","version":"1","language":"c"}}"#.into(),
            },
            DriverFault::Garbage {
                line: r#"{"protocol":"2","implementation":{"name":"x","lang":"c","version":3}}"#.into(),
            },
            DriverFault::Garbage {
                line: r#"{"type":"done","seq":1,"ok":true}"#.into(),
            },
            DriverFault::Garbage {
                line: r#"{"type":"error","message":1,"seq":"x","traceback":2}"#.into(),
            },
            DriverFault::Garbage {
                line: r#"{"type":"bye"}"#.into(),
            },
            DriverFault::Garbage {
                line: r#"{"type":"hello","protocol":2,"capabilities":"apply","implementation":[1]}"#.into(),
            },
            DriverFault::Garbage {
                line: r#"{"type":"hello","protocol":2,"implementation":{"name":"x","version":"1","language":"c","start_method":null,"default_processes":4}}"#.into(),
            },
            DriverFault::Handshake {
                message: "driver speaks protocol 1, runner speaks 2".into(),
            },
            DriverFault::Handshake {
                message: "driver speaks protocol 7, runner speaks 2".into(),
            },
            DriverFault::Handshake {
                message: "expected a hello, got a `done`".into(),
            },
            DriverFault::Handshake {
                message: "no start method spawn here".into(),
            },
        ];
        let mut entries: Vec<Entry> = faults
            .iter()
            .map(|f| Entry::Problem(handshake_finding(f, &imp, guard)))
            .collect();

        let process = Origin::Process {
            pid: 42,
            thread: "main".into(),
        };
        let event = |seq: u64, kind: ReportKind| Event {
            seq,
            origin: process.clone(),
            kind,
        };
        let silent = History::default();
        let busy = History {
            events: vec![
                event(
                    1,
                    ReportKind::Call {
                        step: "s1".into(),
                        op: "map".into(),
                    },
                ),
                event(2, ReportKind::Start { task: "t".into() }),
                event(
                    3,
                    ReportKind::Callback {
                        step: "s1".into(),
                        kind: "callback".into(),
                        arg: serde_json::json!(7),
                    },
                ),
            ],
            violations: vec!["malformed report: {".into(), "unknown gate `h`".into()],
            processes: None,
        };
        let runner_last = History {
            events: vec![Event {
                seq: 1,
                origin: Origin::Runner,
                kind: ReportKind::Open { gate: "g".into() },
            }],
            violations: Vec::new(),
            processes: None,
        };
        for history in [&silent, &busy, &runner_last] {
            for f in &faults {
                entries.push(Entry::Problem(run_fault_finding(
                    f, "BLK-001", guard, history,
                )));
            }
        }

        let suite = crate::spec::load_dir(&crate::workspace_root().join("spec"));
        let cases = smoke_cases(&suite.cases).unwrap();
        let blk1 = &cases[0];
        let wrong = History {
            events: vec![
                event(
                    1,
                    ReportKind::Call {
                        step: "s1".into(),
                        op: "apply".into(),
                    },
                ),
                event(2, ReportKind::Start { task: "t".into() }),
                event(
                    3,
                    ReportKind::End {
                        task: "t".into(),
                        outcome: Outcome::Returned(serde_json::json!(8)),
                    },
                ),
                event(
                    4,
                    ReportKind::Return {
                        step: "s1".into(),
                        outcome: Outcome::Returned(serde_json::json!(8)),
                    },
                ),
            ],
            violations: Vec::new(),
            processes: Some(1),
        };
        for history in [&silent, &busy, &wrong] {
            entries.extend(
                diagnose_run(blk1, history, "/tmp/poolspec.sock")
                    .into_iter()
                    .map(Entry::Problem),
            );
        }
        entries.push(Entry::Ok {
            check: "BLK-002".into(),
            note: "pass".into(),
        });
        entries.push(Entry::Skipped {
            check: "ORD-009".into(),
            note: "not run: fix the problem above first".into(),
        });
        let report = SmokeReport {
            implementation: imp.name.clone(),
            info: None,
            capabilities: Vec::new(),
            entries,
            guard_ms: 2000,
        };
        let passed = SmokeReport {
            implementation: "rust-ref".into(),
            info: None,
            capabilities: Vec::new(),
            entries: vec![Entry::Ok {
                check: "handshake".into(),
                note: "fine".into(),
            }],
            guard_ms: 20000,
        };
        let text = format!(
            "{}\n{}\n{}",
            report.render(),
            passed.render(),
            serde_json::to_string_pretty(&report).unwrap()
        );
        insta::with_settings!({prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!("smoke_explanations", text);
        });
    }
}
