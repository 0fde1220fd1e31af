//! What `cargo xtask mutants` works with and reports: the mutants as the Python module
//! describes them, the kills, the score, and report.json's shape. No process is started
//! here, so the rules (what kills, in which order cases run, how the score counts) are
//! tested on their own.

use conformance::runner::CaseResult;
use conformance::verdict::Status;
use serde::{Deserialize, Serialize};

/// The mutants' module, relative to the workspace root.
pub const MODULE_DIR: &str = "fixtures/mutants";
/// The mutants' Python module name (`python:poolspec_mutants:NAME`).
pub const MODULE: &str = "poolspec_mutants";

/// One mutant, as `poolspec_mutants.py --manifest` describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mutant {
    pub name: String,
    pub theme: String,
    /// The defect, from the docstring.
    pub doc: String,
    /// The observation that exposes the defect: what a case must look at to kill it.
    pub observes: String,
    /// Case ids or id prefixes to try before the others.
    #[serde(default)]
    pub try_first: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct Manifest {
    /// The unmodified Pool's class name.
    pub control: String,
    pub mutants: Vec<Mutant>,
}

/// A case that killed a mutant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kill {
    pub case: String,
    pub status: Status,
    pub reason: String,
}

/// What running the cases on one mutant gave.
#[derive(Debug, Clone, Serialize)]
pub struct MutantResult {
    #[serde(flatten)]
    pub mutant: Mutant,
    /// Killing cases, in the order they ran.
    pub kills: Vec<Kill>,
    /// Cases run (fewer than selected when the run stopped at the first kill).
    pub cases_run: usize,
    /// Why the mutant's driver could not run a case at all (then it is neither killed nor
    /// surviving).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken: Option<String>,
    pub duration_ms: u64,
}

impl MutantResult {
    pub fn killed(&self) -> bool {
        self.broken.is_none() && !self.kills.is_empty()
    }

    pub fn survived(&self) -> bool {
        self.broken.is_none() && self.kills.is_empty()
    }
}

/// Killed / total, and the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Score {
    pub killed: usize,
    pub survived: usize,
    pub broken: usize,
    pub total: usize,
}

impl Score {
    pub fn of(results: &[MutantResult]) -> Score {
        Score {
            killed: results.iter().filter(|r| r.killed()).count(),
            survived: results.iter().filter(|r| r.survived()).count(),
            broken: results.iter().filter(|r| r.broken.is_some()).count(),
            total: results.len(),
        }
    }

    /// `killed/total (p%)`.
    pub fn render(&self) -> String {
        let percent = if self.total == 0 {
            0.0
        } else {
            100.0 * self.killed as f64 / self.total as f64
        };
        format!("{}/{} ({percent:.1}%)", self.killed, self.total)
    }
}

/// The control run: the unmodified Pool on the selected cases.
#[derive(Debug, Clone, Serialize)]
pub struct ControlSummary {
    pub implementation: String,
    pub passed: usize,
    /// Cases the control cannot run (unsupported, not applicable): left out of the mutant runs.
    pub skipped: Vec<String>,
    /// Cases the control did not pass: the run stops.
    pub failed: Vec<Kill>,
    pub duration_ms: u64,
}

/// The whole run, as report.json holds it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub score: Score,
    /// `first-kill` or `all`.
    pub mode: String,
    pub cases: usize,
    pub python: String,
    pub control: ControlSummary,
    pub mutants: Vec<MutantResult>,
    pub wall_ms: u64,
}

/// A status that kills a mutant: the case saw something other than a pass, for a reason
/// that depends on the pool (not on a capability or a language version).
pub fn is_kill(status: Status) -> bool {
    matches!(
        status,
        Status::Fail | Status::Error | Status::Crash | Status::Timeout
    )
}

/// The order a mutant's cases run in: first the cases matching each `try_first` entry (an id,
/// or a prefix of ids), entry by entry, each in suite order; then the rest in suite order.
/// Deterministic, and every case exactly once.
pub fn case_order(ids: &[&str], try_first: &[String]) -> Vec<usize> {
    let mut taken = vec![false; ids.len()];
    let mut order = Vec::with_capacity(ids.len());
    for pattern in try_first {
        for (i, id) in ids.iter().enumerate() {
            if !taken[i] && id.starts_with(pattern.as_str()) {
                taken[i] = true;
                order.push(i);
            }
        }
    }
    order.extend((0..ids.len()).filter(|&i| !taken[i]));
    order
}

/// The kill a case's result records (whether or not its status kills).
pub fn kill_of(result: &CaseResult) -> Kill {
    Kill {
        case: result.case.clone(),
        status: result.status,
        reason: result.reason.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
pub mod samples {
    //! Mutant results for the tests of this module and of `render.rs`.
    use super::*;

    pub fn mutant(name: &str) -> Mutant {
        Mutant {
            name: name.to_owned(),
            theme: "order".to_owned(),
            doc: "map returns its results | reversed.".to_owned(),
            observes: "map's results in input order".to_owned(),
            try_first: vec!["ORD-001".to_owned()],
        }
    }

    pub fn result(name: &str, kills: &[(&str, Status)], broken: Option<&str>) -> MutantResult {
        MutantResult {
            mutant: mutant(name),
            kills: kills
                .iter()
                .map(|(case, status)| Kill {
                    case: (*case).to_owned(),
                    status: *status,
                    reason: format!("{case} saw\nsomething else"),
                })
                .collect(),
            cases_run: 3,
            broken: broken.map(str::to_owned),
            duration_ms: 10,
        }
    }

    pub fn report(mutants: Vec<MutantResult>, mode: &str) -> Report {
        Report {
            score: Score::of(&mutants),
            mode: mode.to_owned(),
            cases: 3,
            python: "3.11.7".to_owned(),
            control: ControlSummary {
                implementation: "poolspec_mutants:Control".to_owned(),
                passed: 3,
                skipped: Vec::new(),
                failed: Vec::new(),
                duration_ms: 5,
            },
            mutants,
            wall_ms: 1234,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::samples::*;
    use super::*;

    #[test]
    fn try_first_cases_run_first_then_the_rest_in_suite_order() {
        let ids = ["BLK-001", "ORD-001", "ORD-002", "LIF-003", "ORD-010"];
        assert_eq!(case_order(&ids, &[]), vec![0, 1, 2, 3, 4]);
        assert_eq!(
            case_order(&ids, &["LIF-003".to_owned(), "ORD-".to_owned()]),
            vec![3, 1, 2, 4, 0]
        );
        // An exact id is a prefix too; overlapping and unknown entries change nothing more.
        assert_eq!(
            case_order(
                &ids,
                &["ORD-001".to_owned(), "ORD-".to_owned(), "XYZ-".to_owned()]
            ),
            vec![1, 2, 4, 0, 3]
        );
    }

    #[test]
    fn the_order_holds_every_case_exactly_once() {
        let ids = ["A-1", "A-2", "B-1", "B-2", "C-1"];
        let mut order = case_order(&ids, &["B-".to_owned(), "A-2".to_owned(), "B-1".to_owned()]);
        order.sort_unstable();
        assert_eq!(order, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn only_statuses_about_the_pool_kill() {
        for s in [Status::Fail, Status::Error, Status::Crash, Status::Timeout] {
            assert!(is_kill(s), "{s:?}");
        }
        for s in [Status::Pass, Status::Unsupported, Status::NotApplicable] {
            assert!(!is_kill(s), "{s:?}");
        }
    }

    #[test]
    fn the_score_counts_killed_survived_and_broken() {
        let results = vec![
            result("A", &[("ORD-001", Status::Fail)], None),
            result("B", &[], None),
            result("C", &[("BLK-002", Status::Timeout)], None),
            result("D", &[], Some("driver did not start")),
        ];
        let score = Score::of(&results);
        assert_eq!(
            score,
            Score {
                killed: 2,
                survived: 1,
                broken: 1,
                total: 4
            }
        );
        assert_eq!(score.render(), "2/4 (50.0%)");
        assert_eq!(Score::of(&[]).render(), "0/0 (0.0%)");
    }

    #[test]
    fn the_manifest_reads_as_python_prints_it() {
        let text = r#"{"control": "Control", "themes": {"order": "x"}, "mutants": [
            {"name": "MapReversed", "theme": "order", "doc": "d", "observes": "o",
             "try_first": ["ORD-001"]},
            {"name": "NoHints", "theme": "order", "doc": "d", "observes": "o"}]}"#;
        let m: Manifest = serde_json::from_str(text).unwrap();
        assert_eq!(m.control, "Control");
        assert_eq!(m.mutants[0].try_first, vec!["ORD-001"]);
        assert!(m.mutants[1].try_first.is_empty());
    }
}
