//! Ctrl-C (and SIGTERM) during `cargo xtask conformance`, end to end: a real run of two cases on a Pool
//! whose second pool never finishes starting, interrupted with SIGINT once the first cell
//! has finished. The runner must stop at once (the liveness guard is 200 s, so only the
//! interruption can end the second cell), exit 130, leave no process behind, and leave a
//! report that says it was interrupted after 1 of 2 cells, in place of the earlier run's.
//!
//! Nothing here waits on a clock to decide: the signal is sent when the runner's `--verbose`
//! line for the first finished cell arrives. Timeouts are liveness guards only.
//!
//! Every process of the run carries a unique environment variable (the runner passes its
//! environment to drivers, and they to their workers), so "nothing left behind" means no live
//! process in `/proc` carries it.

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const MARKER_VAR: &str = "POOLSPEC_TEST_MARKER";
/// Liveness guard of the whole run (a loaded 2-core machine starts Python slowly).
const GUARD: Duration = Duration::from_secs(180);
/// How long killed processes may take to disappear from `/proc`.
const REAP_DEADLINE: Duration = Duration::from_secs(20);

/// A Pool factory: CPython's fork Pool, except that the third pool it makes (the driver
/// probes the factory once at start-up, then one pool per cell) starts its workers and then
/// blocks for ever, so the second cell can only end by being killed.
const HANG_SECOND: &str = r#"
import multiprocessing
import threading

_made = 0

def Pool(*args, **kwargs):
    global _made
    _made += 1
    pool = multiprocessing.get_context("fork").Pool(*args, **kwargs)
    if _made >= 3:
        threading.Event().wait()
    return pool
"#;

/// An earlier run's complete report, which must not survive the new run.
const OLD_FOOTER: &str = r#"{"type":"footer","complete":true,"wall_ms":1,"counts":{"cells":560,"unexpected":0,"per_implementation":{},"compliance":{}}}"#;

fn unique_marker(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("interrupt-{test}-{}-{nanos}", std::process::id())
}

/// Live (non-zombie) processes started with `MARKER_VAR=marker`.
fn marked_processes(marker: &str) -> Vec<i32> {
    let wanted = format!("{MARKER_VAR}={marker}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
                return false;
            };
            let marked = environ.split(|&b| b == 0).any(|v| v == wanted.as_bytes());
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let after = s.rfind(')')?;
                    s[after + 1..].split_whitespace().next().map(str::to_owned)
                });
            marked && state.is_some_and(|s| s != "Z")
        })
        .collect()
}

/// Kills what a failed test left (by the test's own marker, never by name), then panics.
fn fail(marker: &str, message: String) -> ! {
    for pid in marked_processes(marker) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    panic!("{message}");
}

fn old_report(out: &Path) {
    std::fs::create_dir_all(out.join("histories/old-impl")).unwrap();
    std::fs::write(out.join("histories/old-impl/OLD-001.json"), "{}").unwrap();
    std::fs::write(
        out.join("report.jsonl"),
        format!("{{\"type\":\"header\"}}\n{OLD_FOOTER}\n"),
    )
    .unwrap();
    for name in ["summary.md", "junit.xml", "report.html"] {
        std::fs::write(out.join(name), "an earlier run: 560 cells, all green").unwrap();
    }
}

#[test]
fn ctrl_c_stops_the_run_kills_its_drivers_and_reports_it_interrupted() {
    interrupt_a_run(Signal::SIGINT);
}

#[test]
fn sigterm_does_the_same_and_the_report_names_it() {
    interrupt_a_run(Signal::SIGTERM);
}

/// Runs two cells, sends `signal` once the first has finished, and checks everything the
/// run left: exit status, processes, terminal, report files.
fn interrupt_a_run(signal: Signal) {
    let name = signal.as_str();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hang_second.py"), HANG_SECOND).unwrap();
    let out = dir.path().join("out");
    old_report(&out);
    let marker = unique_marker(name);

    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "conformance",
            "--impl",
            "python:hang_second:Pool",
            "--case",
            "BLK-001",
            "--case",
            "ORD-001",
            "--jobs",
            "1",
            "--timeout-multiplier",
            "10",
            "--no-progress",
            "--verbose",
            "--out",
        ])
        .arg(&out)
        .env("PYTHONPATH", dir.path())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env(MARKER_VAR, &marker)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = Pid::from_raw(child.id() as i32);

    // Both pipes are read to the end on threads of their own, so the runner never blocks
    // on a full pipe; stderr's lines come here as they are printed.
    let mut stdout = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });

    // Wait for the first finished cell.
    let deadline = Instant::now() + GUARD;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let finished = line.starts_with("poolspec: finished ");
                seen.push(line);
                if finished {
                    break;
                }
            }
            Err(_) => fail(
                &marker,
                format!("no cell finished within {GUARD:?}; stderr so far: {seen:#?}"),
            ),
        }
    }
    // The earlier run's report was removed when this run started, not when it ends.
    assert!(
        !out.join("report.jsonl").exists(),
        "an earlier report is still there"
    );
    assert!(!out.join("histories/old-impl").exists());
    // The warm driver is alive (it carries the marker, so the check below can fail).
    assert!(
        marked_processes(&marker).iter().any(|&p| p != pid.as_raw()),
        "no driver carries the marker"
    );

    kill(pid, signal).unwrap();

    let (status_tx, status) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = status_tx.send(child.wait());
    });
    let status = match status.recv_timeout(GUARD) {
        Ok(status) => status.unwrap(),
        Err(_) => {
            let _ = kill(pid, Signal::SIGKILL);
            fail(
                &marker,
                format!("the runner did not stop on {name}; stderr: {seen:#?}"),
            );
        }
    };
    seen.extend(lines.iter());
    let stdout = stdout.join().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "{status:?}\nstderr: {seen:#?}\nstdout: {stdout}"
    );

    // No process of the run is left: the hanging driver and its pool's workers were killed.
    let reaped_by = Instant::now() + REAP_DEADLINE;
    while !marked_processes(&marker).is_empty() && Instant::now() < reaped_by {
        // Polling interval of a bounded wait on a condition; no verdict rests on it.
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = marked_processes(&marker);
    if !left.is_empty() {
        fail(&marker, format!("processes left behind: {left:?}"));
    }

    // The terminal said so.
    let said = format!("interrupted ({name}) after 1 of 2 cells");
    assert!(stdout.contains(&format!("conformance: {said}")), "{stdout}");
    assert!(seen.iter().any(|l| l.contains(&said)), "{seen:#?}");

    // The report on disk is this run's, and says it was interrupted.
    let jsonl = std::fs::read_to_string(out.join("report.jsonl")).unwrap();
    let report = conformance::report::read(&jsonl).unwrap();
    assert!(!report.is_complete());
    let why = report.footer.interrupted.clone().unwrap();
    assert_eq!(why.signal, name);
    assert!(why.finished < why.planned, "{why:?}");
    assert_eq!((why.finished, why.planned), (1, 2));
    assert_eq!(report.records.len(), 1);
    assert_eq!(report.records[0].result.case, "BLK-001");
    assert_eq!(report.records[0].result.status.as_str(), "pass");
    for file in ["summary.md", "report.html"] {
        let text = std::fs::read_to_string(out.join(file)).unwrap();
        assert!(
            text.contains(&format!("Interrupted ({name}) after 1 of 2 cells")),
            "{file}: {text}"
        );
    }
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("<error type=\"interrupted\""), "{junit}");
    // Only the finished cell's history is kept; no temporary file is left.
    let histories: Vec<_> = walk(&out.join("histories"));
    assert_eq!(histories.len(), 1, "{histories:?}");
    assert!(histories[0].ends_with("BLK-001.json"), "{histories:?}");
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
