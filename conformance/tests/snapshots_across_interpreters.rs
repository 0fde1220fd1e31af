//! One `--snapshots` folder for every interpreter of a CI matrix (docs/ci-recipe.md): recorded
//! on the default `python3`, checked on CPython 3.13 (which rewords pickle's message for a
//! local object, `rewordings.rs`) and on a CPython older than 3.10 (where the cases about
//! `maxtasksperchild=0` are not-applicable), nothing changes. Interpreters that are not on
//! this machine (PATH and pyenv) are skipped, each with one line.

use std::collections::BTreeMap;

use conformance::expectations::ExpectationFile;
use conformance::implementations::{builtin, find_python};
use conformance::interpreters::{Interpreter, Runtime, discover_pythons};
use conformance::runner::{RunOptions, run_matrix};
use conformance::snapshots::{SnapshotMode, SnapshotOutcome, apply};
use conformance::spec::load_dir;
use conformance::verdict::Status;
use conformance::workspace_root;

/// ARG-005: a lambda given to `apply` (the pickle message); ERR-007: the same inside
/// `MaybeEncodingError`; CTR-003: gated to 3.10 and later.
const CASES: [&str; 3] = ["ARG-005", "ERR-007", "CTR-003"];

fn cpython(pick: impl Fn(&Interpreter) -> bool) -> Option<Interpreter> {
    discover_pythons()
        .into_iter()
        .find(|i| i.runtime == Runtime::CPython && pick(i))
}

fn minor(i: &Interpreter) -> u32 {
    i.short_version()
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

#[test]
fn snapshots_recorded_on_one_cpython_hold_on_the_others() {
    let root = workspace_root();
    let cases: Vec<_> = load_dir(&root.join("spec"))
        .cases
        .into_iter()
        .filter(|c| CASES.contains(&c.id()))
        .collect();
    assert_eq!(cases.len(), CASES.len());
    let options = RunOptions {
        jobs: 2,
        ..RunOptions::default()
    };
    let run_on = |python: &std::path::Path| {
        let imp = builtin(&root, python, None)
            .into_iter()
            .find(|i| i.name == "cpython-fork")
            .expect("cpython-fork");
        let expectations = ExpectationFile {
            implementation: imp.name.clone(),
            cases: BTreeMap::new(),
        };
        run_matrix(&cases, &[(imp, expectations)], &options, &|_| {})
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut reference = run_on(&find_python().expect("python3"));
    let s = apply(&mut reference, dir.path(), SnapshotMode::Check).expect("recording");
    assert_eq!(s.changed().count(), 0, "{}", s.render());
    let recorded = std::fs::read_to_string(dir.path().join("cpython-fork/ARG-005.yaml"))
        .expect("ARG-005's snapshot");
    assert!(recorded.contains("Can't pickle local object"), "{recorded}");

    let others = [
        ("3.13", cpython(|i| minor(i) >= 13)),
        ("older than 3.10", cpython(|i| minor(i) < 10)),
    ];
    for (wanted, interpreter) in others {
        let Some(interpreter) = interpreter else {
            println!("skipped: no CPython {wanted} on this machine");
            continue;
        };
        let mut run = run_on(&interpreter.path);
        let s = apply(&mut run, dir.path(), SnapshotMode::Check).expect("comparing");
        assert_eq!(
            s.changed().count(),
            0,
            "on {}:\n{}",
            interpreter.describe(),
            s.render()
        );
        let ctr = s
            .checks
            .iter()
            .find(|c| c.case == "CTR-003")
            .expect("CTR-003");
        let applies = minor(&interpreter) >= 10;
        assert_eq!(
            ctr.outcome == SnapshotOutcome::NotApplicableHere,
            !applies,
            "{}",
            interpreter.describe()
        );
        let arg = run.result("ARG-005", "cpython-fork").expect("ARG-005");
        assert_eq!(arg.status, Status::Pass, "{}", interpreter.describe());
    }
}
