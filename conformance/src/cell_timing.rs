//! Runner-side timestamps of every cell, for `cargo xtask bench --profile`: where a cell's
//! wall time goes (driver start, pool start, the program, teardown, observation).
//!
//! Off unless [`enable`]d, and then only kept in memory: nothing here reaches a report file.
//! The runner marks a cell's phases on its job thread (a thread-local cell in progress); the
//! coordinator's connection threads time each report under the cell's token.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use crate::protocol::ReportKind;

static ENABLED: AtomicBool = AtomicBool::new(false);
static DONE: Mutex<Vec<CellTiming>> = Mutex::new(Vec::new());
/// Per running cell's token: its coordinator reports so far.
static REPORTS: Mutex<Option<HashMap<String, Reports>>> = Mutex::new(None);

thread_local! {
    static CURRENT: RefCell<Option<CellTiming>> = const { RefCell::new(None) };
}

/// The coordinator reports of one cell, as the coordinator handled them.
#[derive(Debug, Clone, Default)]
pub struct Reports {
    /// When the pool's `construct` was recorded.
    pub construct: Option<Instant>,
    /// When the first and the last step report (`call` or `return`) were recorded.
    pub first_step: Option<Instant>,
    pub last_step: Option<Instant>,
    /// Reports answered at once (not `wait`/`await`, which block on a gate by design).
    pub quick: u32,
    /// Time from reading those reports to their answer, summed.
    pub quick_service: Duration,
    /// Every report, blocking ones included.
    pub total: u32,
}

/// One cell's timestamps, all taken by the runner.
#[derive(Debug, Clone)]
pub struct CellTiming {
    pub implementation: String,
    pub case: String,
    /// The job thread that ran it.
    pub thread: ThreadId,
    pub begin: Instant,
    pub end: Option<Instant>,
    /// Starting the driver (and its handshake), when this cell had to.
    pub driver_start: Option<Duration>,
    /// When the program was sent, and when the driver's answer (`done`, `error`) came.
    pub sent: Option<Instant>,
    pub answered: Option<Instant>,
    /// When the coordinator handed over the history; observation and judging follow.
    pub finished: Option<Instant>,
    pub reports: Reports,
}

/// Starts recording (and forgets what an earlier recording kept).
pub fn enable() {
    ENABLED.store(true, Ordering::SeqCst);
    lock(&DONE).clear();
    *lock(&REPORTS) = Some(HashMap::new());
}

/// Stops recording; returns every finished cell since [`enable`].
pub fn take() -> Vec<CellTiming> {
    ENABLED.store(false, Ordering::SeqCst);
    *lock(&REPORTS) = None;
    std::mem::take(&mut *lock(&DONE))
}

fn on() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn with_current(f: impl FnOnce(&mut CellTiming)) {
    if on() {
        CURRENT.with(|c| {
            if let Some(t) = c.borrow_mut().as_mut() {
                f(t);
            }
        });
    }
}

/// The runner starts a cell on this thread.
pub fn begin(implementation: &str, case: &str) {
    if on() {
        CURRENT.with(|c| {
            *c.borrow_mut() = Some(CellTiming {
                implementation: implementation.to_owned(),
                case: case.to_owned(),
                thread: thread::current().id(),
                begin: Instant::now(),
                end: None,
                driver_start: None,
                sent: None,
                answered: None,
                finished: None,
                reports: Reports::default(),
            });
        });
    }
}

/// Times starting a driver for the current cell.
pub fn driver_start<T>(start: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = start();
    with_current(|c| c.driver_start = Some(t.elapsed()));
    out
}

/// The program went out under `token`: the coordinator's reports with it count for this cell.
pub fn sent(token: &str) {
    with_current(|c| c.sent = Some(Instant::now()));
    if on() {
        if let Some(map) = lock(&REPORTS).as_mut() {
            map.insert(token.to_owned(), Reports::default());
        }
    }
}

/// The driver answered the program (or the wait for it ended).
pub fn answered() {
    with_current(|c| c.answered = Some(Instant::now()));
}

/// The coordinator handed over the history of `token`.
pub fn finished(token: &str) {
    let reports = if on() {
        lock(&REPORTS)
            .as_mut()
            .and_then(|m| m.remove(token))
            .unwrap_or_default()
    } else {
        return;
    };
    with_current(|c| {
        c.finished = Some(Instant::now());
        c.reports = reports;
    });
}

/// The cell on this thread is over.
pub fn end() {
    if on() {
        if let Some(mut t) = CURRENT.with(|c| c.borrow_mut().take()) {
            t.end = Some(Instant::now());
            lock(&DONE).push(t);
        }
    }
}

/// Times one coordinator report, from now until the guard drops (its answer is ready).
pub fn report(token: &str, kind: &ReportKind) -> Option<ReportTimer> {
    if !on() {
        return None;
    }
    let blocking = matches!(kind, ReportKind::Wait { .. } | ReportKind::Await { .. });
    Some(ReportTimer {
        token: token.to_owned(),
        construct: matches!(kind, ReportKind::Construct { .. }),
        step: matches!(kind, ReportKind::Call { .. } | ReportKind::Return { .. }),
        blocking,
        read: Instant::now(),
    })
}

/// Drops when the coordinator has its answer to a report.
#[derive(Debug)]
pub struct ReportTimer {
    token: String,
    construct: bool,
    step: bool,
    blocking: bool,
    read: Instant,
}

impl Drop for ReportTimer {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut map = lock(&REPORTS);
        let Some(r) = map.as_mut().and_then(|m| m.get_mut(&self.token)) else {
            return;
        };
        r.total += 1;
        if !self.blocking {
            r.quick += 1;
            r.quick_service += now - self.read;
        }
        if self.construct {
            r.construct.get_or_insert(self.read);
        }
        if self.step {
            r.first_step.get_or_insert(self.read);
            r.last_step = Some(self.read);
        }
    }
}
