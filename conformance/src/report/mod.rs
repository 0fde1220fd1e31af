//! Rendering a run: one typed model ([`model`]) and its views, each a module of its own that
//! imports only the model: what the terminal shows ([`terminal`]), `report.jsonl`
//! ([`jsonl`], also read back), `summary.md` ([`markdown`]), `junit.xml` ([`junit`]) and
//! `report.html` ([`html`]). [`write_all`] writes the files.
//!
//! The JSON-lines report is the source of truth: a header, one record per cell, and a footer
//! with the counts and `"complete": true`, or, for an interrupted run ([`Model::interrupted`]),
//! `"complete": false` and why; every view of such a run says "interrupted after N of M
//! cells". A report without its footer is invalid (the run was cut short without saying so).
//! The other files are views of the same data. [`write_all`] writes them atomically;
//! [`clear`] removes an earlier run's before a new one starts.
//!
//! The functions below take a run (and its cases) as they always did, so callers need not
//! build a [`Model`]; each builds one for its view.

pub mod badge;
pub mod cite;
pub mod compare;
pub mod detail;
pub mod explain;
pub mod html;
pub mod jsonl;
pub mod junit;
pub mod markdown;
pub mod merge;
pub mod model;
pub mod oracle;
pub mod terminal;
pub mod timestamp;
pub mod trend;
mod write;

pub use jsonl::{Checked, JsonlError, check_jsonl, read, validate_jsonl};
pub use model::{
    CellKind, Compliance, Counts, Model, Part, diff_against, diff_against_oracle, differences,
    observation_yaml, suite_hash,
};
pub use oracle::OracleSnapshots;
pub use write::{HISTORIES, REPORT_FILES, ReportPaths, WriteError, clear, write_all, write_model};

use std::fmt::Write as _;

use indexmap::IndexMap;

use crate::runner::MatrixRun;
use crate::spec::LoadedCase;

/// The matrix as plain text: one row per case, one column per implementation.
pub fn terminal_matrix(run: &MatrixRun, cases: &[LoadedCase]) -> String {
    terminal::matrix(&Model::new(run, cases))
}

/// Every cell that is not a plain pass, with its reason and diff against the oracle.
pub fn details(run: &MatrixRun) -> String {
    terminal::details(&Model::new(run, &[]))
}

/// The JSON-lines report: header, one record per cell, footer.
pub fn jsonl(run: &MatrixRun, cases: &[LoadedCase]) -> String {
    jsonl::render(&Model::new(run, cases))
}

/// The Markdown summary (suitable for `$GITHUB_STEP_SUMMARY`).
pub fn markdown(run: &MatrixRun, cases: &[LoadedCase]) -> String {
    markdown::render(&Model::new(run, cases))
}

/// JUnit XML: one test suite per implementation, one test case per spec case.
pub fn junit(run: &MatrixRun) -> String {
    junit::render(&Model::new(run, &[]))
}

/// Counts of cells by kind per implementation, and compliance ([`counts_of`]), as JSON.
pub fn counts(run: &MatrixRun) -> serde_json::Value {
    serde_json::to_value(counts_of(run)).unwrap_or_default()
}

/// Counts of cells by kind per implementation, and compliance.
pub fn counts_of(run: &MatrixRun) -> Counts {
    Model::new(run, &[]).counts()
}

/// Per implementation, how many `contract` and how many `quirk` cases pass (see
/// [`Compliance`]), as JSON: `{NAME: {contract: {passed, cases}, quirk: {...}}}`.
pub fn compliance(run: &MatrixRun) -> serde_json::Value {
    serde_json::to_value(compliance_of(run)).unwrap_or_default()
}

/// Per implementation, in the run's order, how many `contract` and `quirk` cases pass.
pub fn compliance_of(run: &MatrixRun) -> IndexMap<String, Compliance> {
    Model::new(run, &[]).counts().compliance
}

/// One line per implementation: `name  contract 60/60, CPython quirks 8/10`.
pub fn compliance_lines(run: &MatrixRun) -> String {
    let mut out = String::new();
    for s in &Model::new(run, &[]).implementations {
        let (contract, quirk) = (s.compliance.contract, s.compliance.quirk);
        let _ = writeln!(
            out,
            "  {:24} contract {}/{}, CPython quirks {}/{}",
            s.implementation.name, contract.passed, contract.cases, quirk.passed, quirk.cases
        );
    }
    out
}
