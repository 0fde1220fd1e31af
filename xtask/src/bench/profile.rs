//! `--profile`: where an implementation's cells spend their wall time, from the runner-side
//! timestamps of `conformance::cell_timing`, summed over cells (cell-seconds), plus the job
//! threads' idle time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use conformance::cell_timing::CellTiming;
use serde::{Deserialize, Serialize};

/// One implementation's cells, phase by phase (seconds summed over cells).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub cells: u32,
    /// Sum of every cell's duration.
    pub cell_s: f64,
    /// Starting drivers and their handshakes (once per job thread, and after a fault).
    pub driver_start_s: f64,
    /// Program sent → the pool's `construct` reported: the driver builds the pool.
    pub pool_start_s: f64,
    /// `construct` → the last step's report: the program's steps.
    pub program_s: f64,
    /// The last step's report → the driver's `done`: stopping the pool (terminate/join).
    pub teardown_s: f64,
    /// The driver's answer → the cell's end: the history handed over, observed, judged,
    /// written.
    pub observe_s: f64,
    /// What none of the above covers (capability checks, cells that did not run a program).
    pub other_s: f64,
    /// Coordinator reports in all, and those answered at once (not `wait`/`await`).
    pub reports: u64,
    pub quick_reports: u64,
    /// Mean time the coordinator took to answer a quick report, in microseconds.
    pub mean_service_us: f64,
    /// Job-thread time without a cell: all of it, and the tail after a thread's last cell.
    pub idle_s: f64,
    pub tail_s: f64,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn between(a: Option<Instant>, b: Option<Instant>) -> f64 {
    match (a, b) {
        (Some(a), Some(b)) => secs(b.saturating_duration_since(a)),
        _ => 0.0,
    }
}

/// The profile of one run's cells, which took `wall` on `jobs` job threads from `started`.
pub fn profile(cells: &[CellTiming], started: Instant, end: Instant, jobs: usize) -> Profile {
    let mut p = Profile::default();
    let mut service = Duration::ZERO;
    let mut busy: HashMap<_, (Duration, Instant)> = HashMap::new();
    for c in cells {
        let cell_end = c.end.unwrap_or(c.begin);
        let total = secs(cell_end - c.begin);
        let r = &c.reports;
        let driver = c.driver_start.map_or(0.0, secs);
        let constructed = r.construct.or(r.first_step);
        let pool = between(c.sent, constructed);
        let program = between(constructed, r.last_step.max(constructed));
        let teardown = between(r.last_step.or(constructed), c.answered);
        let observe = between(c.answered, c.end);
        p.cells += 1;
        p.cell_s += total;
        p.driver_start_s += driver;
        p.pool_start_s += pool;
        p.program_s += program;
        p.teardown_s += teardown;
        p.observe_s += observe;
        p.other_s += (total - driver - pool - program - teardown - observe).max(0.0);
        p.reports += u64::from(r.total);
        p.quick_reports += u64::from(r.quick);
        service += r.quick_service;
        let entry = busy.entry(c.thread).or_insert((Duration::ZERO, cell_end));
        entry.0 += cell_end - c.begin;
        entry.1 = entry.1.max(cell_end);
    }
    if p.quick_reports > 0 {
        p.mean_service_us = secs(service) * 1e6 / p.quick_reports as f64;
    }
    let wall = end.saturating_duration_since(started);
    let unused = jobs.saturating_sub(busy.len()) as f64 * secs(wall);
    p.idle_s = unused
        + busy
            .values()
            .map(|(b, _)| secs(wall.saturating_sub(*b)))
            .sum::<f64>();
    p.tail_s = unused
        + busy
            .values()
            .map(|(_, last)| secs(end.saturating_duration_since(*last)))
            .sum::<f64>();
    p
}

#[cfg(test)]
mod tests {
    use conformance::cell_timing::Reports;

    use super::*;

    #[test]
    fn phases_add_up() {
        let t0 = Instant::now();
        let at = |ms: u64| Some(t0 + Duration::from_millis(ms));
        let cell = CellTiming {
            implementation: "x".into(),
            case: "C".into(),
            thread: std::thread::current().id(),
            begin: t0,
            end: at(100),
            driver_start: Some(Duration::from_millis(10)),
            sent: at(12),
            answered: at(90),
            finished: at(91),
            reports: Reports {
                construct: at(30),
                first_step: at(31),
                last_step: at(60),
                quick: 4,
                quick_service: Duration::from_micros(400),
                total: 5,
            },
        };
        let p = profile(&[cell], t0, t0 + Duration::from_millis(200), 2);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(p.cell_s, 0.1));
        assert!(close(p.driver_start_s, 0.01));
        assert!(close(p.pool_start_s, 0.018));
        assert!(close(p.program_s, 0.03));
        assert!(close(p.teardown_s, 0.03));
        assert!(close(p.observe_s, 0.01));
        assert!(close(p.other_s, 0.002));
        assert!(close(p.mean_service_us, 100.0));
        // One thread busy 0.1 of 0.2 s, one never used: 0.1 + 0.2 idle, all of it tail.
        assert!(close(p.idle_s, 0.3));
        assert!(close(p.tail_s, 0.3));
    }
}
