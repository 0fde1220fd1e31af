//! Characterization of every report view on one fixed, synthetic run: the Markdown summary,
//! JUnit XML, JSON lines, the terminal matrix, `details`, the HTML page and the small
//! summaries xtask prints (counts, compliance, differences).
//!
//! The run is built here, deterministically (fixed wall time and durations), and covers every
//! kind of cell, an implementation that did not start, the oracle with others observing
//! differently, quirk and contract cases, and text that needs escaping. The snapshots were
//! recorded with the code before the report module was redesigned; they pin its output byte
//! for byte (each text ends with an `<<EOF>>` marker, so insta's trimming of trailing
//! whitespace cannot hide a changed ending). Histories live in a temporary folder whose path
//! is replaced by `[HISTORIES]`.

// The helpers that build the run are test code too: a failed write is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use conformance::driver::DriverFault;
use conformance::expectations::Expected;
use conformance::implementations::ORACLE;
use conformance::protocol::ImplementationInfo;
use conformance::runner::{CaseResult, ImplementationReport, MatrixRun};
use conformance::spec::LoadedCase;
use conformance::spec::load::{Suite, load_str};
use conformance::verdict::{Status, Verdict};
use conformance::{html, report};
use serde_json::{Value, json};

const BLOCKING: &str = "format: 1
area: blocking
cases:
  - id: BLK-1
    claim: apply returns the task's value, even <b>bold</b> & \"quoted\" | piped ones.
    cite: [{doc: 'library/multiprocessing.html#multiprocessing.pool.Pool.apply'}]
    tags: [contract]
    steps:
      - apply: {task: 5}
    expect: {steps: {s1: {returned: 5}}}
  - id: BLK-2
    claim: a quirk whose claim says </script><script>alert(1)</script>.
    cite: [{doc: 'library/multiprocessing.html#multiprocessing.pool.Pool.apply'}]
    tags: [quirk]
    steps:
      - apply: {task: 6}
    expect: {steps: {s1: {returned: 6}}}
";

const ORDERING: &str = "format: 1
area: ordering
cases:
  - id: ORD-1
    claim: map returns results in input order.
    cite: [{doc: 'library/multiprocessing.html#multiprocessing.pool.Pool.map'}]
    tags: [contract]
    steps:
      - map: {tasks: [1, 2]}
    expect: {steps: {s1: {returned: [1, 2]}}}
  - id: ORD-2
    claim: imap yields results in input order.
    cite: [{doc: 'library/multiprocessing.html#multiprocessing.pool.Pool.imap'}]
    tags: [contract]
    steps:
      - map: {tasks: [3]}
    expect: {steps: {s1: {returned: [3]}}}
";

const TIMEOUTS: &str = "format: 1
area: timeouts
cases:
  - id: TMO-1
    claim: a quirk about timeouts.
    cite: [{doc: 'library/multiprocessing.html#multiprocessing.pool.AsyncResult.get'}]
    tags: [quirk]
    steps:
      - apply: {task: 7}
    expect: {steps: {s1: {returned: 7}}}
";

/// An implementation whose name needs escaping everywhere; it did not start.
const ODD: &str = "exec:./drv --flag \"<x>\" & 'y'|z";

fn cases() -> Vec<LoadedCase> {
    let mut suite = Suite::default();
    load_str(Path::new("spec/blocking.yaml"), BLOCKING, &mut suite);
    load_str(Path::new("spec/ordering.yaml"), ORDERING, &mut suite);
    load_str(Path::new("spec/timeouts.yaml"), TIMEOUTS, &mut suite);
    assert!(suite.errors.is_empty(), "{:?}", suite.errors);
    suite.cases
}

fn info(
    name: &str,
    version: &str,
    language: &str,
    start_method: Option<&str>,
    interpreter: Option<&str>,
    pool_class: Option<&str>,
) -> ImplementationInfo {
    ImplementationInfo {
        name: name.into(),
        version: version.into(),
        language: language.into(),
        start_method: start_method.map(Into::into),
        interpreter: interpreter.map(Into::into),
        pool_class: pool_class.map(Into::into),
        language_version: None,
        default_processes: None,
    }
}

/// One cell: `returned` is what its observation says step `s1` returned.
fn cell(
    case: &LoadedCase,
    imp: &str,
    status: Status,
    verdict: Verdict,
    returned: Option<Value>,
    duration_ms: u64,
) -> CaseResult {
    CaseResult {
        case: case.id().to_owned(),
        area: case.area,
        quirk: case.is_quirk(),
        implementation: imp.to_owned(),
        status,
        verdict,
        reason: None,
        expected: None,
        fault: None,
        observation: returned.map(|v| json!({"steps": {"s1": {"returned": v}}})),
        unstable: None,
        history: None,
        duration_ms,
    }
}

fn expected(status: Status, reason: &str) -> Option<Expected> {
    Some(Expected {
        status,
        reason: reason.into(),
    })
}

/// Writes the histories the run refers to (one is left missing).
fn histories(dir: &Path) {
    std::fs::write(
        dir.join("small.json"),
        r#"{"events": [{"who": "</script><!--", "seq": 1}]}"#,
    )
    .unwrap();
    std::fs::write(dir.join("text.json"), "not JSON </script> & <b>\u{1}</b>\n").unwrap();
    // Pretty JSON whose compact form fits the cap: embedded compact.
    let events: Vec<Value> = (0..40)
        .map(|n| json!({"seq": n, "who": "parent/main", "event": {"event": "call"}}))
        .collect();
    std::fs::write(
        dir.join("pretty.json"),
        serde_json::to_string_pretty(&json!({ "events": events })).unwrap(),
    )
    .unwrap();
    // Over the cap: embedded as the beginning of its text.
    let events: Vec<Value> = (0..1100)
        .map(|n| json!({"seq": n, "who": "parent/main", "event": {"event": "call"}}))
        .collect();
    std::fs::write(
        dir.join("big.json"),
        serde_json::to_string_pretty(&json!({ "events": events })).unwrap(),
    )
    .unwrap();
}

fn run(cases: &[LoadedCase], dir: &Path) -> MatrixRun {
    histories(dir);
    let c = |id: &str| cases.iter().find(|c| c.id() == id).unwrap();
    let thread = "cpython-threadpool";
    let rust = "rust-ref";
    let mut results = Vec::new();

    // BLK-1: the oracle passes; rust-ref fails with hostile text; the thread pool fails as
    // expected; ODD crashed without an observation.
    let mut r = cell(
        c("BLK-1"),
        ORACLE,
        Status::Pass,
        Verdict::Pass,
        Some(json!(5)),
        12,
    );
    r.history = Some(dir.join("small.json"));
    results.push(r);
    let mut r = cell(
        c("BLK-1"),
        rust,
        Status::Fail,
        Verdict::Unexpected,
        Some(json!("</script> | & <b>")),
        1234,
    );
    r.reason = Some("returned </script><b>6</b> & not 5 | a pipe\nsecond line \u{1b}[31m".into());
    r.history = Some(dir.join("text.json"));
    results.push(r);
    let mut r = cell(
        c("BLK-1"),
        thread,
        Status::Fail,
        Verdict::ExpectedFail,
        Some(json!(6)),
        7,
    );
    r.reason = Some("step s1 returned 6, expected 5".into());
    r.expected = expected(Status::Fail, "threads share <memory> & | pipes");
    results.push(r);
    let mut r = cell(c("BLK-1"), ODD, Status::Crash, Verdict::Unexpected, None, 0);
    r.reason = Some("driver crashed (exit status: 1); stderr: boom".into());
    r.fault = Some(DriverFault::Crashed {
        status: "exit status: 1".into(),
        stderr: "Traceback <module>\n  \u{7}bell & </script>\nboom\n".into(),
    });
    results.push(r);

    // BLK-2 (quirk): the oracle's history is missing; rust-ref passes unexpectedly; the
    // thread pool's observation changed from its snapshot; ODD did not run it.
    let mut r = cell(
        c("BLK-2"),
        ORACLE,
        Status::Pass,
        Verdict::Pass,
        Some(json!(6)),
        15,
    );
    r.history = Some(dir.join("missing.json"));
    results.push(r);
    let mut r = cell(
        c("BLK-2"),
        rust,
        Status::Pass,
        Verdict::UnexpectedPass,
        Some(json!(6)),
        16,
    );
    r.expected = expected(Status::Timeout, "hangs <forever> | so far");
    results.push(r);
    let mut r = cell(
        c("BLK-2"),
        thread,
        Status::Pass,
        Verdict::Unexpected,
        Some(json!(60)),
        17,
    );
    r.reason = Some("observation differs from snapshot fixtures/snapshots/x/BLK-2.snap".into());
    results.push(r);

    // ORD-1: the oracle with a pretty history; not applicable on rust-ref; the thread pool
    // timed out (a history over the cap); ODD reported an error.
    let mut r = cell(
        c("ORD-1"),
        ORACLE,
        Status::Pass,
        Verdict::Pass,
        Some(json!([1, 2])),
        20,
    );
    r.history = Some(dir.join("pretty.json"));
    results.push(r);
    let mut r = cell(
        c("ORD-1"),
        rust,
        Status::NotApplicable,
        Verdict::Pass,
        None,
        0,
    );
    r.reason = Some("the case's versions say >=3.12; this is 3.8".into());
    results.push(r);
    let mut r = cell(
        c("ORD-1"),
        thread,
        Status::Timeout,
        Verdict::Unexpected,
        Some(json!([2, 1])),
        20001,
    );
    r.reason = Some(
        "no answer within the liveness guard (20.0 s); process group killed; stderr: x".into(),
    );
    r.fault = Some(DriverFault::Timeout {
        after_ms: 20000,
        stderr: "Thread 0x1 (most recent call first):\n  File \"<x>\", line 1\n".into(),
    });
    r.history = Some(dir.join("big.json"));
    results.push(r);
    let mut r = cell(c("ORD-1"), ODD, Status::Error, Verdict::Unexpected, None, 3);
    r.reason = Some("driver error: <unknown step> & more".into());
    results.push(r);

    // ORD-2: the oracle did not run it; rust-ref lacks a capability; the thread pool is
    // unstable; ODD is not applicable yet unexpected.
    let mut r = cell(
        c("ORD-2"),
        rust,
        Status::Unsupported,
        Verdict::Unexpected,
        None,
        1,
    );
    r.reason = Some("requires capability imap".into());
    results.push(r);
    let mut r = cell(
        c("ORD-2"),
        thread,
        Status::Pass,
        Verdict::Unexpected,
        Some(json!([3])),
        30,
    );
    r.unstable = Some("run 1: pass; run 2: fail <differs> | 2 of 3".into());
    results.push(r);
    let mut r = cell(
        c("ORD-2"),
        ODD,
        Status::NotApplicable,
        Verdict::Unexpected,
        None,
        0,
    );
    r.reason = Some("not applicable, oddly unexpected".into());
    results.push(r);

    // TMO-1 (quirk): the oracle passes; rust-ref times out as expected (no stderr); the
    // thread pool printed garbage as expected and is unstable; ODD's handshake failed as
    // expected, observing differently.
    results.push(cell(
        c("TMO-1"),
        ORACLE,
        Status::Pass,
        Verdict::Pass,
        Some(json!(7)),
        40,
    ));
    let mut r = cell(
        c("TMO-1"),
        rust,
        Status::Timeout,
        Verdict::ExpectedFail,
        Some(json!(7)),
        5000,
    );
    r.reason = Some("no answer within the liveness guard (5.0 s)".into());
    r.expected = expected(Status::Timeout, "hangs, as CPython 3.8 did");
    r.fault = Some(DriverFault::Timeout {
        after_ms: 5000,
        stderr: String::new(),
    });
    results.push(r);
    let mut r = cell(
        c("TMO-1"),
        thread,
        Status::Crash,
        Verdict::ExpectedFail,
        Some(json!(8)),
        41,
    );
    r.expected = expected(Status::Crash, "prints garbage");
    r.fault = Some(DriverFault::Garbage {
        line: "\u{0}\u{1b}[1mgarbage</script>".into(),
    });
    r.unstable = Some("statuses differ: crash, pass".into());
    results.push(r);
    let mut r = cell(
        c("TMO-1"),
        ODD,
        Status::Error,
        Verdict::ExpectedFail,
        Some(json!({"raised": {"type": "Boom<T>", "message": "a | b & c"}})),
        2,
    );
    r.expected = expected(Status::Error, "no handshake");
    r.fault = Some(DriverFault::Handshake {
        message: "protocol 9 <unknown>".into(),
    });
    results.push(r);

    MatrixRun {
        implementations: vec![
            ImplementationReport {
                name: ORACLE.into(),
                info: Some(info(
                    "cpython",
                    "3.11.7",
                    "python",
                    Some("fork"),
                    Some("CPython 3.11.7 (/usr/bin/python3)"),
                    Some("multiprocessing.pool.Pool"),
                )),
                capabilities: vec!["apply".into(), "map".into()],
            },
            ImplementationReport {
                name: rust.into(),
                info: Some(info("pool-ref", "0.1.0 | <dev>", "rust", None, None, None)),
                capabilities: vec!["apply".into()],
            },
            ImplementationReport {
                name: thread.into(),
                info: Some(info(
                    "cpython",
                    "3.11.7",
                    "python",
                    Some("thread"),
                    Some("CPython | 3.11.7 <&>"),
                    Some("multiprocessing.pool.ThreadPool"),
                )),
                capabilities: vec![],
            },
            ImplementationReport {
                name: ODD.into(),
                info: None,
                capabilities: vec![],
            },
        ],
        results,
        wall: Duration::from_millis(83_456),
    }
}

/// The text with the history folder's path replaced, and an end marker.
fn pinned(text: &str, dir: &Path) -> String {
    let dir = dir.display().to_string();
    assert!(dir.len() > 4, "{dir}");
    format!("{}<<EOF>>", text.replace(&dir, "[HISTORIES]"))
}

#[test]
fn every_view_of_a_fixed_run() {
    let dir = tempfile::tempdir().unwrap();
    let cases = cases();
    let run = run(&cases, dir.path());
    let p = |text: &str| pinned(text, dir.path());

    insta::assert_snapshot!("terminal_matrix", p(&report::terminal_matrix(&run, &cases)));
    insta::assert_snapshot!("details", p(&report::details(&run)));
    insta::assert_snapshot!("markdown", p(&report::markdown(&run, &cases)));
    insta::assert_snapshot!("junit", p(&report::junit(&run)));
    let jsonl = report::jsonl(&run, &cases);
    insta::assert_snapshot!("jsonl", p(&jsonl));
    insta::assert_snapshot!("html", p(&html::render(&run, &cases)));

    let c = report::counts(&run);
    insta::assert_snapshot!(
        "summaries",
        p(&format!(
            "suite_hash: {}\ncounts: {}\nper_implementation: {}\ncells: {}, unexpected: {}\n\
             compliance: {}\ncompliance_lines:\n{}differences: {:?}\nvalidate_jsonl: {:?}\n",
            report::suite_hash(&cases),
            c,
            serde_json::to_string(&c["per_implementation"]).unwrap(),
            c["cells"],
            c["unexpected"],
            report::compliance(&run),
            report::compliance_lines(&run),
            report::differences(&run, &cases),
            report::validate_jsonl(&jsonl),
        ))
    );
}

/// `write_all` writes exactly the views, under their fixed names.
#[test]
fn write_all_writes_the_views() {
    let hist = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let cases = cases();
    let run = run(&cases, hist.path());
    let dir = out.path().join("reports");
    let paths = report::write_all(&dir, &run, &cases).unwrap();
    assert_eq!(paths.jsonl, dir.join("report.jsonl"));
    assert_eq!(paths.markdown, dir.join("summary.md"));
    assert_eq!(paths.junit, dir.join("junit.xml"));
    assert_eq!(paths.html, dir.join("report.html"));
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    assert_eq!(read(&paths.jsonl), report::jsonl(&run, &cases));
    assert_eq!(read(&paths.markdown), report::markdown(&run, &cases));
    assert_eq!(read(&paths.junit), report::junit(&run));
    assert_eq!(read(&paths.html), html::render(&run, &cases));
    // And the JSON lines read back, whole.
    let back = report::read(&read(&paths.jsonl)).unwrap();
    assert_eq!(back.header.suite_hash, report::suite_hash(&cases));
    assert_eq!(back.header.implementations.len(), run.implementations.len());
    assert_eq!(back.records.len(), run.results.len());
    for (record, result) in back.records.iter().zip(&run.results) {
        assert_eq!(record.result.case, result.case);
        assert_eq!(record.result.observation, result.observation);
        assert_eq!(
            record.diff_against_oracle,
            report::diff_against_oracle(&run, result)
        );
    }
    assert!(back.footer.complete);
    assert_eq!(back.footer.counts, report::counts_of(&run));
    // Cut short, it is refused.
    let text = read(&paths.jsonl);
    let cut: String = text.lines().take(5).map(|l| format!("{l}\n")).collect();
    assert!(matches!(
        report::read(&cut),
        Err(report::JsonlError::NoFooter)
    ));
}

/// Renders a recorded run (`run.json`, a serialized [`MatrixRun`]) with this code, to compare
/// the files with those the run wrote: `POOLSPEC_RECORDED_RUN=path/run.json
/// POOLSPEC_RENDER_TO=dir [POOLSPEC_SPEC_DIR=spec] cargo test -p conformance --test
/// report_views -- --ignored`. The cases must be loaded from the same folder as in the run
/// (the page names their files). Also writes `terminal.txt`, what xtask prints.
#[test]
#[ignore = "needs a recorded run"]
fn render_a_recorded_run() {
    let (Some(run), Some(to)) = (
        std::env::var_os("POOLSPEC_RECORDED_RUN"),
        std::env::var_os("POOLSPEC_RENDER_TO"),
    ) else {
        panic!("set POOLSPEC_RECORDED_RUN and POOLSPEC_RENDER_TO");
    };
    let spec = std::env::var_os("POOLSPEC_SPEC_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| conformance::workspace_root().join("spec"));
    let suite = conformance::spec::load_dir(&spec);
    assert!(suite.errors.is_empty(), "{:?}", suite.errors);
    let run: MatrixRun = serde_json::from_str(&std::fs::read_to_string(run).unwrap()).unwrap();
    let to = Path::new(&to);
    report::write_all(to, &run, &suite.cases).unwrap();
    let c = report::counts(&run);
    let terminal = format!(
        "{}\n{}\n{:?}\n{}{}\n",
        report::terminal_matrix(&run, &suite.cases),
        report::details(&run),
        report::differences(&run, &suite.cases),
        report::compliance_lines(&run),
        serde_json::to_string(&c["per_implementation"]).unwrap(),
    );
    std::fs::write(to.join("terminal.txt"), terminal).unwrap();
    let back = report::read(&std::fs::read_to_string(to.join("report.jsonl")).unwrap()).unwrap();
    assert_eq!(back.records.len(), run.results.len());
}
