//! `cargo xtask conformance explain` end to end: one case rerun on `cpython-fork` (`--run`)
//! is explained from that run, a report that does not exist still gives the claim and the
//! program, and an unknown id fails with the closest ids.

use std::process::{Command, Output};

fn explain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["conformance", "explain"])
        .args(args)
        .output()
        .expect("running xtask")
}

#[test]
fn explain_reruns_one_case_and_explains_it_from_that_run() {
    let out = explain(&["LIF-015", "--run", "--impl", "cpython-fork"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("LIF-015 (lifecycle, contract; spec/lifecycle.yaml)\n"),
        "{stdout}"
    );
    assert!(stdout.contains("\nprogram:\n"), "{stdout}");
    assert!(
        stdout.contains("results (from this run):\n  cpython-fork  pass\n"),
        "{stdout}"
    );
}

#[test]
fn explain_without_a_report_explains_the_case_and_says_there_is_none() {
    let dir = tempfile::tempdir().expect("temp dir");
    let report = dir.path().join("report.jsonl");
    let out = explain(&["ORD-004", "--report", &report.display().to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("  steps: it  imap of t0, t1, t2\n"),
        "{stdout}"
    );
    assert!(stdout.contains("\nresults: no report yet at "), "{stdout}");
}

#[test]
fn explain_of_an_unknown_id_names_the_closest() {
    let out = explain(&["ORD-04"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no case `ORD-04`; the closest: ORD-004"),
        "{stderr}"
    );
}
