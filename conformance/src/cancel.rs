//! Stopping a run from outside (Ctrl-C, SIGTERM): a [`Cancel`] token that the runner checks
//! before each cell and that kills the drivers of the cells in flight, and the
//! [`Interruption`] a report of a cut-short run carries.
//!
//! It knows nothing of signals: whoever catches one (xtask) calls [`Cancel::cancel`] with its
//! name. The drivers are ended through [`KillSwitch`]es, because the thread that owns a
//! session is blocked in its `receive` and cannot be asked to kill it itself; once woken, it
//! cleans up through the session as after any fault.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::driver::KillSwitch;

/// A cancellation flag shared by a run's threads, with the drivers they are waiting on.
/// Clones share the flag. The default token is never cancelled unless someone cancels it.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    cancelled: AtomicBool,
    /// The name of what cancelled the run (`SIGINT`), first caller wins.
    signal: Mutex<Option<String>>,
    in_flight: Mutex<HashMap<u64, KillSwitch>>,
    next: AtomicU64,
}

/// Why a report covers only part of its run: the signal, and how many of the planned cells
/// (case × implementation) finished. Cells in flight when it came are not counted: they did
/// not finish, and they are not faults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interruption {
    pub signal: String,
    pub finished: usize,
    pub planned: usize,
}

impl Interruption {
    /// `interrupted (SIGINT) after 3 of 10 cells`, as every view says it.
    pub fn describe(&self) -> String {
        format!(
            "interrupted ({}) after {} of {} cells",
            self.signal, self.finished, self.planned
        )
    }

    /// The sentence at the top of a report: what happened and what the report holds.
    pub fn headline(&self) -> String {
        format!(
            "Interrupted ({}) after {} of {} cells: this report holds only the cells that \
             finished; the others did not run or were stopped.",
            self.signal, self.finished, self.planned
        )
    }
}

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Cancels the run: no new cell starts, and every driver in flight is killed now.
    /// `signal` names the cause (`SIGINT`); only the first cancellation's is kept.
    pub fn cancel(&self, signal: &str) {
        {
            let mut s = self.inner.signal.lock().unwrap_or_else(|e| e.into_inner());
            s.get_or_insert_with(|| signal.to_owned());
        }
        self.inner.cancelled.store(true, Ordering::SeqCst);
        let in_flight = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for switch in in_flight.values() {
            switch.kill();
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// What cancelled the run, if something did.
    pub fn signal(&self) -> Option<String> {
        self.inner
            .signal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The interruption of a run that finished `finished` of its `planned` cells, if it was
    /// cancelled before all of them finished (a signal after the last cell changes nothing).
    pub fn interruption(&self, finished: usize, planned: usize) -> Option<Interruption> {
        let signal = self.signal()?;
        (finished < planned).then_some(Interruption {
            signal,
            finished,
            planned,
        })
    }

    /// Registers a driver that a cell is waiting on until the guard drops; if the run is
    /// already cancelled, the driver is killed at once. Drop the guard as soon as the wait is
    /// over: a session that faults reaps its driver inside `receive`, and the group id must
    /// not be signalled long after that (Linux hands out pids in order, so the microseconds
    /// until the guard drops cannot see it reused).
    pub fn in_flight(&self, switch: KillSwitch) -> InFlight<'_> {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let mut in_flight = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        in_flight.insert(id, switch);
        // Read under the lock: either `cancel` set the flag before we took it (seen here),
        // or it takes the lock after us and finds the switch.
        if self.is_cancelled() {
            switch.kill();
        }
        InFlight { cancel: self, id }
    }
}

/// A driver registered with [`Cancel::in_flight`]; unregistered on drop.
#[derive(Debug)]
pub struct InFlight<'a> {
    cancel: &'a Cancel,
    id: u64,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.cancel
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_signal_is_kept_and_clones_share_the_flag() {
        let cancel = Cancel::new();
        let clone = cancel.clone();
        assert!(!cancel.is_cancelled());
        assert_eq!(cancel.interruption(1, 2), None);
        clone.cancel("SIGTERM");
        cancel.cancel("SIGINT");
        assert!(cancel.is_cancelled());
        assert_eq!(cancel.signal().as_deref(), Some("SIGTERM"));
        let i = cancel.interruption(1, 2).unwrap();
        assert_eq!(i.describe(), "interrupted (SIGTERM) after 1 of 2 cells");
        // Every planned cell finished: the report is whole, whatever came after.
        assert_eq!(cancel.interruption(2, 2), None);
    }

    #[test]
    fn an_interruption_is_json_with_its_counts() {
        let i = Interruption {
            signal: "SIGINT".into(),
            finished: 3,
            planned: 10,
        };
        assert_eq!(
            serde_json::to_string(&i).unwrap(),
            r#"{"signal":"SIGINT","finished":3,"planned":10}"#
        );
    }
}
