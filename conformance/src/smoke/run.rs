//! One smoke case, run: the `run` message sent, its answer checked (`done` with the right
//! `seq`, an `error`, a second hello, or a fault of the driver), and, for a `done`, what
//! reached the coordinator (see [`super::events`]).

use std::time::{Duration, Instant};

use super::events::diagnose_run;
use super::finding::{Finding, Mistake};
use super::messages::{line_finding, over_limit_finding};
use super::report::Entry;
use super::text::{stderr_details, tail};
use crate::coordinator::{Coordinator, Event, History, Origin};
use crate::driver::{DriverFault, DriverSession};
use crate::protocol::{FromDriver, ToDriver};
use crate::spec::LoadedCase;

/// What is left of the driver after a case.
pub(super) enum Session {
    /// It answered as it should (or with an `error`): the next case may use it.
    Alive,
    /// It answered out of protocol: kill it, the cases after it are not run.
    Kill,
    /// It faulted, and its process group was killed already.
    Gone,
}

/// Runs case `lc` as run number `seq` on the driver of `session`, with each liveness guard
/// scaled by `multiplier`.
pub(super) fn run_case(
    session: &mut DriverSession,
    coordinator: &Coordinator,
    lc: &LoadedCase,
    seq: u64,
    multiplier: f64,
) -> (Vec<Entry>, Session) {
    let id = lc.id();
    let token = format!("smoke/{id}/{seq}");
    let guard = lc.case.timeout.base().mul_f64(multiplier);
    let socket = coordinator.path().display().to_string();
    coordinator.begin(&token, &lc.program.gates);
    let started = Instant::now();
    let answer = session
        .send(&ToDriver::Run {
            seq,
            token,
            coordinator: socket.clone(),
            program: Box::new(lc.program.clone()),
        })
        .and_then(|()| session.receive(started + guard));
    let history = coordinator.finish();
    let elapsed = started.elapsed();
    match answer {
        Ok(FromDriver::Done { seq: got }) if got == seq => {
            let findings = diagnose_run(lc, &history, &socket);
            let entries = if findings.is_empty() {
                vec![Entry::Ok {
                    check: id.to_owned(),
                    note: format!("pass ({:.2} s; {})", elapsed.as_secs_f64(), ops(lc)),
                }]
            } else {
                findings.into_iter().map(Entry::Problem).collect()
            };
            (entries, Session::Alive)
        }
        Ok(FromDriver::Done { seq: got }) => {
            (vec![Entry::Problem(wrong_seq(id, got, seq))], Session::Kill)
        }
        Ok(FromDriver::Error {
            message, traceback, ..
        }) => (
            vec![Entry::Problem(driver_error(
                id,
                &message,
                traceback.as_deref(),
            ))],
            Session::Alive,
        ),
        Ok(FromDriver::Hello { .. }) => (vec![Entry::Problem(second_hello(id))], Session::Kill),
        Err(fault) => {
            let mut finding = run_fault_finding(&fault, id, guard, &history);
            if matches!(fault, DriverFault::Timeout { .. }) {
                let stderr = session.stderr_text();
                if !stderr.trim().is_empty() {
                    finding.details = stderr_details(&stderr);
                }
            }
            // The session killed the driver's process group already.
            (vec![Entry::Problem(finding)], Session::Gone)
        }
    }
}

/// A `done` that answers another run.
fn wrong_seq(case: &str, got: u64, seq: u64) -> Finding {
    Finding::new(
        Mistake::WrongSeq,
        Some(case),
        format!(
            "the driver answered `done` with seq {got}, but the `run` it answers \
             had seq {seq}. Echo the `seq` of the run message you are answering \
             (it is unique and increasing; never count runs yourself). The runner \
             treats a `done` with another seq as garbage and kills the driver."
        ),
    )
}

/// A run answered with `error`.
fn driver_error(case: &str, message: &str, traceback: Option<&str>) -> Finding {
    let mut f = Finding::new(
        Mistake::DriverError,
        Some(case),
        format!(
            "the driver answered the run with `error`: {message}. An `error` \
             means the driver itself could not run the program (a bug, a missing \
             feature, a lost coordinator); exceptions raised by pool operations \
             are outcomes, reported in the step's `return`, and the run still \
             ends with `done`."
        ),
    );
    if let Some(tb) = traceback {
        f.details
            .push(format!("traceback (last lines):\n{}", tail(tb, 6)));
    }
    f
}

/// A run answered with a hello.
fn second_hello(case: &str) -> Finding {
    Finding::new(
        Mistake::UnexpectedMessage,
        Some(case),
        "the driver answered a `run` with a second `hello`. The hello is \
         answered once, to the runner's hello; each `run` is answered by exactly \
         one `done` or `error` carrying its seq.",
    )
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

/// Explains why a `run` got no proper answer.
pub(super) fn run_fault_finding(
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
        DriverFault::StdoutLineTooLong { .. } => {
            over_limit_finding(Some(case), true, &fault.summary())
        }
        DriverFault::CoordinatorLimit { .. } => {
            over_limit_finding(Some(case), false, &fault.summary())
        }
    }
}

/// One event of a history, for a sentence.
fn describe_event(e: &Event) -> String {
    let who = match &e.origin {
        Origin::Runner => "the runner".to_owned(),
        Origin::Process { pid, .. } => format!("pid {pid}"),
    };
    let what = e.reference().unwrap_or_else(|| "an `await`".to_owned());
    format!("`{what}` from {who}")
}
