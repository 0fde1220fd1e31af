//! What COMPLIANCE.md says about each cell, and the tables built from that: per subject, the
//! passing counts (overall, contract, quirks, per area) and the divergences with their
//! reasons. Pure: it reads finished results and every run's statuses, so it is tested on a
//! recorded run (`render.rs`'s snapshot) without installing anything.
//!
//! An expectation entry whose reason starts with `Unstable:` declares the case unstable on
//! that implementation (a race inside it): the prefix is read once, here, into
//! [`Declared::Unstable`]; the YAML files keep their format.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use conformance::expectations::Expected;
use conformance::report::CellKind;
use conformance::runner::{CaseResult, MatrixRun};
use conformance::spec::Area;
use conformance::verdict::Status;

use super::subjects::Subject;

/// `(implementation, case)` → the statuses its runs had.
pub type Statuses = BTreeMap<(String, String), BTreeSet<Status>>;

/// Prefix of an expectation's reason that declares the case unstable on that implementation:
/// its status is not the same from run to run, so COMPLIANCE.md reports it as `unstable`
/// whatever one run observed.
const UNSTABLE_PREFIX: &str = "Unstable:";

/// What an implementation's expectation file says about a cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Declared<'a> {
    /// The case gets this status on the implementation, every run.
    Divergence(&'a Expected),
    /// The case's status changes from run to run; `reason` is the entry's reason without
    /// its `Unstable:` prefix.
    Unstable { reason: &'a str },
}

impl<'a> Declared<'a> {
    pub fn of(expected: &'a Expected) -> Declared<'a> {
        match expected.reason.strip_prefix(UNSTABLE_PREFIX) {
            Some(rest) => Declared::Unstable {
                reason: rest.trim(),
            },
            None => Declared::Divergence(expected),
        }
    }
}

/// What COMPLIANCE.md says about one cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Pass,
    /// The case's `versions` exclude the implementation's language version (PyPy's Python
    /// 3.9 for a claim that holds from 3.10): not run, and not a divergence.
    NotApplicable,
    /// The same status other than pass in every run.
    Diverges(Status),
    /// Declared unstable by its expectation entry.
    DeclaredUnstable,
    /// Statuses differed between runs, and nothing declares it.
    Unstable(BTreeSet<Status>),
}

impl Cell {
    /// The cell's word in the tables, in the conformance report's vocabulary ([`CellKind`]):
    /// a status's key, `n/a`, `unstable`, and the statuses an unstable cell went through.
    pub fn label(&self) -> String {
        match self {
            Cell::Pass => CellKind::Pass.key().into(),
            Cell::NotApplicable => CellKind::NotApplicable.label().into(),
            Cell::Diverges(s) => CellKind::of_status(*s).key().into(),
            Cell::DeclaredUnstable => CellKind::Unstable.key().into(),
            Cell::Unstable(set) => format!(
                "{} ({})",
                CellKind::Unstable.key(),
                set.iter()
                    .map(|s| CellKind::of_status(*s).key())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        }
    }

    /// Whether the implementation's expectation file (or, for `n/a`, the case's `versions`)
    /// accounts for this cell.
    pub fn explained(&self, declared: Option<Declared<'_>>) -> bool {
        match self {
            Cell::Pass | Cell::NotApplicable => declared.is_none(),
            Cell::Diverges(s) => {
                matches!(declared, Some(Declared::Divergence(e)) if e.status == *s)
            }
            Cell::DeclaredUnstable => true,
            Cell::Unstable(_) => false,
        }
    }

    fn is_unstable(&self) -> bool {
        matches!(self, Cell::DeclaredUnstable | Cell::Unstable(_))
    }
}

/// One result, read once: its expectation entry and its cell.
pub struct Judged<'a> {
    pub result: &'a CaseResult,
    pub declared: Option<Declared<'a>>,
    pub cell: Cell,
}

impl<'a> Judged<'a> {
    pub fn of(result: &'a CaseResult, statuses: &Statuses) -> Judged<'a> {
        let declared = result.expected.as_ref().map(Declared::of);
        let cell = if matches!(declared, Some(Declared::Unstable { .. })) {
            Cell::DeclaredUnstable
        } else {
            let key = (result.implementation.clone(), result.case.clone());
            match statuses.get(&key) {
                Some(set) if set.len() > 1 => Cell::Unstable(set.clone()),
                _ if result.status == Status::Pass => Cell::Pass,
                _ if result.status == Status::NotApplicable => Cell::NotApplicable,
                _ => Cell::Diverges(result.status),
            }
        };
        Judged {
            result,
            declared,
            cell,
        }
    }

    pub fn explained(&self) -> bool {
        self.cell.explained(self.declared)
    }

    /// The table's "why": the entry's reason when it accounts for the cell, else what is
    /// wrong with the entry (or that there is none) and the runner's reason.
    pub fn why(&self) -> String {
        let runner = self.result.reason.as_deref().unwrap_or("");
        match (self.declared, self.explained()) {
            (Some(Declared::Unstable { reason }), _) => reason.to_owned(),
            (Some(Declared::Divergence(e)), true) => e.reason.clone(),
            (Some(Declared::Divergence(e)), false) if self.cell == Cell::Pass => format!(
                "**unexpected pass**: the entry expecting {} is out of date ({})",
                e.status.as_str(),
                e.reason
            ),
            (Some(Declared::Divergence(e)), false) => format!(
                "**unexplained**: the entry expects {} ({}); this run: {runner}",
                e.status.as_str(),
                e.reason
            ),
            (None, true) if self.cell == Cell::NotApplicable => runner.to_owned(),
            (None, _) => format!("**unexplained**: {runner}"),
        }
    }
}

/// One implementation's cells of a table row: passes out of the cases that apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub pass: usize,
    pub total: usize,
    pub unstable: usize,
    pub not_applicable: usize,
}

impl Tally {
    fn of<'a>(cells: impl Iterator<Item = &'a Judged<'a>>) -> Tally {
        let mut t = Tally {
            pass: 0,
            total: 0,
            unstable: 0,
            not_applicable: 0,
        };
        for j in cells {
            t.total += 1;
            t.pass += usize::from(j.cell == Cell::Pass);
            t.unstable += usize::from(j.cell.is_unstable());
            t.not_applicable += usize::from(j.cell == Cell::NotApplicable);
        }
        t
    }

    /// `pass/applicable`, with `(N n/a)` when some cases did not apply.
    pub fn short(&self) -> String {
        let applicable = self.total - self.not_applicable;
        if self.not_applicable > 0 {
            format!("{}/{applicable} ({} n/a)", self.pass, self.not_applicable)
        } else {
            format!("{}/{applicable}", self.pass)
        }
    }
}

impl fmt::Display for Tally {
    /// `pass/applicable`, then how many were unstable and how many did not apply.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let applicable = self.total - self.not_applicable;
        write!(f, "{}/{applicable}", self.pass)?;
        let mut notes = Vec::new();
        if self.unstable > 0 {
            notes.push(format!("{} unstable", self.unstable));
        }
        if self.not_applicable > 0 {
            notes.push(format!("{} n/a", self.not_applicable));
        }
        if !notes.is_empty() {
            write!(f, " ({})", notes.join(", "))?;
        }
        Ok(())
    }
}

/// A row of a subject's divergence table.
#[derive(Debug, Clone, PartialEq)]
pub struct Divergence {
    pub case: String,
    pub area: Area,
    pub quirk: bool,
    pub cell: Cell,
    pub why: String,
}

/// Everything COMPLIANCE.md shows about one subject that ran.
#[derive(Debug, Clone)]
pub struct Column {
    pub subject: Subject,
    /// The implementation's name in the results (`python:billiard.pool:Pool`).
    pub name: String,
    pub contract: Tally,
    pub quirks: Tally,
    pub all: Tally,
    /// In the order of the `areas` it was built with.
    pub per_area: Vec<Tally>,
    /// Every case that does not pass, or passes against an entry, in result order.
    pub divergences: Vec<Divergence>,
}

impl Column {
    pub fn build(
        subject: Subject,
        name: String,
        matrix: &MatrixRun,
        statuses: &Statuses,
        areas: &[Area],
    ) -> Column {
        let judged: Vec<Judged<'_>> = matrix
            .results
            .iter()
            .filter(|r| r.implementation == name)
            .map(|r| Judged::of(r, statuses))
            .collect();
        let divergences = judged
            .iter()
            .filter(|j| j.cell != Cell::Pass || j.declared.is_some())
            .map(|j| Divergence {
                case: j.result.case.clone(),
                area: j.result.area,
                quirk: j.result.quirk,
                cell: j.cell.clone(),
                why: j.why(),
            })
            .collect();
        Column {
            contract: Tally::of(judged.iter().filter(|j| !j.result.quirk)),
            quirks: Tally::of(judged.iter().filter(|j| j.result.quirk)),
            all: Tally::of(judged.iter()),
            per_area: areas
                .iter()
                .map(|a| Tally::of(judged.iter().filter(|j| j.result.area == *a)))
                .collect(),
            divergences,
            subject,
            name,
        }
    }
}

/// What the terminal is told about a cell beyond COMPLIANCE.md.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    /// Nothing accounts for the cell: printed, marked in the file, and fails the command.
    Unexplained {
        case: String,
        implementation: String,
        label: String,
        reason: Option<String>,
    },
    /// Same status every run, different details: not in COMPLIANCE.md (it would make the
    /// file differ from run to run), but worth knowing.
    ObservationChanged {
        case: String,
        implementation: String,
        note: String,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Unexplained {
                case,
                implementation,
                label,
                reason,
            } => write!(
                f,
                "unexplained: {case} on {implementation}: {label}{}",
                reason
                    .as_deref()
                    .map(|x| format!(": {x}"))
                    .unwrap_or_default()
            ),
            Finding::ObservationChanged {
                case,
                implementation,
                note,
            } => write!(f, "note: {case} on {implementation}: {note}"),
        }
    }
}

/// The findings of a run, in result order.
pub fn findings(matrix: &MatrixRun, statuses: &Statuses) -> Vec<Finding> {
    let mut out = Vec::new();
    for r in &matrix.results {
        let j = Judged::of(r, statuses);
        if !j.explained() {
            out.push(Finding::Unexplained {
                case: r.case.clone(),
                implementation: r.implementation.clone(),
                label: j.cell.label(),
                reason: r.reason.clone(),
            });
        } else if r.unstable.is_some() && j.cell != Cell::DeclaredUnstable {
            out.push(Finding::ObservationChanged {
                case: r.case.clone(),
                implementation: r.implementation.clone(),
                note: r.unstable.clone().unwrap_or_default(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::recorded;
    use super::*;

    const BILLIARD: &str = "python:billiard.pool:Pool";

    #[test]
    fn the_unstable_prefix_is_read_into_a_declaration_once() {
        let entry = |reason: &str| Expected {
            status: Status::Fail,
            reason: reason.to_owned(),
        };
        let unstable = entry("Unstable:  a race in the pool.");
        assert_eq!(
            Declared::of(&unstable),
            Declared::Unstable {
                reason: "a race in the pool."
            }
        );
        let stable = entry("Raises AssertionError. Unstable: no");
        assert_eq!(Declared::of(&stable), Declared::Divergence(&stable));
    }

    #[test]
    fn every_kind_of_cell_of_the_recorded_run() {
        let run = recorded::load();
        let cell = |imp: &str, case: &str| {
            let j = run.judged(imp, case);
            (j.cell.label(), j.explained())
        };
        let label = |s: &str| s.to_owned();
        // A divergence its entry explains.
        assert_eq!(cell(BILLIARD, "BLK-008"), (label("fail"), true));
        // An entry that expects another status.
        assert_eq!(cell(BILLIARD, "CBP-004"), (label("fail"), false));
        // Statuses that differ between runs, declared by nothing.
        assert_eq!(
            cell(BILLIARD, "CHK-007"),
            (label("unstable (pass or error)"), false)
        );
        // Declared unstable: whatever each run saw.
        assert_eq!(cell(BILLIARD, "ERR-003"), (label("unstable"), true));
        // A pass against an entry: the entry is out of date.
        assert_eq!(cell(BILLIARD, "FLT-006"), (label("pass"), false));
        assert_eq!(cell(BILLIARD, "CTR-003"), (label("pass"), true));
        // The case's versions exclude PyPy's Python.
        assert_eq!(cell("pypy-fork", "CTR-003"), (label("n/a"), true));
        // A divergence without an entry.
        assert_eq!(cell("pypy-fork", "ERR-009"), (label("error"), false));
    }

    #[test]
    fn tallies_count_passes_out_of_the_cases_that_apply() {
        let run = recorded::load();
        let columns = run.columns();
        let [pypy, billiard, workerpool] = columns.as_slice() else {
            panic!("three columns")
        };
        // Node.js: the declared-unstable cells (CHK-007, ERR-003) never count as passing.
        assert_eq!(workerpool.all.to_string(), "2/7 (2 unstable)");
        assert_eq!(pypy.all.to_string(), "5/6 (1 n/a)");
        assert_eq!(pypy.contract.to_string(), "3/4 (1 n/a)");
        assert_eq!(billiard.all.to_string(), "2/7 (2 unstable)");
        assert_eq!(billiard.quirks.to_string(), "1/2 (1 unstable)");
        let shorts: Vec<String> = billiard.per_area.iter().map(Tally::short).collect();
        assert_eq!(
            shorts,
            ["0/1", "0/1", "0/2", "0/1", "1/1", "1/1"],
            "{:?}",
            run.suite.areas
        );
        // Passing cells without an entry are not listed; every other cell is.
        let listed: Vec<&str> = billiard
            .divergences
            .iter()
            .map(|d| d.case.as_str())
            .collect();
        assert_eq!(
            listed,
            [
                "BLK-008", "CBP-004", "CHK-007", "ERR-003", "ERR-009", "FLT-006"
            ]
        );
    }

    #[test]
    fn findings_name_what_nothing_explains_and_changed_observations() {
        let run = recorded::load();
        let lines: Vec<String> = findings(&run.matrix, &run.statuses)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                "unexplained: CBP-004 on python:billiard.pool:Pool: fail: ready() was true before the callback returned",
                "note: CHK-007 on pypy-fork: the observation differed between runs: worker pids",
                "unexplained: CHK-007 on python:billiard.pool:Pool: unstable (pass or error)",
                "unexplained: ERR-009 on pypy-fork: error: the driver reported: apply_async raised PicklingError\nwhere a handle was needed",
                "unexplained: FLT-006 on python:billiard.pool:Pool: pass",
            ]
        );
    }
}
