//! A driver that cannot start is reported once, not once per case.
//!
//! Without this, a driver whose handshake is broken is started again for every case of the
//! run, by every worker thread, and every cell repeats the same error. Here the first start
//! of each implementation is made by one thread while the others wait for it; a failure
//! that would happen again (a refused or garbled handshake, a crash or exit at start) is
//! remembered, and the implementation's later cells get the same status with a short reason
//! naming the cell that holds the full one, without starting the driver again. A start that
//! timed out is not remembered (a loaded machine can cause it): the next cell tries again.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};

use crate::driver::{DriverFault, DriverSession, Unstarted};
use crate::supervisor::left_behind_note;

/// How far an implementation's driver has got, over all the threads of a run.
#[derive(Debug, Clone)]
enum State {
    /// A thread is starting it for the first time; the others wait.
    Starting,
    /// It started once, so it can start: each thread starts its own freely.
    Started,
    /// It could not start, on case `case`, and would not the next time either.
    Failed { case: String, fault: DriverFault },
}

/// The start state of every implementation of one run, shared by its threads.
#[derive(Debug, Default)]
pub struct StartFailures {
    states: Mutex<HashMap<String, State>>,
    changed: Condvar,
}

/// Why a cell has no driver: the fault, and the reason the cell shows.
pub type NotStarted = (DriverFault, String);

impl StartFailures {
    /// Starts `implementation`'s driver for case `case` with `start`, unless it already
    /// failed for good (then the earlier fault, with a reason naming the case that has the
    /// full one). The first start of each implementation is made by one caller at a time.
    pub fn start(
        &self,
        implementation: &str,
        case: &str,
        start: impl FnOnce() -> Result<DriverSession, Unstarted>,
    ) -> Result<DriverSession, NotStarted> {
        let mut states = self.lock();
        loop {
            match states.get(implementation) {
                Some(State::Starting) => {
                    states = self.changed.wait(states).unwrap_or_else(|e| e.into_inner());
                }
                Some(State::Failed { case: first, fault }) => {
                    return Err((fault.clone(), earlier_reason(first, fault)));
                }
                Some(State::Started) => {
                    drop(states);
                    return start().map_err(|u| (u.fault.clone(), first_reason(&u)));
                }
                None => break,
            }
        }
        states.insert(implementation.to_owned(), State::Starting);
        drop(states);
        // Whatever happens below (a panic included), the waiting threads are released.
        let mut first = First {
            owner: self,
            implementation,
            settled: None,
        };
        let outcome = start();
        first.settled = Some(match &outcome {
            Ok(_) => Some(State::Started),
            Err(u) if lasts(&u.fault) => Some(State::Failed {
                case: case.to_owned(),
                fault: u.fault.clone(),
            }),
            Err(_) => None,
        });
        drop(first);
        outcome.map_err(|u| (u.fault.clone(), first_reason(&u)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, State>> {
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The first start of an implementation; dropping it records how it went (nothing, when
/// it never finished) and wakes the threads waiting for it.
struct First<'a> {
    owner: &'a StartFailures,
    implementation: &'a str,
    settled: Option<Option<State>>,
}

impl Drop for First<'_> {
    fn drop(&mut self) {
        let mut states = self.owner.lock();
        match self.settled.take().flatten() {
            Some(state) => states.insert(self.implementation.to_owned(), state),
            None => states.remove(self.implementation),
        };
        drop(states);
        self.owner.changed.notify_all();
    }
}

/// Whether a start that failed this way would fail again: everything but a timeout.
fn lasts(fault: &DriverFault) -> bool {
    !matches!(fault, DriverFault::Timeout { .. })
}

/// The full reason, given to the cell whose start failed.
fn first_reason(unstarted: &Unstarted) -> String {
    let reason = format!("driver did not start: {}", unstarted.fault.summary());
    match left_behind_note(unstarted.left_behind) {
        Some(note) => format!("{reason}; {note}"),
        None => reason,
    }
}

/// The short reason of the cells after it: what kind of failure, and where it is told.
fn earlier_reason(case: &str, fault: &DriverFault) -> String {
    let kind = match fault {
        DriverFault::Handshake { .. } => "handshake failed",
        DriverFault::Crashed { .. } => "crashed",
        DriverFault::ExitedEarly { .. } => "exited without answering",
        DriverFault::Garbage { .. } => "printed a non-protocol line",
        DriverFault::StdoutLineTooLong { .. } => "stdout line over the limit",
        DriverFault::CoordinatorLimit { .. } => "coordinator protocol violated",
        DriverFault::Timeout { .. } => "no answer",
    };
    format!("driver did not start ({kind}; reported once, on {case}); not started again")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn refused() -> Unstarted {
        Unstarted {
            fault: DriverFault::Handshake {
                message: "driver speaks protocol 99, this runner speaks 2".into(),
            },
            left_behind: 1,
        }
    }

    #[test]
    fn a_lasting_failure_is_reported_in_full_once_then_by_reference() {
        let starts = StartFailures::default();
        let attempts = AtomicUsize::new(0);
        let attempt = || {
            attempts.fetch_add(1, Ordering::SeqCst);
            Err(refused())
        };
        let (fault, first) = starts.start("odd", "BLK-001", attempt).unwrap_err();
        assert!(matches!(fault, DriverFault::Handshake { .. }));
        assert_eq!(
            first,
            "driver did not start: handshake failed: driver speaks protocol 99, this runner \
             speaks 2; left 1 process outside its group; killed"
        );
        let (fault, later) = starts.start("odd", "BLK-002", attempt).unwrap_err();
        assert!(matches!(fault, DriverFault::Handshake { .. }));
        assert_eq!(
            later,
            "driver did not start (handshake failed; reported once, on BLK-001); not started \
             again"
        );
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
        // Another implementation is another matter.
        let _ = starts.start("other", "BLK-002", attempt);
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_timeout_is_tried_again() {
        let starts = StartFailures::default();
        let attempts = AtomicUsize::new(0);
        let attempt = || {
            attempts.fetch_add(1, Ordering::SeqCst);
            Err(Unstarted {
                fault: DriverFault::Timeout {
                    after_ms: 2000,
                    stderr: String::new(),
                },
                left_behind: 0,
            })
        };
        for case in ["A", "B", "C"] {
            let (_, reason) = starts.start("slow", case, attempt).unwrap_err();
            assert!(
                reason.starts_with("driver did not start: no answer"),
                "{reason}"
            );
        }
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn threads_wait_for_the_first_start_and_only_one_reports_it() {
        let starts = StartFailures::default();
        let attempts = AtomicUsize::new(0);
        let reasons: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let (starts, attempts) = (&starts, &attempts);
                    s.spawn(move || {
                        let case = format!("C{i}");
                        starts
                            .start("odd", &case, || {
                                attempts.fetch_add(1, Ordering::SeqCst);
                                Err(refused())
                            })
                            .unwrap_err()
                            .1
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
        let full: Vec<&String> = reasons
            .iter()
            .filter(|r| r.starts_with("driver did not start:"))
            .collect();
        assert_eq!(full.len(), 1, "{reasons:#?}");
    }
}
