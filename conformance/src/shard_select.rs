//! Which cells of a matrix run one shard owns (`--shard K/N`, `--balance-from REPORT`), and
//! the `shard` object its report's header carries.
//!
//! A cell's key is `CASE-ID\0IMPLEMENTATION`, so an added case or implementation moves no
//! other cell. By count, [`Shard::owns`] decides; balanced, [`Shard::balance`] over the
//! durations the given report recorded (cells it does not know fall back to the hash).
//!
//! The run id names the logical run every shard belongs to, so that `merge` refuses shards of
//! different runs: a hash of what every shard is given alike (the suite, the implementations,
//! N, the balance report's bytes, and `--run-id` when given). Two runs of the same suite on the
//! same implementations have the same id unless `--run-id` (say, CI's run number) tells them
//! apart.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::report::jsonl::{self, JsonlError};
pub use crate::shard::ShardRun;
use crate::shard::{Shard, fnv1a};

/// How the cells were partitioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Basis {
    /// A stable hash of each cell's key.
    Count,
    /// Longest-first by the durations `report` recorded; `unknown` cells fell back to the hash.
    Balanced {
        report: PathBuf,
        known: usize,
        unknown: usize,
    },
}

impl Basis {
    /// `by count` or `balanced by durations of REPORT (3 cells unknown to it, by count)`.
    pub fn describe(&self) -> String {
        match self {
            Basis::Count => "by count (a stable hash of each cell)".to_owned(),
            Basis::Balanced {
                report,
                known,
                unknown,
            } => format!(
                "balanced by the durations of {} ({known} cells; {unknown} unknown to it, by hash)",
                report.display()
            ),
        }
    }
}

/// The cells one shard owns, as (case index, implementation index) pairs.
#[derive(Debug, Clone)]
pub struct Selection {
    pub cells: HashSet<(usize, usize)>,
    /// Cells of the whole matrix.
    pub matrix_cells: usize,
    pub basis: Basis,
}

/// The recorded durations of a previous report, by cell key, and a hash of its bytes.
#[derive(Debug, Clone, Default)]
pub struct Durations {
    pub path: PathBuf,
    pub by_key: HashMap<String, u64>,
    /// FNV-1a of the file, a part of the run id: shards balanced by different reports
    /// partition differently, so they belong to different runs.
    pub hash: String,
}

/// `--balance-from` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BalanceError {
    #[error("--balance-from {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--balance-from {}: not a valid report: {source}", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: JsonlError,
    },
}

pub use crate::schedule::cell_key;

/// Reads the per-cell `duration_ms` of a report (a report.jsonl, or a folder holding one).
pub fn durations(path: &Path) -> Result<Durations, BalanceError> {
    let file = if path.is_dir() {
        path.join("report.jsonl")
    } else {
        path.to_owned()
    };
    let text = std::fs::read_to_string(&file).map_err(|source| BalanceError::Read {
        path: file.clone(),
        source,
    })?;
    let report = jsonl::read(&text).map_err(|source| BalanceError::Invalid {
        path: file.clone(),
        source,
    })?;
    let by_key = report
        .records
        .iter()
        .map(|r| {
            let r = &r.result;
            (cell_key(&r.case, &r.implementation), r.duration_ms)
        })
        .collect();
    Ok(Durations {
        path: file,
        by_key,
        hash: format!("{:016x}", fnv1a(&text)),
    })
}

/// The cells `shard` owns of the matrix `cases` × `implementations` (each in run order).
pub fn select(
    shard: Shard,
    cases: &[&str],
    implementations: &[&str],
    balance: Option<&Durations>,
) -> Selection {
    let mut pairs = Vec::with_capacity(cases.len() * implementations.len());
    let mut keys = Vec::with_capacity(pairs.capacity());
    for (c, case) in cases.iter().enumerate() {
        for (i, imp) in implementations.iter().enumerate() {
            pairs.push((c, i));
            keys.push(cell_key(case, imp));
        }
    }
    let (owners, basis): (Vec<u32>, Basis) = match balance {
        None => (
            keys.iter().map(|k| Shard::of_key(k, shard.count)).collect(),
            Basis::Count,
        ),
        Some(d) => {
            let known = keys.iter().filter(|k| d.by_key.contains_key(*k)).count();
            (
                Shard::balance(&keys, &d.by_key, shard.count),
                Basis::Balanced {
                    report: d.path.clone(),
                    known,
                    unknown: keys.len() - known,
                },
            )
        }
    };
    let cells = pairs
        .into_iter()
        .zip(owners)
        .filter(|&(_, owner)| owner == shard.index - 1)
        .map(|(pair, _)| pair)
        .collect();
    Selection {
        cells,
        matrix_cells: keys.len(),
        basis,
    }
}

/// The id of the logical run (see the module's comment).
pub fn run_id(
    suite_hash: &str,
    implementations: &[&str],
    count: u32,
    balance: Option<&Durations>,
    given: Option<&str>,
) -> String {
    let text = format!(
        "{suite_hash}\0{}\0{count}\0{}\0{}",
        implementations.join("\0"),
        balance.map_or("", |d| d.hash.as_str()),
        given.unwrap_or("")
    );
    format!("{:016x}", fnv1a(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CASES: [&str; 4] = ["BLK-001", "BLK-002", "ORD-001", "ORD-002"];
    const IMPLS: [&str; 3] = ["cpython-fork", "cpython-spawn", "rust-ref"];

    fn shard(index: u32, count: u32) -> Shard {
        Shard { index, count }
    }

    #[test]
    fn the_shards_partition_the_matrix() {
        for balance in [None, Some(durations_of(&[("BLK-001", "rust-ref", 900)]))] {
            let mut seen = HashSet::new();
            for k in 1..=3 {
                let s = select(shard(k, 3), &CASES, &IMPLS, balance.as_ref());
                assert_eq!(s.matrix_cells, 12);
                for cell in s.cells {
                    assert!(seen.insert(cell), "{cell:?} in two shards");
                }
            }
            assert_eq!(seen.len(), 12);
        }
    }

    #[test]
    fn an_added_case_moves_no_other_cell() {
        let before = select(shard(2, 3), &CASES[..3], &IMPLS, None);
        let after = select(shard(2, 3), &CASES, &IMPLS, None);
        // Case indices stay put when a case is appended; only its own cells may join.
        assert!(before.cells.is_subset(&after.cells));
        assert!(
            after
                .cells
                .iter()
                .all(|c| before.cells.contains(c) || c.0 == 3)
        );
    }

    fn durations_of(cells: &[(&str, &str, u64)]) -> Durations {
        Durations {
            path: PathBuf::from("old/report.jsonl"),
            by_key: cells.iter().map(|(c, i, d)| (cell_key(c, i), *d)).collect(),
            hash: "h".to_owned(),
        }
    }

    #[test]
    fn balancing_puts_the_slow_cells_apart_and_says_how() {
        let d = durations_of(&[("BLK-001", "rust-ref", 900), ("BLK-002", "rust-ref", 800)]);
        let (a, b) = (
            select(shard(1, 2), &CASES, &IMPLS, Some(&d)),
            select(shard(2, 2), &CASES, &IMPLS, Some(&d)),
        );
        assert!(a.cells.contains(&(0, 2)) && b.cells.contains(&(1, 2)));
        assert_eq!(
            a.basis,
            Basis::Balanced {
                report: PathBuf::from("old/report.jsonl"),
                known: 2,
                unknown: 10
            }
        );
        assert!(a.basis.describe().contains("10 unknown"));
    }

    #[test]
    fn the_run_id_changes_with_anything_that_changes_the_partition() {
        let base = run_id("s", &IMPLS, 3, None, None);
        assert_eq!(base, run_id("s", &IMPLS, 3, None, None));
        assert_ne!(base, run_id("t", &IMPLS, 3, None, None));
        assert_ne!(base, run_id("s", &IMPLS[..2], 3, None, None));
        assert_ne!(base, run_id("s", &IMPLS, 4, None, None));
        assert_ne!(base, run_id("s", &IMPLS, 3, Some(&durations_of(&[])), None));
        assert_ne!(base, run_id("s", &IMPLS, 3, None, Some("42")));
    }
}
