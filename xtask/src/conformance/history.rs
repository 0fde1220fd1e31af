//! The subcommands that read reports of earlier runs: `diff OLD NEW` (exit 0: nothing
//! regressed, 1: something did, 2: a report could not be read), `badge REPORT --out DIR`
//! and `trend DIR`. The work is the library's (`report::compare`, `badge`, `trend`); this
//! file has the flags and the exits.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use conformance::report::badge::{self, Badge};
use conformance::report::compare::{self, Side};
use conformance::report::trend;

/// `diff`'s exit when a report could not be read: not a verdict on the runs.
const UNREADABLE: u8 = 2;

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The earlier run: a report.jsonl, or the folder holding one.
    old: PathBuf,
    /// The later run: a report.jsonl, or the folder holding one.
    new: PathBuf,
    /// `markdown`: a pull-request comment (kept under GitHub's 65,536 characters).
    #[arg(long, value_enum, default_value_t = Format::Terminal)]
    format: Format,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Terminal,
    Markdown,
}

#[derive(Args, Debug)]
pub struct BadgeArgs {
    /// The run: a report.jsonl, or the folder holding one.
    report: PathBuf,
    /// The folder to write one `<implementation>.svg` into.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(Args, Debug)]
pub struct TrendArgs {
    /// A folder of reports: every `*.jsonl` under it, at any depth.
    dir: PathBuf,
}

/// Reads a report, or says in one line which file could not be read.
fn read(path: &std::path::Path) -> Result<Side, ExitCode> {
    Side::read(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(UNREADABLE)
    })
}

pub fn diff(args: &DiffArgs) -> Result<ExitCode> {
    let (old, new) = match (read(&args.old), read(&args.new)) {
        (Ok(old), Ok(new)) => (old, new),
        (Err(code), _) | (_, Err(code)) => return Ok(code),
    };
    let comparison = compare::compare(&old, &new);
    let text = match args.format {
        Format::Terminal => compare::terminal::render(&comparison),
        Format::Markdown => compare::markdown::render(&comparison),
    };
    print!("{text}");
    Ok(if comparison.regressed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn badge(args: &BadgeArgs) -> Result<ExitCode> {
    let side = match read(&args.report) {
        Ok(side) => side,
        Err(code) => return Ok(code),
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let compliance = &side.report.footer.counts.compliance;
    for (name, compliance) in compliance {
        let path = args.out.join(badge::file_name(name));
        std::fs::write(&path, Badge::of(name, *compliance).svg())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "wrote {} badges into {}",
        compliance.len(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn trend(args: &TrendArgs) -> Result<ExitCode> {
    let trend = trend::collect(&args.dir)?;
    for skipped in &trend.skipped {
        eprintln!("warning: skipped {skipped}");
    }
    print!("{}", trend::render(&trend));
    Ok(ExitCode::SUCCESS)
}
