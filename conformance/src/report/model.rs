//! The report model: what every view shows of a run, computed once.
//!
//! A run is a list of results; the views need more than that: each cell's kind (one
//! [`CellKind`] names every label a report shows), its diff against the oracle, the counts and
//! contract/quirk compliance per implementation, the suite's fingerprint. They are derived
//! here, so no view re-derives (and no two views disagree about) any of them.

use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap, HashSet};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use similar::TextDiff;

use super::oracle::OracleSnapshots;
use crate::cancel::Interruption;
use crate::implementations::ORACLE;
use crate::runner::{CaseResult, ImplementationReport, MatrixRun};
use crate::shard::ShardRun;
use crate::spec::{LoadedCase, Source};
use crate::verdict::{Status, Verdict};

/// The kind of a cell: the one vocabulary of labels every view uses.
///
/// A cell's kind is its verdict, or its status when the verdict is unexpected or the case did
/// not apply, or `unstable` when repeated runs disagreed ([`CellKind::of`]). The Markdown and
/// JUnit views show the judged kind even of an unstable cell ([`CellKind::judged`]); their
/// reason text carries the instability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CellKind {
    /// Passed, as expected.
    Pass,
    /// The case's versions exclude this implementation's language version; not run.
    NotApplicable,
    /// Did not pass, as the expectation file says.
    ExpectedFail,
    /// Passed although the expectation file says it should not.
    UnexpectedPass,
    /// Passed, yet unexpected: its regression snapshot changed. Counted and coloured as a
    /// pass (its status is pass), labelled `CHANGED` in the matrices.
    Changed,
    Fail,
    Error,
    Crash,
    Timeout,
    Unsupported,
    /// Repeated runs (`--verify`) observed different things.
    Unstable,
}

impl CellKind {
    /// Every kind.
    pub const ALL: [CellKind; 11] = [
        CellKind::Pass,
        CellKind::NotApplicable,
        CellKind::ExpectedFail,
        CellKind::UnexpectedPass,
        CellKind::Changed,
        CellKind::Fail,
        CellKind::Error,
        CellKind::Crash,
        CellKind::Timeout,
        CellKind::Unsupported,
        CellKind::Unstable,
    ];

    /// The kinds as counted, in legend order: every kind but [`CellKind::Changed`], which
    /// counts as a pass.
    pub const COUNTED: [CellKind; 10] = [
        CellKind::Pass,
        CellKind::NotApplicable,
        CellKind::ExpectedFail,
        CellKind::UnexpectedPass,
        CellKind::Fail,
        CellKind::Error,
        CellKind::Crash,
        CellKind::Timeout,
        CellKind::Unsupported,
        CellKind::Unstable,
    ];

    /// The kind of a result as counted and coloured: `unstable` first.
    pub fn of(r: &CaseResult) -> CellKind {
        if r.unstable.is_some() {
            CellKind::Unstable
        } else {
            CellKind::judged(r.status, r.verdict)
        }
    }

    /// The kind of a status and its verdict, whether or not repeated runs agreed.
    pub fn judged(status: Status, verdict: Verdict) -> CellKind {
        match verdict {
            Verdict::Pass if status == Status::NotApplicable => CellKind::NotApplicable,
            Verdict::Pass => CellKind::Pass,
            Verdict::ExpectedFail => CellKind::ExpectedFail,
            Verdict::UnexpectedPass => CellKind::UnexpectedPass,
            Verdict::Unexpected => match status {
                Status::Pass => CellKind::Changed,
                Status::Fail => CellKind::Fail,
                Status::Error => CellKind::Error,
                Status::Crash => CellKind::Crash,
                Status::Timeout => CellKind::Timeout,
                Status::Unsupported => CellKind::Unsupported,
                Status::NotApplicable => CellKind::NotApplicable,
            },
        }
    }

    /// The kind a status names on its own, before an expectation file judges it: what
    /// COMPLIANCE.md's cells show, where every divergence is listed with its reason.
    pub fn of_status(status: Status) -> CellKind {
        match status {
            Status::Pass => CellKind::Pass,
            Status::Fail => CellKind::Fail,
            Status::Error => CellKind::Error,
            Status::Crash => CellKind::Crash,
            Status::Timeout => CellKind::Timeout,
            Status::Unsupported => CellKind::Unsupported,
            Status::NotApplicable => CellKind::NotApplicable,
        }
    }

    /// The key it is counted under (`report.jsonl`'s counts) and styled by (CSS `v-KEY`).
    pub fn key(self) -> &'static str {
        match self {
            CellKind::Pass | CellKind::Changed => "pass",
            CellKind::NotApplicable => "not-applicable",
            CellKind::ExpectedFail => "expected-fail",
            CellKind::UnexpectedPass => "unexpected-pass",
            CellKind::Fail => "fail",
            CellKind::Error => "error",
            CellKind::Crash => "crash",
            CellKind::Timeout => "timeout",
            CellKind::Unsupported => "unsupported",
            CellKind::Unstable => "unstable",
        }
    }

    /// The label of the text matrices (terminal, Markdown) and JUnit: upper case where
    /// something needs attention.
    pub fn label(self) -> &'static str {
        match self {
            CellKind::Pass => "pass",
            CellKind::NotApplicable => "n/a",
            CellKind::ExpectedFail => "expected-fail",
            CellKind::UnexpectedPass => "UNEXPECTED-PASS",
            CellKind::Changed => "CHANGED",
            CellKind::Fail => "FAIL",
            CellKind::Error => "ERROR",
            CellKind::Crash => "CRASH",
            CellKind::Timeout => "TIMEOUT",
            CellKind::Unsupported => "UNSUPPORTED",
            CellKind::Unstable => "UNSTABLE",
        }
    }

    /// The short label of an HTML matrix cell (a few characters fit its column).
    pub fn short(self) -> &'static str {
        match self {
            CellKind::Pass | CellKind::Changed => "ok",
            CellKind::NotApplicable => "n/a",
            CellKind::ExpectedFail => "xfail",
            CellKind::UnexpectedPass => "XPASS",
            CellKind::Fail => "FAIL",
            CellKind::Error => "ERR",
            CellKind::Crash => "CRASH",
            CellKind::Timeout => "TIME",
            CellKind::Unsupported => "n/s",
            CellKind::Unstable => "UNST",
        }
    }

    /// What it means, for the HTML legend.
    pub fn means(self) -> &'static str {
        match self {
            CellKind::Pass | CellKind::Changed => "passed, as expected",
            CellKind::NotApplicable => {
                "the case's versions say its claim does not hold for this language version; not run"
            }
            CellKind::ExpectedFail => "did not pass, as the implementation's expectation file says",
            CellKind::UnexpectedPass => {
                "passed although the expectation file says it should not: remove the entry"
            }
            CellKind::Fail => "the observation contradicts the case's expectations",
            CellKind::Error => {
                "the driver could not run the program, or broke the coordinator's protocol"
            }
            CellKind::Crash => "the driver died, exited early or printed garbage",
            CellKind::Timeout => "the liveness guard expired",
            CellKind::Unsupported => {
                "the implementation lacks a capability the case requires (and was expected to have it)"
            }
            CellKind::Unstable => "repeated runs (--verify) observed different things",
        }
    }
}

/// One cell of the matrix, with what the views derive from it.
#[derive(Debug, Clone)]
pub struct Cell<'a> {
    pub result: &'a CaseResult,
    /// As counted and coloured ([`CellKind::of`]).
    pub kind: CellKind,
    run: &'a MatrixRun,
    /// The oracle's committed observations, for a case the oracle did not run here.
    oracle: Option<&'a OracleSnapshots>,
    /// Computed when first asked for: counting needs no diffs.
    diff: OnceCell<Option<String>>,
}

impl Cell<'_> {
    /// The kind the Markdown and JUnit views show ([`CellKind::judged`]).
    pub fn judged(&self) -> CellKind {
        CellKind::judged(self.result.status, self.result.verdict)
    }

    /// The unified diff of its observation against the oracle's ([`diff_against_oracle`]),
    /// or, when the oracle did not run this case, against its committed snapshot
    /// ([`Model::oracle`]).
    pub fn diff(&self) -> Option<&str> {
        self.diff
            .get_or_init(|| diff_against(self.run, self.result, self.oracle))
            .as_deref()
    }
}

/// How many cases of one kind (contract or quirk) an implementation passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Cells with status pass.
    pub passed: usize,
    pub cases: usize,
}

impl Part {
    /// Passed, in percent of the cases (100 of none).
    pub fn percent(self) -> usize {
        (self.passed * 100).checked_div(self.cases).unwrap_or(100)
    }
}

/// Per implementation, how many `contract` and how many `quirk` cases pass. Contract cases say
/// what every Pool must do; quirk cases record what CPython happens to do (hang where an error
/// would be better, say), so an implementation that differs there is told it differs, not
/// that it is broken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compliance {
    pub contract: Part,
    pub quirk: Part,
}

impl Compliance {
    fn of<'a>(results: impl Iterator<Item = &'a CaseResult> + Clone) -> Compliance {
        let part = |quirk: bool| {
            let of = results.clone().filter(|r| r.quirk == quirk);
            Part {
                passed: of.clone().filter(|r| r.status == Status::Pass).count(),
                cases: of.count(),
            }
        };
        Compliance {
            contract: part(false),
            quirk: part(true),
        }
    }
}

/// One implementation's column, summed up.
#[derive(Debug, Clone)]
pub struct ImplementationSummary<'a> {
    pub implementation: &'a ImplementationReport,
    /// Cells with verdict pass.
    pub passed: usize,
    pub expected_fail: usize,
    /// Cells whose verdict fails the run.
    pub unexpected: usize,
    pub compliance: Compliance,
}

/// The counts of `report.jsonl`'s footer (and of xtask's closing lines).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub cells: usize,
    pub unexpected: usize,
    /// Per implementation, cells by [`CellKind::key`].
    pub per_implementation: BTreeMap<String, BTreeMap<String, usize>>,
    pub compliance: IndexMap<String, Compliance>,
}

/// A run and its cases, with everything the views derive from them.
#[derive(Debug, Clone)]
pub struct Model<'a> {
    pub run: &'a MatrixRun,
    /// The cases in suite order (empty for the views that need none).
    pub cases: &'a [LoadedCase],
    /// One per result, in the run's order.
    pub cells: Vec<Cell<'a>>,
    /// One per implementation, in the run's order.
    pub implementations: Vec<ImplementationSummary<'a>>,
    /// Cells whose verdict fails the run.
    pub unexpected: usize,
    /// Set when the run was cut short ([`Model::interrupted`]): every view says so.
    pub interruption: Option<Interruption>,
    /// When the run started ([`Model::started`]; `timestamp.rs`'s form), if known.
    pub started: Option<String>,
    /// Set for one shard of a run ([`Model::shard`]): the report's header names it.
    pub shard: Option<ShardRun>,
    /// The first cell of each (case, implementation), by position in `cells`.
    index: HashMap<(&'a str, &'a str), usize>,
}

impl<'a> Model<'a> {
    pub fn new(run: &'a MatrixRun, cases: &'a [LoadedCase]) -> Model<'a> {
        let mut index = HashMap::new();
        for (n, r) in run.results.iter().enumerate() {
            index
                .entry((r.case.as_str(), r.implementation.as_str()))
                .or_insert(n);
        }
        // A case whose oracle is the maintainer's snapshots is never diffed against CPython.
        let own_oracle: HashSet<&str> = cases
            .iter()
            .filter(|c| !c.case.oracle.is_cpython())
            .map(LoadedCase::id)
            .collect();
        let cells = run
            .results
            .iter()
            .map(|r| Cell {
                result: r,
                kind: CellKind::of(r),
                run,
                oracle: None,
                diff: if own_oracle.contains(r.case.as_str()) {
                    OnceCell::from(None)
                } else {
                    OnceCell::new()
                },
            })
            .collect();
        let implementations = run
            .implementations
            .iter()
            .map(|i| {
                let mine = run.results.iter().filter(|r| r.implementation == i.name);
                ImplementationSummary {
                    implementation: i,
                    passed: mine.clone().filter(|r| r.verdict == Verdict::Pass).count(),
                    expected_fail: mine
                        .clone()
                        .filter(|r| r.verdict == Verdict::ExpectedFail)
                        .count(),
                    unexpected: mine.clone().filter(|r| !r.verdict.is_ok()).count(),
                    compliance: Compliance::of(mine),
                }
            })
            .collect();
        Model {
            run,
            cases,
            cells,
            implementations,
            unexpected: run.unexpected().count(),
            interruption: None,
            started: None,
            shard: None,
            index,
        }
    }

    /// The model of a run that `interruption` cut short (`None`: a whole run).
    pub fn interrupted(mut self, interruption: Option<Interruption>) -> Model<'a> {
        self.interruption = interruption;
        self
    }

    /// The model of a run that started at `started` (RFC 3339, UTC).
    pub fn started(mut self, started: Option<String>) -> Model<'a> {
        self.started = started;
        self
    }

    /// The model of shard `shard` of a run (`None`: a whole run, or a merged one).
    pub fn shard(mut self, shard: Option<ShardRun>) -> Model<'a> {
        self.shard = shard;
        self
    }

    /// Diffs against `oracle`'s committed observations where the oracle did not run a case
    /// (the header then says `cpython-fork (committed snapshot)`).
    pub fn oracle(mut self, oracle: &'a OracleSnapshots) -> Model<'a> {
        // A cell whose diff is already settled (a case whose oracle is the maintainer's own
        // snapshots) keeps it.
        for cell in self.cells.iter_mut().filter(|c| c.diff.get().is_none()) {
            cell.oracle = Some(oracle);
        }
        self
    }

    /// The cell of a case on an implementation (the first, should the run hold two).
    pub fn cell(&self, case: &str, implementation: &str) -> Option<&Cell<'a>> {
        self.index
            .get(&(case, implementation))
            .and_then(|&n| self.cells.get(n))
    }

    /// An implementation's cells, in the run's order.
    pub fn cells_of<'m>(&'m self, implementation: &'m str) -> impl Iterator<Item = &'m Cell<'a>> {
        self.cells
            .iter()
            .filter(move |c| c.result.implementation == implementation)
    }

    /// The cases' fingerprint ([`suite_hash`]).
    pub fn suite_hash(&self) -> String {
        suite_hash(self.cases)
    }

    /// The folders added with `--spec DIR` that cases of the run came from, in order.
    pub fn spec_folders(&self) -> Vec<String> {
        let mut folders: Vec<String> = Vec::new();
        for c in self.cases {
            if let Source::Added(_) = &c.source
                && !folders.contains(&c.source.describe())
            {
                folders.push(c.source.describe());
            }
        }
        folders
    }

    /// The added folder the case `id` came from; `None` for a built-in case.
    pub fn added_folder_of(&self, id: &str) -> Option<String> {
        let case = self.cases.iter().find(|c| c.id() == id)?;
        (!case.source.is_builtin()).then(|| case.source.describe())
    }

    /// The implementations' names, in column order.
    pub fn names(&self) -> Vec<&'a str> {
        self.run
            .implementations
            .iter()
            .map(|i| i.name.as_str())
            .collect()
    }

    /// Cells by kind per implementation, and compliance.
    pub fn counts(&self) -> Counts {
        let mut per_implementation: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for c in &self.cells {
            *per_implementation
                .entry(c.result.implementation.clone())
                .or_default()
                .entry(c.kind.key().to_owned())
                .or_default() += 1;
        }
        Counts {
            cells: self.cells.len(),
            unexpected: self.unexpected,
            per_implementation,
            compliance: self
                .implementations
                .iter()
                .map(|s| (s.implementation.name.clone(), s.compliance))
                .collect(),
        }
    }

    /// For each case, the implementations whose observation differs from the oracle's.
    pub fn differences(&self) -> Vec<(String, Vec<String>)> {
        differences(self.run, self.cases)
    }
}

/// A stable fingerprint of the suite (FNV-1a over ids and compiled programs), so reports of
/// different suites are never compared as if they were the same.
pub fn suite_hash(cases: &[LoadedCase]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for c in cases {
        let text = format!(
            "{}\n{}\n{}\n",
            c.id(),
            serde_json::to_string(&c.program).unwrap_or_default(),
            c.case.expect
        );
        // An added case's metadata, never its folder's path: the same cases give the same
        // hash on every machine, and the built-in suite's hash is what it always was.
        let text = if c.source.is_builtin() {
            text
        } else {
            format!(
                "{text}added\n{:?}\n{}\n",
                c.case.oracle,
                c.case.applies_to.join(",")
            )
        };
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// The YAML text of a cell's observation (empty when none was recorded).
pub fn observation_yaml(result: &CaseResult) -> String {
    result
        .observation
        .as_ref()
        .and_then(|o| serde_yaml::to_string(o).ok())
        .unwrap_or_default()
}

/// A unified diff of `result`'s observation against the oracle's for the same case, or
/// `None` when they are equal or the oracle did not run.
pub fn diff_against_oracle(run: &MatrixRun, result: &CaseResult) -> Option<String> {
    if result.implementation == ORACLE {
        return None;
    }
    let oracle = run.result(&result.case, ORACLE)?;
    let (a, b) = (observation_yaml(oracle), observation_yaml(result));
    if a == b {
        return None;
    }
    let diff = TextDiff::from_lines(&a, &b);
    Some(
        diff.unified_diff()
            .context_radius(2)
            .header(ORACLE, &result.implementation)
            .to_string(),
    )
}

/// [`diff_against_oracle`], falling back to `committed`'s snapshot of the case when the
/// oracle did not run it here.
pub fn diff_against(
    run: &MatrixRun,
    result: &CaseResult,
    committed: Option<&OracleSnapshots>,
) -> Option<String> {
    if result.implementation == ORACLE || run.result(&result.case, ORACLE).is_some() {
        return diff_against_oracle(run, result);
    }
    let oracle = committed?.observation(&result.case)?;
    let a = serde_yaml::to_string(&*oracle).unwrap_or_default();
    let b = observation_yaml(result);
    if a == b {
        return None;
    }
    Some(
        TextDiff::from_lines(&a, &b)
            .unified_diff()
            .context_radius(2)
            .header(
                &format!("{ORACLE} (committed snapshot)"),
                &result.implementation,
            )
            .to_string(),
    )
}

/// For each case, the implementations whose observation differs from the oracle's: the
/// version and start-method differences, at a glance. (Compares values, where
/// [`diff_against_oracle`] compares their text.)
pub fn differences(run: &MatrixRun, cases: &[LoadedCase]) -> Vec<(String, Vec<String>)> {
    cases
        .iter()
        .filter(|c| c.case.oracle.is_cpython())
        .filter_map(|c| {
            let oracle = run.result(c.id(), ORACLE)?;
            let differing: Vec<String> = run
                .results
                .iter()
                .filter(|r| r.case == c.id() && r.implementation != ORACLE)
                .filter(|r| r.observation.is_some() && r.observation != oracle.observation)
                .map(|r| r.implementation.clone())
                .collect();
            (!differing.is_empty()).then(|| (c.id().to_owned(), differing))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_every_label() {
        for k in CellKind::ALL {
            assert!(!k.key().is_empty() && !k.label().is_empty(), "{k:?}");
            assert!(!k.short().is_empty() && !k.means().is_empty(), "{k:?}");
        }
        // Every kind but CHANGED is counted under a key of its own.
        let keys: std::collections::BTreeSet<&str> =
            CellKind::COUNTED.iter().map(|k| k.key()).collect();
        assert_eq!(keys.len(), CellKind::COUNTED.len());
        assert!(!CellKind::COUNTED.contains(&CellKind::Changed));
        assert_eq!(CellKind::Changed.key(), CellKind::Pass.key());
    }

    #[test]
    fn kinds_of_statuses_and_verdicts() {
        use CellKind as K;
        let na = Status::NotApplicable;
        assert_eq!(K::judged(na, Verdict::Pass), K::NotApplicable);
        assert_eq!(K::judged(na, Verdict::Pass).label(), "n/a");
        assert_eq!(K::judged(na, Verdict::Unexpected), K::NotApplicable);
        assert_eq!(K::judged(na, Verdict::UnexpectedPass), K::UnexpectedPass);
        assert_eq!(K::judged(Status::Pass, Verdict::Unexpected), K::Changed);
        assert_eq!(
            K::judged(Status::Pass, Verdict::Unexpected).label(),
            "CHANGED"
        );
        assert_eq!(
            K::judged(Status::Timeout, Verdict::ExpectedFail),
            K::ExpectedFail
        );
        assert_eq!(K::judged(Status::Timeout, Verdict::Unexpected), K::Timeout);
        // The key of an unexpected status is the status's own name.
        for s in [
            Status::Fail,
            Status::Error,
            Status::Crash,
            Status::Timeout,
            Status::Unsupported,
            Status::NotApplicable,
            Status::Pass,
        ] {
            assert_eq!(K::judged(s, Verdict::Unexpected).key(), s.as_str());
        }
    }
}
