//! poolspec's project automation, in the cargo-xtask style: `cargo xtask <command>`.
//!
//! - `cargo xtask conformance` runs every case on every built-in implementation, prints the
//!   matrix, and writes reports under `target/conformance/`.
//! - `cargo xtask conformance lint | schema | claims` check or regenerate derived files.
//! - `cargo xtask bench` reports the suite's wall time per implementation.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use conformance::expectations::ExpectationFile;
use conformance::implementations::{self, Implementation};
use conformance::runner::{CaseResult, MatrixRun, RunOptions, run_matrix};
use conformance::spec::{LoadedCase, json_schema, load_dir};
use conformance::{claims::ClaimsFile, lint, report, workspace_root};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser, Debug)]
#[command(name = "cargo xtask", about = "poolspec's project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the conformance matrix (or one of its maintenance subcommands).
    Conformance(Conformance),
    /// Report the suite's wall time per implementation (each run alone, then all together).
    Bench {
        #[command(flatten)]
        select: Select,
        /// Runs per measurement; the median is reported.
        #[arg(long, default_value_t = 3)]
        rounds: u32,
    },
}

#[derive(Args, Debug)]
struct Conformance {
    #[command(subcommand)]
    command: Option<Maintenance>,
    #[command(flatten)]
    select: Select,
    /// Scale every liveness guard (for slow or loaded machines).
    #[arg(long, default_value_t = 1.0)]
    timeout_multiplier: f64,
    /// Run each case N times and report any case whose observation changed.
    #[arg(long, value_name = "N", default_value_t = 1)]
    verify: u32,
    /// Worker threads (default: the number of CPUs, at least 2).
    #[arg(long)]
    jobs: Option<usize>,
    /// Never draw a progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Print only the summary, not the matrix.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct Select {
    /// Only cases whose id starts with, or contains, this text (repeatable).
    #[arg(long = "case", value_name = "PATTERN")]
    cases: Vec<String>,
    /// Only cases of this area (repeatable).
    #[arg(long = "area")]
    areas: Vec<String>,
    /// Only this implementation (repeatable): cpython-fork, cpython-spawn,
    /// cpython-forkserver, cpython-threadpool.
    #[arg(long = "impl", value_name = "NAME")]
    impls: Vec<String>,
    /// The Python interpreter for the CPython drivers (default: $POOLSPEC_PYTHON, else
    /// python3 on PATH).
    #[arg(long)]
    python: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Maintenance {
    /// Check spec/ and fixtures/: ids, citations, tags, and every reference between files.
    Lint,
    /// Regenerate spec/case.schema.json from the Rust types (or check it with --check).
    Schema {
        #[arg(long)]
        check: bool,
    },
    /// Regenerate spec/CLAIMS.md from spec/claims.yaml (or check it with --check).
    Claims {
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = workspace_root();
    let outcome = match cli.command {
        Command::Conformance(c) => match c.command {
            None => run(&root, &c),
            Some(Maintenance::Lint) => run_lint(&root),
            Some(Maintenance::Schema { check }) => schema(&root, check),
            Some(Maintenance::Claims { check }) => claims(&root, check),
        },
        Command::Bench { select, rounds } => bench(&root, &select, rounds),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Cases and implementations picked by the command line, with their expectation files.
struct Prepared {
    cases: Vec<LoadedCase>,
    impls: Vec<(Implementation, ExpectationFile)>,
    /// Spec files or cases that did not load (already printed).
    spec_errors: usize,
}

fn prepare(root: &Path, select: &Select) -> Result<Prepared> {
    let suite = load_dir(&root.join("spec"));
    for e in &suite.errors {
        eprintln!("spec error: {e}");
    }
    let all_ids: Vec<&str> = suite.cases.iter().map(|c| c.id()).collect();
    let python = match &select.python {
        Some(p) => p.clone(),
        None => implementations::find_python()?,
    };
    let impls = implementations::select(implementations::builtin(root, &python, None), &select.impls)?;
    let mut with_expectations = Vec::new();
    for imp in impls {
        let path = root
            .join("fixtures/expectations")
            .join(format!("{}.yaml", imp.name));
        let file = ExpectationFile::load(&path, &imp.name, &all_ids)?;
        with_expectations.push((imp, file));
    }
    let cases: Vec<LoadedCase> = suite
        .cases
        .into_iter()
        .filter(|c| {
            select.cases.is_empty()
                || select
                    .cases
                    .iter()
                    .any(|p| c.id().starts_with(p.as_str()) || c.id().contains(p.as_str()))
        })
        .filter(|c| select.areas.is_empty() || select.areas.iter().any(|a| a == c.area.as_str()))
        .collect();
    if cases.is_empty() && suite.errors.is_empty() {
        bail!("no case matches the selection");
    }
    Ok(Prepared {
        cases,
        impls: with_expectations,
        spec_errors: suite.errors.len(),
    })
}

fn run(root: &Path, c: &Conformance) -> Result<ExitCode> {
    let Prepared {
        cases,
        impls,
        spec_errors,
    } = prepare(root, &c.select)?;
    let out_dir = root.join("target/conformance");
    let history_dir = out_dir.join("histories");
    let _ = std::fs::remove_dir_all(&history_dir);
    let mut options = RunOptions {
        timeout_multiplier: c.timeout_multiplier,
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
    let bar = progress_bar(total, c.no_progress);
    let on_result = |r: &CaseResult| {
        bar.set_message(format!("{} on {}", r.case, r.implementation));
        bar.inc(1);
    };
    let matrix = run_matrix(&cases, &impls, &options, &on_result);
    bar.finish_and_clear();

    if !c.quiet {
        print!("{}", report::terminal_matrix(&matrix, &cases));
        let details = report::details(&matrix);
        if !details.is_empty() {
            println!("\n{details}");
        }
    }
    let paths = report::write_all(&out_dir, &matrix, &cases)?;
    print_claims(root, &matrix, &cases);
    summary(&matrix, &paths, spec_errors);
    Ok(if matrix.unexpected().count() == 0 && spec_errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn progress_bar(total: u64, disabled: bool) -> ProgressBar {
    if disabled || !std::io::stderr().is_terminal() {
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
                .is_some_and(|r| r.status == conformance::verdict::Status::Pass)
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

fn summary(matrix: &MatrixRun, paths: &report::ReportPaths, spec_errors: usize) {
    let unexpected = matrix.unexpected().count();
    let c = report::counts(matrix);
    println!(
        "\n{}",
        serde_json::to_string(&c["per_implementation"]).unwrap_or_default()
    );
    println!(
        "{} cells in {:.1} s; {} unexpected{}. Reports: {}, {}, {}",
        matrix.results.len(),
        matrix.wall.as_secs_f64(),
        unexpected,
        if spec_errors > 0 {
            format!("; {spec_errors} spec files or cases did not load")
        } else {
            String::new()
        },
        paths.jsonl.display(),
        paths.markdown.display(),
        paths.junit.display()
    );
}

fn run_lint(root: &Path) -> Result<ExitCode> {
    let (suite, problems) = lint::lint(root);
    for p in &problems {
        println!("{p}");
    }
    println!(
        "lint: {} cases, {} problems",
        suite.cases.len(),
        problems.len()
    );
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn write_or_check(path: &Path, text: &str, check: bool, regenerate: &str) -> Result<ExitCode> {
    if check {
        let have = std::fs::read_to_string(path).unwrap_or_default();
        if have != text {
            println!("{} is stale: run `{regenerate}`", path.display());
            return Ok(ExitCode::from(1));
        }
        println!("{} is current", path.display());
    } else {
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn schema(root: &Path, check: bool) -> Result<ExitCode> {
    let text = serde_json::to_string_pretty(&json_schema())? + "\n";
    write_or_check(
        &root.join("spec/case.schema.json"),
        &text,
        check,
        "cargo xtask conformance schema",
    )
}

fn claims(root: &Path, check: bool) -> Result<ExitCode> {
    let suite = load_dir(&root.join("spec"));
    let claims = ClaimsFile::load(&root.join("spec/claims.yaml"), &suite.cases)?;
    write_or_check(
        &root.join("spec/CLAIMS.md"),
        &claims.render(&suite.cases),
        check,
        "cargo xtask conformance claims",
    )
}

fn bench(root: &Path, select: &Select, rounds: u32) -> Result<ExitCode> {
    let Prepared { cases, impls, .. } = prepare(root, select)?;
    let options = RunOptions::default();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "{} cases, {} rounds, {} jobs; median wall time in seconds",
        cases.len(),
        rounds.max(1),
        options.jobs
    );
    for (imp, exp) in &impls {
        let one = [(imp.clone(), exp.clone())];
        let times: Vec<f64> = (0..rounds.max(1))
            .map(|_| {
                run_matrix(&cases, &one, &options, &|_| {})
                    .wall
                    .as_secs_f64()
            })
            .collect();
        println!("  {:22} {:6.2}", imp.name, median(times));
    }
    let times: Vec<f64> = (0..rounds.max(1))
        .map(|_| {
            run_matrix(&cases, &impls, &options, &|_| {})
                .wall
                .as_secs_f64()
        })
        .collect();
    println!("  {:22} {:6.2}", "all together", median(times));
    Ok(ExitCode::SUCCESS)
}
