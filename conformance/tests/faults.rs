//! Driver faults, end to end: each deliberately broken driver in `fixtures/drivers/broken/`
//! runs a real case through `run_matrix`, and the test checks the status, the fault, that the
//! reason is one clear line, and that no process of the driver is left behind.
//!
//! Every test tags its drivers with a unique environment variable (inherited by every child
//! and grandchild), so "nothing left behind" means: no live process in `/proc` carries it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use conformance::driver::{DriverCommand, DriverFault, group_members};
use conformance::expectations::ExpectationFile;
use conformance::implementations::{Implementation, find_python};
use conformance::protocol::PROTOCOL_VERSION;
use conformance::runner::{CaseResult, MatrixRun, RunOptions, run_matrix};
use conformance::spec::{LoadedCase, load_dir};
use conformance::verdict::{Status, Verdict};
use conformance::workspace_root;

const MARKER_VAR: &str = "POOLSPEC_TEST_MARKER";
/// Scales the cases' 20 s liveness guard down to 2 s.
const MULTIPLIER: f64 = 0.1;
/// How long killed processes may take to disappear from `/proc`.
const REAP_DEADLINE: Duration = Duration::from_secs(10);

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

fn python() -> String {
    find_python()
        .expect("a Python interpreter (set POOLSPEC_PYTHON)")
        .display()
        .to_string()
}

/// An implementation running `script` (relative to the workspace root), tagged with `marker`.
fn implementation(
    name: &str,
    script: &str,
    args: &[&str],
    marker: &str,
    env: &[(&str, &Path)],
) -> Implementation {
    let mut command = DriverCommand {
        program: python(),
        args: vec![
            "-u".into(),
            workspace_root().join(script).display().to_string(),
        ],
        env: vec![
            ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
            (MARKER_VAR.into(), marker.into()),
        ],
    };
    command.args.extend(args.iter().map(|a| (*a).to_owned()));
    command.env.extend(
        env.iter()
            .map(|(k, v)| ((*k).to_owned(), v.display().to_string())),
    );
    Implementation {
        name: name.to_owned(),
        command,
    }
}

fn broken(name: &str, marker: &str, env: &[(&str, &Path)]) -> Implementation {
    implementation(
        name,
        &format!("fixtures/drivers/broken/{name}.py"),
        &[],
        marker,
        env,
    )
}

fn no_expectations(imp: &Implementation) -> ExpectationFile {
    ExpectationFile {
        implementation: imp.name.clone(),
        cases: BTreeMap::new(),
    }
}

fn run(
    cases: &[LoadedCase],
    imp: &Implementation,
    progress: &(dyn Fn(&CaseResult) + Sync),
) -> MatrixRun {
    let options = RunOptions {
        timeout_multiplier: MULTIPLIER,
        jobs: 1,
        repeat: 1,
        history_dir: None,
        cells: None,
        costs: None,
    };
    run_matrix(
        cases,
        &[(imp.clone(), no_expectations(imp))],
        &options,
        progress,
    )
}

/// Runs BLK-001 alone on `imp` and returns its result.
fn run_blk_001(imp: &Implementation) -> CaseResult {
    let run = run(&cases(&["BLK-001"]), imp, &|_| {});
    assert_eq!(run.results.len(), 1, "{:#?}", run.results);
    run.results[0].clone()
}

/// The reason of a non-pass result: present, one line, short enough to read in a table.
fn one_line_reason(result: &CaseResult) -> &str {
    let reason = result
        .reason
        .as_deref()
        .unwrap_or_else(|| panic!("no reason: {result:#?}"));
    assert!(!reason.trim().is_empty(), "empty reason: {result:#?}");
    assert!(!reason.contains('\n'), "reason spans lines: {reason:?}");
    assert!(reason.len() <= 300, "reason too long: {reason:?}");
    reason
}

/// The fields of `/proc/<pid>/stat` after the command name (state, ppid, pgrp, ...), or
/// `None` when the process is gone.
fn proc_stat(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// The state letter of process `pid` (`Z` for a zombie), or `None` when it is gone.
fn proc_state(pid: i32) -> Option<char> {
    proc_stat(pid)?.first()?.chars().next()
}

/// The process group of process `pid`.
fn proc_group(pid: i32) -> Option<i32> {
    proc_stat(pid)?.get(2)?.parse().ok()
}

/// Whether process `pid` was started with `MARKER_VAR=marker`; `None` if unreadable.
fn carries_marker(pid: i32, marker: &str) -> Option<bool> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let wanted = format!("{MARKER_VAR}={marker}");
    Some(environ.split(|b| *b == 0).any(|e| e == wanted.as_bytes()))
}

/// Live (non-zombie) processes carrying `marker`, with their command lines.
fn marked_processes(marker: &str) -> Vec<(i32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if carries_marker(pid, marker) == Some(true) && proc_state(pid).is_some_and(|s| s != 'Z') {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            found.push((pid, cmdline));
        }
    }
    found
}

/// Polls until `check` returns an empty list, failing with the last list after the deadline.
fn eventually_none<T: std::fmt::Debug>(what: &str, check: impl Fn() -> Vec<T>) {
    let deadline = Instant::now() + REAP_DEADLINE;
    loop {
        let left = check();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} still alive {REAP_DEADLINE:?} after the run: {left:?}"
        );
        // Polling interval of a bounded wait on a condition; no verdict rests on it.
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_nothing_left(marker: &str) {
    eventually_none("processes of the driver", || marked_processes(marker));
}

#[test]
fn a_hanging_driver_times_out_and_its_whole_group_dies() {
    let marker = unique_marker("hang");
    let dir = tempfile::tempdir().expect("temp dir");
    let pidfile = dir.path().join("pids");
    let imp = broken("hang", &marker, &[("POOLSPEC_TEST_PIDFILE", &pidfile)]);

    let result = run_blk_001(&imp);

    assert_eq!(result.status, Status::Timeout, "{result:#?}");
    assert_eq!(result.verdict, Verdict::Unexpected);
    match &result.fault {
        // The guard is 2 s from sending `run`; the wait itself starts a moment later.
        Some(DriverFault::Timeout { after_ms, .. }) => {
            assert!((1000..=2000).contains(after_ms), "guard of {after_ms} ms")
        }
        other => panic!("expected a timeout fault, got {other:?}"),
    }
    let reason = one_line_reason(&result);
    assert!(reason.contains("liveness guard (2.0 s)"), "{reason}");
    assert!(reason.contains("process group killed"), "{reason}");

    // The driver, its subprocess grandchild and its multiprocessing child all die.
    let text = std::fs::read_to_string(&pidfile).expect("hang.py wrote its pid file");
    let pids: Vec<i32> = text
        .split_whitespace()
        .map(|p| p.parse().expect("a pid"))
        .collect();
    assert_eq!(pids.len(), 3, "{text:?}");
    eventually_none("hang.py's processes", || {
        pids.iter()
            .copied()
            .filter(|&pid| match proc_state(pid) {
                None | Some('Z') => false,
                // Alive, unless the pid was reused by a stranger.
                Some(_) => carries_marker(pid, &marker) != Some(false),
            })
            .collect()
    });
    assert_nothing_left(&marker);
}

#[test]
fn a_driver_killed_by_a_signal_is_a_crash() {
    let marker = unique_marker("crash");
    let result = run_blk_001(&broken("crash", &marker, &[]));

    assert_eq!(result.status, Status::Crash, "{result:#?}");
    match &result.fault {
        Some(DriverFault::Crashed { status, .. }) => {
            assert!(status.contains("SIGSEGV"), "{status}")
        }
        other => panic!("expected a crash fault, got {other:?}"),
    }
    let reason = one_line_reason(&result);
    assert!(
        reason.starts_with("driver crashed (signal: 11 (SIGSEGV)"),
        "{reason}"
    );
    assert_nothing_left(&marker);
}

#[test]
fn a_driver_printing_garbage_is_a_crash() {
    let marker = unique_marker("garbage");
    let result = run_blk_001(&broken("garbage", &marker, &[]));

    assert_eq!(result.status, Status::Crash, "{result:#?}");
    assert_eq!(
        result.fault,
        Some(DriverFault::Garbage {
            line: "this is not a protocol message".into()
        })
    );
    let reason = one_line_reason(&result);
    assert_eq!(
        reason,
        r#"driver printed a non-protocol line: "this is not a protocol message""#
    );
    assert_nothing_left(&marker);
}

#[test]
fn a_driver_exiting_before_it_answers_is_a_crash() {
    let marker = unique_marker("exit-early");
    let result = run_blk_001(&broken("exit_early", &marker, &[]));

    assert_eq!(result.status, Status::Crash, "{result:#?}");
    assert!(
        matches!(result.fault, Some(DriverFault::ExitedEarly { .. })),
        "{:?}",
        result.fault
    );
    let reason = one_line_reason(&result);
    assert!(
        reason.starts_with("driver exited (status 0) before answering"),
        "{reason}"
    );
    assert_nothing_left(&marker);
}

#[test]
fn a_driver_speaking_another_protocol_is_refused() {
    let marker = unique_marker("wrong-protocol");
    let result = run_blk_001(&broken("wrong_protocol", &marker, &[]));

    assert_eq!(result.status, Status::Error, "{result:#?}");
    assert!(
        matches!(result.fault, Some(DriverFault::Handshake { .. })),
        "{:?}",
        result.fault
    );
    let reason = one_line_reason(&result);
    assert_eq!(
        reason,
        format!(
            "driver did not start: handshake failed: driver speaks protocol 99, \
             this runner speaks {PROTOCOL_VERSION}"
        )
    );
    assert_nothing_left(&marker);
}

#[test]
fn a_driver_that_never_answers_hello_times_out() {
    let marker = unique_marker("silent");
    let result = run_blk_001(&broken("silent", &marker, &[]));

    assert_eq!(result.status, Status::Timeout, "{result:#?}");
    assert!(
        matches!(result.fault, Some(DriverFault::Timeout { .. })),
        "{:?}",
        result.fault
    );
    let reason = one_line_reason(&result);
    assert!(
        reason.starts_with("driver did not start: no answer within the liveness guard (2.0 s)"),
        "{reason}"
    );
    assert_nothing_left(&marker);
}

#[test]
fn the_run_goes_on_after_a_fault() {
    // hang_once.py hangs on its first case, then is restarted as the real driver.
    let marker = unique_marker("hang-once");
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("hung");
    let imp = implementation(
        "hang-once",
        "fixtures/drivers/broken/hang_once.py",
        &["--start-method", "fork", "--pool-class", "Pool"],
        &marker,
        &[("POOLSPEC_TEST_STATE", &state)],
    );
    let seen = Mutex::new(Vec::new());
    let run = run(&cases(&["BLK-001", "BLK-002"]), &imp, &|r| {
        seen.lock().expect("lock").push(r.case.clone());
    });

    assert!(state.exists(), "hang_once.py never ran");
    assert_eq!(*seen.lock().expect("lock"), ["BLK-001", "BLK-002"]);
    let statuses: Vec<(&str, Status)> = run
        .results
        .iter()
        .map(|r| (r.case.as_str(), r.status))
        .collect();
    assert_eq!(
        statuses,
        [("BLK-001", Status::Timeout), ("BLK-002", Status::Pass)],
        "{:#?}",
        run.results
    );
    one_line_reason(&run.results[0]);
    assert_eq!(run.results[1].reason, None);
    // The restarted driver's handshake is the one reported.
    let info = run.implementations[0]
        .info
        .as_ref()
        .expect("handshake info");
    assert_eq!(info.name, "cpython");
    assert_nothing_left(&marker);
}

#[test]
fn the_real_driver_passes_and_leaves_nothing_behind() {
    let marker = unique_marker("cpython");
    let imp = implementation(
        "cpython-fork",
        "fixtures/drivers/cpython_driver.py",
        &["--start-method", "fork", "--pool-class", "Pool"],
        &marker,
        &[],
    );
    // While the warm driver is still up (progress runs before the session stops), note its
    // processes and which of them leads a process group: the driver. This also shows that the
    // marker scan does find processes.
    let during = Mutex::new(Vec::new());
    let run = run(&cases(&["BLK-001"]), &imp, &|_| {
        *during.lock().expect("lock") = marked_processes(&marker)
            .into_iter()
            .map(|(pid, cmdline)| (pid, cmdline, proc_group(pid) == Some(pid)))
            .collect();
    });

    let result = &run.results[0];
    assert_eq!(
        (result.status, result.verdict),
        (Status::Pass, Verdict::Pass),
        "{result:#?}"
    );
    let during = during.into_inner().expect("lock");
    let leaders: Vec<i32> = during
        .iter()
        .filter(|(_, cmdline, leader)| {
            *leader
                && cmdline.contains("cpython_driver.py")
                && !cmdline.contains("poolspec-supervisor")
        })
        .map(|(pid, _, _)| *pid)
        .collect();
    assert_eq!(
        leaders.len(),
        1,
        "the driver was not found in /proc: {during:?}"
    );
    eventually_none("the driver's process group", || {
        group_members(leaders[0]).expect("reading /proc")
    });
    assert_nothing_left(&marker);
}

#[test]
fn a_broken_handshake_is_reported_once_and_not_retried() {
    let marker = unique_marker("handshake-once");
    let dir = tempfile::tempdir().expect("temp dir");
    let starts = dir.path().join("starts");
    // Through a shell that notes every start of the driver before it becomes the driver.
    let mut imp = broken("wrong_protocol", &marker, &[]);
    let note = format!("echo start >> '{}'; exec \"$0\" \"$@\"", starts.display());
    let mut args = vec!["-c".to_owned(), note, imp.command.program.clone()];
    args.append(&mut imp.command.args);
    imp.command.program = "sh".into();
    imp.command.args = args;
    let ids = [
        "BLK-001", "BLK-002", "BLK-003", "BLK-004", "BLK-005", "BLK-006",
    ];
    let options = RunOptions {
        timeout_multiplier: MULTIPLIER,
        jobs: 4,
        repeat: 1,
        history_dir: None,
        cells: None,
        costs: None,
    };
    let run = run_matrix(
        &cases(&ids),
        &[(imp.clone(), no_expectations(&imp))],
        &options,
        &|_| {},
    );

    let text = std::fs::read_to_string(&starts).expect("the driver started");
    assert_eq!(text.lines().count(), 1, "started more than once: {text:?}");
    assert_eq!(run.results.len(), ids.len(), "{:#?}", run.results);
    let (full, short): (Vec<&CaseResult>, Vec<&CaseResult>) = run
        .results
        .iter()
        .partition(|r| one_line_reason(r).starts_with("driver did not start: "));
    assert_eq!(full.len(), 1, "{:#?}", run.results);
    assert!(
        one_line_reason(full[0]).contains("driver speaks protocol 99"),
        "{:?}",
        full[0].reason
    );
    let first = &full[0].case;
    for r in &short {
        assert_eq!(r.status, Status::Error, "{r:#?}");
        assert!(matches!(r.fault, Some(DriverFault::Handshake { .. })));
        assert_eq!(
            one_line_reason(r),
            format!(
                "driver did not start (handshake failed; reported once, on {first}); not \
                 started again"
            )
        );
    }
    assert_nothing_left(&marker);
}
