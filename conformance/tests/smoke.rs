//! The smoke check (`cargo xtask conformance smoke`), end to end: the real CPython driver
//! passes it, and each deliberately broken driver gets its own, specific explanation.
//!
//! Besides the broken drivers of `fixtures/drivers/broken/`, a small fake driver written by
//! this test (`FAKE`) makes the mistakes that need a driver which otherwise works: a
//! malformed hello, a banner on stdout, too few capabilities, a `done` with the wrong seq,
//! steps or tasks that are not reported, wrong values.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use conformance::driver::DriverCommand;
use conformance::implementations::{Implementation, find_python};
use conformance::smoke::{Entry, Finding, Mistake, SmokeOptions, SmokeReport, smoke, smoke_cases};
use conformance::spec::{LoadedCase, load_dir};
use conformance::workspace_root;

const MARKER_VAR: &str = "POOLSPEC_TEST_MARKER";
/// Scales the 20 s liveness guards down to 2 s for the broken drivers.
const FAST: f64 = 0.1;

fn cases() -> Vec<LoadedCase> {
    let suite = load_dir(&workspace_root().join("spec"));
    smoke_cases(&suite.cases).expect("the smoke cases are in spec/")
}

fn python() -> String {
    find_python()
        .expect("a Python interpreter (set POOLSPEC_PYTHON)")
        .display()
        .to_string()
}

fn unique_marker(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "smoke-{test}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A Python driver: `script` with `args`, tagged with a marker environment variable.
fn python_driver(
    name: &str,
    script: &Path,
    args: &[&str],
    env: &[(&str, String)],
) -> Implementation {
    let mut command = DriverCommand {
        program: python(),
        args: vec!["-u".into(), script.display().to_string()],
        env: vec![("PYTHONDONTWRITEBYTECODE".into(), "1".into())],
    };
    command.args.extend(args.iter().map(|a| (*a).to_owned()));
    command
        .env
        .extend(env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    Implementation {
        name: name.to_owned(),
        command,
    }
}

fn broken(name: &str, env: &[(&str, String)]) -> Implementation {
    let script = workspace_root().join(format!("fixtures/drivers/broken/{name}.py"));
    python_driver(name, &script, &[], env)
}

fn run(imp: &Implementation, multiplier: f64) -> SmokeReport {
    let report = smoke(
        imp,
        &cases(),
        &SmokeOptions {
            timeout_multiplier: multiplier,
        },
    );
    // Every report renders, and says how it ended.
    let text = report.render();
    assert!(text.contains("result: "), "{text}");
    report
}

/// The first problem, which must be of kind `mistake`; the report must not pass.
fn first_problem(report: &SmokeReport, mistake: Mistake) -> Finding {
    assert!(!report.passed(), "{}", report.render());
    let first = report
        .problems()
        .next()
        .cloned()
        .unwrap_or_else(|| panic!("no problem:\n{}", report.render()));
    assert_eq!(first.mistake, mistake, "{}", report.render());
    first
}

/// Live processes whose environment carries `marker`.
fn marked_processes(marker: &str) -> Vec<i32> {
    let wanted = format!("{MARKER_VAR}={marker}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, r)| r.trim_start().starts_with('Z'))
                })
                .unwrap_or(true);
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            !zombie && env.split(|b| *b == 0).any(|e| e == wanted.as_bytes())
        })
        .collect()
}

fn assert_nothing_left(marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = marked_processes(marker);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "processes left behind: {left:?}");
        // Polling interval of a bounded wait on a condition; no verdict rests on it.
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_real_cpython_driver_passes() {
    let marker = unique_marker("cpython");
    let imp = python_driver(
        "cpython-fork",
        &workspace_root().join("fixtures/drivers/cpython_driver.py"),
        &["--start-method", "fork", "--pool-class", "Pool"],
        &[(MARKER_VAR, marker.clone())],
    );
    let report = run(&imp, 1.0);
    assert!(report.passed(), "{}", report.render());
    let passed: Vec<&str> = report
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::Ok { check, .. } => Some(check.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        passed,
        [
            "handshake",
            "capabilities",
            "BLK-001",
            "BLK-002",
            "ORD-009",
            "ERR-001",
            "ITR-001"
        ]
    );
    assert_eq!(
        report.info.as_ref().map(|i| i.name.as_str()),
        Some("cpython")
    );
    assert!(report.render().contains("result: every check passed"));
    assert_nothing_left(&marker);
}

#[test]
fn a_program_that_does_not_exist_cannot_start() {
    let imp = Implementation {
        name: "exec:./no-such-driver".into(),
        command: DriverCommand {
            program: "./no-such-driver".into(),
            args: Vec::new(),
            env: Vec::new(),
        },
    };
    let report = run(&imp, FAST);
    let f = first_problem(&report, Mistake::CannotStart);
    assert!(
        f.explanation.contains("could not be started"),
        "{}",
        f.explanation
    );
    assert!(f.explanation.contains("chmod +x"), "{}", f.explanation);
    assert_eq!(report.problems().count(), 1);
    assert!(
        report
            .entries
            .iter()
            .filter(|e| matches!(e, Entry::Skipped { .. }))
            .count()
            == 5
    );
}

#[test]
fn hang_gets_no_done() {
    let marker = unique_marker("hang");
    let dir = tempfile::tempdir().expect("temp dir");
    let pidfile = dir.path().join("pids").display().to_string();
    let imp = broken(
        "hang",
        &[
            ("POOLSPEC_TEST_PIDFILE", pidfile),
            (MARKER_VAR, marker.clone()),
        ],
    );
    let report = run(&imp, FAST);
    let f = first_problem(&report, Mistake::NoDone);
    assert_eq!(f.case.as_deref(), Some("BLK-001"));
    assert!(
        f.explanation
            .contains("no `done` (nor `error`) came within 2.0 s"),
        "{}",
        f.explanation
    );
    assert!(
        f.explanation.contains("Nothing reached the coordinator"),
        "{}",
        f.explanation
    );
    // The smoke check stops at a fault: the other cases are not run.
    assert_eq!(report.problems().count(), 1, "{}", report.render());
    assert_nothing_left(&marker);
}

#[test]
fn crash_dies_while_running() {
    let report = run(&broken("crash", &[]), FAST);
    let f = first_problem(&report, Mistake::Crashed);
    assert!(
        f.explanation.contains("died while running the case"),
        "{}",
        f.explanation
    );
    assert!(f.explanation.contains("SIGSEGV"), "{}", f.explanation);
    assert!(
        f.details
            .iter()
            .any(|d| d.contains("crash.py: about to die by SIGSEGV")),
        "{:?}",
        f.details
    );
}

#[test]
fn garbage_is_stdout_garbage() {
    let report = run(&broken("garbage", &[]), FAST);
    let f = first_problem(&report, Mistake::StdoutGarbage);
    assert_eq!(f.case.as_deref(), Some("BLK-001"));
    assert!(
        f.explanation
            .contains(r#"not JSON while running the case: "this is not a protocol message""#),
        "{}",
        f.explanation
    );
    assert!(
        f.explanation
            .contains("send logs, prints and warnings to stderr")
    );
}

#[test]
fn exit_early_exits_without_answering() {
    let report = run(&broken("exit_early", &[]), FAST);
    let f = first_problem(&report, Mistake::ExitedEarly);
    assert!(
        f.explanation
            .contains("exited (status 0) while running the case"),
        "{}",
        f.explanation
    );
    assert!(
        f.details
            .iter()
            .any(|d| d.contains("exit_early.py: leaving without an answer")),
        "{:?}",
        f.details
    );
}

#[test]
fn wrong_protocol_is_a_version_mismatch() {
    let report = run(&broken("wrong_protocol", &[]), FAST);
    let f = first_problem(&report, Mistake::ProtocolMismatch);
    assert!(
        f.explanation
            .contains("answered hello with \"protocol\": 99, and this runner speaks protocol 2"),
        "{}",
        f.explanation
    );
    assert_eq!(f.case, None);
}

#[test]
fn silent_never_says_hello() {
    let report = run(&broken("silent", &[]), FAST);
    let f = first_problem(&report, Mistake::NoHello);
    assert!(
        f.explanation
            .contains("did not answer the runner's hello within 2.0 s"),
        "{}",
        f.explanation
    );
    assert!(
        f.explanation.contains("flushes stdout"),
        "{}",
        f.explanation
    );
}

#[test]
fn no_reports_never_reaches_the_coordinator() {
    let report = run(&broken("no_reports", &[]), FAST);
    let f = first_problem(&report, Mistake::NoReports);
    assert!(
        f.explanation.contains(
            "your driver did not report to the coordinator socket given in the run message"
        ),
        "{}",
        f.explanation
    );
    // The driver stays usable, so every case is run and explained.
    let cases: Vec<&str> = report
        .problems()
        .map(|f| {
            assert_eq!(f.mistake, Mistake::NoReports);
            f.case.as_deref().unwrap_or("")
        })
        .collect();
    assert_eq!(
        cases,
        ["BLK-001", "BLK-002", "ORD-009", "ERR-001", "ITR-001"]
    );
}

/// A fake driver that speaks the protocol well enough, except for the mistake its first
/// argument names.
const FAKE: &str = r#"
import json, os, socket, sys
sys.path.insert(0, os.environ["BROKEN_DIR"])
from broken_common import CAPABILITIES, hello, messages, send

mode = sys.argv[1]
if mode == "banner":
    print("fake-pool driver 0.1 starting", flush=True)
if mode == "hello_line":
    next(messages())
    sys.stdout.write(sys.argv[2] + "\n")
    sys.stdout.flush()
elif mode == "few_caps":
    next(messages())
    send({"type": "hello", "protocol": 2,
          "implementation": {"name": "fake", "version": "0", "language": "python"},
          "capabilities": ["apply"]})
elif mode == "misspelt_caps":
    next(messages())
    send({"type": "hello", "protocol": 2,
          "implementation": {"name": "fake", "version": "0", "language": "python"},
          "capabilities": CAPABILITIES + ["imap_unorderd", "ext:soft_timeout"]})
else:
    hello()


class Coord:
    def __init__(self, path, token):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.file = self.sock.makefile("rwb")
        self.token = token

    def report(self, event, **fields):
        msg = dict(token=self.token, pid=os.getpid(), thread="main", event=event, **fields)
        self.file.write((json.dumps(msg) + "\n").encode())
        self.file.flush()
        return json.loads(self.file.readline())


for m in messages():
    if m["type"] == "stop":
        break
    if m["type"] != "run":
        continue
    c = Coord(m["coordinator"], m["token"])
    for step in m["program"]["steps"]:
        (op, body), = step.items()
        c.report("call", step=body["id"], op=op)
        if mode == "no_return":
            continue
        tasks = [body["task"]] if "task" in body else body.get("tasks", [])
        for t in tasks:
            c.report("start", task=t["id"])
            if mode != "no_task_end":
                c.report("end", task=t["id"], outcome={"returned": None})
        c.report("return", step=body["id"], outcome={"returned": None})
    c.sock.close()
    send({"type": "done", "seq": m["seq"] + (100 if mode == "wrong_seq" else 0)})
"#;

fn fake(dir: &Path, args: &[&str]) -> Implementation {
    let script = dir.join("fake_driver.py");
    std::fs::write(&script, FAKE).expect("writing the fake driver");
    let broken_dir = workspace_root()
        .join("fixtures/drivers/broken")
        .display()
        .to_string();
    python_driver(
        &format!("fake-{}", args[0]),
        &script,
        args,
        &[("BROKEN_DIR", broken_dir)],
    )
}

#[test]
fn a_hello_without_implementation_is_malformed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let line = r#"{"type":"hello","protocol":1,"capabilities":["apply"]}"#;
    let report = run(&fake(dir.path(), &["hello_line", line]), FAST);
    let f = first_problem(&report, Mistake::MalformedHello);
    assert!(
        f.explanation
            .contains("the hello lacks the required field `implementation`"),
        "{}",
        f.explanation
    );
}

#[test]
fn a_hello_with_an_unknown_field_is_malformed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let line = r#"{"type":"hello","protocol":1,"capabilites":[],"implementation":{"name":"x","version":"1","language":"python","os":"linux"}}"#;
    let report = run(&fake(dir.path(), &["hello_line", line]), FAST);
    let f = first_problem(&report, Mistake::MalformedHello);
    assert!(
        f.explanation.contains(
            "the hello has the unknown field `capabilites` (did you mean `capabilities`?)"
        ),
        "{}",
        f.explanation
    );
    assert!(
        f.explanation
            .contains("`implementation` has the unknown field `os`"),
        "{}",
        f.explanation
    );
}

#[test]
fn a_banner_before_hello_is_stdout_garbage() {
    let dir = tempfile::tempdir().expect("temp dir");
    let report = run(&fake(dir.path(), &["banner"]), FAST);
    let f = first_problem(&report, Mistake::StdoutGarbage);
    assert_eq!(f.case, None);
    assert!(
        f.explanation.contains(
            r#"not JSON in answer to the runner's hello: "fake-pool driver 0.1 starting""#
        ),
        "{}",
        f.explanation
    );
}

#[test]
fn too_few_capabilities_are_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let report = run(&fake(dir.path(), &["few_caps"]), FAST);
    let f = first_problem(&report, Mistake::MissingCapabilities);
    assert!(f.explanation.contains("`apply_async`"), "{}", f.explanation);
    assert!(!f.explanation.contains("`apply`,"), "{}", f.explanation);
    // The cases that need only `apply` still run (and fail: the fake returns null).
    let skipped = report
        .entries
        .iter()
        .filter(|e| matches!(e, Entry::Skipped { .. }))
        .count();
    assert_eq!(skipped, 3, "{}", report.render());
}

#[test]
fn a_misspelt_capability_gets_the_closest_known_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let report = run(&fake(dir.path(), &["misspelt_caps"]), FAST);
    let f = first_problem(&report, Mistake::UnknownCapability);
    assert_eq!(
        f.details,
        ["`imap_unorderd`: did you mean `imap_unordered`?"],
        "{}",
        report.render()
    );
    // An extension's capability is known; only the misspelling is a problem.
    assert_eq!(
        report
            .problems()
            .filter(|p| p.mistake == Mistake::UnknownCapability)
            .count(),
        1
    );
}

#[test]
fn a_done_with_the_wrong_seq_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let report = run(&fake(dir.path(), &["wrong_seq"]), FAST);
    let f = first_problem(&report, Mistake::WrongSeq);
    assert!(
        f.explanation
            .contains("answered `done` with seq 101, but the `run` it answers had seq 1"),
        "{}",
        f.explanation
    );
}

#[test]
fn missing_returns_are_listed_per_step() {
    let dir = tempfile::tempdir().expect("temp dir");
    let report = run(&fake(dir.path(), &["no_return"]), FAST);
    let f = first_problem(&report, Mistake::StepNotReported);
    assert_eq!(f.case.as_deref(), Some("BLK-001"));
    assert_eq!(
        f.details,
        ["step `s1` (apply): `call` came but no `return`"]
    );
    // The task was not reported either.
    let tasks = report
        .find(Mistake::TaskNotReported)
        .expect("a task problem too");
    assert!(tasks.details[0].starts_with("task `t`: neither `start` nor `end` came"));
}

#[test]
fn a_task_without_end_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let report = run(&fake(dir.path(), &["no_task_end"]), FAST);
    let f = first_problem(&report, Mistake::TaskNotReported);
    assert_eq!(f.details, ["task `t`: `start` came but no `end`"]);
}

#[test]
fn a_failed_case_shows_its_reason_and_a_diff() {
    let dir = tempfile::tempdir().expect("temp dir");
    let report = run(&fake(dir.path(), &["wrong_values"]), FAST);
    let f = first_problem(&report, Mistake::CaseFailed);
    assert_eq!(f.case.as_deref(), Some("BLK-001"));
    assert!(
        f.explanation
            .contains("expect.steps.s1.returned: expected 7, observed null"),
        "{}",
        f.explanation
    );
    let diff = &f.details[0];
    assert!(
        diff.contains("-    returned: 7\n+    returned: null"),
        "{diff}"
    );
}
