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
//!
//! The module is cut by what the driver is asked to do: [`handshake`] (start, hello,
//! capabilities), [`run`] (one case and its answer), [`events`] (what reached the
//! coordinator) and [`messages`] (a stdout line that is not a driver message), each check
//! explaining what it finds as a [`Finding`]; [`report`] collects and renders them.

mod diff;
mod events;
mod finding;
mod handshake;
mod messages;
mod report;
mod run;
mod text;

pub use diff::expectation_diff;
pub use events::diagnose_run;
pub use finding::{Finding, Mistake};
pub use report::{Entry, SmokeReport};

use crate::coordinator::Coordinator;
use crate::implementations::Implementation;
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

/// A smoke case that is not in the suite.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("smoke case {id} is not in spec/ (or did not load)")]
pub struct MissingSmokeCase {
    /// The id of the missing case (one of [`SMOKE_CASES`]).
    pub id: &'static str,
}

/// Picks the smoke cases out of the suite's cases, in [`SMOKE_CASES`] order.
pub fn smoke_cases(all: &[LoadedCase]) -> Result<Vec<LoadedCase>, MissingSmokeCase> {
    SMOKE_CASES
        .iter()
        .map(|id| {
            all.iter()
                .find(|c| c.id() == *id)
                .cloned()
                .ok_or(MissingSmokeCase { id })
        })
        .collect()
}

/// Runs the smoke check of `imp` on `cases` (normally [`smoke_cases`]): the handshake, the
/// capabilities, then each case while the driver lasts.
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
    let skip = |report: &mut SmokeReport, lc: &LoadedCase, note: &str| {
        report.entries.push(Entry::Skipped {
            check: lc.id().to_owned(),
            note: note.to_owned(),
        });
    };

    // 1. Start and handshake.
    let session = match handshake::start(imp, handshake_guard) {
        Ok((session, entry)) => {
            report.entries.push(entry);
            session
        }
        Err(finding) => {
            report.entries.push(Entry::Problem(finding));
            for lc in cases {
                skip(&mut report, lc, "not run: the driver did not start");
            }
            return report;
        }
    };
    report.info = Some(session.info.clone());
    report.capabilities = session.capabilities.clone();
    report
        .entries
        .extend(handshake::blank_identity(&session.info).map(Entry::Problem));
    report
        .entries
        .extend(handshake::unknown_capabilities(&session.capabilities).map(Entry::Problem));

    // 2. Capabilities: every operation the smoke cases use.
    report
        .entries
        .push(handshake::capabilities(cases, &session.capabilities));

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
        let Some(s) = session.as_mut() else {
            skip(&mut report, lc, "not run: fix the problem above first");
            continue;
        };
        let lacking: Vec<String> = needed_capabilities(lc)
            .into_iter()
            .filter(|c| !s.capabilities.contains(c))
            .collect();
        if !lacking.is_empty() {
            skip(
                &mut report,
                lc,
                &format!("not run: needs {}", lacking.join(", ")),
            );
            continue;
        }
        seq += 1;
        let (entries, after) = run::run_case(s, &coordinator, lc, seq, multiplier);
        report.entries.extend(entries);
        match after {
            run::Session::Alive => {}
            run::Session::Kill => {
                if let Some(mut s) = session.take() {
                    s.kill();
                }
            }
            run::Session::Gone => session = None,
        }
    }
    if let Some(s) = session {
        s.stop();
    }
    report
}

#[cfg(test)]
mod tests;
