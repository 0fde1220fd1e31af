//! Merging the reports of a fuzzing run's shards (`cargo xtask fuzz merge`) into the report
//! of the whole run: the parts must be runs of the same seed, implementation, oracle and
//! settings, with disjoint index ranges that together leave no gap (and, for shards of one
//! `N`, all `N` of them). Findings are deduplicated by their shrunk program: the lowest index
//! is kept, the others listed in [`Finding::also_at`]. Pure: reading the files and copying
//! the case files is the caller's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::report::{Finding, FuzzReport, IndexRange, VERSION};
use crate::shard::Shard;

/// Why reports do not merge; each names the file at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error("nothing to merge: no report given")]
    Empty,
    #[error("{}: a report of another run ({what} {found}, where {first} has {expected})", path.display(), first = first.display())]
    OtherRun {
        path: PathBuf,
        first: PathBuf,
        what: &'static str,
        expected: String,
        found: String,
    },
    #[error("{}: programs {}..{} overlap those of {}", path.display(), range.start, range.end, other.display())]
    Overlap {
        path: PathBuf,
        other: PathBuf,
        range: IndexRange,
    },
    #[error("{}: shard {shard} is given twice (also {})", path.display(), other.display())]
    DuplicateShard {
        path: PathBuf,
        other: PathBuf,
        shard: Shard,
    },
    #[error("{}: shards of {count} are missing {}", path.display(), list(missing))]
    MissingShards {
        path: PathBuf,
        count: u32,
        missing: Vec<Shard>,
    },
    #[error("{}: programs {}..{} are in no report (the next starts at {})", path.display(), gap.start, gap.end, gap.end)]
    Gap { path: PathBuf, gap: IndexRange },
    #[error("{}: incomplete (its run did not finish; --allow-incomplete merges it anyway)", path.display())]
    Incomplete { path: PathBuf },
}

fn list(shards: &[Shard]) -> String {
    shards
        .iter()
        .map(Shard::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A case file to copy: from where it is to where the merged report says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub from: PathBuf,
    /// Relative to the merged report's folder.
    pub to: PathBuf,
}

/// The merged report and the files it refers to.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub report: FuzzReport,
    pub copies: Vec<Copy>,
}

/// Merges `reports` (each with the file it was read from; the case files it names are
/// relative to that file's folder).
pub fn merge(
    reports: &[(PathBuf, FuzzReport)],
    allow_incomplete: bool,
) -> Result<Merged, MergeError> {
    let Some((first_path, first)) = reports.first() else {
        return Err(MergeError::Empty);
    };
    for (path, r) in reports {
        same_run(first_path, first, path, r)?;
        if !r.complete && !allow_incomplete {
            return Err(MergeError::Incomplete { path: path.clone() });
        }
    }
    check_shards(reports)?;
    let mut order: Vec<&(PathBuf, FuzzReport)> = reports.iter().collect();
    order.sort_by_key(|(_, r)| (r.range.start, r.range.end));
    for pair in order.windows(2) {
        let ((a_path, a), (b_path, b)) = (pair[0], pair[1]);
        if a.range.overlaps(&b.range) {
            return Err(MergeError::Overlap {
                path: b_path.clone(),
                other: a_path.clone(),
                range: b.range,
            });
        }
        if a.range.end < b.range.start {
            return Err(MergeError::Gap {
                path: b_path.clone(),
                gap: IndexRange {
                    start: a.range.end,
                    end: b.range.start,
                },
            });
        }
    }

    let mut copies = Vec::new();
    let mut divergences = Vec::new();
    let mut oracle_faults = Vec::new();
    let mut oracle_flakes = Vec::new();
    for (path, r) in &order {
        let dir = path.parent().unwrap_or(Path::new("."));
        divergences.extend(r.divergences.iter().map(|f| (dir, f.clone())));
        oracle_faults.extend(r.oracle_faults.iter().map(|f| (dir, f.clone())));
        for flake in &r.oracle_flakes {
            copies.push(Copy {
                from: dir.join(&flake.file),
                to: flake.file.clone(),
            });
            oracle_flakes.push(flake.clone());
        }
    }
    oracle_flakes.sort_by_key(|f| f.index);
    let divergences = dedup(divergences, &mut copies);
    let oracle_faults = dedup(oracle_faults, &mut copies);
    let report = FuzzReport {
        version: VERSION,
        seed: first.seed,
        implementation: first.implementation.clone(),
        oracle: first.oracle.clone(),
        settings: first.settings.clone(),
        range: IndexRange {
            start: order[0].1.range.start,
            end: order[order.len() - 1].1.range.end,
        },
        shard: None,
        parts: order.iter().flat_map(|(_, r)| r.parts.clone()).collect(),
        programs: reports.iter().map(|(_, r)| r.programs).sum(),
        agreements: reports.iter().map(|(_, r)| r.agreements).sum(),
        divergences,
        oracle_faults,
        oracle_flakes,
        complete: reports.iter().all(|(_, r)| r.complete),
    };
    Ok(Merged { report, copies })
}

/// Refuses a report of another seed, implementation, oracle or settings than the first.
fn same_run(
    first_path: &Path,
    first: &FuzzReport,
    path: &Path,
    r: &FuzzReport,
) -> Result<(), MergeError> {
    let fields: [(&'static str, String, String); 4] = [
        (
            "seed",
            format!("{:#x}", first.seed),
            format!("{:#x}", r.seed),
        ),
        (
            "implementation",
            first.implementation.clone(),
            r.implementation.clone(),
        ),
        ("oracle", first.oracle.clone(), r.oracle.clone()),
        (
            "settings",
            format!("{:?}", first.settings),
            format!("{:?}", r.settings),
        ),
    ];
    for (what, expected, found) in fields {
        if expected != found {
            return Err(MergeError::OtherRun {
                path: path.to_path_buf(),
                first: first_path.to_path_buf(),
                what,
                expected,
                found,
            });
        }
    }
    Ok(())
}

/// Shards must be of one count, each once; when every report is a shard, all of them.
fn check_shards(reports: &[(PathBuf, FuzzReport)]) -> Result<(), MergeError> {
    let mut seen: BTreeMap<u32, &Path> = BTreeMap::new();
    let mut count = None;
    for (path, r) in reports {
        let Some(shard) = r.shard else { continue };
        match count {
            None => count = Some((shard.count, path)),
            Some((n, first)) if n != shard.count => {
                return Err(MergeError::OtherRun {
                    path: path.clone(),
                    first: first.clone(),
                    what: "shard count",
                    expected: n.to_string(),
                    found: shard.count.to_string(),
                });
            }
            Some(_) => {}
        }
        if let Some(other) = seen.insert(shard.index, path) {
            return Err(MergeError::DuplicateShard {
                path: path.clone(),
                other: other.to_path_buf(),
                shard,
            });
        }
    }
    let all_shards = reports.iter().all(|(_, r)| r.shard.is_some());
    if let Some((count, first)) = count
        && all_shards
    {
        let missing: Vec<Shard> = (1..=count)
            .filter(|k| !seen.contains_key(k))
            .map(|index| Shard { index, count })
            .collect();
        if !missing.is_empty() {
            return Err(MergeError::MissingShards {
                path: first.clone(),
                count,
                missing,
            });
        }
    }
    Ok(())
}

/// One finding per shrunk program, the lowest index kept (`found` is in range order), and
/// the kept findings' case files to copy.
fn dedup(found: Vec<(&Path, Finding)>, copies: &mut Vec<Copy>) -> Vec<Finding> {
    let mut kept: Vec<Finding> = Vec::new();
    let mut by_program: BTreeMap<String, usize> = BTreeMap::new();
    let mut found = found;
    found.sort_by_key(|(_, f)| f.index);
    for (dir, f) in found {
        match by_program.get(&f.program) {
            Some(&i) => {
                let k = &mut kept[i];
                k.also_at.push(f.index);
                k.also_at.extend(f.also_at);
                k.also_at.sort_unstable();
            }
            None => {
                copies.push(Copy {
                    from: dir.join(&f.file),
                    to: f.file.clone(),
                });
                by_program.insert(f.program.clone(), kept.len());
                kept.push(f);
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::report::{Flake, Part, Settings, Stop};

    fn shard_report(k: u32, n: u32, total: u64) -> FuzzReport {
        let shard = Shard { index: k, count: n };
        let range: IndexRange = shard.range(total).into();
        FuzzReport {
            version: VERSION,
            seed: 7,
            implementation: "rust-ref".into(),
            oracle: "cpython-fork".into(),
            settings: Settings {
                max_steps: 10,
                exclude: Vec::new(),
                ignore_messages: false,
            },
            range,
            shard: Some(shard),
            parts: vec![Part {
                shard: Some(shard),
                range,
                ran: range,
                stop: Stop::Budget,
            }],
            programs: range.len(),
            agreements: range.len(),
            divergences: Vec::new(),
            oracle_faults: Vec::new(),
            oracle_flakes: Vec::new(),
            complete: true,
        }
    }

    fn finding(index: u64, program: &str) -> Finding {
        Finding {
            index,
            file: format!("found/FUZZ-{index}.yaml").into(),
            program: program.into(),
            differences: 1,
            reproduced: true,
            also_at: Vec::new(),
        }
    }

    fn named(reports: Vec<FuzzReport>) -> Vec<(PathBuf, FuzzReport)> {
        reports
            .into_iter()
            .map(|r| {
                let shard = r.shard.map_or("whole".into(), |s| s.index.to_string());
                (PathBuf::from(format!("s{shard}/report.json")), r)
            })
            .collect()
    }

    #[test]
    fn shards_merge_into_the_whole_range() {
        let merged = merge(
            &named((1..=3).map(|k| shard_report(k, 3, 40)).collect()),
            false,
        )
        .unwrap()
        .report;
        assert_eq!(merged.range, IndexRange { start: 0, end: 40 });
        assert_eq!((merged.programs, merged.agreements), (40, 40));
        assert_eq!(merged.parts.len(), 3);
        assert_eq!(merged.shard, None);
        assert!(merged.complete);
    }

    #[test]
    fn the_same_shrunk_program_is_one_divergence_at_its_lowest_index() {
        let mut reports: Vec<FuzzReport> = (1..=3).map(|k| shard_report(k, 3, 30)).collect();
        reports[2].divergences.push(finding(25, "program A"));
        reports[0].divergences.push(finding(4, "program A"));
        reports[1].divergences.push(finding(12, "program B"));
        reports[1].oracle_flakes.push(Flake {
            index: 11,
            file: "oracle-flakes/FUZZ-11.yaml".into(),
            reason: "timeout".into(),
        });
        reports[0].oracle_flakes.push(Flake {
            index: 2,
            file: "oracle-flakes/FUZZ-2.yaml".into(),
            reason: "crashed".into(),
        });
        let merged = merge(&named(reports), false).unwrap();
        let d = &merged.report.divergences;
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].index, d[0].also_at.clone()), (4, vec![25]));
        assert_eq!((d[1].index, d[1].also_at.clone()), (12, vec![]));
        let flakes: Vec<u64> = merged
            .report
            .oracle_flakes
            .iter()
            .map(|f| f.index)
            .collect();
        assert_eq!(flakes, [2, 11]);
        // The kept divergences' case files and every flake's, from the shard's folder.
        assert!(merged.copies.contains(&Copy {
            from: "s1/found/FUZZ-4.yaml".into(),
            to: "found/FUZZ-4.yaml".into()
        }));
        assert!(!merged.copies.iter().any(|c| c.to.ends_with("FUZZ-25.yaml")));
        assert_eq!(merged.copies.len(), 4);
    }

    #[test]
    fn refusals_name_the_file() {
        let whole = |f: fn(&mut Vec<FuzzReport>)| {
            let mut reports: Vec<FuzzReport> = (1..=3).map(|k| shard_report(k, 3, 30)).collect();
            f(&mut reports);
            merge(&named(reports), false).unwrap_err().to_string()
        };
        assert_eq!(
            whole(|r| {
                r.remove(1);
            }),
            "s1/report.json: shards of 3 are missing 2/3"
        );
        assert_eq!(
            whole(|r| r[2].seed = 8),
            "s3/report.json: a report of another run (seed 0x8, where s1/report.json has 0x7)"
        );
        assert_eq!(
            whole(|r| r[1].complete = false),
            "s2/report.json: incomplete (its run did not finish; --allow-incomplete merges it anyway)"
        );
        assert!(
            whole(|r| r[2].oracle = "cpython-spawn".into())
                .starts_with("s3/report.json: a report of another run (oracle")
        );
        let e = whole(|r| {
            let dup = r[1].clone();
            r.push(dup);
        });
        assert!(
            e.starts_with("s2/report.json: shard 2/3 is given twice"),
            "{e}"
        );
        let e = whole(|r| r[1].shard = Some(Shard { index: 2, count: 4 }));
        assert!(
            e.starts_with("s2/report.json: a report of another run (shard count 4"),
            "{e}"
        );
        assert_eq!(merge(&[], false).unwrap_err(), MergeError::Empty);
    }

    #[test]
    fn unsharded_parts_must_be_disjoint_and_leave_no_gap() {
        let part = |start, end| {
            let mut r = shard_report(1, 1, 0);
            r.shard = None;
            r.range = IndexRange { start, end };
            r
        };
        let paths = |rs: Vec<FuzzReport>| -> Vec<(PathBuf, FuzzReport)> {
            rs.into_iter()
                .enumerate()
                .map(|(i, r)| (PathBuf::from(format!("r{i}.json")), r))
                .collect()
        };
        let e = merge(&paths(vec![part(0, 10), part(5, 20)]), false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "r1.json: programs 5..20 overlap those of r0.json"
        );
        let e = merge(&paths(vec![part(10, 20), part(0, 5)]), false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "r0.json: programs 5..10 are in no report (the next starts at 10)"
        );
        let ok = merge(&paths(vec![part(10, 20), part(0, 10)]), false).unwrap();
        assert_eq!(ok.report.range, IndexRange { start: 0, end: 20 });
    }

    #[test]
    fn allow_incomplete_merges_and_says_so() {
        let mut reports: Vec<FuzzReport> = (1..=2).map(|k| shard_report(k, 2, 10)).collect();
        reports[1].complete = false;
        let merged = merge(&named(reports), true).unwrap();
        assert!(!merged.report.complete);
    }
}
