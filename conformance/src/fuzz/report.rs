//! A fuzzing run's machine-readable report, `report.json` in its `--out` folder: which
//! program indices of which seed ran, how many agreed, and what was found, with each found
//! program's canonical form so that reports of shards can be merged and their findings
//! deduplicated ([`super::merge`]).
//!
//! A run writes it twice: when it starts (`complete: false`) and when it ends, so a shard
//! killed on the way (a CI job past its time limit) leaves a report that says so.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{FuzzSummary, PairOutcome, emit};
use crate::shard::Shard;
use crate::spec::Case;

/// The report format's version; a reader refuses any other.
pub const VERSION: u32 = 1;

/// The report's file name in a run's `--out` folder.
pub const FILE_NAME: &str = "report.json";

/// Where a run's found programs go, relative to its `--out` folder: shrunk divergences,
/// programs the oracle failed twice, and programs it failed once.
pub const FOUND_DIR: &str = "found";
pub const ORACLE_FAULTS_DIR: &str = "oracle-faults";
pub const ORACLE_FLAKES_DIR: &str = "oracle-flakes";

/// A found program's file: `DIR/ID.yaml`.
pub fn case_file(dir: &str, case: &Case) -> PathBuf {
    Path::new(dir).join(format!("{}.yaml", case.id))
}

/// Program indices `start..end` of a seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRange {
    pub start: u64,
    pub end: u64,
}

impl IndexRange {
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn overlaps(&self, other: &IndexRange) -> bool {
        self.start < other.end && other.start < self.end
    }
}

impl From<Range<u64>> for IndexRange {
    fn from(r: Range<u64>) -> IndexRange {
        IndexRange {
            start: r.start,
            end: r.end,
        }
    }
}

/// What besides the seed decides which programs are drawn and how they are compared: runs
/// that differ in any of it are different runs, whose reports do not merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub max_steps: usize,
    /// Excluded features, by name, sorted.
    pub exclude: Vec<String>,
    pub ignore_messages: bool,
}

/// Why a run (or one part of a merged run) stopped taking programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stop {
    /// Not yet: the report was written as the run started, and never rewritten.
    Running,
    /// Every program of its range ran (or its time ran out).
    Budget,
    /// A divergence stopped it; the rest of its range did not run.
    Divergence,
    /// The oracle failed a program twice; the rest of its range did not run.
    OracleFault,
}

/// One run whose programs a report covers: the report's own run, or each shard of a merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub shard: Option<Shard>,
    /// The indices it was given.
    pub range: IndexRange,
    /// The indices that ran: a prefix of `range` (`programs` of them).
    pub ran: IndexRange,
    pub stop: Stop,
}

/// A found program: a divergence, or a program the oracle failed twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Index of the program in the seed's stream (the lowest, after a merge).
    pub index: u64,
    /// The shrunk case file, relative to the report's folder.
    pub file: PathBuf,
    /// The shrunk program in its canonical form ([`canonical_program`]): equal for equal
    /// programs whatever index drew them.
    pub program: String,
    /// How many observations differ (0 for an oracle fault).
    pub differences: usize,
    /// Whether reruns of the shrunk program reproduced it exactly.
    pub reproduced: bool,
    /// Other indices whose shrunk program is the same (filled by a merge).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_at: Vec<u64>,
}

/// A program the oracle failed once and ran cleanly on a second try.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flake {
    pub index: u64,
    /// The program, relative to the report's folder.
    pub file: PathBuf,
    pub reason: String,
}

/// `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FuzzReport {
    pub version: u32,
    pub seed: u64,
    pub implementation: String,
    pub oracle: String,
    pub settings: Settings,
    /// The indices this report covers (for a merge: all its parts', contiguous).
    pub range: IndexRange,
    /// The shard this run was (`None`: unsharded, or a merge).
    pub shard: Option<Shard>,
    /// The runs it covers, by range.
    pub parts: Vec<Part>,
    /// Programs run on both implementations.
    pub programs: u64,
    /// Of those, the ones whose observations agreed.
    pub agreements: u64,
    pub divergences: Vec<Finding>,
    pub oracle_faults: Vec<Finding>,
    pub oracle_flakes: Vec<Flake>,
    /// Every part ran to its end (its budget, or a finding that stopped it).
    pub complete: bool,
}

/// What a run is, known before it starts.
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub seed: u64,
    pub implementation: String,
    pub oracle: String,
    pub settings: Settings,
    /// The indices it is given (for a run bounded only by time, `start..start`: it grows).
    pub range: IndexRange,
    pub shard: Option<Shard>,
}

impl FuzzReport {
    /// The report of a run that has not finished (written as it starts).
    pub fn started(facts: &RunFacts) -> FuzzReport {
        let ran = IndexRange {
            start: facts.range.start,
            end: facts.range.start,
        };
        FuzzReport::of(facts, facts.range, ran, Stop::Running, 0, 0)
    }

    /// The report of a finished run.
    pub fn finished(facts: &RunFacts, summary: &FuzzSummary) -> FuzzReport {
        let start = facts.range.start;
        let ran = IndexRange {
            start,
            end: start + summary.programs,
        };
        // A run bounded by time alone covers what it ran.
        let range = if facts.range.end < ran.end {
            ran
        } else {
            facts.range
        };
        let stop = match summary.found.as_ref().map(|f| &f.outcome) {
            None | Some(PairOutcome::Agree) => Stop::Budget,
            Some(PairOutcome::Diverge { .. }) => Stop::Divergence,
            Some(PairOutcome::OracleFault { .. }) => Stop::OracleFault,
        };
        let mut report = FuzzReport::of(
            facts,
            range,
            ran,
            stop,
            summary.programs,
            summary.agreements,
        );
        report.complete = true;
        if let Some(found) = &summary.found {
            match &found.outcome {
                PairOutcome::Agree => {}
                PairOutcome::Diverge { differences, .. } => report.divergences.push(Finding {
                    index: found.index,
                    file: case_file(FOUND_DIR, &found.shrunk),
                    program: canonical_program(&found.shrunk),
                    differences: differences.len(),
                    reproduced: found.reproduced,
                    also_at: Vec::new(),
                }),
                PairOutcome::OracleFault { .. } => report.oracle_faults.push(Finding {
                    index: found.index,
                    file: case_file(ORACLE_FAULTS_DIR, &found.original),
                    program: canonical_program(&found.original),
                    differences: 0,
                    reproduced: true,
                    also_at: Vec::new(),
                }),
            }
        }
        report.oracle_flakes = summary
            .oracle_flakes
            .iter()
            .map(|f| Flake {
                index: f.index,
                file: case_file(ORACLE_FLAKES_DIR, &f.case),
                reason: match &f.fault {
                    PairOutcome::OracleFault { reason, .. } => reason.clone(),
                    _ => String::new(),
                },
            })
            .collect();
        report.oracle_flakes.sort_by_key(|f| f.index);
        report
    }

    fn of(
        facts: &RunFacts,
        range: IndexRange,
        ran: IndexRange,
        stop: Stop,
        programs: u64,
        agreements: u64,
    ) -> FuzzReport {
        FuzzReport {
            version: VERSION,
            seed: facts.seed,
            implementation: facts.implementation.clone(),
            oracle: facts.oracle.clone(),
            settings: facts.settings.clone(),
            range,
            shard: facts.shard,
            parts: vec![Part {
                shard: facts.shard,
                range,
                ran,
                stop,
            }],
            programs,
            agreements,
            divergences: Vec::new(),
            oracle_faults: Vec::new(),
            oracle_flakes: Vec::new(),
            complete: false,
        }
    }
}

/// Why a file is not a fuzzing report this release reads.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a fuzzing report: {source}", path.display())]
    NotAReport {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: fuzzing report version {found}, this release reads version {VERSION}", path.display())]
    Version { path: PathBuf, found: u32 },
}

/// Reads a report: `path` itself, or `path/report.json` when it is a folder. Returns the
/// file read and the report.
pub fn read(path: &Path) -> Result<(PathBuf, FuzzReport), ReadError> {
    let file = if path.is_dir() {
        path.join(FILE_NAME)
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(|source| ReadError::Io {
        path: file.clone(),
        source,
    })?;
    // The version first, so a future format is named as such rather than as garbage.
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
    }
    let versioned: Versioned =
        serde_json::from_str(&text).map_err(|source| ReadError::NotAReport {
            path: file.clone(),
            source,
        })?;
    if versioned.version != VERSION {
        return Err(ReadError::Version {
            path: file,
            found: versioned.version,
        });
    }
    let report = serde_json::from_str(&text).map_err(|source| ReadError::NotAReport {
        path: file.clone(),
        source,
    })?;
    Ok((file, report))
}

/// A program's canonical form: its case file with the id (which names the index that drew
/// it) replaced, so that two indices shrinking to the same program give the same text.
pub fn canonical_program(case: &Case) -> String {
    let mut neutral = case.clone();
    neutral.id = "FUZZ".to_owned();
    emit::program_file(&neutral).unwrap_or_else(|e| format!("unserializable program: {e}"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::fuzz::program_case;

    #[test]
    fn the_canonical_form_ignores_the_index_that_drew_a_program() {
        let a = program_case(7, 3, 10, &BTreeSet::new());
        let mut b = a.clone();
        b.id = "FUZZ-00000000".into();
        assert_ne!(a.id, b.id);
        assert_eq!(canonical_program(&a), canonical_program(&b));
        let other = program_case(7, 4, 10, &BTreeSet::new());
        assert_ne!(canonical_program(&a), canonical_program(&other));
    }

    fn facts(range: IndexRange) -> RunFacts {
        RunFacts {
            seed: 7,
            implementation: "rust-ref".into(),
            oracle: "cpython-fork".into(),
            settings: Settings {
                max_steps: 10,
                exclude: Vec::new(),
                ignore_messages: false,
            },
            range,
            shard: Some(Shard { index: 2, count: 3 }),
        }
    }

    fn summary(programs: u64, found: Option<crate::fuzz::Found>) -> FuzzSummary {
        FuzzSummary {
            seed: 7,
            programs,
            agreements: programs - u64::from(found.is_some()),
            steps: 0,
            wall: std::time::Duration::ZERO,
            found,
            oracle_flakes: Vec::new(),
        }
    }

    #[test]
    fn a_started_run_is_incomplete_and_a_finished_one_says_why_it_stopped() {
        let range = IndexRange { start: 10, end: 20 };
        let started = FuzzReport::started(&facts(range));
        assert!(!started.complete);
        assert_eq!(started.parts[0].stop, Stop::Running);
        assert_eq!(started.parts[0].ran.len(), 0);

        let done = FuzzReport::finished(&facts(range), &summary(10, None));
        assert!(done.complete);
        assert_eq!((done.range, done.parts[0].ran), (range, range));
        assert_eq!(done.parts[0].stop, Stop::Budget);

        // Bounded by time alone: the range is what ran.
        let open = IndexRange { start: 10, end: 10 };
        let timed = FuzzReport::finished(&facts(open), &summary(4, None));
        assert_eq!(timed.range, IndexRange { start: 10, end: 14 });

        let case = program_case(7, 12, 10, &BTreeSet::new());
        let found = crate::fuzz::Found {
            index: 12,
            after: std::time::Duration::ZERO,
            original: case.clone(),
            shrunk: case.clone(),
            outcome: PairOutcome::Diverge {
                oracle: serde_json::json!({}),
                target: serde_json::json!({}),
                differences: Vec::new(),
            },
            shrink_runs: 0,
            reproduced: true,
            histories: None,
            first_histories: (None, None),
        };
        let diverged = FuzzReport::finished(&facts(range), &summary(3, Some(found)));
        assert_eq!(diverged.parts[0].stop, Stop::Divergence);
        assert_eq!(diverged.parts[0].ran, IndexRange { start: 10, end: 13 });
        assert_eq!(diverged.agreements, 2);
        let d = &diverged.divergences[0];
        assert_eq!(d.file, Path::new("found").join(format!("{}.yaml", case.id)));
        assert_eq!(d.program, canonical_program(&case));
        assert!(diverged.complete);
    }

    #[test]
    fn reading_names_the_file_and_what_is_wrong_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("x.json");
        std::fs::write(&garbage, "[1, 2").unwrap();
        let e = read(&garbage).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: not a fuzzing report", garbage.display())));
        std::fs::write(dir.path().join(FILE_NAME), r#"{"version": 99}"#).unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("report.json: fuzzing report version 99"), "{e}");
    }
}
