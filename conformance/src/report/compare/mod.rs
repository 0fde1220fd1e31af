//! Comparing two runs (`cargo xtask conformance diff OLD NEW`): the typed comparison, which
//! the views ([`terminal`], [`markdown`]) render and never re-derive.
//!
//! Cells are matched by (case id, implementation name), so two runs of different suite
//! versions compare too: a case or implementation only one side has is added or removed.
//! Only what a run observed counts: status, verdict and observation. Timing (`duration_ms`,
//! the footer's `wall_ms`, the header's `started`) and history paths never make a difference.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use similar::TextDiff;

use super::jsonl::{self, JsonlError, Record, Report};
use super::model::observation_yaml;
use crate::verdict::{Status, Verdict};

pub mod markdown;
pub mod terminal;
#[cfg(test)]
mod tests;

/// The file a run writes its report to, in its output folder.
pub const REPORT_FILE: &str = "report.jsonl";

/// Why a report could not be read for a comparison. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a valid report: {source}", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: JsonlError,
    },
}

/// A report read for a comparison, with the file it came from.
#[derive(Debug, Clone)]
pub struct Side {
    pub path: PathBuf,
    pub report: Report,
}

impl Side {
    /// Reads `path`: a `report.jsonl`, or a folder holding one.
    pub fn read(path: &Path) -> Result<Side, CompareError> {
        let path = if path.is_dir() {
            path.join(REPORT_FILE)
        } else {
            path.to_owned()
        };
        let text = std::fs::read_to_string(&path).map_err(|source| CompareError::Read {
            path: path.clone(),
            source,
        })?;
        let report = jsonl::read(&text).map_err(|source| CompareError::Invalid {
            path: path.clone(),
            source,
        })?;
        Ok(Side { path, report })
    }
}

/// A cell's judged state on one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub status: Status,
    pub verdict: Verdict,
    pub reason: Option<String>,
}

impl State {
    fn of(r: &Record) -> State {
        State {
            status: r.result.status,
            verdict: r.result.verdict,
            reason: r.result.reason.clone(),
        }
    }

    /// `fail (unexpected)`, `fail (expected)`, `pass`: the status, and the verdict when it
    /// is not a plain pass.
    pub fn describe(&self) -> String {
        let judged = match self.verdict {
            Verdict::Pass => return self.status.as_str().to_owned(),
            Verdict::ExpectedFail => "expected",
            Verdict::UnexpectedPass | Verdict::Unexpected => "unexpected",
        };
        format!("{} ({judged})", self.status.as_str())
    }
}

/// The group a change belongs to, in the order the views list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    /// A pass that stopped passing, a new unexpected result, or an expected result that is
    /// now unexpected.
    Regression,
    /// A status that became pass, or an unexpected result that is now expected.
    Fix,
    /// Any other change of status or verdict.
    StatusChange,
    /// Same status and verdict, another observation.
    ObservationChange,
    /// A cell only the new run has (outside an added case or implementation).
    Added,
    /// A cell only the old run has (outside a removed case or implementation).
    Removed,
}

impl Group {
    /// Every group, in order.
    pub const ALL: [Group; 6] = [
        Group::Regression,
        Group::Fix,
        Group::StatusChange,
        Group::ObservationChange,
        Group::Added,
        Group::Removed,
    ];

    /// The heading of its section.
    pub fn title(self) -> &'static str {
        match self {
            Group::Regression => "Regressions",
            Group::Fix => "Fixes",
            Group::StatusChange => "Other status changes",
            Group::ObservationChange => "Observation changes",
            Group::Added => "Added cells",
            Group::Removed => "Removed cells",
        }
    }

    /// `N regressions` and the like, for the summary line.
    pub fn count(self, n: usize) -> String {
        let (one, many) = match self {
            Group::Regression => ("regression", "regressions"),
            Group::Fix => ("fix", "fixes"),
            Group::StatusChange => ("other status change", "other status changes"),
            Group::ObservationChange => ("observation change", "observation changes"),
            Group::Added => ("added cell", "added cells"),
            Group::Removed => ("removed cell", "removed cells"),
        };
        format!("{n} {}", if n == 1 { one } else { many })
    }
}

/// One cell that differs between the runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub group: Group,
    pub case: String,
    pub implementation: String,
    /// `None`: the old run has no such cell.
    pub old: Option<State>,
    /// `None`: the new run has no such cell.
    pub new: Option<State>,
    /// The unified diff of the old observation against the new one, when both sides have
    /// the cell and their observations differ.
    pub observation_diff: Option<String>,
}

impl Change {
    /// `pass → fail (unexpected)`; `(none) → pass` for an added cell.
    pub fn transition(&self) -> String {
        let state = |s: &Option<State>| s.as_ref().map_or("(none)".into(), State::describe);
        format!("{} → {}", state(&self.old), state(&self.new))
    }

    /// The reason of the new state, else of the old (a removed cell).
    pub fn reason(&self) -> Option<&str> {
        self.new
            .as_ref()
            .or(self.old.as_ref())
            .and_then(|s| s.reason.as_deref())
    }
}

/// What a side of the comparison was, in a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    pub path: String,
    pub suite_hash: String,
    pub cells: usize,
    /// `interrupted after N of M cells`, for a report that covers part of its run.
    pub interrupted: Option<String>,
}

impl RunInfo {
    fn of(side: &Side) -> RunInfo {
        RunInfo {
            path: side.path.display().to_string(),
            suite_hash: side.report.header.suite_hash.clone(),
            cells: side.report.records.len(),
            interrupted: side
                .report
                .footer
                .interrupted
                .as_ref()
                .map(|i| i.describe()),
        }
    }
}

/// Cases and implementations only one side has, and the number of cells they hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    pub cases: Vec<(String, usize)>,
    pub implementations: Vec<(String, usize)>,
}

impl Membership {
    pub fn is_empty(&self) -> bool {
        self.cases.is_empty() && self.implementations.is_empty()
    }
}

/// Two runs compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    pub old: RunInfo,
    pub new: RunInfo,
    /// Sorted by group, then in the new run's order (the old run's for removed cells).
    pub changes: Vec<Change>,
    /// What only the new run has.
    pub added: Membership,
    /// What only the old run has.
    pub removed: Membership,
}

impl Comparison {
    /// Nothing differs (timing aside).
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.added.is_empty() && self.removed.is_empty()
    }

    /// Whether anything regressed: what makes `diff` exit 1.
    pub fn regressed(&self) -> bool {
        self.count(Group::Regression) > 0
    }

    /// The changes of one group, in order.
    pub fn of(&self, group: Group) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(move |c| c.group == group)
    }

    pub fn count(&self, group: Group) -> usize {
        self.of(group).count()
    }

    /// `1 regression, 2 fixes, 1 added case`: every non-empty group and membership change.
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "no differences".into();
        }
        let mut parts: Vec<String> = Group::ALL
            .iter()
            .map(|&g| (g, self.count(g)))
            .filter(|&(_, n)| n > 0)
            .map(|(g, n)| g.count(n))
            .collect();
        let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        for (m, how) in [(&self.added, "added"), (&self.removed, "removed")] {
            if !m.cases.is_empty() {
                parts.push(plural(m.cases.len(), &format!("{how} case")));
            }
            if !m.implementations.is_empty() {
                parts.push(plural(
                    m.implementations.len(),
                    &format!("{how} implementation"),
                ));
            }
        }
        parts.join(", ")
    }
}

/// The group of a cell both runs have, or `None` when nothing but timing differs.
fn group_of(old: &State, new: &State, observation_changed: bool) -> Option<Group> {
    let passed = |s: &State| s.status == Status::Pass;
    if (passed(old) && !passed(new) && new.status != Status::NotApplicable)
        || (old.verdict.is_ok() && !new.verdict.is_ok())
    {
        Some(Group::Regression)
    } else if (!passed(old) && passed(new)) || (!old.verdict.is_ok() && new.verdict.is_ok()) {
        Some(Group::Fix)
    } else if old.status != new.status || old.verdict != new.verdict {
        Some(Group::StatusChange)
    } else if observation_changed {
        Some(Group::ObservationChange)
    } else {
        None
    }
}

/// The unified diff of two observations' YAML, as the report renders its diffs.
fn observation_diff(old: &Record, new: &Record) -> Option<String> {
    if old.result.observation == new.result.observation {
        return None;
    }
    let (a, b) = (observation_yaml(&old.result), observation_yaml(&new.result));
    Some(
        TextDiff::from_lines(&a, &b)
            .unified_diff()
            .context_radius(2)
            .header("old", "new")
            .to_string(),
    )
}

/// A cell's key: (case, implementation).
type Key<'r> = (&'r str, &'r str);

/// The cells of a report by (case, implementation), the first of each (as the report model
/// keeps it), and the keys in the report's order.
fn index(report: &Report) -> (Vec<Key<'_>>, HashMap<Key<'_>, &Record>) {
    let mut order = Vec::new();
    let mut by_key = HashMap::new();
    for r in &report.records {
        let key = (r.result.case.as_str(), r.result.implementation.as_str());
        if let std::collections::hash_map::Entry::Vacant(e) = by_key.entry(key) {
            e.insert(r);
            order.push(key);
        }
    }
    (order, by_key)
}

/// Names (cases or implementations) one side has and the other lacks, with their cells.
fn only_in<'a>(
    keys: &[(&'a str, &'a str)],
    other: &BTreeSet<String>,
    pick: impl Fn(&(&'a str, &'a str)) -> &'a str,
) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for k in keys {
        let name = pick(k);
        if other.contains(name) {
            continue;
        }
        match out.iter_mut().find(|(n, _)| n == name) {
            Some((_, cells)) => *cells += 1,
            None => out.push((name.to_owned(), 1)),
        }
    }
    out
}

/// Compares two reports (see the module's documentation).
pub fn compare(old: &Side, new: &Side) -> Comparison {
    let (old_keys, old_cells) = index(&old.report);
    let (new_keys, new_cells) = index(&new.report);
    let names = |keys: &[(&str, &str)], implementation: bool| -> BTreeSet<String> {
        keys.iter()
            .map(|&(c, i)| if implementation { i } else { c }.to_owned())
            .collect()
    };
    // Implementations from the headers too: one that ran no cell still took part.
    let implementations = |side: &Side, keys: &[(&str, &str)]| {
        let mut set = names(keys, true);
        set.extend(
            side.report
                .header
                .implementations
                .iter()
                .map(|i| i.name.clone()),
        );
        set
    };
    let (old_cases, new_cases) = (names(&old_keys, false), names(&new_keys, false));
    let (old_impls, new_impls) = (
        implementations(old, &old_keys),
        implementations(new, &new_keys),
    );
    let added = Membership {
        cases: only_in(&new_keys, &old_cases, |k| k.0),
        implementations: only_in(&new_keys, &old_impls, |k| k.1),
    };
    let removed = Membership {
        cases: only_in(&old_keys, &new_cases, |k| k.0),
        implementations: only_in(&old_keys, &new_impls, |k| k.1),
    };

    let mut changes = Vec::new();
    for key in &new_keys {
        let new_record = new_cells[key];
        let new_state = State::of(new_record);
        let (group, old_state, diff) = match old_cells.get(key) {
            Some(old_record) => {
                let old_state = State::of(old_record);
                let diff = observation_diff(old_record, new_record);
                let Some(group) = group_of(&old_state, &new_state, diff.is_some()) else {
                    continue;
                };
                (group, Some(old_state), diff)
            }
            // A new cell counts when it is unexpected, or when no added case or
            // implementation accounts for it.
            None if !new_state.verdict.is_ok() => (Group::Regression, None, None),
            None if !old_cases.contains(key.0) || !old_impls.contains(key.1) => continue,
            None => (Group::Added, None, None),
        };
        changes.push(Change {
            group,
            case: key.0.to_owned(),
            implementation: key.1.to_owned(),
            old: old_state,
            new: Some(new_state),
            observation_diff: diff,
        });
    }
    for key in old_keys.iter().filter(|k| !new_cells.contains_key(*k)) {
        if !new_cases.contains(key.0) || !new_impls.contains(key.1) {
            continue;
        }
        changes.push(Change {
            group: Group::Removed,
            case: key.0.to_owned(),
            implementation: key.1.to_owned(),
            old: Some(State::of(old_cells[key])),
            new: None,
            observation_diff: None,
        });
    }
    // Stable: within a group, the order the runs list their cells.
    changes.sort_by_key(|c| c.group);
    Comparison {
        old: RunInfo::of(old),
        new: RunInfo::of(new),
        changes,
        added,
        removed,
    }
}
