//! The differential fuzzer, exercised for real: a short run against CPython that must
//! agree, a run against ThreadPool that must find (and shrink) the process-identity
//! divergence, a run whose result does not depend on its number of lanes, and the fuzz
//! corpus replayed on CPython and rust-ref.

use std::path::Path;

use conformance::expectations::ExpectationFile;
use conformance::fuzz::{self, FuzzOptions, PairOutcome, emit};
use conformance::implementations::{
    Implementation, build_rust_ref, builtin, find_python, parse_spec,
};
use conformance::runner::{RunOptions, WarmDriver, run_matrix};
use conformance::spec::{Suite, load::load_str, load_dir};
use conformance::workspace_root;

fn implementations() -> Vec<Implementation> {
    let root = workspace_root();
    let python = find_python().expect("the CPython drivers need python3");
    let rust_ref = build_rust_ref(&root).expect("building the rust-ref driver");
    builtin(&root, &python, Some(&rust_ref))
}

fn named(all: &[Implementation], name: &str) -> Implementation {
    all.iter()
        .find(|i| i.name == name)
        .cloned()
        .unwrap_or_else(|| panic!("no built-in implementation {name}"))
}

fn options(seed: u64, cases: u64) -> FuzzOptions {
    FuzzOptions {
        seed,
        cases: Some(cases),
        jobs: 2,
        ..FuzzOptions::default()
    }
}

#[test]
fn a_short_run_on_rust_ref_agrees_with_cpython() {
    let all = implementations();
    let summary = fuzz::fuzz(
        &named(&all, "cpython-fork"),
        &named(&all, "rust-ref"),
        &options(0xC1, 80),
        &|_| {},
    );
    assert_eq!(summary.programs, 80);
    if let Some(found) = &summary.found {
        panic!(
            "program #{} diverged: {:?}\nshrunk: {}",
            found.index,
            found.outcome,
            emit::program_file(&found.shrunk).unwrap_or_default()
        );
    }
}

#[test]
fn threadpool_is_caught_running_tasks_in_the_parent_and_the_case_is_ready_to_use() {
    let all = implementations();
    let oracle = named(&all, "cpython-fork");
    let mut opts = options(0x7EE7, 40);
    opts.shrink_runs = 60;
    let summary = fuzz::fuzz(&oracle, &named(&all, "cpython-threadpool"), &opts, &|_| {});
    let found = summary
        .found
        .expect("ThreadPool must diverge within 40 programs");
    assert!(
        summary.programs <= 10,
        "found only after {} programs",
        summary.programs
    );
    let PairOutcome::Diverge {
        oracle: observed,
        target: target_observed,
        differences,
    } = &found.outcome
    else {
        panic!("expected a divergence, got {:?}", found.outcome);
    };
    assert!(
        differences
            .iter()
            .any(|d| d.path.ends_with(".process") && d.target == Some(serde_json::json!("parent"))),
        "{differences:?}"
    );
    assert!(found.reproduced);
    assert!(
        found.shrunk.steps.len() <= 4 && found.shrunk.steps.len() < found.original.steps.len() + 1,
        "shrunk to {} steps",
        found.shrunk.steps.len()
    );

    // The written case loads like any spec file and passes on the oracle.
    let provenance = emit::Provenance {
        implementation: "cpython-threadpool".into(),
        oracle: "cpython-fork".into(),
        reproduce: "cargo xtask fuzz ...".into(),
        original_steps: found.original.steps.len(),
        shrink_runs: found.shrink_runs,
    };
    let text = emit::case_file(
        &found.shrunk,
        observed,
        target_observed,
        differences,
        &provenance,
    )
    .expect("the case serializes");
    let mut suite = Suite::default();
    load_str(Path::new("found.yaml"), &text, &mut suite);
    assert!(suite.errors.is_empty(), "{:#?}\n{text}", suite.errors);
    let case = &suite.cases[0];
    let mut driver = WarmDriver::new(oracle, ExpectationFile::default());
    let (result, _) = driver.run(case, &RunOptions::default());
    driver.stop();
    assert_eq!(
        result.status.as_str(),
        "pass",
        "{:?}\n{text}",
        result.reason
    );
}

/// A mutant of `fixtures/mutants` (its folder on PYTHONPATH).
fn mutant(name: &str) -> Implementation {
    let root = workspace_root();
    let python = find_python().expect("python3");
    let spec = format!("python:poolspec_mutants:{name}");
    let mut imp = parse_spec(&spec, &root, &python, &[]).expect("a python: spec");
    let folder = root.join("fixtures/mutants").display().to_string();
    imp.command.env.push(("PYTHONPATH".into(), folder));
    imp
}

#[test]
fn the_same_seed_finds_the_same_first_divergence_with_one_lane_or_four() {
    // `StarmapFirstElementOnly` passes only the first element of each tuple: of seed 3's
    // programs, #7 is the first whose `starmap` echoes a tuple of two elements. With four
    // lanes, programs above #7 run beside it and may finish (or diverge) first; the run
    // must still count and shrink exactly what one lane does.
    let all = implementations();
    let oracle = named(&all, "cpython-fork");
    let target = mutant("StarmapFirstElementOnly");
    let run = |jobs| {
        let mut opts = options(3, 40);
        opts.jobs = jobs;
        opts.shrink_runs = 12;
        fuzz::fuzz(&oracle, &target, &opts, &|_| {})
    };
    let (one, four) = (run(1), run(4));
    let index = |s: &fuzz::FuzzSummary| s.found.as_ref().map(|f| f.index);
    assert_eq!(index(&one), Some(7), "{:?}", one.found);
    assert_eq!(index(&four), index(&one));
    assert_eq!((one.programs, one.agreements), (8, 7));
    assert_eq!(
        (four.programs, four.agreements, four.steps),
        (8, 7, one.steps)
    );
    let shrunk = |s: &fuzz::FuzzSummary| {
        s.found
            .as_ref()
            .map(|f| emit::program_file(&f.shrunk).unwrap_or_default())
    };
    assert_eq!(shrunk(&four), shrunk(&one));
}

#[test]
fn the_fuzz_corpus_passes_on_cpython_and_rust_ref() {
    let root = workspace_root();
    let suite = load_dir(&root.join("fixtures/fuzz-corpus"));
    assert!(suite.errors.is_empty(), "{:#?}", suite.errors);
    assert!(!suite.cases.is_empty(), "the corpus is empty");
    let all = implementations();
    let impls: Vec<_> = ["cpython-fork", "rust-ref"]
        .iter()
        .map(|n| (named(&all, n), ExpectationFile::default()))
        .collect();
    let run = run_matrix(&suite.cases, &impls, &RunOptions::default(), &|_| {});
    let failed: Vec<String> = run
        .unexpected()
        .map(|r| format!("{} on {}: {:?}", r.case, r.implementation, r.reason))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}
