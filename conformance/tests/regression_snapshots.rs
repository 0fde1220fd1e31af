//! `--snapshots DIR` end to end on the real CPython driver: the first run records, a second
//! run of the same cases finds nothing changed, and a snapshot edited to say something else
//! makes the cell unexpected with a diff.

use std::collections::BTreeMap;

use conformance::expectations::ExpectationFile;
use conformance::implementations::{builtin, find_python};
use conformance::runner::{RunOptions, run_matrix};
use conformance::snapshots::{SnapshotMode, SnapshotOutcome, apply, snapshot_path};
use conformance::spec::load_dir;
use conformance::verdict::Verdict;
use conformance::workspace_root;

#[test]
fn recorded_snapshots_catch_a_changed_observation() {
    let root = workspace_root();
    let suite = load_dir(&root.join("spec"));
    let cases: Vec<_> = suite
        .cases
        .into_iter()
        .filter(|c| ["BLK-001", "ORD-009"].contains(&c.id()))
        .collect();
    assert_eq!(cases.len(), 2);
    let python = find_python().expect("python3");
    let imp = builtin(&root, &python, None)
        .into_iter()
        .find(|i| i.name == "cpython-fork")
        .expect("cpython-fork");
    let impls = [(
        imp.clone(),
        ExpectationFile {
            implementation: imp.name.clone(),
            cases: BTreeMap::new(),
        },
    )];
    let options = RunOptions {
        jobs: 2,
        ..RunOptions::default()
    };
    let dir = tempfile::tempdir().expect("temp dir");

    let mut first = run_matrix(&cases, &impls, &options, &|_| {});
    let s = apply(&mut first, dir.path(), SnapshotMode::Check).expect("recording");
    assert!(
        s.checks
            .iter()
            .all(|c| c.outcome == SnapshotOutcome::Recorded),
        "{}",
        s.render()
    );

    let mut second = run_matrix(&cases, &impls, &options, &|_| {});
    let s = apply(&mut second, dir.path(), SnapshotMode::Check).expect("comparing");
    assert!(
        s.checks
            .iter()
            .all(|c| c.outcome == SnapshotOutcome::Unchanged),
        "{}",
        s.render()
    );
    assert_eq!(second.unexpected().count(), 0);

    // Pretend the pool used to return 6 in BLK-001.
    let path = snapshot_path(dir.path(), "cpython-fork", "BLK-001");
    let text = std::fs::read_to_string(&path).expect("the recorded snapshot");
    assert!(text.contains("returned: 7"), "{text}");
    std::fs::write(&path, text.replace("returned: 7", "returned: 6")).expect("editing it");
    let mut third = run_matrix(&cases, &impls, &options, &|_| {});
    let s = apply(&mut third, dir.path(), SnapshotMode::Check).expect("comparing");
    let changed: Vec<_> = s.changed().map(|c| c.case.as_str()).collect();
    assert_eq!(changed, ["BLK-001"], "{}", s.render());
    let r = third.result("BLK-001", "cpython-fork").expect("a result");
    assert_eq!(r.verdict, Verdict::Unexpected);
    assert!(
        s.render()
            .contains("-      returned: 6\n    +      returned: 7"),
        "{}",
        s.render()
    );
}
