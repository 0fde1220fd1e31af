//! `cargo xtask conformance`: the main job. Runs the selected cases on the selected
//! implementations, prints the matrix and its summary, writes the reports under
//! `target/conformance/` (or `--out`), and exits by the rule in `outcome.rs`. Its maintenance
//! subcommands (`lint`, `schema`, `claims`, `coverage`, `smoke`) live in `maintenance.rs`;
//! the selection flags it shares with `bench`, in `select.rs`; Ctrl-C, in `interrupt.rs`.
//!
//! The output folder never holds another run's report: the earlier one is removed before
//! anything else happens, and an interrupted run writes what finished, saying so.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use conformance::cancel::Cancel;
use conformance::claims::ClaimsFile;
use conformance::implementations;
use conformance::report;
use conformance::runner::{CaseResult, MatrixRun, RunOptions, run_matrix_until};
use conformance::snapshots::{self, SnapshotMode};
use conformance::spec::LoadedCase;
use conformance::verdict::Status;
use indicatif::{ProgressBar, ProgressStyle};

use crate::flags::{Guards, Progress};

pub mod interrupt;
pub mod maintenance;
pub mod outcome;
pub mod select;

use maintenance::Maintenance;
use outcome::{Interrupted, Outcome};
use select::{Prepared, Select, prepare};

#[derive(Args, Debug)]
// Options configure the matrix run; a maintenance subcommand takes only its own flags, so
// `conformance --impl X smoke` is refused rather than half-honoured.
#[command(args_conflicts_with_subcommands = true)]
pub struct ConformanceArgs {
    #[command(subcommand)]
    command: Option<Maintenance>,
    #[command(flatten)]
    select: Select,
    #[command(flatten)]
    guards: Guards,
    /// Run each case N times and report any case whose observation changed.
    #[arg(long, value_name = "N", default_value_t = 1)]
    verify: u32,
    /// Worker threads (default: twice the number of CPUs, from 2 to 8).
    #[arg(long)]
    jobs: Option<usize>,
    #[command(flatten)]
    progress: Progress,
    /// Print only the summary, not the matrix.
    #[arg(long, short)]
    quiet: bool,
    /// Regression snapshots: compare each cell's status and observation with
    /// DIR/<implementation>/<case>.yaml (recording missing ones); any change is unexpected.
    #[arg(long, value_name = "DIR")]
    snapshots: Option<PathBuf>,
    /// With --snapshots: rewrite every snapshot with this run's observations.
    #[arg(long, requires = "snapshots")]
    update_snapshots: bool,
    /// Write the reports into DIR instead of target/conformance (an earlier run's reports
    /// there are removed when the run starts).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print a line for every finished cell (to stderr).
    #[arg(long, short)]
    verbose: bool,
}

pub fn run(root: &Path, args: &ConformanceArgs) -> Result<ExitCode> {
    match &args.command {
        Some(command) => maintenance::run(root, command),
        None => run_matrix_job(root, args),
    }
}

fn run_matrix_job(root: &Path, c: &ConformanceArgs) -> Result<ExitCode> {
    let out_dir = c
        .out
        .clone()
        .unwrap_or_else(|| root.join("target/conformance"));
    // First of all: a run that fails to load, is killed or interrupted must not leave an
    // earlier run's report where its own belongs.
    report::clear(&out_dir)?;
    let Prepared {
        cases,
        impls,
        spec_errors,
    } = prepare(root, &c.select)?;
    // Built (or found up to date) before the clock starts, not by the first cell's driver.
    conformance::supervisor::binary().map_err(|e| anyhow::anyhow!("{e}"))?;
    let history_dir = out_dir.join(report::HISTORIES);
    let mut options = RunOptions {
        timeout_multiplier: c.guards.timeout_multiplier,
        repeat: c.verify.max(1),
        history_dir: Some(history_dir),
        ..RunOptions::default()
    };
    if let Some(j) = c.jobs {
        options.jobs = j.max(1);
    }
    let total = (cases.len() * impls.len()) as u64 * u64::from(options.repeat);
    eprintln!(
        "poolspec: {} cases × {} implementations{}",
        cases.len(),
        impls.len(),
        if options.repeat > 1 {
            format!(", {} runs each", options.repeat)
        } else {
            String::new()
        }
    );
    let cancel = Cancel::new();
    interrupt::watch(cancel.clone())?;
    let bar = progress_bar(total, &c.progress);
    let on_result = |r: &CaseResult| {
        bar.set_message(format!("{} on {}", r.case, r.implementation));
        bar.inc(1);
        if c.verbose {
            let line = format!(
                "poolspec: finished {} on {}: {} ({} ms)",
                r.case,
                r.implementation,
                r.status.as_str(),
                r.duration_ms
            );
            if bar.is_hidden() {
                eprintln!("{line}");
            } else {
                bar.println(line);
            }
        }
    };
    let mut matrix = run_matrix_until(&cases, &impls, &options, &on_result, &cancel);
    bar.finish_and_clear();
    let planned = cases.len() * impls.len();
    let interruption = cancel.interruption(matrix.results.len(), planned);
    if let Some(i) = &interruption {
        eprintln!("poolspec: {}; writing what finished", i.describe());
    }
    let snapshots = match &c.snapshots {
        Some(dir) => {
            let mode = if c.update_snapshots {
                SnapshotMode::Update
            } else {
                SnapshotMode::Check
            };
            Some(snapshots::apply(&mut matrix, dir, mode)?)
        }
        None => None,
    };

    if !c.quiet {
        print!("{}", report::terminal_matrix(&matrix, &cases));
        let details = report::details(&matrix);
        if !details.is_empty() {
            println!("\n{details}");
        }
    }
    if let Some(s) = &snapshots {
        println!("\n{}", s.render().trim_end());
    }
    let model = report::Model::new(&matrix, &cases).interrupted(interruption.clone());
    let paths = report::write_model(&out_dir, &model)?;
    if interruption.is_none() {
        // Claims whose evidence never ran would read as unconfirmed.
        print_claims(root, &matrix, &cases);
    }
    let diffs = report::differences(&matrix, &cases);
    if !diffs.is_empty() {
        println!(
            "\nObservations that differ from {}:",
            implementations::ORACLE
        );
        for (case, imps) in diffs {
            println!("  {case:10} {}", imps.join(", "));
        }
    }
    println!("\nCompliance (status pass):");
    print!("{}", report::compliance_lines(&matrix));
    let outcome = Outcome {
        cells: matrix.results.len(),
        unexpected: matrix.unexpected().count(),
        spec_errors,
        interrupted: interruption.map(|i| Interrupted {
            signal: i.signal,
            planned: i.planned,
        }),
    };
    print_summary(&matrix, &paths, &outcome);
    Ok(outcome.ending().exit_code())
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

/// The seed claims and whether this run's evidence for each passed on the reference.
fn print_claims(root: &Path, matrix: &MatrixRun, cases: &[LoadedCase]) {
    let Ok(claims) = ClaimsFile::load(&root.join("spec/claims.yaml"), cases) else {
        return;
    };
    let oracle = implementations::ORACLE;
    if matrix.implementations.iter().all(|i| i.name != oracle) {
        return;
    }
    println!("\nSeed claims (settled on {oracle}; full table in spec/CLAIMS.md):");
    for claim in &claims.claims {
        let confirmed = claim.cases.iter().all(|id| {
            matrix
                .result(id, oracle)
                .is_some_and(|r| r.status == Status::Pass)
        });
        println!(
            "  {:8} {:7} {}{}",
            claim.id,
            format!("{:?}", claim.verdict).to_lowercase(),
            claim.says,
            if confirmed {
                ""
            } else {
                "  [evidence did not pass in this run]"
            }
        );
    }
}

fn print_summary(matrix: &MatrixRun, paths: &report::ReportPaths, outcome: &Outcome) {
    let c = report::counts(matrix);
    println!(
        "\n{}",
        serde_json::to_string(&c["per_implementation"]).unwrap_or_default()
    );
    println!(
        "{} cells in {:.1} s; {} unexpected{}. Reports: {}, {}, {}, {}",
        outcome.cells,
        matrix.wall.as_secs_f64(),
        outcome.unexpected,
        if outcome.spec_errors > 0 {
            format!("; {} spec files or cases did not load", outcome.spec_errors)
        } else {
            String::new()
        },
        paths.jsonl.display(),
        paths.markdown.display(),
        paths.junit.display(),
        paths.html.display()
    );
    println!("{}", outcome.closing_line());
}
