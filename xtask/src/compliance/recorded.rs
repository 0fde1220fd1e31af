//! Test-only: the recorded run of `xtask/tests/data/compliance-run.json`, read back into what
//! `cargo xtask compliance` has after running: the first run's results as the matrix,
//! every run's statuses, the subjects that ran and those that did not.

use std::time::Duration;

use conformance::expectations::Expected;
use conformance::runner::{CaseResult, MatrixRun};
use conformance::verdict::{Status, Verdict};
use serde::Deserialize;

use super::measurement::CaseFacts;
use super::node::NodeFacts;
use super::packages::Installed;
use super::render::{Header, SuiteFacts};
use super::subjects::{Subject, Unavailable, subjects};
use super::table::{Judged, Statuses};

#[derive(Deserialize)]
struct File {
    interpreter: String,
    pypy: Option<String>,
    #[serde(default)]
    node: Option<NodeFacts>,
    installed: String,
    suite_hash: String,
    cases: Vec<CaseFacts>,
    subjects: Vec<String>,
    unavailable: Vec<NotRun>,
    runs: Vec<Vec<Cell>>,
}

#[derive(Deserialize)]
struct NotRun {
    spec: String,
    why: String,
}

#[derive(Deserialize)]
struct Cell {
    case: String,
    implementation: String,
    status: Status,
    reason: Option<String>,
    expected: Option<Expected>,
    unstable: Option<String>,
}

pub use super::measurement::Measurement as Recorded;

fn subject(spec: &str) -> Subject {
    subjects()
        .into_iter()
        .find(|s| s.spec == spec)
        .unwrap_or_else(|| panic!("{spec} is not a subject"))
}

pub fn load() -> Recorded {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/compliance-run.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let file: File = serde_json::from_str(&text).unwrap();
    let case = |id: &str| file.cases.iter().find(|c| c.id == id).unwrap();
    let mut statuses = Statuses::new();
    for run in &file.runs {
        for cell in run {
            statuses
                .entry((cell.implementation.clone(), cell.case.clone()))
                .or_default()
                .insert(cell.status);
        }
    }
    let results = file.runs[0]
        .iter()
        .map(|cell| CaseResult {
            case: cell.case.clone(),
            area: case(&cell.case).area,
            quirk: case(&cell.case).quirk,
            implementation: cell.implementation.clone(),
            status: cell.status,
            verdict: Verdict::judge(cell.status, cell.expected.as_ref().map(|e| e.status)),
            reason: cell.reason.clone(),
            expected: cell.expected.clone(),
            fault: None,
            observation: None,
            unstable: cell.unstable.clone(),
            history: None,
            duration_ms: 0,
        })
        .collect();
    Recorded {
        header: Header {
            interpreter: file.interpreter,
            pypy: file.pypy,
            node: file.node,
            installed: Installed::from_listing(&file.installed),
            runs: file.runs.len() as u32,
        },
        suite: SuiteFacts::of(
            file.cases.iter().map(|c| (c.area, c.quirk)),
            file.suite_hash,
        ),
        cases: file.cases,
        matrix: MatrixRun {
            implementations: Vec::new(),
            results,
            wall: Duration::ZERO,
        },
        statuses,
        ran: file
            .subjects
            .iter()
            .map(|spec| {
                let s = subject(spec);
                let name = s.exec_name.unwrap_or(spec).to_owned();
                (s, name)
            })
            .collect(),
        unavailable: file
            .unavailable
            .into_iter()
            .map(|u| Unavailable {
                subject: subject(&u.spec),
                why: u.why,
            })
            .collect(),
    }
}

impl Recorded {
    pub fn judged(&self, implementation: &str, case: &str) -> Judged<'_> {
        let r = self
            .matrix
            .results
            .iter()
            .find(|r| r.implementation == implementation && r.case == case)
            .unwrap();
        Judged::of(r, &self.statuses)
    }
}
