//! What `cargo xtask conformance` prints, apart from running it: the events while it works
//! (the progress line, and with `-v` a line per finished cell, both on stderr) and the
//! ending on stdout: the terminal view of the model (`conformance::report::terminal`), the
//! seed claims in one line, the snapshot check, where the reports are, and the closing line
//! CI looks for. With `-q`, one line.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use conformance::claims::ClaimsFile;
use conformance::implementations;
use conformance::report::{Model, ReportPaths, terminal};
use conformance::runner::{CaseResult, MatrixRun};
use conformance::snapshots::SnapshotSummary;
use conformance::spec::LoadedCase;
use conformance::verdict::Status;
use indicatif::{ProgressBar, ProgressStyle};

use super::outcome::Outcome;
use crate::flags::{Output, Progress};

/// The events of a run as it goes: a progress line, and with `-v` a line per finished cell.
pub struct Events {
    bar: ProgressBar,
    verbose: bool,
}

impl Events {
    /// Says what is about to run (not with `-q`) and starts the progress line.
    pub fn start(header: &str, total: u64, progress: &Progress, output: &Output) -> Events {
        if !output.quiet {
            eprintln!("{header}");
        }
        Events {
            bar: progress_bar(total, progress),
            verbose: output.verbose > 0,
        }
    }

    /// A cell finished.
    pub fn finished(&self, r: &CaseResult) {
        self.bar
            .set_message(format!("{} on {}", r.case, r.implementation));
        self.bar.inc(1);
        if self.verbose {
            let line = format!(
                "poolspec: finished {} on {}: {} ({} ms)",
                r.case,
                r.implementation,
                r.status.as_str(),
                r.duration_ms
            );
            if self.bar.is_hidden() {
                eprintln!("{line}");
            } else {
                self.bar.println(line);
            }
        }
    }

    /// The run is over: the progress line goes.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn progress_bar(total: u64, progress: &Progress) -> ProgressBar {
    if !progress.bar_wanted() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} {wide_msg}")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// What the ending shows besides the model.
pub struct Ending<'a> {
    /// List the cases observed differently from the oracle (an `--interpreters` run).
    pub differences: bool,
    pub claims: Option<Claims>,
    pub snapshots: Option<&'a SnapshotSummary>,
    pub paths: &'a ReportPaths,
    pub outcome: &'a Outcome,
}

/// The text printed on stdout once the run is over.
pub fn ending(model: &Model<'_>, output: &Output, end: &Ending<'_>) -> String {
    let shard = model.shard.as_ref().map(|s| {
        format!(
            "shard {}: {} of {} cells",
            s.shard(),
            model.cells.len(),
            s.matrix_cells
        )
    });
    if output.quiet {
        let line = terminal::quiet_line(model, end.outcome.spec_errors);
        return match shard {
            Some(s) => format!("{s}; {line}\n"),
            None => format!("{line}\n"),
        };
    }
    let options = terminal::TerminalOptions {
        differences: end.differences,
        ..output.terminal()
    };
    let mut out = terminal::render(model, &options);
    if let Some(s) = end.snapshots {
        let _ = writeln!(out, "\n{}", s.render().trim_end());
    }
    out.push('\n');
    if let Some(c) = &end.claims {
        out.push_str(&c.render());
    }
    if end.outcome.spec_errors > 0 {
        let _ = writeln!(
            out,
            "{}",
            terminal::spec_errors_line(end.outcome.spec_errors)
        );
    }
    if let Some(s) = shard {
        let _ = writeln!(
            out,
            "{s} (merge the shards' reports with `cargo xtask conformance merge`)"
        );
    }
    let _ = writeln!(out, "{}", reports_line(end.paths));
    let _ = writeln!(out, "{}", end.outcome.closing_line());
    out
}

/// `Reports in DIR: report.jsonl, summary.md, junit.xml, report.html`.
fn reports_line(p: &ReportPaths) -> String {
    let files = [&p.jsonl, &p.markdown, &p.junit, &p.html];
    let dir = p
        .jsonl
        .parent()
        .filter(|d| files.iter().all(|f| f.parent() == Some(*d)));
    if let Some(dir) = dir {
        let names: Vec<String> = files
            .iter()
            .filter_map(|f| f.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        return format!("Reports in {}: {}", dir.display(), names.join(", "));
    }
    let paths: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    format!("Reports: {}", paths.join(", "))
}

/// The seed claims (spec/claims.yaml) and whether this run's evidence for each passed on the
/// oracle.
pub struct Claims {
    pub total: usize,
    /// `(id, verdict, what it says)` of each claim whose evidence did not pass.
    pub unconfirmed: Vec<(String, String, String)>,
}

impl Claims {
    /// The claims of a run that includes the oracle; `None` without it (every claim would
    /// read as unconfirmed) or when the claims file does not load (lint reports that).
    pub fn of(root: &Path, matrix: &MatrixRun, cases: &[LoadedCase]) -> Option<Claims> {
        let claims = ClaimsFile::load(&root.join("spec/claims.yaml"), cases).ok()?;
        let oracle = implementations::ORACLE;
        if matrix.implementations.iter().all(|i| i.name != oracle) {
            return None;
        }
        let unconfirmed = claims
            .claims
            .iter()
            .filter(|claim| {
                !claim.cases.iter().all(|id| {
                    matrix
                        .result(id, oracle)
                        .is_some_and(|r| r.status == Status::Pass)
                })
            })
            .map(|claim| {
                (
                    claim.id.clone(),
                    format!("{:?}", claim.verdict).to_lowercase(),
                    claim.says.clone(),
                )
            })
            .collect();
        Some(Claims {
            total: claims.claims.len(),
            unconfirmed,
        })
    }

    /// One line when every claim is confirmed; else that line and one per unconfirmed claim.
    pub fn render(&self) -> String {
        let oracle = implementations::ORACLE;
        let mut out = format!(
            "Seed claims: {} of {} settled on {oracle} as spec/CLAIMS.md says\n",
            self.total - self.unconfirmed.len(),
            self.total
        );
        for (id, verdict, says) in &self.unconfirmed {
            let _ = writeln!(
                out,
                "  {id:8} {verdict:7} {says}  [evidence did not pass in this run]"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claims_are_one_line_unless_one_is_unconfirmed() {
        let all = Claims {
            total: 14,
            unconfirmed: vec![],
        };
        assert_eq!(
            all.render(),
            "Seed claims: 14 of 14 settled on cpython-fork as spec/CLAIMS.md says\n"
        );
        let one = Claims {
            total: 14,
            unconfirmed: vec![("C-3".into(), "holds".into(), "map keeps order".into())],
        };
        assert_eq!(one.render().lines().count(), 2);
        assert!(one.render().starts_with("Seed claims: 13 of 14"));
    }

    #[test]
    fn the_reports_line_names_the_folder_once() {
        let dir = Path::new("target/conformance");
        let paths = ReportPaths {
            jsonl: dir.join("report.jsonl"),
            markdown: dir.join("summary.md"),
            junit: dir.join("junit.xml"),
            html: dir.join("report.html"),
        };
        assert_eq!(
            reports_line(&paths),
            "Reports in target/conformance: report.jsonl, summary.md, junit.xml, report.html"
        );
    }
}
