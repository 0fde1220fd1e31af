//! The report views of an interrupted run: a run of two cases on two implementations cut
//! short by SIGINT after 3 of its 4 cells. Every view says so prominently; the JSON lines end
//! with a footer that says the report is incomplete and why, which reads back as valid. The
//! views of complete runs are pinned, unchanged, by `report_views.rs`.

// Test code: a failed write is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use conformance::cancel::Interruption;
use conformance::implementations::ORACLE;
use conformance::report::{self, Model};
use conformance::runner::{CaseResult, ImplementationReport, MatrixRun};
use conformance::spec::LoadedCase;
use conformance::spec::load::{Suite, load_str};
use conformance::verdict::{Status, Verdict};
use serde_json::json;

const BLOCKING: &str = "format: 1
area: blocking
cases:
  - id: BLK-1
    claim: apply returns the task's value.
    cite: [{doc: 'library/multiprocessing.html#multiprocessing.pool.Pool.apply'}]
    tags: [contract]
    steps:
      - apply: {task: 5}
    expect: {steps: {s1: {returned: 5}}}
  - id: BLK-2
    claim: apply returns another value.
    cite: [{doc: 'library/multiprocessing.html#multiprocessing.pool.Pool.apply'}]
    tags: [contract]
    steps:
      - apply: {task: 6}
    expect: {steps: {s1: {returned: 6}}}
";

const OTHER: &str = "rust-ref";

fn cases() -> Vec<LoadedCase> {
    let mut suite = Suite::default();
    load_str(Path::new("spec/blocking.yaml"), BLOCKING, &mut suite);
    assert!(suite.errors.is_empty(), "{:?}", suite.errors);
    suite.cases
}

fn cell(case: &LoadedCase, imp: &str, status: Status, verdict: Verdict) -> CaseResult {
    CaseResult {
        case: case.id().to_owned(),
        area: case.area,
        quirk: case.is_quirk(),
        implementation: imp.to_owned(),
        status,
        verdict,
        reason: (status != Status::Pass).then(|| "step s1 returned 7, expected 6".into()),
        expected: None,
        fault: None,
        observation: Some(json!({"steps": {"s1": {"returned": 5}}})),
        unstable: None,
        history: None,
        duration_ms: 10,
    }
}

/// Three of four cells finished: BLK-2 on rust-ref was in flight when SIGINT came.
fn run(cases: &[LoadedCase]) -> MatrixRun {
    let implementation = |name: &str| ImplementationReport {
        name: name.into(),
        info: None,
        capabilities: vec![],
    };
    MatrixRun {
        implementations: vec![implementation(ORACLE), implementation(OTHER)],
        results: vec![
            cell(&cases[0], ORACLE, Status::Pass, Verdict::Pass),
            cell(&cases[0], OTHER, Status::Pass, Verdict::Pass),
            cell(&cases[1], ORACLE, Status::Fail, Verdict::Unexpected),
        ],
        wall: Duration::from_millis(1234),
    }
}

fn interruption() -> Option<Interruption> {
    Some(Interruption {
        signal: "SIGINT".into(),
        finished: 3,
        planned: 4,
    })
}

/// The page's title and header: the rest is the style, the matrix and the script, as in
/// any run.
fn html_top(page: &str) -> String {
    let part = |from: &str, to: &str| {
        let start = page.find(from).unwrap();
        let end = start + page[start..].find(to).unwrap() + to.len();
        page[start..end].to_owned()
    };
    format!(
        "{}\n{}",
        part("<title>", "</title>"),
        part("<header>", "</header>")
    )
}

#[test]
fn every_view_of_an_interrupted_run_says_so() {
    let cases = cases();
    let run = run(&cases);
    let model = Model::new(&run, &cases).interrupted(interruption());
    insta::assert_snapshot!("markdown", report::markdown::render(&model));
    insta::assert_snapshot!("junit", report::junit::render(&model));
    insta::assert_snapshot!("jsonl", report::jsonl::render(&model));
    let page = report::html::page(&model);
    insta::assert_snapshot!("html_top", html_top(&page));

    let headline = "Interrupted (SIGINT) after 3 of 4 cells";
    assert!(report::markdown::render(&model).contains(headline));
    assert!(page.contains(headline));
    assert!(report::junit::render(&model).contains("interrupted (SIGINT) after 3 of 4 cells"));
}

#[test]
fn an_interrupted_report_reads_back_as_valid_and_incomplete() {
    let cases = cases();
    let run = run(&cases);
    let out = tempfile::tempdir().unwrap();
    let model = Model::new(&run, &cases).interrupted(interruption());
    let paths = report::write_model(out.path(), &model).unwrap();
    let text = std::fs::read_to_string(&paths.jsonl).unwrap();
    assert_eq!(report::validate_jsonl(&text).unwrap(), 3);
    let checked = report::check_jsonl(&text).unwrap();
    assert_eq!(checked.interrupted, interruption());
    let back = report::read(&text).unwrap();
    assert!(!back.is_complete());
    assert_eq!(back.footer.interrupted, interruption());
    assert_eq!(back.records.len(), 3);

    // The same run, not interrupted, renders as any complete run: no trace of the above.
    let whole = Model::new(&run, &cases).interrupted(None);
    let text = report::jsonl::render(&whole);
    assert_eq!(text, report::jsonl(&run, &cases));
    assert!(report::read(&text).unwrap().is_complete());
    for view in [
        report::markdown::render(&whole),
        report::junit::render(&whole),
        report::html::page(&whole),
    ] {
        assert!(!view.to_lowercase().contains("interrupted"));
    }
}
