//! Regression snapshots for third parties: `cargo xtask conformance --snapshots DIR`.
//!
//! poolspec's own snapshots (`fixtures/snapshots/`, checked by `tests/snapshots.rs` with
//! insta) pin the built-in implementations. A third party running the suite on its own pool
//! (typically in its CI, see `docs/ci-recipe.md`) wants the same guarantee without insta and
//! without a fork of poolspec: a folder in its repository holding what its pool was observed
//! doing, and a run that fails when that changes.
//!
//! - Each cell's status and normalized observation is one YAML file,
//!   `DIR/<implementation file stem>/<case>.yaml` (see [`file_stem`]).
//! - A missing file is recorded ([`SnapshotOutcome::Recorded`]); the run goes on.
//! - An existing file is compared by value (not by text, so reformatting it is harmless). A
//!   difference makes the cell unexpected, whatever its verdict was, with the snapshot's path
//!   in its reason and a unified diff in [`SnapshotSummary::render`]: the run exits non-zero.
//! - [`SnapshotMode::Update`] (`--update-snapshots`) rewrites every file instead, after a
//!   reviewed change.
//! - A cell `not-applicable` on one side only (a case gated by `versions`, checked on an
//!   interpreter outside its range) is no change: the folder serves every interpreter of a CI
//!   matrix. A snapshot with an observation is kept when this run's interpreter does not
//!   apply ([`SnapshotOutcome::NotApplicableHere`], in update mode too); a `not-applicable`
//!   snapshot holds nothing to compare and is recorded over, like a missing file, by a run
//!   where the case applies.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use similar::TextDiff;

use crate::implementations::file_stem;
use crate::runner::{CaseResult, MatrixRun};
use crate::verdict::{Status, Verdict};

/// What to do with existing snapshot files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Compare with existing files; record missing ones.
    Check,
    /// Rewrite every file with this run's observations.
    Update,
}

/// The contents of one snapshot file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub implementation: String,
    pub case: String,
    pub status: Status,
    /// The normalized observation (`null` when nothing ran: unsupported, or the driver did
    /// not start).
    pub observation: Option<serde_json::Value>,
}

impl Snapshot {
    pub fn of(result: &CaseResult) -> Snapshot {
        Snapshot {
            implementation: result.implementation.clone(),
            case: result.case.clone(),
            status: result.status,
            observation: result.observation.clone(),
        }
    }

    /// Same status and observation (numbers compare by value; map order does not matter).
    pub fn same_as(&self, other: &Snapshot) -> bool {
        self.status == other.status && self.observation == other.observation
    }

    /// The YAML body (without the header comment), the form diffs are made of.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_default()
    }

    /// The file text: a header comment, then the YAML body.
    pub fn to_file_text(&self) -> String {
        format!(
            "# poolspec observation snapshot, written by `cargo xtask conformance --snapshots`.\n\
             # A run whose observation differs fails; review, then rerun with --update-snapshots.\n{}",
            self.to_yaml()
        )
    }

    pub fn parse(text: &str) -> Result<Snapshot, serde_yaml::Error> {
        serde_yaml::from_str(text)
    }
}

/// `DIR/<implementation file stem>/<case>.yaml`.
pub fn snapshot_path(dir: &Path, implementation: &str, case: &str) -> PathBuf {
    dir.join(file_stem(implementation))
        .join(format!("{case}.yaml"))
}

/// A unified diff from the snapshot to this run, or `None` when they are the same.
pub fn compare(recorded: &Snapshot, now: &Snapshot) -> Option<String> {
    if recorded.same_as(now) {
        return None;
    }
    let (a, b) = (recorded.to_yaml(), now.to_yaml());
    Some(
        TextDiff::from_lines(&a, &b)
            .unified_diff()
            .context_radius(3)
            .header("snapshot", "this run")
            .to_string(),
    )
}

/// What happened to one cell's snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotOutcome {
    /// There was no snapshot; this run's was written.
    Recorded,
    /// The snapshot matches this run.
    Unchanged,
    /// The snapshot differs from this run (check mode): the cell is now unexpected.
    Changed { diff: String },
    /// The snapshot differed and was rewritten (update mode).
    Rewritten { diff: String },
    /// The case does not apply to this run's implementation (its language version is outside
    /// the case's `versions`) but the snapshot, recorded on one it applies to, has an
    /// observation: kept as it is, and not a change.
    NotApplicableHere,
}

/// One cell's snapshot check.
#[derive(Debug, Clone)]
pub struct SnapshotCheck {
    pub case: String,
    pub implementation: String,
    pub path: PathBuf,
    pub outcome: SnapshotOutcome,
}

/// Every cell's snapshot check, in result order.
#[derive(Debug, Clone)]
pub struct SnapshotSummary {
    pub dir: PathBuf,
    pub mode: SnapshotMode,
    pub checks: Vec<SnapshotCheck>,
}

impl SnapshotSummary {
    pub fn changed(&self) -> impl Iterator<Item = &SnapshotCheck> {
        self.checks
            .iter()
            .filter(|c| matches!(c.outcome, SnapshotOutcome::Changed { .. }))
    }

    fn count(&self, f: impl Fn(&SnapshotOutcome) -> bool) -> usize {
        self.checks.iter().filter(|c| f(&c.outcome)).count()
    }

    /// A summary line, then every changed (or rewritten) snapshot with its diff.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let recorded = self.count(|o| *o == SnapshotOutcome::Recorded);
        let unchanged = self.count(|o| *o == SnapshotOutcome::Unchanged);
        let changed = self.count(|o| matches!(o, SnapshotOutcome::Changed { .. }));
        let rewritten = self.count(|o| matches!(o, SnapshotOutcome::Rewritten { .. }));
        let kept = self.count(|o| *o == SnapshotOutcome::NotApplicableHere);
        let _ = write!(
            out,
            "Snapshots in {}: {unchanged} unchanged, {recorded} recorded",
            self.dir.display()
        );
        if kept > 0 {
            let _ = write!(out, ", {kept} kept (not applicable here)");
        }
        match self.mode {
            SnapshotMode::Check => {
                let _ = writeln!(out, ", {changed} changed");
            }
            SnapshotMode::Update => {
                let _ = writeln!(out, ", {rewritten} rewritten");
            }
        }
        for c in &self.checks {
            let (what, diff) = match &c.outcome {
                SnapshotOutcome::Changed { diff } => ("CHANGED", diff),
                SnapshotOutcome::Rewritten { diff } => ("rewritten", diff),
                _ => continue,
            };
            let _ = writeln!(
                out,
                "  {} on {}: {what} ({})",
                c.case,
                c.implementation,
                c.path.display()
            );
            for line in diff.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
        if changed > 0 {
            let _ = writeln!(
                out,
                "{changed} observation{} changed. If the change is intended, rerun with \
                 --update-snapshots and commit {}.",
                if changed == 1 { "" } else { "s" },
                self.dir.display()
            );
        }
        out
    }
}

/// Why the snapshots could not be checked: a file under the snapshot folder could not be
/// read, written or its folder created (the cause is the I/O error), or an existing file is
/// not a snapshot (the cause is the YAML error).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} is not a snapshot (fix or delete it, or rerun with --update-snapshots)",
        path.display()
    )]
    NotASnapshot {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("creating {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Checks (or, in update mode, rewrites) the snapshot of every cell of `run` under `dir`.
/// In check mode a changed cell becomes [`Verdict::Unexpected`], its reason naming the
/// snapshot, so the run fails and every report shows it.
pub fn apply(
    run: &mut MatrixRun,
    dir: &Path,
    mode: SnapshotMode,
) -> Result<SnapshotSummary, SnapshotError> {
    let mut checks = Vec::new();
    for result in &mut run.results {
        let path = snapshot_path(dir, &result.implementation, &result.case);
        let now = Snapshot::of(result);
        let recorded = if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|source| SnapshotError::Read {
                path: path.clone(),
                source,
            })?;
            Some(
                Snapshot::parse(&text).map_err(|source| SnapshotError::NotASnapshot {
                    path: path.clone(),
                    source,
                })?,
            )
        } else {
            None
        };
        let recorded = recorded.filter(|old| {
            // Nothing to compare: recorded where the case did not apply.
            old.status != Status::NotApplicable || now.status == Status::NotApplicable
        });
        let outcome = match (recorded, mode) {
            (None, _) => {
                write(&path, &now)?;
                SnapshotOutcome::Recorded
            }
            (Some(old), _)
                if now.status == Status::NotApplicable && old.status != Status::NotApplicable =>
            {
                SnapshotOutcome::NotApplicableHere
            }
            (Some(old), mode) => match compare(&old, &now) {
                None => SnapshotOutcome::Unchanged,
                Some(diff) if mode == SnapshotMode::Update => {
                    write(&path, &now)?;
                    SnapshotOutcome::Rewritten { diff }
                }
                Some(diff) => {
                    let note = format!("observation differs from snapshot {}", path.display());
                    result.reason = Some(match result.reason.take() {
                        Some(r) => format!("{note}; {r}"),
                        None => note,
                    });
                    result.verdict = Verdict::Unexpected;
                    SnapshotOutcome::Changed { diff }
                }
            },
        };
        checks.push(SnapshotCheck {
            case: result.case.clone(),
            implementation: result.implementation.clone(),
            path,
            outcome,
        });
    }
    Ok(SnapshotSummary {
        dir: dir.to_path_buf(),
        mode,
        checks,
    })
}

fn write(path: &Path, snapshot: &Snapshot) -> Result<(), SnapshotError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| SnapshotError::CreateDir {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(path, snapshot.to_file_text()).map_err(|source| SnapshotError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::runner::ImplementationReport;
    use crate::spec::Area;

    const IMP: &str = "python:theirpkg.pool:Pool";

    fn result(case: &str, status: Status, observation: serde_json::Value) -> CaseResult {
        CaseResult {
            case: case.into(),
            area: Area::Blocking,
            quirk: false,
            implementation: IMP.into(),
            status,
            verdict: Verdict::judge(status, None),
            reason: (status != Status::Pass).then(|| "some reason".to_owned()),
            expected: None,
            fault: None,
            observation: Some(observation),
            unstable: None,
            history: None,
            duration_ms: 1,
        }
    }

    fn run(results: Vec<CaseResult>) -> MatrixRun {
        MatrixRun {
            implementations: vec![ImplementationReport {
                name: IMP.into(),
                info: None,
                capabilities: Vec::new(),
            }],
            results,
            wall: Duration::from_secs(1),
        }
    }

    fn obs(value: serde_json::Value) -> serde_json::Value {
        json!({"steps": {"s1": {"returned": value}}, "tasks": {"t": {"runs": 1}}})
    }

    #[test]
    fn the_first_run_records_the_next_compares_and_update_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = run(vec![
            result("A-1", Status::Pass, obs(json!(7))),
            result("A-2", Status::Fail, obs(json!([1, 2.5, "x"]))),
        ]);
        let s = apply(&mut first, dir.path(), SnapshotMode::Check).unwrap();
        assert!(
            s.checks
                .iter()
                .all(|c| c.outcome == SnapshotOutcome::Recorded)
        );
        let path = dir.path().join("python_theirpkg.pool_Pool/A-1.yaml");
        assert_eq!(s.checks[0].path, path);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("status: pass"), "{text}");
        assert!(
            first
                .results
                .iter()
                .all(|r| r.verdict.is_ok() || r.status == Status::Fail)
        );

        // Same observations: unchanged, verdicts untouched.
        let mut second = run(vec![
            result("A-1", Status::Pass, obs(json!(7))),
            result("A-2", Status::Fail, obs(json!([1, 2.5, "x"]))),
        ]);
        let s = apply(&mut second, dir.path(), SnapshotMode::Check).unwrap();
        assert!(
            s.checks
                .iter()
                .all(|c| c.outcome == SnapshotOutcome::Unchanged)
        );
        assert_eq!(second.results[0].verdict, Verdict::Pass);
        assert_eq!(s.changed().count(), 0);

        // A changed value: unexpected, with the snapshot in the reason and a diff.
        let mut third = run(vec![
            result("A-1", Status::Pass, obs(json!(8))),
            result("A-2", Status::Fail, obs(json!([1, 2.5, "x"]))),
        ]);
        let s = apply(&mut third, dir.path(), SnapshotMode::Check).unwrap();
        let changed: Vec<&SnapshotCheck> = s.changed().collect();
        assert_eq!(changed.len(), 1);
        let SnapshotOutcome::Changed { diff } = &changed[0].outcome else {
            unreachable!()
        };
        assert!(
            diff.contains("-      returned: 7\n+      returned: 8"),
            "{diff}"
        );
        let r = &third.results[0];
        assert_eq!((r.status, r.verdict), (Status::Pass, Verdict::Unexpected));
        assert!(
            r.reason
                .as_deref()
                .unwrap()
                .starts_with("observation differs from snapshot "),
            "{:?}",
            r.reason
        );
        // A-2 failed before and after: its verdict is left alone.
        assert_eq!(third.results[1].reason.as_deref(), Some("some reason"));
        let text = s.render();
        assert!(
            text.contains("1 unchanged, 0 recorded, 1 changed"),
            "{text}"
        );
        assert!(
            text.contains("A-1 on python:theirpkg.pool:Pool: CHANGED"),
            "{text}"
        );
        assert!(text.contains("--update-snapshots"), "{text}");
        // Check mode never writes over a snapshot.
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("returned: 7")
        );

        // Update mode rewrites it, and then it is unchanged.
        let mut fourth = run(vec![result("A-1", Status::Pass, obs(json!(8)))]);
        let s = apply(&mut fourth, dir.path(), SnapshotMode::Update).unwrap();
        assert!(matches!(
            s.checks[0].outcome,
            SnapshotOutcome::Rewritten { .. }
        ));
        assert_eq!(fourth.results[0].verdict, Verdict::Pass);
        let mut fifth = run(vec![result("A-1", Status::Pass, obs(json!(8)))]);
        let s = apply(&mut fifth, dir.path(), SnapshotMode::Check).unwrap();
        assert_eq!(s.checks[0].outcome, SnapshotOutcome::Unchanged);
    }

    #[test]
    fn a_cell_not_applicable_on_one_side_is_no_change() {
        let dir = tempfile::tempdir().unwrap();
        let na = || CaseResult {
            observation: None,
            ..result("V-1", Status::NotApplicable, json!(null))
        };
        // Recorded where the case applies (3.11), checked where it does not (3.8): kept, in
        // check and in update mode, and the run does not fail.
        let mut on_3_11 = run(vec![result("V-1", Status::Pass, obs(json!(1)))]);
        apply(&mut on_3_11, dir.path(), SnapshotMode::Check).unwrap();
        let path = snapshot_path(dir.path(), IMP, "V-1");
        let recorded = std::fs::read_to_string(&path).unwrap();
        for mode in [SnapshotMode::Check, SnapshotMode::Update] {
            let mut on_3_8 = run(vec![na()]);
            let s = apply(&mut on_3_8, dir.path(), mode).unwrap();
            assert_eq!(s.checks[0].outcome, SnapshotOutcome::NotApplicableHere);
            assert_eq!(on_3_8.results[0].verdict, Verdict::Pass);
            assert!(s.render().contains(", 1 kept (not applicable here)"));
            assert_eq!(std::fs::read_to_string(&path).unwrap(), recorded);
        }
        // Recorded where it does not apply: the first run where it does records over it; a
        // run where it does not still finds it unchanged.
        let dir = tempfile::tempdir().unwrap();
        apply(&mut run(vec![na()]), dir.path(), SnapshotMode::Check).unwrap();
        let s = apply(&mut run(vec![na()]), dir.path(), SnapshotMode::Check).unwrap();
        assert_eq!(s.checks[0].outcome, SnapshotOutcome::Unchanged);
        let mut on_3_11 = run(vec![result("V-1", Status::Pass, obs(json!(1)))]);
        let s = apply(&mut on_3_11, dir.path(), SnapshotMode::Check).unwrap();
        assert_eq!(s.checks[0].outcome, SnapshotOutcome::Recorded);
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("status: pass")
        );
    }

    #[test]
    fn a_status_change_alone_is_a_change() {
        let a = Snapshot::of(&result("A-1", Status::Pass, obs(json!(1))));
        let b = Snapshot::of(&result("A-1", Status::Timeout, obs(json!(1))));
        let diff = compare(&a, &b).unwrap();
        assert!(diff.contains("-status: pass\n+status: timeout"), "{diff}");
    }

    #[test]
    fn reformatting_a_snapshot_is_harmless() {
        let now = Snapshot::of(&result("A-1", Status::Pass, obs(json!(1.0))));
        let hand_written = "case: A-1\nimplementation: python:theirpkg.pool:Pool\nstatus: pass\n\
                            observation: {tasks: {t: {runs: 1}}, steps: {s1: {returned: 1.0}}}\n";
        let recorded = Snapshot::parse(hand_written).unwrap();
        assert_eq!(compare(&recorded, &now), None);
    }

    #[test]
    fn a_broken_snapshot_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = snapshot_path(dir.path(), IMP, "A-1");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "case: A-1\nstatsu: pass\n").unwrap();
        let mut r = run(vec![result("A-1", Status::Pass, obs(json!(1)))]);
        let err = apply(&mut r, dir.path(), SnapshotMode::Check).unwrap_err();
        assert!(
            format!("{err:#}").contains("A-1.yaml is not a snapshot"),
            "{err:#}"
        );
    }
}
