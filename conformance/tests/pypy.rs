//! The standard library's Pool on PyPy (`pypy3`): a few cases under every start method, the
//! handshake a PyPy driver gives, a case whose `versions` exclude PyPy's Python 3.9, and the
//! Python SDK's teardown check under PyPy.
//!
//! PyPy is optional (CI machines do not have it): without `pypy3` on `PATH` every test here
//! says so in one line on the terminal and passes without running anything.

use std::io::Write as _;
use std::path::Path;

use conformance::expectations::ExpectationFile;
use conformance::implementations::{Interpreter, Runtime, builtin_on, find_pypy};
use conformance::runner::{MatrixRun, RunOptions, run_matrix};
use conformance::spec::{LoadedCase, load_dir};
use conformance::verdict::Status;
use conformance::workspace_root;

/// The PyPy to test, or `None` when there is none. The first test to find none says so in
/// one line on the real stderr (past the test harness's capture, so the skip shows in
/// `cargo test` output); the others skip silently.
fn pypy_or_skip() -> Option<Interpreter> {
    static SAID: std::sync::Once = std::sync::Once::new();
    match find_pypy(None) {
        Ok(found) => Some(found),
        Err(why) => {
            SAID.call_once(|| {
                let line = format!("pypy: skipped, {why}; the PyPy tests ran nothing\n");
                let _ = std::io::stderr().write_all(line.as_bytes());
            });
            None
        }
    }
}

fn run(cases: &[LoadedCase], pypy: &Interpreter, kinds: &[&str]) -> MatrixRun {
    let root = workspace_root();
    let dir = root.join("fixtures/expectations");
    // Expectation files may name any case of spec/, and the cases run here.
    let suite = load_dir(&root.join("spec"));
    let ids: Vec<&str> = suite.cases.iter().chain(cases).map(|c| c.id()).collect();
    let impls: Vec<_> = builtin_on(&root, &pypy.path, Runtime::PyPy, None)
        .into_iter()
        .filter(|i| kinds.iter().any(|k| i.name == format!("pypy-{k}")))
        .map(|i| {
            let exp = ExpectationFile::load_for(&dir, &i.name, &ids).expect("expectations");
            (i, exp)
        })
        .collect();
    assert_eq!(impls.len(), kinds.len());
    let options = RunOptions {
        jobs: 2,
        ..RunOptions::default()
    };
    run_matrix(cases, &impls, &options, &|_| {})
}

fn suite_cases(ids: &[&str]) -> Vec<LoadedCase> {
    let suite = load_dir(&workspace_root().join("spec"));
    let cases: Vec<LoadedCase> = suite
        .cases
        .into_iter()
        .filter(|c| ids.contains(&c.id()))
        .collect();
    assert_eq!(cases.len(), ids.len(), "a case of {ids:?} is missing");
    cases
}

/// A few cases across areas (a result, ordering, a task's exception, worker processes, a
/// worker that dies, terminate), under fork, spawn and forkserver.
#[test]
fn pypy_runs_the_stdlib_pool_under_every_start_method() {
    let Some(pypy) = pypy_or_skip() else {
        return;
    };
    let cases = suite_cases(&[
        "BLK-001", "ORD-001", "ERR-001", "WRK-001", "FLT-001", "LIF-004",
    ]);
    let matrix = run(&cases, &pypy, &["fork", "spawn", "forkserver"]);
    let bad: Vec<String> = matrix
        .unexpected()
        .map(|r| {
            format!(
                "{} on {}: {:?} {:?}",
                r.case, r.implementation, r.status, r.reason
            )
        })
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert_eq!(matrix.results.len(), cases.len() * 3);
}

/// A PyPy driver says it is PyPy, gives PyPy's own version, and the language version it
/// implements (what a case's `versions` are checked against).
#[test]
fn a_pypy_driver_names_pypy_and_its_language_version() {
    let Some(pypy) = pypy_or_skip() else {
        return;
    };
    let matrix = run(&suite_cases(&["BLK-001"]), &pypy, &["fork", "threadpool"]);
    for report in &matrix.implementations {
        let info = report.info.as_ref().expect("a handshake");
        assert_eq!(info.name, "pypy", "{info:?}");
        assert_eq!(
            Some(&info.version),
            pypy.runtime_version.as_ref(),
            "{info:?}"
        );
        assert_eq!(
            info.language_version.as_deref(),
            Some(pypy.version.as_str()),
            "{info:?}"
        );
        let interpreter = info.interpreter.as_deref().unwrap_or_default();
        assert!(
            interpreter.starts_with(&format!("PyPy {} (Python {}", info.version, pypy.version)),
            "{interpreter}"
        );
    }
}

/// A claim that holds only from a later Python than PyPy's is `not-applicable` there (it does
/// not run); one that holds for PyPy's runs.
#[test]
fn version_ranges_apply_to_pypys_language_version() {
    let Some(pypy) = pypy_or_skip() else {
        return;
    };
    let language = &pypy.version;
    let next = format!(
        "3.{}",
        pypy.short_version()[2..].parse::<u32>().unwrap() + 1
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let case = |id: &str, range: &str| {
        format!(
            "  - id: {id}\n    claim: apply returns the task's value.\n    cite: \
             [{{source: pool.py:Pool.apply}}]\n    tags: [contract]\n    versions: {{python: \
             '{range}'}}\n    steps:\n      - apply: {{task: 7}}\n    expect:\n      steps:\n        \
             s1: {{returned: 7}}\n"
        )
    };
    let text = format!(
        "format: 1\narea: blocking\ncases:\n{}{}",
        case("BLK-901", &format!(">={next}")),
        case("BLK-902", &format!("<{next}"))
    );
    std::fs::write(dir.path().join("blocking.yaml"), text).expect("writing the case");
    let suite = load_dir(dir.path());
    assert!(suite.errors.is_empty(), "{:?}", suite.errors);
    let matrix = run(&suite.cases, &pypy, &["fork"]);
    let later = matrix.result("BLK-901", "pypy-fork").expect("a result");
    assert_eq!(later.status, Status::NotApplicable, "{later:?}");
    assert!(
        later
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains(language),
        "{later:?}"
    );
    assert!(later.verdict.is_ok());
    let now = matrix.result("BLK-902", "pypy-fork").expect("a result");
    assert_eq!(now.status, Status::Pass, "{now:?}");
}

/// The Python SDK's teardown workaround (fixtures/drivers/checks/orphaned_lock.py) holds on
/// PyPy's multiprocessing too.
#[test]
fn the_sdk_teardown_check_passes_on_pypy() {
    let Some(pypy) = pypy_or_skip() else {
        return;
    };
    let script = workspace_root().join("fixtures/drivers/checks/orphaned_lock.py");
    let out = std::process::Command::new(&pypy.path)
        .arg(Path::new(&script))
        .output()
        .expect("running pypy3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !stdout.contains("FAILED"),
        "{} under {} failed ({}):\n{stdout}{}",
        script.display(),
        pypy.describe(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
