//! The bench's output: one serializable record of the run (`--json`) and its text tables,
//! pure functions of that record so that a snapshot pins them.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::cpython_tests::CpythonTests;
use super::floor::{Bound, Floor};
use super::profile::Profile;
use super::usage::Usage;

/// The speed-up over CPython's own Pool tests the suite aims at (issue 15).
pub const TARGET_RATIO: f64 = 3.0;

/// Everything one `cargo xtask bench` measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bench {
    pub cases: usize,
    pub rounds: u32,
    pub jobs: usize,
    pub cores: usize,
    /// The 1-minute load average before and after the run.
    pub load_before: String,
    pub load_after: String,
    pub implementations: Vec<Row>,
    pub together: Usage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub together_floor: Option<Floor>,
    /// `None` with `--no-cpython-tests`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpython_tests: Option<CpythonTests>,
}

/// One implementation run alone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub name: String,
    pub alone: Usage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor: Option<Floor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
}

impl Bench {
    /// CPython's tests' wall time over the suite's, all implementations together.
    pub fn ratio(&self) -> Option<f64> {
        match &self.cpython_tests {
            Some(CpythonTests::Ran { usage, .. }) if self.together.wall_s > 0.0 => {
                Some(usage.wall_s / self.together.wall_s)
            }
            _ => None,
        }
    }
}

fn floor_cells(f: Option<&Floor>, wall: f64) -> String {
    match f {
        Some(f) if f.floor_s > 0.0 => {
            let bound = match f.bound {
                Bound::Wall => "wall",
                Bound::Cpu => "cpu",
            };
            format!("{:>8.2} {:>6.1}× {bound}", f.floor_s, wall / f.floor_s)
        }
        _ => format!("{:>8} {:>7} -", "-", "-"),
    }
}

/// The main table: wall and CPU time per implementation alone, then together, the floor,
/// CPython's tests and the ratio.
pub fn render(b: &Bench) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "bench: {} cases, median of {} round{}, {} jobs on {} cores; load {} before, {} after",
        b.cases,
        b.rounds,
        if b.rounds == 1 { "" } else { "s" },
        b.jobs,
        b.cores,
        b.load_before,
        b.load_after
    );
    let _ = writeln!(
        out,
        "  {:22} {:>8} {:>8} {:>8} {:>8} {:>7} bound",
        "implementation", "wall s", "user s", "sys s", "floor s", "÷floor"
    );
    let line = |out: &mut String, name: &str, u: &Usage, f: Option<&Floor>| {
        let _ = writeln!(
            out,
            "  {:22} {:>8.2} {:>8.2} {:>8.2} {}",
            name,
            u.wall_s,
            u.user_s,
            u.sys_s,
            floor_cells(f, u.wall_s)
        );
    };
    for r in &b.implementations {
        line(&mut out, &r.name, &r.alone, r.floor.as_ref());
    }
    line(
        &mut out,
        "all together",
        &b.together,
        b.together_floor.as_ref(),
    );
    out.push_str(&floors(b));
    out.push_str(&cpython(b));
    out
}

/// What each floor consists of.
fn floors(b: &Bench) -> String {
    let mut out = String::new();
    let rows = b
        .implementations
        .iter()
        .filter_map(|r| r.floor.as_ref().map(|f| (r.name.as_str(), f)))
        .chain(b.together_floor.as_ref().map(|f| ("all together", f)));
    let mut any = false;
    for (name, f) in rows {
        if !any {
            let _ = writeln!(
                out,
                "floor: the pools the cases start and stop and the timeouts they let expire, wall cost ÷ {} jobs or CPU cost ÷ {} cores, whichever is larger",
                b.jobs, b.cores
            );
            any = true;
        }
        let cpu = f.cpu_cost_s.map_or_else(
            || "CPU not measured".to_owned(),
            |c| format!("{c:.2} s CPU ÷ {} = {:.2}", b.cores, c / b.cores as f64),
        );
        let _ = writeln!(
            out,
            "  {:22} {} pools, {} processes: {:.2} s wall + {:.2} s expiring timeouts ÷ {} = {:.2}, {cpu} ({})",
            name,
            f.pools,
            f.processes,
            f.wall_cost_s,
            f.waits_s,
            b.jobs,
            (f.wall_cost_s + f.waits_s) / b.jobs as f64,
            f.source
        );
    }
    out
}

/// CPython's tests, the ratio, and whether the floor allows the target.
fn cpython(b: &Bench) -> String {
    let mut out = String::new();
    match &b.cpython_tests {
        None => {}
        Some(CpythonTests::Skipped { reason }) => {
            let _ = writeln!(out, "CPython's Pool tests: skipped ({reason})");
        }
        Some(CpythonTests::Ran {
            version,
            methods,
            passed,
            usage,
            ..
        }) => {
            let _ = writeln!(
                out,
                "CPython {version}'s Pool tests ({}): {:.2} s wall, {:.2} s user, {:.2} s sys{}",
                methods.join(", "),
                usage.wall_s,
                usage.user_s,
                usage.sys_s,
                if *passed { "" } else { " (some failed)" }
            );
        }
    }
    if let Some(ratio) = b.ratio() {
        let _ = writeln!(
            out,
            "ratio (CPython's tests ÷ the suite all together, wall): {ratio:.2}×"
        );
        if let (Some(CpythonTests::Ran { usage, .. }), Some(f)) =
            (&b.cpython_tests, &b.together_floor)
        {
            if f.floor_s > 0.0 {
                let best = usage.wall_s / f.floor_s;
                let verdict = if best < TARGET_RATIO {
                    format!("the floor rules out {TARGET_RATIO:.0}× here")
                } else {
                    format!("the floor allows {TARGET_RATIO:.0}×")
                };
                let _ = writeln!(
                    out,
                    "at the floor ({:.2} s all together): {best:.2}×; {verdict}",
                    f.floor_s
                );
            }
        }
    }
    out
}

fn pct(part: f64, whole: f64) -> String {
    if whole > 0.0 {
        format!("{:.0}%", 100.0 * part / whole)
    } else {
        "-".into()
    }
}

/// `--profile`: each implementation's cell time by phase, round trips and idle job slots.
pub fn render_profile(b: &Bench) -> String {
    let mut out = String::new();
    let rows: Vec<(&str, &Profile)> = b
        .implementations
        .iter()
        .filter_map(|r| r.profile.as_ref().map(|p| (r.name.as_str(), p)))
        .collect();
    if rows.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "profile: cell-seconds by phase (alone, last round); share of the cells' time"
    );
    let _ = writeln!(
        out,
        "  {:22} {:>5} {:>7} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "implementation",
        "cells",
        "cells s",
        "driver start",
        "pool start",
        "program",
        "teardown",
        "observe",
        "other"
    );
    for (name, p) in &rows {
        let cell = |v: f64| format!("{v:.2} {:>4}", pct(v, p.cell_s));
        let _ = writeln!(
            out,
            "  {:22} {:>5} {:>7.2} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12}",
            name,
            p.cells,
            p.cell_s,
            cell(p.driver_start_s),
            cell(p.pool_start_s),
            cell(p.program_s),
            cell(p.teardown_s),
            cell(p.observe_s),
            cell(p.other_s)
        );
    }
    let _ = writeln!(
        out,
        "  {:22} {:>8} {:>10} {:>12} {:>12} {:>12}",
        "", "reports", "quick", "mean µs", "idle slot s", "tail s"
    );
    for (name, p) in &rows {
        let _ = writeln!(
            out,
            "  {:22} {:>8} {:>10} {:>12.0} {:>12.2} {:>12.2}",
            name, p.reports, p.quick_reports, p.mean_service_us, p.idle_s, p.tail_s
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::floor::{PoolCost, combine, floor};
    use super::*;

    fn usage(wall_s: f64, user_s: f64, sys_s: f64) -> Usage {
        Usage {
            wall_s,
            user_s,
            sys_s,
        }
    }

    /// Fixed numbers in the shape of a real run (two implementations).
    fn bench() -> Bench {
        let spawn_cost = |n: u32| PoolCost {
            wall_s: 0.15 * f64::from(n),
            cpu_s: Some(0.07 * f64::from(n)),
        };
        let spawn = floor(
            &[2; 100],
            spawn_cost,
            3.0,
            2,
            4,
            "Pool(n) start + close/join",
        );
        let rust_cost = |_| PoolCost {
            wall_s: 0.004,
            cpu_s: None,
        };
        let rust = floor(
            &[2; 100],
            rust_cost,
            2.5,
            2,
            4,
            "its cheapest cell, 4 ms, per pool",
        );
        let together = combine(&[&spawn, &rust], 2, 4);
        let profile = Profile {
            cells: 100,
            cell_s: 40.0,
            driver_start_s: 2.0,
            pool_start_s: 4.0,
            program_s: 24.0,
            teardown_s: 8.0,
            observe_s: 1.0,
            other_s: 1.0,
            reports: 2400,
            quick_reports: 2000,
            mean_service_us: 31.5,
            idle_s: 3.25,
            tail_s: 1.5,
        };
        Bench {
            cases: 100,
            rounds: 3,
            jobs: 4,
            cores: 2,
            load_before: "1.50".into(),
            load_after: "2.25".into(),
            implementations: vec![
                Row {
                    name: "cpython-spawn".into(),
                    alone: usage(14.8, 9.5, 3.1),
                    floor: Some(spawn),
                    profile: Some(profile),
                },
                Row {
                    name: "rust-ref".into(),
                    alone: usage(1.2, 0.4, 0.3),
                    floor: Some(rust),
                    profile: None,
                },
            ],
            together: usage(15.5, 10.0, 3.5),
            together_floor: Some(together),
            cpython_tests: Some(CpythonTests::Ran {
                python: "/usr/bin/python3.13".into(),
                version: "3.13.0".into(),
                methods: vec!["fork".into(), "spawn".into(), "forkserver".into()],
                passed: true,
                usage: usage(34.1, 12.1, 3.2),
            }),
        }
    }

    #[test]
    fn table() {
        let b = bench();
        insta::assert_snapshot!(format!("{}{}", render(&b), render_profile(&b)));
    }

    #[test]
    fn skipped_cpython_is_one_line_and_no_ratio() {
        let mut b = bench();
        b.cpython_tests = Some(CpythonTests::Skipped {
            reason: "no CPython with its test package".into(),
        });
        let text = render(&b);
        assert!(text.contains("CPython's Pool tests: skipped (no CPython with its test package)"));
        assert!(!text.contains("ratio"));
        b.cpython_tests = None;
        assert!(!render(&b).contains("CPython"));
    }
}
