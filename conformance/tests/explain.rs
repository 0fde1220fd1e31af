//! `explain`'s text, pinned: WRK-004 (the initializer runs in a worker process), which
//! ThreadPool fails as its expectation file says, explained from a report of a run without
//! the oracle, so its diff comes from the committed `cpython-fork` snapshot; an unknown id,
//! which suggests the closest ids; and a case with no report yet.

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use conformance::expectations::Expected;
use conformance::report::cite::SourceIndex;
use conformance::report::explain::{Explain, Statuses, find_case, render};
use conformance::report::oracle::parse_snap;
use conformance::report::{self, Model, OracleSnapshots};
use conformance::runner::{CaseResult, ImplementationReport, MatrixRun};
use conformance::spec::{LoadedCase, load_dir};
use conformance::verdict::{Status, Verdict};
use conformance::workspace_root;

/// A copy of CPython's sources holding the one function WRK-004 cites, at line 3.
const POOL_PY: &str = "import os\n\ndef worker(inqueue, outqueue):\n    pass\n";

fn suite() -> Vec<LoadedCase> {
    let suite = load_dir(&workspace_root().join("spec"));
    assert!(suite.errors.is_empty(), "{:?}", suite.errors);
    suite.cases
}

fn committed(implementation: &str, case: &str) -> serde_json::Value {
    let path = workspace_root()
        .join("fixtures/snapshots")
        .join(implementation)
        .join(format!("{case}.snap"));
    parse_snap(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn result(case: &LoadedCase, implementation: &str, status: Status) -> CaseResult {
    CaseResult {
        case: case.id().to_owned(),
        area: case.area,
        quirk: case.is_quirk(),
        implementation: implementation.to_owned(),
        status,
        verdict: Verdict::Pass,
        reason: None,
        expected: None,
        fault: None,
        observation: Some(committed(implementation, case.id())),
        unstable: None,
        history: Some(PathBuf::from(format!(
            "target/conformance/histories/{implementation}/{}.json",
            case.id()
        ))),
        duration_ms: 5,
    }
}

/// A run of WRK-004 on ThreadPool and rust-ref, written as `report.jsonl` and read back.
fn recorded_run(case: &LoadedCase) -> MatrixRun {
    let mut threadpool = result(case, "cpython-threadpool", Status::Fail);
    threadpool.reason = Some("expect.worker_processes: expected 1, observed 0".to_owned());
    threadpool.expected = Some(Expected {
        status: Status::Fail,
        reason: "The initializer and the task run on threads of the parent, not in a worker \
                 process."
            .to_owned(),
    });
    threadpool.verdict = Verdict::ExpectedFail;
    let mut rust_ref = result(case, "rust-ref", Status::Pass);
    rust_ref.history = None;
    let implementations = ["cpython-threadpool", "rust-ref"]
        .iter()
        .map(|name| ImplementationReport {
            name: (*name).to_owned(),
            info: None,
            capabilities: Vec::new(),
        })
        .collect();
    let run = MatrixRun {
        implementations,
        results: vec![threadpool, rust_ref],
        wall: Duration::from_millis(10),
    };
    let text = report::jsonl(&run, std::slice::from_ref(case));
    let read = report::read(&text).unwrap();
    MatrixRun {
        implementations: read.header.implementations,
        results: read.records.into_iter().map(|r| r.result).collect(),
        wall: Duration::from_millis(read.footer.wall_ms),
    }
}

#[test]
fn a_case_threadpool_fails_is_explained_with_its_diff_against_the_committed_oracle() {
    let cases = suite();
    let case = find_case(&cases, "WRK-004").unwrap();
    let run = recorded_run(case);
    let oracle = OracleSnapshots::committed(&workspace_root());
    let model = Model::new(&run, &cases).oracle(&oracle);
    let sources = SourceIndex::new("v3.12.0", Some(POOL_PY), None);
    let text = render(&Explain {
        case,
        root: &workspace_root(),
        sources: &sources,
        statuses: Statuses::From {
            model: &model,
            source: "target/conformance/report.jsonl".to_owned(),
        },
        only: None,
    });
    assert!(
        text.contains("--- cpython-fork (committed snapshot)\n    +++ cpython-threadpool"),
        "{text}"
    );
    insta::assert_snapshot!("wrk_004_on_threadpool", text);

    // --impl narrows the statuses to one implementation.
    let one = render(&Explain {
        case,
        root: &workspace_root(),
        sources: &sources,
        statuses: Statuses::From {
            model: &model,
            source: "target/conformance/report.jsonl".to_owned(),
        },
        only: Some("rust-ref"),
    });
    assert!(
        one.ends_with("results (from target/conformance/report.jsonl):\n  rust-ref  pass\n"),
        "{one}"
    );
}

#[test]
fn an_unknown_id_suggests_the_closest_ids_and_case_does_not_matter() {
    let cases = suite();
    let errors: Vec<String> = ["BLK-1", "ord-04", "NOTHING-LIKE-IT"]
        .iter()
        .map(|id| find_case(&cases, id).unwrap_err().to_string())
        .collect();
    insta::assert_snapshot!("unknown_ids", errors.join("\n"));
    assert_eq!(find_case(&cases, "wrk-004").unwrap().id(), "WRK-004");
}

#[test]
fn without_a_report_the_claim_and_program_are_still_explained() {
    let cases = suite();
    let case = find_case(&cases, "WRK-004").unwrap();
    let text = render(&Explain {
        case,
        root: &workspace_root(),
        sources: &SourceIndex::none(),
        statuses: Statuses::Missing("no report yet at target/conformance/report.jsonl".into()),
        only: None,
    });
    assert!(
        text.starts_with("WRK-004 (workers, contract; spec/workers.yaml)\n"),
        "{text}"
    );
    assert!(text.contains("  steps: s1  apply of t\n"), "{text}");
    assert!(
        text.ends_with("\nresults: no report yet at target/conformance/report.jsonl\n"),
        "{text}"
    );
}
