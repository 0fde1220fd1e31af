//! Replays the whole suite on the built-in implementations and compares every observation
//! with its committed snapshot in `fixtures/snapshots/<implementation>/<case>.snap`.
//!
//! CPython-fork's snapshots are the oracle; the others record how each implementation's
//! observation differs (the reports show those differences as diffs). Any change fails the
//! test; review with `cargo insta review` (or `INSTA_UPDATE=always`, then `git diff`). CI
//! never writes snapshots: insta runs with `INSTA_UPDATE=no` there.

use std::panic::{AssertUnwindSafe, catch_unwind};

use conformance::expectations::ExpectationFile;
use conformance::implementations::{build_rust_ref, builtin, find_python};
use conformance::runner::{RunOptions, run_matrix};
use conformance::spec::load_dir;
use conformance::workspace_root;

#[test]
fn every_observation_matches_its_snapshot_and_every_verdict_is_expected() {
    let root = workspace_root();
    let suite = load_dir(&root.join("spec"));
    assert!(suite.errors.is_empty(), "spec errors: {:#?}", suite.errors);
    let ids: Vec<&str> = suite.cases.iter().map(|c| c.id()).collect();
    let python = find_python().expect("the CPython drivers need python3");
    let rust_ref = build_rust_ref(&root).expect("building the rust-ref driver");
    let impls: Vec<_> = builtin(&root, &python, Some(&rust_ref))
        .into_iter()
        .map(|imp| {
            let path = root
                .join("fixtures/expectations")
                .join(format!("{}.yaml", imp.name));
            let exp = ExpectationFile::load(&path, &imp.name, &ids).expect("expectation file");
            (imp, exp)
        })
        .collect();
    let options = RunOptions {
        history_dir: Some(root.join("target/conformance/test-histories")),
        ..RunOptions::default()
    };
    let run = run_matrix(&suite.cases, &impls, &options, &|_| {});

    let unexpected: Vec<String> = run
        .unexpected()
        .map(|r| {
            format!(
                "{} on {}: {:?} ({})",
                r.case,
                r.implementation,
                r.status,
                r.reason.as_deref().unwrap_or("")
            )
        })
        .collect();

    let mut mismatched = Vec::new();
    for r in &run.results {
        let Some(case) = suite.cases.iter().find(|c| c.id() == r.case) else {
            continue;
        };
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(root.join("fixtures/snapshots").join(&r.implementation));
        settings.set_prepend_module_to_snapshot(false);
        settings.set_omit_expression(true);
        settings.set_description(format!(
            "{} on {}: {}",
            r.case, r.implementation, case.case.claim
        ));
        let checked = catch_unwind(AssertUnwindSafe(|| {
            settings.bind(|| insta::assert_yaml_snapshot!(r.case.clone(), &r.observation));
        }));
        if checked.is_err() {
            mismatched.push(format!("{} on {}", r.case, r.implementation));
        }
    }

    assert!(
        unexpected.is_empty() && mismatched.is_empty(),
        "unexpected verdicts:\n  {}\nobservations that differ from their snapshots:\n  {}",
        unexpected.join("\n  "),
        mismatched.join("\n  ")
    );
}
