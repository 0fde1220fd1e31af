//! `--from`: the shard files of one run merged into its measurement. Refused, in one line
//! naming the file: a shard of another suite or another run (circumstances, cases, subjects,
//! shard count), a shard given twice, a missing shard, a cell in two files or in a file
//! whose shard does not own it, a cell no file has.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};
use conformance::runner::MatrixRun;
use conformance::shard::Shard;

use super::super::measurement::Measurement;
use super::super::packages::Installed;
use super::super::render::{Header, SuiteFacts};
use super::super::subjects::{Subject, Unavailable, subjects};
use super::super::table::Statuses;
use super::{ShardFile, cell_key};

/// The measurement the shards make together, and whether the run was narrowed.
pub fn merge(files: &[(PathBuf, ShardFile)]) -> Result<(Measurement, bool)> {
    let Some((first_path, first)) = files.first() else {
        bail!("--from: no shard file given");
    };
    let first_name = first_path.display();
    let mut by_index: BTreeMap<u32, &Path> = BTreeMap::new();
    for (path, f) in files {
        let name = path.display();
        if f.suite_hash != first.suite_hash {
            bail!(
                "{name}: a shard of another suite (suite hash {}, where {first_name} has {})",
                f.suite_hash,
                first.suite_hash
            );
        }
        if f.shard.count != first.shard.count {
            bail!(
                "{name}: a shard of another run (shard {}, where {first_name} is {})",
                f.shard,
                first.shard
            );
        }
        if let Some(what) = differs(&first.run, &f.run, first.narrowed != f.narrowed) {
            bail!("{name}: a shard of another run (its {what} differs from {first_name}'s)");
        }
        if let Some(other) = by_index.insert(f.shard.index, path) {
            bail!(
                "{name}: shard {} is given twice (also {})",
                f.shard,
                other.display()
            );
        }
    }
    let count = first.shard.count;
    let missing: Vec<String> = (1..=count)
        .filter(|k| !by_index.contains_key(k))
        .map(|index| Shard { index, count }.to_string())
        .collect();
    if !missing.is_empty() {
        bail!(
            "{first_name}: shards of {count} are missing {}",
            missing.join(", ")
        );
    }

    // Every cell once, in the file of the shard that owns it.
    let mut holder: BTreeMap<String, &Path> = BTreeMap::new();
    let mut results = Vec::new();
    let mut statuses = Statuses::new();
    for (path, f) in files {
        for r in &f.results {
            let key = cell_key(&r.case, &r.implementation);
            if !f.shard.owns(&key) {
                bail!(
                    "{}: holds cell {key}, which its shard {} does not own",
                    path.display(),
                    f.shard
                );
            }
            if let Some(other) = holder.insert(key.clone(), path) {
                bail!(
                    "{}: cell {key} is also in {}",
                    path.display(),
                    other.display()
                );
            }
            results.push(r.clone());
        }
        for s in &f.statuses {
            let set: BTreeSet<_> = s.statuses.iter().copied().collect();
            statuses.insert((s.implementation.clone(), s.case.clone()), set);
        }
    }
    let run = &first.run;
    for case in &run.cases {
        for (_, implementation) in &run.subjects {
            let key = cell_key(&case.id, implementation);
            if !holder.contains_key(&key) {
                let owner = Shard::of_key(&key, count) + 1;
                let path = by_index.get(&owner).map_or(first_path.as_path(), |p| p);
                bail!(
                    "{}: cell {key} is missing (its shard {owner}/{count} owns it)",
                    path.display()
                );
            }
        }
    }
    // Case order, then subject order: as one run's matrix is.
    let case_at = |id: &str| run.cases.iter().position(|c| c.id == id);
    let subject_at = |name: &str| run.subjects.iter().position(|(_, n)| n == name);
    results.sort_by_key(|r| (case_at(&r.case), subject_at(&r.implementation)));

    let measurement = Measurement {
        header: Header {
            interpreter: run.interpreter.clone(),
            pypy: run.pypy.clone(),
            node: run.node.clone(),
            installed: Installed(run.installed.clone()),
            runs: run.runs,
        },
        cases: run.cases.clone(),
        suite: SuiteFacts::of(
            run.cases.iter().map(|c| (c.area, c.quirk)),
            first.suite_hash.clone(),
        ),
        matrix: MatrixRun {
            implementations: Vec::new(),
            results,
            wall: Duration::ZERO,
        },
        statuses,
        ran: run
            .subjects
            .iter()
            .map(|(spec, name)| Ok((subject(first_path, spec)?, name.clone())))
            .collect::<Result<_>>()?,
        unavailable: run
            .unavailable
            .iter()
            .map(|(spec, why)| {
                Ok(Unavailable {
                    subject: subject(first_path, spec)?,
                    why: why.clone(),
                })
            })
            .collect::<Result<_>>()?,
    };
    Ok((measurement, first.narrowed))
}

/// The first thing two shards of one run should agree on and do not.
fn differs(a: &super::RunFacts, b: &super::RunFacts, narrowed: bool) -> Option<&'static str> {
    [
        (a.interpreter != b.interpreter, "interpreter"),
        (a.pypy != b.pypy, "PyPy"),
        (a.node != b.node, "Node.js"),
        (a.installed != b.installed, "installed packages"),
        (a.runs != b.runs, "runs per cell"),
        (a.cases != b.cases, "case list"),
        (a.subjects != b.subjects, "subject list"),
        (a.unavailable != b.unavailable, "list of subjects not run"),
        (narrowed, "narrowing (--impl/--case)"),
    ]
    .into_iter()
    .find_map(|(d, what)| d.then_some(what))
}

fn subject(path: &Path, spec: &str) -> Result<Subject> {
    match subjects().into_iter().find(|s| s.spec == spec) {
        Some(s) => Ok(s),
        None => bail!(
            "{}: names {spec:?}, which is not a subject of this release",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::recorded;
    use super::*;

    fn shards(n: u32) -> Vec<(PathBuf, ShardFile)> {
        let whole = recorded::load();
        (1..=n)
            .map(|index| {
                let shard = Shard { index, count: n };
                let file = ShardFile::of(&whole, shard, false);
                (PathBuf::from(super::super::file_name(shard)), file)
            })
            .collect()
    }

    fn refusal(files: &[(PathBuf, ShardFile)]) -> String {
        match merge(files) {
            Ok(_) => panic!("merged"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn merged_shards_render_as_the_whole_run() {
        let whole = recorded::load().render();
        for n in [1, 2, 3, 5] {
            let files = shards(n);
            // Every shard has a part (the recorded run has enough cells for 5).
            assert!(files.iter().all(|(_, f)| !f.results.is_empty()));
            let (merged, narrowed) = merge(&files).unwrap();
            assert!(!narrowed);
            assert_eq!(merged.render(), whole, "{n} shards");
        }
    }

    #[test]
    fn the_shards_refuse_other_runs_duplicates_and_gaps() {
        let mut two = shards(2);
        two[1].1.suite_hash = "other".into();
        assert!(
            refusal(&two).starts_with("shard-2-of-2.json: a shard of another suite (suite hash other, where shard-1-of-2.json has "),
            "{}",
            refusal(&two)
        );

        let mut two = shards(2);
        two[1].1.run.interpreter = "CPython 3.13.0".into();
        assert_eq!(
            refusal(&two),
            "shard-2-of-2.json: a shard of another run (its interpreter differs from shard-1-of-2.json's)"
        );

        let mut three = shards(3);
        three.remove(1);
        assert_eq!(
            refusal(&three),
            "shard-1-of-3.json: shards of 3 are missing 2/3"
        );

        let mut two = shards(2);
        two.push((PathBuf::from("copy.json"), two[0].1.clone()));
        assert_eq!(
            refusal(&two),
            "copy.json: shard 1/2 is given twice (also shard-1-of-2.json)"
        );

        let mut two = shards(2);
        let stolen = two[0].1.results[0].clone();
        let key = cell_key(&stolen.case, &stolen.implementation);
        two[1].1.results.push(stolen);
        assert_eq!(
            refusal(&two),
            format!("shard-2-of-2.json: holds cell {key}, which its shard 2/2 does not own")
        );

        let mut two = shards(2);
        let lost = two[1].1.results.pop().unwrap();
        let key = cell_key(&lost.case, &lost.implementation);
        assert_eq!(
            refusal(&two),
            format!("shard-2-of-2.json: cell {key} is missing (its shard 2/2 owns it)")
        );

        let mut two = shards(2);
        two[1].1.shard = Shard { index: 2, count: 3 };
        assert!(refusal(&two).starts_with("shard-2-of-2.json: a shard of another run (shard 2/3"));
    }

    #[test]
    fn a_shard_file_round_trips_through_its_json() {
        let dir = tempfile::tempdir().unwrap();
        let (_, file) = shards(2).remove(0);
        let path = file.write(dir.path()).unwrap();
        assert_eq!(path.file_name().unwrap(), "shard-1-of-2.json");
        let back = ShardFile::read(&path).unwrap();
        assert_eq!(back.results.len(), file.results.len());
        assert_eq!(back.run, file.run);

        let other = dir.path().join("report.json");
        std::fs::write(&other, r#"{"kind": "poolspec-fuzz", "version": 1}"#).unwrap();
        let e = format!("{:#}", ShardFile::read(&other).unwrap_err());
        assert_eq!(
            e,
            format!(
                "{}: not a compliance shard file (its kind is \"poolspec-fuzz\")",
                other.display()
            )
        );
    }
}
