//! Hostile input, end to end: drivers in `fixtures/drivers/broken/` that send the runner more
//! than the protocol allows (PROTOCOL.md §2.3) or reports that do not fit the program. Each
//! runs real cases through `run_matrix`; the tests check each cell's status, that its reason
//! names the limit or the violation, that the limit (not the liveness guard) ended it, that
//! the other cells are undisturbed, and that no process of the driver is left behind.
//!
//! `cargo test -p conformance --test hostile_input -- --ignored` runs the long form: every
//! hostile driver 100 times in a row (`POOLSPEC_HOSTILE_RUNS` changes the count).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use conformance::driver::{DriverCommand, DriverFault};
use conformance::expectations::ExpectationFile;
use conformance::implementations::{Implementation, find_python};
use conformance::protocol::{MAX_CONNECTIONS, MAX_STDOUT_LINE};
use conformance::runner::{CaseResult, MatrixRun, RunOptions, run_matrix};
use conformance::spec::{LoadedCase, load_dir};
use conformance::verdict::Status;
use conformance::workspace_root;

const MARKER_VAR: &str = "POOLSPEC_TEST_MARKER";
/// The cases' 20 s liveness guard, unscaled: a cell that ends well inside it was ended by
/// the limit. (A hang would take the whole guard; nothing here waits for it.)
const MULTIPLIER: f64 = 1.0;
/// How long killed processes may take to disappear from `/proc`.
const REAP_DEADLINE: Duration = Duration::from_secs(10);

fn cases(ids: &[&str]) -> Vec<LoadedCase> {
    let suite = load_dir(&workspace_root().join("spec"));
    ids.iter()
        .map(|id| {
            suite
                .cases
                .iter()
                .find(|c| c.id() == *id)
                .cloned()
                .unwrap_or_else(|| panic!("case {id} not in spec/ (errors: {:?})", suite.errors))
        })
        .collect()
}

/// A value no other test (or test run) uses, inherited by every process of a driver.
fn unique_marker(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{test}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn implementation(name: &str, script: &str, args: &[&str], marker: &str) -> Implementation {
    let python = find_python().expect("a Python interpreter (set POOLSPEC_PYTHON)");
    let mut args_all = vec![
        "-u".to_owned(),
        workspace_root().join(script).display().to_string(),
    ];
    args_all.extend(args.iter().map(|a| (*a).to_owned()));
    Implementation {
        name: name.to_owned(),
        command: DriverCommand {
            program: python.display().to_string(),
            args: args_all,
            env: vec![
                ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
                (MARKER_VAR.into(), marker.into()),
            ],
        },
    }
}

fn hostile(name: &str, marker: &str) -> Implementation {
    implementation(
        name,
        &format!("fixtures/drivers/broken/{name}.py"),
        &[],
        marker,
    )
}

fn real_driver(marker: &str) -> Implementation {
    implementation(
        "cpython-fork",
        "fixtures/drivers/cpython_driver.py",
        &["--start-method", "fork", "--pool-class", "Pool"],
        marker,
    )
}

fn run(cases: &[LoadedCase], imps: &[Implementation], jobs: usize) -> MatrixRun {
    let options = RunOptions {
        timeout_multiplier: MULTIPLIER,
        jobs,
        repeat: 1,
        history_dir: None,
        cells: None,
        costs: None,
    };
    let with_expectations: Vec<_> = imps
        .iter()
        .map(|imp| {
            let none = ExpectationFile {
                implementation: imp.name.clone(),
                cases: BTreeMap::new(),
            };
            (imp.clone(), none)
        })
        .collect();
    run_matrix(cases, &with_expectations, &options, &|_| {})
}

fn result<'a>(run: &'a MatrixRun, imp: &str, case: &str) -> &'a CaseResult {
    run.results
        .iter()
        .find(|r| r.implementation == imp && r.case == case)
        .unwrap_or_else(|| panic!("no result for {imp}/{case}: {:#?}", run.results))
}

fn reason(result: &CaseResult) -> &str {
    let reason = result
        .reason
        .as_deref()
        .unwrap_or_else(|| panic!("no reason: {result:#?}"));
    assert!(!reason.contains('\n'), "reason spans lines: {reason:?}");
    assert!(reason.len() <= 300, "reason too long: {reason:?}");
    reason
}

/// Live (non-zombie) processes whose environment carries `marker`.
fn marked_processes(marker: &str) -> Vec<i32> {
    let wanted = format!("{MARKER_VAR}={marker}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let marked = std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|e| e == wanted.as_bytes()));
            let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| Some(s.rsplit_once(')')?.1.split_whitespace().next()? != "Z"))
                .unwrap_or(false);
            marked && alive
        })
        .collect()
}

fn assert_nothing_left(marker: &str) {
    let deadline = Instant::now() + REAP_DEADLINE;
    loop {
        let left = marked_processes(marker);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes still alive {REAP_DEADLINE:?} after the run: {left:?}"
        );
        // Polling interval of a bounded wait on a condition; no verdict rests on it.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What one hostile driver must get on BLK-001: its status, its fault, and a phrase of its
/// reason.
struct Expected {
    driver: &'static str,
    status: Status,
    fault: fn(&Option<DriverFault>) -> bool,
    reason: String,
}

fn expectations() -> Vec<Expected> {
    vec![
        Expected {
            driver: "stdout_flood",
            status: Status::Crash,
            fault: |f| {
                *f == Some(DriverFault::StdoutLineTooLong {
                    limit: MAX_STDOUT_LINE,
                })
            },
            reason: "stdout line longer than 1 MiB (the protocol's limit); process group killed"
                .into(),
        },
        Expected {
            driver: "report_flood",
            status: Status::Error,
            fault: |f| matches!(f, Some(DriverFault::CoordinatorLimit { .. })),
            reason: "coordinator protocol violated: a coordinator report longer than 256 KiB \
                     (the protocol's limit); process group killed"
                .into(),
        },
        Expected {
            driver: "connection_flood",
            status: Status::Error,
            fault: |f| matches!(f, Some(DriverFault::CoordinatorLimit { .. })),
            reason: format!(
                "coordinator protocol violated: more than {MAX_CONNECTIONS} coordinator \
                 connections open at once (the protocol's limit); process group killed"
            ),
        },
        Expected {
            driver: "misfit_reports",
            status: Status::Error,
            fault: Option::is_none,
            reason: "coordinator protocol violated: `end` of task `t` before its `start`".into(),
        },
    ]
}

/// Runs BLK-001 on every hostile driver `times` times in a row, checking each cell and that
/// nothing is left after each run; returns the slowest cell's duration.
fn every_hostile_driver(times: usize) -> Duration {
    let blk = cases(&["BLK-001"]);
    let mut slowest = Duration::ZERO;
    for e in expectations() {
        for i in 0..times {
            let marker = unique_marker(e.driver);
            let run = run(&blk, &[hostile(e.driver, &marker)], 1);
            let r = result(&run, e.driver, "BLK-001");
            assert_eq!(r.status, e.status, "run {i}: {r:#?}");
            assert!((e.fault)(&r.fault), "run {i}: fault {:?}", r.fault);
            assert_eq!(reason(r), e.reason, "run {i}");
            // Ended by the limit, not by the liveness guard.
            let took = Duration::from_millis(r.duration_ms);
            assert!(took < Duration::from_secs(15), "run {i} took {took:?}");
            slowest = slowest.max(took);
            assert_nothing_left(&marker);
        }
    }
    slowest
}

#[test]
fn each_hostile_driver_gets_its_own_status_and_reason_at_once() {
    every_hostile_driver(1);
}

/// The long form: `cargo test -p conformance --test hostile_input -- --ignored --nocapture`.
#[test]
#[ignore = "long: every hostile driver 100 times (POOLSPEC_HOSTILE_RUNS)"]
fn every_hostile_driver_a_hundred_times() {
    let times = std::env::var("POOLSPEC_HOSTILE_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let started = Instant::now();
    let slowest = every_hostile_driver(times);
    println!(
        "{times} runs of each hostile driver in {:?}; slowest cell {slowest:?}",
        started.elapsed()
    );
}

#[test]
fn hostile_drivers_do_not_disturb_other_cells() {
    let marker = unique_marker("beside");
    let ids = ["BLK-001", "BLK-002"];
    let imps = [
        hostile("connection_flood", &marker),
        hostile("misfit_reports", &marker),
        real_driver(&marker),
    ];
    let run = run(&cases(&ids), &imps, 2);
    for case in ids {
        let real = result(&run, "cpython-fork", case);
        assert_eq!(real.status, Status::Pass, "{real:#?}");
        // Each case of a hostile driver fails on its own, whatever the one before did: the
        // flooding driver is restarted with a fresh coordinator, the misfit one is kept.
        let flood = result(&run, "connection_flood", case);
        assert_eq!(flood.status, Status::Error, "{flood:#?}");
        assert!(reason(flood).contains("connections open at once"));
        let misfit = result(&run, "misfit_reports", case);
        assert_eq!(misfit.status, Status::Error, "{misfit:#?}");
        assert!(reason(misfit).contains("before its `start`"), "{misfit:#?}");
    }
    assert_nothing_left(&marker);
}
