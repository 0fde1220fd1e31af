//! A pool maintainer's own cases (`--spec DIR`), end to end on the worked example of
//! `fixtures/own-cases/`: CountingPool, a Pool subclass with an extension argument and
//! method, run for real with its three cases beside CPython's Pool; then the errors a
//! maintainer meets (a colliding id, a missing folder, a malformed file), and the suite hash,
//! which follows the cases' content wherever the folder lives.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use conformance::expectations::ExpectationFile;
use conformance::implementations::{Implementation, builtin, find_python, parse_spec};
use conformance::report::{self, Model, suite_hash};
use conformance::runner::{RunOptions, run_matrix};
use conformance::snapshots::{SnapshotMode, SnapshotOutcome, apply};
use conformance::spec::{FolderError, Source, load_dir, load_folders};
use conformance::verdict::{Status, Verdict};
use conformance::workspace_root;

const COUNTING: &str = "python:counting_pool:CountingPool";

fn own_folder() -> PathBuf {
    workspace_root().join("fixtures/own-cases/spec")
}

/// `python:counting_pool:CountingPool` with the example's folder on PYTHONPATH, and
/// `cpython-fork`, each with an empty expectation file.
fn implementations() -> Vec<(Implementation, ExpectationFile)> {
    let root = workspace_root();
    let python = find_python().expect("python3");
    let fork = builtin(&root, &python, None)
        .into_iter()
        .find(|i| i.name == "cpython-fork")
        .expect("cpython-fork");
    let mut counting = parse_spec(COUNTING, &root, &python, &[]).expect("a python: spec");
    let module_dir = root.join("fixtures/own-cases").display().to_string();
    counting.command.env.push(("PYTHONPATH".into(), module_dir));
    [fork, counting]
        .into_iter()
        .map(|imp| {
            let file = ExpectationFile {
                implementation: imp.name.clone(),
                cases: BTreeMap::new(),
            };
            (imp, file)
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

#[test]
fn the_worked_example_passes_on_counting_pool_and_is_not_applicable_elsewhere() {
    let suite = load_folders(None, &[own_folder()]).expect("the folder exists");
    assert!(suite.errors.is_empty(), "{:#?}", suite.errors);
    let ids: Vec<&str> = suite.cases.iter().map(|c| c.id()).collect();
    assert_eq!(ids, ["CNT-001", "CNT-002", "CNT-003"]);
    assert!(
        suite
            .cases
            .iter()
            .all(|c| c.source == Source::Added(own_folder()) && c.area.as_str() == "counting")
    );

    let impls = implementations();
    let options = RunOptions {
        jobs: 2,
        timeout_multiplier: 3.0,
        ..RunOptions::default()
    };
    let mut run = run_matrix(&suite.cases, &impls, &options, &|_| {});
    let status = |case: &str, imp: &str| run.result(case, imp).map(|r| r.status);
    for case in ids {
        assert_eq!(
            status(case, COUNTING),
            Some(Status::Pass),
            "{case}: {:?}",
            run.result(case, COUNTING)
        );
    }
    // CPython's Pool has no count_tasks: the cases about it do not concern it.
    for case in ["CNT-001", "CNT-002"] {
        let r = run.result(case, "cpython-fork").expect("a cell");
        assert_eq!(r.status, Status::NotApplicable, "{r:?}");
        let why = r.reason.as_deref().unwrap_or_default();
        assert!(
            why.contains("applies to python:counting_pool only"),
            "{why}"
        );
    }
    assert_eq!(status("CNT-003", "cpython-fork"), Some(Status::Pass));
    assert_eq!(run.unexpected().count(), 0);

    // The committed snapshots are CountingPool's baseline: nothing changed.
    let snapshots = tempfile::tempdir().expect("temp dir");
    copy_dir(
        &workspace_root().join("fixtures/own-cases/snapshots"),
        snapshots.path(),
    );
    let checked = apply(&mut run, snapshots.path(), SnapshotMode::Check).expect("snapshots");
    for c in checked
        .checks
        .iter()
        .filter(|c| c.implementation == COUNTING)
    {
        assert_eq!(
            c.outcome,
            SnapshotOutcome::Unchanged,
            "{}",
            checked.render()
        );
    }

    // The report names the folder, per case and in its header.
    let out = tempfile::tempdir().expect("temp dir");
    let model = Model::new(&run, &suite.cases);
    report::write_model(out.path(), &model).expect("reports");
    let text = std::fs::read_to_string(out.path().join("report.jsonl")).expect("report.jsonl");
    let read = report::read(&text).expect("a valid report");
    let folder = own_folder().display().to_string();
    assert_eq!(read.header.spec_folders, std::slice::from_ref(&folder));
    assert_eq!(read.header.suite_hash, suite_hash(&suite.cases));
    assert!(
        read.records
            .iter()
            .all(|r| r.spec_folder.as_deref() == Some(folder.as_str()))
    );
}

#[test]
fn an_extension_the_pool_lacks_is_unsupported() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = std::fs::read_to_string(own_folder().join("counting.yaml"))
        .expect("the example")
        .replace("CNT-00", "FROB-00")
        .replace("name: tasks_submitted", "name: frobnicate");
    std::fs::write(dir.path().join("frob.yaml"), text).expect("write");
    let suite = load_folders(None, &[dir.path().to_path_buf()]).expect("the folder exists");
    assert!(suite.errors.is_empty(), "{:#?}", suite.errors);
    let cases: Vec<_> = suite
        .cases
        .into_iter()
        .filter(|c| c.id() == "FROB-001")
        .collect();
    let impls: Vec<_> = implementations()
        .into_iter()
        .filter(|(i, _)| i.name == COUNTING)
        .collect();
    let run = run_matrix(&cases, &impls, &RunOptions::default(), &|_| {});
    let r = run.result("FROB-001", COUNTING).expect("a cell");
    assert_eq!(r.status, Status::Unsupported, "{r:?}");
    assert_eq!(r.verdict, Verdict::Unexpected);
    assert_eq!(
        r.reason.as_deref(),
        Some("lacks capabilities: ext:frobnicate")
    );
    // What the driver declared: both extensions of CountingPool, found by reflection.
    let declared = &run.implementations[0].capabilities;
    for capability in ["ext:count_tasks", "ext:tasks_submitted"] {
        assert!(declared.iter().any(|c| c == capability), "{declared:?}");
    }
}

#[test]
fn an_id_of_the_built_in_suite_is_refused_naming_both_places() {
    let root = workspace_root();
    let dir = tempfile::tempdir().expect("temp dir");
    let text = std::fs::read_to_string(own_folder().join("counting.yaml"))
        .expect("the example")
        .replace("id: CNT-003", "id: BLK-001");
    let file = dir.path().join("mine.yaml");
    std::fs::write(&file, text).expect("write");
    let suite = load_folders(Some(&root.join("spec")), &[dir.path().to_path_buf()])
        .expect("the folders exist");
    assert_eq!(suite.errors.len(), 1, "{:#?}", suite.errors);
    let message = suite.errors[0].to_string();
    let expected = format!(
        "{}:42:9: case BLK-001: case id collides with a case of spec/: ids are unique across \
         spec/ and every added folder (--spec), so give this case an id of its own (first used \
         at {}:",
        file.display(),
        root.join("spec/blocking.yaml").display()
    );
    assert!(message.starts_with(&expected), "{message}");
    // The other cases of the folder still load.
    assert!(suite.cases.iter().any(|c| c.id() == "CNT-001"));

    // Two added folders with the same case: the second names the first.
    let twin = tempfile::tempdir().expect("temp dir");
    copy_dir(&own_folder(), twin.path());
    let suite = load_folders(None, &[own_folder(), twin.path().to_path_buf()]).expect("folders");
    assert_eq!(suite.errors.len(), 3, "{:#?}", suite.errors);
    let first = suite.errors[0].to_string();
    assert!(
        first.contains(&format!(
            "collides with a case of {}",
            own_folder().display()
        )),
        "{first}"
    );
}

#[test]
fn a_missing_folder_is_an_error_that_names_it() {
    let missing = PathBuf::from("no/such/cases");
    let err = load_folders(None, std::slice::from_ref(&missing)).expect_err("missing");
    assert!(matches!(err, FolderError::Missing { .. }));
    assert_eq!(err.to_string(), "--spec no/such/cases: no such folder");
    let file = own_folder().join("counting.yaml");
    let err = load_folders(None, std::slice::from_ref(&file)).expect_err("a file");
    assert!(
        err.to_string()
            .ends_with("not a folder (give the folder that holds the case files)")
    );
}

#[test]
fn a_malformed_file_gets_the_loaders_file_line_column_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = std::fs::read_to_string(own_folder().join("counting.yaml"))
        .expect("the example")
        .replace(
            "- extension: {name: tasks_submitted}",
            "- extension: {nmae: tasks_submitted}",
        );
    let file = dir.path().join("broken.yaml");
    std::fs::write(&file, text).expect("write");
    let suite = load_folders(None, &[dir.path().to_path_buf()]).expect("the folder exists");
    let message = suite.errors[0].to_string();
    assert!(
        message.starts_with(&format!("{}:19:21: ", file.display())),
        "{message}"
    );
    assert!(message.contains("unknown field `nmae`"), "{message}");

    // An extension name that no driver could call is refused where it is written.
    let text = std::fs::read_to_string(own_folder().join("counting.yaml"))
        .expect("the example")
        .replace("count_tasks: true", "count-tasks: true");
    std::fs::write(&file, text).expect("write");
    let suite = load_folders(None, &[dir.path().to_path_buf()]).expect("the folder exists");
    let message = suite.errors[0].to_string();
    assert!(
        message.starts_with(&format!(
            "{}:15:38: case CNT-001: extension `count-tasks`",
            file.display()
        )),
        "{message}"
    );
}

#[test]
fn the_built_in_suite_keeps_its_areas() {
    let mut suite = conformance::spec::Suite::default();
    let text = std::fs::read_to_string(own_folder().join("counting.yaml")).expect("the example");
    conformance::spec::load::load_str(Path::new("spec/counting.yaml"), &text, &mut suite);
    let message = suite.errors[0].to_string();
    assert!(
        message.starts_with(
            "spec/counting.yaml:5:7: unknown area `counting` (the built-in areas: blocking, "
        ),
        "{message}"
    );
    assert!(
        message.ends_with("only an added folder (--spec) names its own"),
        "{message}"
    );
}

#[test]
fn the_suite_hash_follows_the_content_not_the_folder() {
    let root = workspace_root();
    let builtin_only = suite_hash(&load_dir(&root.join("spec")).cases);
    let here = load_folders(Some(&root.join("spec")), &[own_folder()]).expect("folders");
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let copy = elsewhere.path().join("somewhere/else");
    copy_dir(&own_folder(), &copy);
    let there = load_folders(Some(&root.join("spec")), &[copy]).expect("folders");
    assert_eq!(suite_hash(&here.cases), suite_hash(&there.cases));
    assert_ne!(suite_hash(&here.cases), builtin_only);
    // The built-in suite's own hash does not depend on how it was loaded.
    let alone = load_folders(Some(&root.join("spec")), &[]).expect("spec/");
    assert_eq!(suite_hash(&alone.cases), builtin_only);
    // Content counts: another expectation is another suite.
    let edited = tempfile::tempdir().expect("temp dir");
    let text = std::fs::read_to_string(own_folder().join("counting.yaml"))
        .expect("the example")
        .replace("s3: {returned: 4}", "s3: {returned: 5}");
    std::fs::write(edited.path().join("counting.yaml"), text).expect("write");
    let changed =
        load_folders(Some(&root.join("spec")), &[edited.path().to_path_buf()]).expect("folders");
    assert_ne!(suite_hash(&changed.cases), suite_hash(&here.cases));
}
