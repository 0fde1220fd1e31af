//! `cargo xtask conformance`: the main job. Runs the selected cases on the selected
//! implementations, writes the reports under `target/conformance/` (or `--out`), prints a
//! summary and the unexpected results (`print.rs`), and exits by the rule in `outcome.rs`. Its maintenance
//! subcommands (`lint`, `schema`, `claims`, `coverage`, `smoke`) live in `maintenance.rs`;
//! the selection flags it shares with `bench`, in `select.rs`; Ctrl-C, in `interrupt.rs`.
//!
//! The output folder never holds another run's report: the earlier one is removed before
//! anything else happens, and an interrupted run writes what finished, saying so.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use conformance::cancel::Cancel;
use conformance::report;
use conformance::runner::{CaseResult, RunOptions, run_matrix_until};
use conformance::snapshots::{self, SnapshotMode};

use crate::flags::{Guards, Output, Progress, ShardArgs};

pub mod explain;
pub mod history;
pub mod interrupt;
pub mod maintenance;
pub mod merge;
pub mod outcome;
pub mod print;
pub mod select;
pub mod shards;

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
    #[command(flatten)]
    output: Output,
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
    #[command(flatten)]
    shard: ShardArgs,
    /// With --shard: a name of this logical run (say, CI's run id), so that `merge` refuses
    /// shards of another run of the same suite; every shard must be given the same.
    #[arg(long, value_name = "ID", requires = "shard")]
    run_id: Option<String>,
}

pub fn run(root: &Path, args: &ConformanceArgs) -> Result<ExitCode> {
    match &args.command {
        Some(command) => maintenance::run(root, command),
        None => run_matrix_job(root, args),
    }
}

/// Each cell's wall time in the report `dir` holds, if any (for scheduling only: without
/// a readable report, cells run in matrix order).
fn previous_costs(dir: &Path) -> Option<conformance::schedule::Costs> {
    let durations = conformance::shard_select::durations(dir).ok()?;
    Some(durations.by_key.into())
}

fn run_matrix_job(root: &Path, c: &ConformanceArgs) -> Result<ExitCode> {
    let out_dir = c
        .out
        .clone()
        .unwrap_or_else(|| root.join("target/conformance"));
    // The earlier run's cell times, before they go: cells start longest first.
    let costs = previous_costs(&out_dir);
    // First of all: a run that fails to load, is killed or interrupted must not leave an
    // earlier run's report where its own belongs.
    report::clear(&out_dir)?;
    let started = report::timestamp::now();
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
        costs,
        ..RunOptions::default()
    };
    if let Some(j) = c.jobs {
        options.jobs = j.max(1);
    }
    let shard = shards::plan(&c.shard, c.run_id.as_deref(), &cases, &impls)?;
    options.cells = shard.as_ref().map(|p| p.selection.cells.clone());
    let planned = shard
        .as_ref()
        .map_or(cases.len() * impls.len(), |p| p.selection.cells.len());
    let total = planned as u64 * u64::from(options.repeat);
    if let Some(p) = &shard {
        // Even with -q: which cells a CI job ran, and on what basis, belongs in its log.
        eprintln!("poolspec: {}", p.describe());
    }
    let header = format!(
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
    let events = print::Events::start(&header, total, &c.progress, &c.output);
    let mut matrix = run_matrix_until(
        &cases,
        &impls,
        &options,
        &|r: &CaseResult| events.finished(r),
        &cancel,
    );
    events.finish();
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

    // Every non-pass is diffed against the oracle, from its committed snapshots where the
    // oracle is not part of this run.
    let oracle = report::OracleSnapshots::committed(root);
    let model = report::Model::new(&matrix, &cases)
        .interrupted(interruption.clone())
        .started(Some(started))
        .shard(shard.as_ref().map(|p| p.header.clone()))
        .oracle(&oracle);
    let paths = report::write_model(&out_dir, &model)?;
    let outcome = Outcome {
        cells: matrix.results.len(),
        unexpected: matrix.unexpected().count(),
        spec_errors,
        interrupted: interruption.as_ref().map(|i| Interrupted {
            signal: i.signal.clone(),
            planned: i.planned,
        }),
    };
    let ending = print::Ending {
        differences: c.select.interpreters || !c.select.interpreter_paths.is_empty(),
        // Claims whose evidence never ran (here) would read as unconfirmed.
        claims: (interruption.is_none() && shard.is_none())
            .then(|| print::Claims::of(root, &matrix, &cases))
            .flatten(),
        snapshots: snapshots.as_ref(),
        paths: &paths,
        outcome: &outcome,
    };
    print!("{}", print::ending(&model, &c.output, &ending));
    Ok(outcome.ending().exit_code())
}
