//! The JavaScript drivers of `fixtures/drivers/js/`: the reference driver (the SDK on its tiny
//! `child_process` pool) passes the smoke check, and a few cases on each third-party Node.js
//! pool (`workerpool`, `multiprocess-pool`) give the statuses their expectation files explain.
//!
//! Node is optional: without `node` on `PATH` every test here says so in one line and passes
//! without running anything; the third-party tests likewise without the packages that
//! `cargo xtask compliance` installs into `target/thirdparty-node/`.

use std::io::Write as _;
use std::process::{Command, Stdio};

use conformance::driver::DriverCommand;
use conformance::expectations::ExpectationFile;
use conformance::implementations::Implementation;
use conformance::runner::{RunOptions, run_matrix};
use conformance::smoke::{SmokeOptions, smoke, smoke_cases};
use conformance::spec::{LoadedCase, load_dir};
use conformance::verdict::Status;
use conformance::workspace_root;

/// Says `why` once per test binary on the real stderr (past the harness's capture).
fn skip(why: &str) {
    let line = format!("node: skipped, {why}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Whether `node` runs here; says so once when it does not.
fn node_or_skip() -> bool {
    let ok = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip("`node` is not on PATH; the Node.js tests ran nothing");
    }
    ok
}

/// Whether the pinned `package` is installed in `target/thirdparty-node/`.
fn package_or_skip(package: &str) -> bool {
    let manifest = workspace_root().join(format!(
        "target/thirdparty-node/node_modules/{package}/package.json"
    ));
    let ok = manifest.is_file();
    if !ok {
        skip(&format!(
            "{package} is not installed in target/thirdparty-node/ (`cargo xtask compliance` installs it)"
        ));
    }
    ok
}

fn js_driver(name: &str, script: &str) -> Implementation {
    let path = workspace_root().join("fixtures/drivers/js").join(script);
    Implementation {
        name: name.to_owned(),
        command: DriverCommand {
            program: "node".into(),
            args: vec![path.display().to_string()],
            env: Vec::new(),
        },
    }
}

fn suite() -> Vec<LoadedCase> {
    load_dir(&workspace_root().join("spec")).cases
}

#[test]
fn the_reference_js_driver_passes_the_smoke_check() {
    if !node_or_skip() {
        return;
    }
    let cases = smoke_cases(&suite()).expect("the smoke cases are in spec/");
    let imp = js_driver("js-minipool", "reference_driver.js");
    let report = smoke(&imp, &cases, &SmokeOptions::default());
    assert!(report.passed(), "{}", report.render());
    let info = report.info.expect("a handshake");
    assert_eq!(info.language, "javascript");
}

/// Runs `expected`'s cases on a third-party driver with its expectation file and checks
/// each status (a `Fail` must be one the file expects).
fn check_statuses(name: &str, script: &str, expected: &[(&str, Status)]) {
    let all = suite();
    let ids: Vec<&str> = all.iter().map(|c| c.id()).collect();
    let cases: Vec<LoadedCase> = all
        .iter()
        .filter(|c| expected.iter().any(|(id, _)| *id == c.id()))
        .cloned()
        .collect();
    assert_eq!(cases.len(), expected.len(), "a case is missing from spec/");
    let dir = workspace_root().join("fixtures/expectations");
    let exp = ExpectationFile::load_for(&dir, name, &ids).expect("expectations");
    let options = RunOptions {
        jobs: 1,
        ..RunOptions::default()
    };
    let matrix = run_matrix(&cases, &[(js_driver(name, script), exp)], &options, &|_| {});
    for (id, status) in expected {
        let result = matrix
            .results
            .iter()
            .find(|r| r.case == *id)
            .unwrap_or_else(|| panic!("no result for {id}"));
        assert_eq!(
            result.status, *status,
            "{id} on {name}: {:?}",
            result.reason
        );
        // A failure is one the expectation file explains; nothing else is unexpected.
        assert!(
            result.verdict.is_ok(),
            "{id} on {name}: {:?} {:?}",
            result.verdict,
            result.reason
        );
    }
}

#[test]
fn workerpool_gives_the_statuses_its_expectations_explain() {
    if !node_or_skip() || !package_or_skip("workerpool") {
        return;
    }
    check_statuses(
        "js-workerpool",
        "workerpool_driver.js",
        &[
            ("BLK-001", Status::Pass),
            ("ERR-001", Status::Pass),
            ("LIF-002", Status::Fail),
            ("ARG-003", Status::Unsupported),
            // Refused with a TypeError: the case asserts the neutral kind, invalid_argument.
            ("CTR-002", Status::Pass),
        ],
    );
}

#[test]
fn multiprocess_pool_gives_the_statuses_its_expectations_explain() {
    if !node_or_skip() || !package_or_skip("multiprocess-pool") {
        return;
    }
    check_statuses(
        "js-multiprocess-pool",
        "multiprocess_pool_driver.js",
        &[
            ("BLK-001", Status::Pass),
            ("ERR-001", Status::Fail),
            ("ARG-003", Status::Unsupported),
            // Refused with a RangeError: the case asserts the neutral kind, invalid_argument.
            ("CTR-002", Status::Pass),
        ],
    );
}
