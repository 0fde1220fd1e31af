//! `cargo xtask mutants`: the spec measures its own power.
//!
//! `fixtures/mutants/poolspec_mutants.py` holds one-defect variants of CPython's
//! `multiprocessing.pool.Pool` (small subclasses, each with a docstring naming its defect),
//! and `Control`, the unmodified Pool. This command runs the selected cases on `Control` (every
//! one must pass, else nothing else is worth running), then on every mutant, each through its
//! own warm driver (`python:poolspec_mutants:NAME`, the module's folder on `PYTHONPATH`).
//!
//! A case *kills* a mutant when its status is not `pass`: `fail`, `error`, `crash` or
//! `timeout` (never `unsupported` or `not-applicable`, which say nothing about the defect). A
//! mutant whose driver does not even start is *broken*, not killed. By default each mutant
//! stops at its first kill, trying its `try_first` cases before the rest (suite order
//! otherwise, so the run is deterministic); `--all` runs every case on every mutant for the
//! full table (where a case that killed by an error, crash or timeout is followed by a fresh
//! driver, so that what it left behind is not blamed on the next case). The mutation score
//! is killed / total; the command exits non-zero when the
//! control fails, a mutant survives, or one is broken. Reports: `report.md` and `report.json`
//! in `--out` (default `target/mutants`), raw histories under `histories/`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use conformance::atomic_write::write_atomic;
use conformance::runner::RunOptions;
use conformance::spec::{LoadedCase, load_dir};

use crate::flags::{CaseFilter, Python};

pub mod drive;
pub mod model;
pub mod render;

use model::{Manifest, Mutant, Report, Score};
use render::{one_line, render_markdown, render_terminal};

#[derive(Args, Debug)]
pub struct MutantsArgs {
    /// Run every case on every mutant (the full table of killing cases) instead of stopping
    /// at each mutant's first killing case.
    #[arg(long)]
    all: bool,
    /// Only this mutant (repeatable); `--list` shows the names.
    #[arg(long = "mutant", value_name = "NAME")]
    mutants: Vec<String>,
    #[command(flatten)]
    cases: CaseFilter,
    /// Print the mutants (name, theme, defect) and exit.
    #[arg(long)]
    list: bool,
    /// Mutants run at once, each with its own driver (default: as `conformance`, twice the
    /// CPUs from 2 to 8); also the control run's worker threads.
    #[arg(long)]
    jobs: Option<usize>,
    /// Scale every liveness guard (a mutant that hangs is killed by `timeout` after the
    /// case's guard: 20 s at 1.0).
    #[arg(long, default_value_t = 1.0)]
    timeout_multiplier: f64,
    #[command(flatten)]
    python: Python,
    /// Where report.md, report.json and the raw histories go.
    #[arg(long, value_name = "DIR", default_value = "target/mutants")]
    out: PathBuf,
    /// Print nothing while running (only the results).
    #[arg(long)]
    no_progress: bool,
}

pub fn run(root: &Path, args: &MutantsArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let python = args.python.resolve()?;
    let manifest = drive::read_manifest(root, &python)?;
    if args.list {
        print_list(&manifest);
        return Ok(ExitCode::SUCCESS);
    }
    let mutants = choose(&manifest, &args.mutants)?;
    let cases = load_cases(root, &args.cases)?;

    let out_dir = if args.out.is_absolute() {
        args.out.clone()
    } else {
        root.join(&args.out)
    };
    let history_dir = out_dir.join("histories");
    let _ = std::fs::remove_dir_all(&history_dir);
    // An earlier score must not outlive a run that is interrupted or fails (Ctrl-C ends this
    // command at once, its drivers with it).
    for name in [REPORT_MARKDOWN, REPORT_JSON] {
        let _ = std::fs::remove_file(out_dir.join(name));
    }
    let mut options = RunOptions {
        timeout_multiplier: args.timeout_multiplier,
        history_dir: Some(history_dir),
        ..RunOptions::default()
    };
    if let Some(j) = args.jobs {
        options.jobs = j.max(1);
    }
    let progress = |line: String| {
        if !args.no_progress {
            eprintln!("{line}");
        }
    };
    let python_shown = drive::python_version(&python);

    // The control: every case must pass on the unmodified Pool.
    progress(format!(
        "mutants: control ({}) on {} cases, then {} mutants{}",
        manifest.control,
        cases.len(),
        mutants.len(),
        if args.all {
            ", every case each"
        } else {
            ", each up to its first killing case"
        }
    ));
    let (control, runnable) =
        drive::run_control(root, &python, &manifest.control, &cases, &options)?;
    progress(format!(
        "mutants: control passes {}/{} cases in {:.1} s",
        control.passed,
        cases.len(),
        control.duration_ms as f64 / 1000.0
    ));

    let results = if control.failed.is_empty() {
        drive::run_mutants(
            root, &python, &mutants, &runnable, &options, args.all, &progress,
        )?
    } else {
        Vec::new()
    };
    let report = Report {
        score: Score::of(&results),
        mode: if args.all { "all" } else { "first-kill" }.to_owned(),
        cases: cases.len(),
        python: python_shown,
        control,
        mutants: results,
        wall_ms: started.elapsed().as_millis() as u64,
    };
    let paths = write_reports(&out_dir, &report)?;
    Ok(print_results(&report, &paths))
}

fn print_list(manifest: &Manifest) {
    let width = manifest
        .mutants
        .iter()
        .map(|m| m.name.len())
        .max()
        .unwrap_or(0);
    for m in &manifest.mutants {
        println!("{:width$}  {:10} {}", m.name, m.theme, m.doc);
    }
    println!("{} mutants", manifest.mutants.len());
}

/// The mutants `--mutant` names (none: all of them), in the order named.
fn choose(manifest: &Manifest, names: &[String]) -> Result<Vec<Mutant>> {
    if names.is_empty() {
        return Ok(manifest.mutants.clone());
    }
    let mut chosen = Vec::new();
    for name in names {
        match manifest.mutants.iter().find(|m| &m.name == name) {
            Some(m) => chosen.push(m.clone()),
            None => bail!(
                "no mutant `{name}` (known: {})",
                manifest
                    .mutants
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    Ok(chosen)
}

/// The suite's cases that `--case` selects; spec/ must load cleanly.
fn load_cases(root: &Path, filter: &CaseFilter) -> Result<Vec<LoadedCase>> {
    let suite = load_dir(&root.join("spec"));
    for e in &suite.errors {
        eprintln!("spec error: {e}");
    }
    if !suite.errors.is_empty() {
        bail!(
            "spec/ does not load cleanly ({} errors)",
            suite.errors.len()
        );
    }
    let cases: Vec<LoadedCase> = suite
        .cases
        .into_iter()
        .filter(|c| filter.matches(c.id()))
        .collect();
    if cases.is_empty() {
        bail!("no case matches the selection");
    }
    Ok(cases)
}

const REPORT_MARKDOWN: &str = "report.md";
const REPORT_JSON: &str = "report.json";

/// Where report.md and report.json were written.
struct ReportPaths {
    markdown: PathBuf,
    json: PathBuf,
}

fn write_reports(out_dir: &Path, report: &Report) -> Result<ReportPaths> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let paths = ReportPaths {
        markdown: out_dir.join(REPORT_MARKDOWN),
        json: out_dir.join(REPORT_JSON),
    };
    write_atomic(&paths.markdown, render_markdown(report).as_bytes())
        .with_context(|| format!("writing {}", paths.markdown.display()))?;
    write_atomic(
        &paths.json,
        (serde_json::to_string_pretty(report)? + "\n").as_bytes(),
    )
    .with_context(|| format!("writing {}", paths.json.display()))?;
    Ok(paths)
}

/// Prints the outcome and returns the exit status: 1 when the control failed, a mutant
/// survived or one is broken.
fn print_results(report: &Report, paths: &ReportPaths) -> ExitCode {
    if !report.control.failed.is_empty() {
        println!(
            "CONTROL FAILED: the unmodified Pool ({}) does not pass every case, so no mutant was run:",
            report.control.implementation
        );
        for k in &report.control.failed {
            println!(
                "  {} {}: {}",
                k.case,
                k.status.as_str(),
                one_line(&k.reason, 200)
            );
        }
        println!(
            "reports: {}, {}",
            paths.markdown.display(),
            paths.json.display()
        );
        return ExitCode::from(1);
    }
    print!("{}", render_terminal(report));
    println!(
        "control {} passes {}/{} cases; {:.1} s in all; reports: {}, {}",
        report.control.implementation,
        report.control.passed,
        report.cases,
        report.wall_ms as f64 / 1000.0,
        paths.markdown.display(),
        paths.json.display()
    );
    let s = report.score;
    if s.survived == 0 && s.broken == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
