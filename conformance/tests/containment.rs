//! Containment, end to end: hostile drivers in `fixtures/drivers/broken/` start processes that
//! leave the driver's process group (a `setsid` grandchild, a double-forked daemon with a
//! worker, a child in a group of its own, a child ignoring SIGTERM), and each runs a real case
//! through `run_matrix`. The test checks the cell's status, that its reason says how many
//! processes were left outside the group, and that, once `run_matrix` has returned, no process
//! the driver started is alive (not even after a grace period: the supervisor reaps every
//! descendant before the session ends).
//!
//! As in `faults.rs`, every driver is tagged with a unique environment variable that all its
//! descendants inherit, so "nothing left" means: no live process in `/proc` carries it.
//!
//! Each test runs its driver twice; the long form runs all of them
//! `POOLSPEC_HOSTILE_RUNS` times (100 unless set) and prints how soon each fault was reported:
//! `cargo test -p conformance --test containment -- --ignored --nocapture`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use conformance::driver::{DriverCommand, DriverFault};
use conformance::expectations::ExpectationFile;
use conformance::implementations::{Implementation, find_python};
use conformance::runner::{MatrixRun, RunOptions, run_matrix};
use conformance::spec::{LoadedCase, load_dir};
use conformance::verdict::Status;
use conformance::workspace_root;

const MARKER_VAR: &str = "POOLSPEC_TEST_MARKER";
/// Scales the cases' 20 s liveness guard down to 2 s.
const MULTIPLIER: f64 = 0.1;
const GUARD: Duration = Duration::from_secs(2);
/// Repetitions of each hostile driver in plain `cargo test`.
const SHORT_RUNS: usize = 2;

/// The workspace's cases with these ids, in this order.
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

/// A value no other test (or test run) uses.
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

/// `fixtures/drivers/broken/{name}.py`, tagged with `marker`, writing pids to `pidfile`.
fn hostile(name: &str, marker: &str, pidfile: &Path) -> Implementation {
    let python = find_python().expect("a Python interpreter (set POOLSPEC_PYTHON)");
    let script = workspace_root().join(format!("fixtures/drivers/broken/{name}.py"));
    Implementation {
        name: name.to_owned(),
        command: DriverCommand {
            program: python.display().to_string(),
            args: vec!["-u".into(), script.display().to_string()],
            env: vec![
                ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
                (MARKER_VAR.into(), marker.into()),
                (
                    "POOLSPEC_TEST_PIDFILE".into(),
                    pidfile.display().to_string(),
                ),
            ],
        },
    }
}

fn run(cases: &[LoadedCase], imp: &Implementation) -> MatrixRun {
    let options = RunOptions {
        timeout_multiplier: MULTIPLIER,
        jobs: 1,
        repeat: 1,
        history_dir: None,
        cells: None,
        costs: None,
    };
    let expectations = ExpectationFile {
        implementation: imp.name.clone(),
        cases: BTreeMap::new(),
    };
    run_matrix(cases, &[(imp.clone(), expectations)], &options, &|_| {})
}

/// Whether process `pid` is alive (not a zombie) and carries `marker` (so not a stranger that
/// reused the pid).
fn alive_with_marker(pid: i32, marker: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("");
    if state == "Z" || state == "X" {
        return false;
    }
    let wanted = format!("{MARKER_VAR}={marker}");
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|env| env.split(|b| *b == 0).any(|e| e == wanted.as_bytes()))
}

/// Live processes carrying `marker`.
fn marked_processes(marker: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| alive_with_marker(*pid, marker))
        .collect()
}

/// What one hostile driver must get.
#[derive(Debug, Clone, Copy)]
struct Hostile {
    script: &'static str,
    cases: &'static [&'static str],
    /// The status of each case, in order.
    statuses: &'static [Status],
    /// How many processes each case's reason says were left outside the group.
    left: &'static [usize],
    /// The pids the driver writes (processes that must be dead after the run).
    pids: usize,
}

const ESCAPE_SESSION: Hostile = Hostile {
    script: "escape_session",
    cases: &["BLK-001"],
    statuses: &[Status::Timeout],
    left: &[1],
    pids: 1,
};
const ESCAPE_DAEMON: Hostile = Hostile {
    script: "escape_daemon",
    cases: &["BLK-001"],
    statuses: &[Status::Crash],
    left: &[2],
    pids: 2,
};
const ESCAPE_GROUP: Hostile = Hostile {
    script: "escape_group",
    cases: &["BLK-001", "BLK-002"],
    statuses: &[Status::Fail, Status::Fail],
    left: &[0, 1],
    pids: 1,
};
const IGNORE_TERM: Hostile = Hostile {
    script: "ignore_term",
    cases: &["BLK-001"],
    statuses: &[Status::Timeout],
    left: &[1],
    pids: 1,
};
const ALL: [Hostile; 4] = [ESCAPE_SESSION, ESCAPE_DAEMON, ESCAPE_GROUP, IGNORE_TERM];

/// Runs `h` once and checks everything; returns how long the first cell took.
fn check(h: Hostile) -> Duration {
    let marker = unique_marker(h.script);
    let dir = tempfile::tempdir().expect("temp dir");
    let pidfile = dir.path().join("pids");
    let imp = hostile(h.script, &marker, &pidfile);

    let run = run(&cases(h.cases), &imp);

    // Checked at once, with no grace period: the supervisor has reaped every descendant
    // before the session (and so `run_matrix`) ended.
    let left = marked_processes(&marker);
    assert!(left.is_empty(), "{}: processes left: {left:?}", h.script);
    let text = std::fs::read_to_string(&pidfile).expect("the driver wrote its pid file");
    let pids: Vec<i32> = text
        .split_whitespace()
        .map(|p| p.parse().expect("a pid"))
        .collect();
    assert_eq!(pids.len(), h.pids, "{}: {text:?}", h.script);
    for pid in pids {
        assert!(
            !alive_with_marker(pid, &marker),
            "{}: {pid} alive",
            h.script
        );
    }

    let statuses: Vec<Status> = run.results.iter().map(|r| r.status).collect();
    assert_eq!(statuses, h.statuses, "{}: {:#?}", h.script, run.results);
    for (result, &left) in run.results.iter().zip(h.left) {
        let reason = result.reason.as_deref().unwrap_or("");
        assert!(!reason.contains('\n'), "reason spans lines: {reason:?}");
        let note = match left {
            0 => None,
            1 => Some("left 1 process outside its group; killed".to_owned()),
            n => Some(format!("left {n} processes outside its group; killed")),
        };
        match note {
            Some(note) => assert!(
                reason.ends_with(&format!("; {note}")),
                "{} {}: {reason:?}",
                h.script,
                result.case
            ),
            None => assert!(
                !reason.contains("outside its group"),
                "{} {}: {reason:?}",
                h.script,
                result.case
            ),
        }
    }
    Duration::from_millis(run.results[0].duration_ms)
}

#[test]
fn a_grandchild_in_a_new_session_is_killed_with_the_hung_driver() {
    for _ in 0..SHORT_RUNS {
        check(ESCAPE_SESSION);
    }
}

#[test]
fn a_double_forked_daemon_and_its_worker_are_killed_and_the_crash_is_prompt() {
    // A crash, not a timeout (`check` asserts the status): the daemon holds the driver's
    // stdout open, so without the supervisor killing it no end of file would come before the
    // liveness guard.
    for _ in 0..SHORT_RUNS {
        check(ESCAPE_DAEMON);
    }
    let marker = unique_marker("escape-daemon-reason");
    let dir = tempfile::tempdir().expect("temp dir");
    let run = run(
        &cases(&["BLK-001"]),
        &hostile("escape_daemon", &marker, &dir.path().join("pids")),
    );
    let result = &run.results[0];
    assert!(
        matches!(&result.fault, Some(DriverFault::Crashed { status, .. }) if status == "exit status: 1"),
        "{:?}",
        result.fault
    );
    assert_eq!(
        result.reason.as_deref(),
        Some(
            "driver crashed (exit status: 1); stderr: escape_daemon.py: daemon started; \
             leaving; left 2 processes outside its group; killed"
        )
    );
}

#[test]
fn a_child_in_its_own_group_is_killed_at_the_end_of_the_session() {
    for _ in 0..SHORT_RUNS {
        check(ESCAPE_GROUP);
    }
}

#[test]
fn a_driver_and_child_ignoring_sigterm_are_killed() {
    for _ in 0..SHORT_RUNS {
        check(IGNORE_TERM);
    }
}

/// The long form: every hostile driver, `POOLSPEC_HOSTILE_RUNS` times (100 unless set), four
/// at a time; prints how long the first cell of each took.
#[test]
#[ignore = "long: 100 runs of each hostile driver (about 5 minutes)"]
fn hostile_drivers_many_times() {
    let runs: usize = std::env::var("POOLSPEC_HOSTILE_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let started = Instant::now();
    let mut took: Vec<Vec<Duration>> = vec![Vec::new(); ALL.len()];
    for _ in 0..runs {
        let round: Vec<Duration> = std::thread::scope(|s| {
            let handles: Vec<_> = ALL.iter().map(|h| s.spawn(|| check(*h))).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a check panicked"))
                .collect()
        });
        for (all, t) in took.iter_mut().zip(round) {
            all.push(t);
        }
    }
    println!(
        "{runs} runs of each hostile driver in {:.0} s, 0 processes left; first cell's duration \
         (liveness guard {GUARD:?}):",
        started.elapsed().as_secs_f64()
    );
    for (h, mut t) in ALL.iter().zip(took) {
        t.sort();
        println!(
            "  {:<15} min {:>5} ms  median {:>5} ms  max {:>5} ms",
            h.script,
            t[0].as_millis(),
            t[t.len() / 2].as_millis(),
            t[t.len() - 1].as_millis()
        );
    }
}
