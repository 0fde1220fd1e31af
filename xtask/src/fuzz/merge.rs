//! `cargo xtask fuzz merge REPORT_OR_DIR... --out DIR`: the reports of a run's shards joined
//! into one `report.json` (`conformance::fuzz::merge` decides), the found case files copied
//! beside it. Everything is checked before anything is written: a refusal leaves `DIR` as
//! it was.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use conformance::fuzz::{merge, report as fuzz_report};

use super::report;

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The shards' reports: report.json files, or the --out folders holding them.
    #[arg(required = true, value_name = "REPORT_OR_DIR")]
    reports: Vec<PathBuf>,
    /// Where the merged report.json and the found case files go.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Merge reports of runs that did not finish too (the merged report says it is incomplete).
    #[arg(long)]
    allow_incomplete: bool,
}

pub fn run(_root: &Path, args: &MergeArgs) -> Result<ExitCode> {
    let mut reports = Vec::new();
    for path in &args.reports {
        reports.push(fuzz_report::read(path)?);
    }
    let merged = merge::merge(&reports, args.allow_incomplete)?;
    for copy in &merged.copies {
        if !copy.from.is_file() {
            bail!("{}: missing (a report names it)", copy.from.display());
        }
    }
    for copy in &merged.copies {
        let to = args.out.join(&copy.to);
        if same_file(&copy.from, &to) {
            continue;
        }
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::copy(&copy.from, &to)
            .with_context(|| format!("copying {} to {}", copy.from.display(), to.display()))?;
    }
    let path = report::write(&args.out, &merged.report)?;
    let r = &merged.report;
    println!(
        "fuzz merge: {} reports, programs {}..{} of seed {:#x}: {} run, {} agreed, {} divergences, {} oracle faults, {} oracle flakes{}",
        reports.len(),
        r.range.start,
        r.range.end,
        r.seed,
        r.programs,
        r.agreements,
        r.divergences.len(),
        r.oracle_faults.len(),
        r.oracle_flakes.len(),
        if r.complete { "" } else { " (INCOMPLETE)" }
    );
    for d in &r.divergences {
        println!("  #{}: {}", d.index, args.out.join(&d.file).display());
    }
    println!("Report: {}", path.display());
    let found = !r.divergences.is_empty() || !r.oracle_faults.is_empty();
    Ok(if found {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Whether two paths are one file (merging into a shard's own folder must not truncate it).
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
