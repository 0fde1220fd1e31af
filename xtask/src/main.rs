//! poolspec's project automation, in the cargo-xtask style: `cargo xtask <command>`.
//!
//! - `cargo xtask conformance` runs every case on every built-in implementation, prints the
//!   matrix, and writes reports under `target/conformance/`.
//! - `cargo xtask conformance lint | schema | claims` check or regenerate derived files.
//! - `cargo xtask fuzz --impl NAME` compares random programs on an implementation with
//!   CPython and shrinks the first divergence to a case file.
//! - `cargo xtask mutants` runs the suite on one-defect variants of CPython's Pool and
//!   reports the mutation score (see `mutants.rs`).
//! - `cargo xtask bench` reports the suite's wall time per implementation.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use conformance::coverage::CoverageFile;
use conformance::expectations::ExpectationFile;
use conformance::implementations::{self, Implementation};
use conformance::runner::{CaseResult, MatrixRun, RunOptions, run_matrix};
use conformance::snapshots::{self, SnapshotMode};
use conformance::spec::{LoadedCase, json_schema, load_dir};
use conformance::{claims::ClaimsFile, lint, report, workspace_root};
use indicatif::{ProgressBar, ProgressStyle};

mod fuzz;
mod mutants;
mod smoke;
mod thirdparty;

#[derive(Parser, Debug)]
#[command(name = "cargo xtask", about = "poolspec's project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Install billiard, multiprocess and Ray (pinned) into target/thirdparty-venv, run the
    /// suite on them, on ThreadPool and on PyPy's Pool, and write COMPLIANCE.md (or check it
    /// with --check).
    Compliance {
        /// Use target/thirdparty-venv as it is: create and install nothing.
        #[arg(long)]
        no_install: bool,
        /// Rerun and compare with the committed COMPLIANCE.md instead of writing it.
        #[arg(long)]
        check: bool,
        /// The interpreter the venv is created from (default: $POOLSPEC_PYTHON, else python3).
        #[arg(long)]
        python: Option<PathBuf>,
        /// Runs of each case per implementation; observations that change are unstable.
        #[arg(long, value_name = "N", default_value_t = 2)]
        runs: u32,
        /// Print every finished cell.
        #[arg(long, short)]
        verbose: bool,
        /// The PyPy of the PyPy column (default: $POOLSPEC_PYPY, else pypy3 on PATH; without
        /// one the column says "not run").
        #[arg(long, value_name = "PATH")]
        pypy: Option<PathBuf>,
        /// Only this subject, by its spec (repeatable; e.g. pypy-fork, cpython-threadpool,
        /// python:billiard.pool:Pool). The result goes to target/compliance/COMPLIANCE.md.
        #[arg(long = "impl", value_name = "SPEC")]
        impls: Vec<String>,
        /// Only cases whose id starts with, or contains, this text (repeatable). The result goes
        /// to target/compliance/COMPLIANCE.md.
        #[arg(long = "case", value_name = "PATTERN")]
        cases: Vec<String>,
    },
    /// Run the conformance matrix (or one of its maintenance subcommands).
    Conformance(Conformance),
    /// Differential fuzzing: random programs on an implementation and on CPython, the first
    /// divergence shrunk to a case file (`fuzz --impl rust-ref --cases 10000`).
    Fuzz(fuzz::FuzzArgs),
    /// Mutation testing of the spec: run it on one-defect variants of CPython's Pool
    /// (fixtures/mutants/) and report which cases kill which mutant, and the score.
    Mutants(mutants::MutantsArgs),
    /// Report the suite's wall time per implementation (each run alone, then all together).
    Bench {
        #[command(flatten)]
        select: Select,
        /// Runs per measurement; the median is reported.
        #[arg(long, default_value_t = 3)]
        rounds: u32,
    },
    /// Benchmark pool-ref against CPython's multiprocessing.Pool side by side, with ratios.
    BenchPool {
        /// Run both benchmark programs (and all their workers) on CPU 0 (`taskset -c 0`).
        #[arg(long)]
        pinned: bool,
        /// A short smoke run with small sizes.
        #[arg(long)]
        quick: bool,
        /// Rounds; each runs both sides once, ratios are computed per round.
        #[arg(long, default_value_t = 1)]
        rounds: u32,
        /// The Python interpreter (default: $POOLSPEC_PYTHON, else python3 on PATH).
        #[arg(long)]
        python: Option<PathBuf>,
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
    /// Worker threads (default: twice the number of CPUs, from 2 to 8).
    #[arg(long)]
    jobs: Option<usize>,
    /// Never draw a progress bar.
    #[arg(long)]
    no_progress: bool,
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
}

#[derive(Args, Debug)]
struct Select {
    /// Load the cases from this folder instead of spec/ (scratch cases being written; their
    /// ids need no expectation entries, snapshots or coverage).
    #[arg(long, value_name = "DIR")]
    spec: Option<PathBuf>,
    /// Only cases whose id starts with, or contains, this text (repeatable).
    #[arg(long = "case", value_name = "PATTERN")]
    cases: Vec<String>,
    /// Only cases of this area (repeatable).
    #[arg(long = "area")]
    areas: Vec<String>,
    /// Only this implementation (repeatable): a built-in one (cpython-fork, cpython-spawn,
    /// cpython-forkserver, cpython-threadpool, rust-ref; pypy-fork, ... when --python is a
    /// PyPy), `python:MODULE:ATTR` (any Pool-compatible class or factory, e.g.
    /// python:billiard.pool:Pool), or `exec:COMMAND ARGS` (any driver speaking
    /// spec/PROTOCOL.md).
    #[arg(long = "impl", value_name = "NAME")]
    impls: Vec<String>,
    /// The Python interpreter for the built-in Python drivers (default: $POOLSPEC_PYTHON,
    /// else python3 on PATH). A PyPy (`--python pypy3`) runs its standard-library Pool as
    /// pypy-fork, pypy-spawn, pypy-forkserver and pypy-threadpool.
    #[arg(long)]
    python: Option<PathBuf>,
    /// Also run the standard library's Pool under fork, spawn and forkserver on every CPython
    /// and PyPy implementing Python 3.8+ found on this machine (PATH and pyenv), as
    /// `cpython-<version>-<method>` and `pypy-<version>-<method>`.
    #[arg(long)]
    interpreters: bool,
    /// Run the interpreter matrix on exactly these interpreters instead (repeatable).
    #[arg(long = "interpreter", value_name = "PATH")]
    interpreter_paths: Vec<PathBuf>,
    /// The expectation file of the (single) selected implementation, instead of
    /// fixtures/expectations/<implementation>.yaml.
    #[arg(long, value_name = "FILE")]
    expectations: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Maintenance {
    /// Check spec/ and fixtures/: ids, citations, tags, and every reference between files.
    Lint,
    /// Check a new driver: its handshake and a few trivial cases, explaining every protocol
    /// mistake found (`smoke --impl exec:./my-driver`).
    Smoke(smoke::SmokeArgs),
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
    /// Regenerate spec/COVERAGE.md from spec/coverage.yaml (or check it with --check).
    Coverage {
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
            Some(Maintenance::Smoke(args)) => smoke::run(
                &root,
                &args,
                &c.select.impls,
                c.timeout_multiplier,
                c.select.python.as_deref(),
            ),
            Some(Maintenance::Schema { check }) => schema(&root, check),
            Some(Maintenance::Claims { check }) => claims(&root, check),
            Some(Maintenance::Coverage { check }) => coverage(&root, check),
        },
        Command::Fuzz(args) => fuzz::run(&root, &args),
        Command::Mutants(args) => mutants::run(&root, &args),
        Command::Bench { select, rounds } => bench(&root, &select, rounds),
        Command::Compliance {
            no_install,
            check,
            python,
            runs,
            verbose,
            pypy,
            impls,
            cases,
        } => thirdparty::compliance(
            &root,
            &thirdparty::Options {
                no_install,
                check,
                python,
                runs,
                verbose,
                pypy,
                impls,
                cases,
            },
        ),
        Command::BenchPool {
            pinned,
            quick,
            rounds,
            python,
        } => bench_pool(&root, pinned, quick, rounds, python.as_deref()),
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
    let suite = load_dir(&select.spec.clone().unwrap_or_else(|| root.join("spec")));
    for e in &suite.errors {
        eprintln!("spec error: {e}");
    }
    let all_ids: Vec<&str> = suite.cases.iter().map(|c| c.id()).collect();
    let python = match &select.python {
        Some(p) => p.clone(),
        None => implementations::find_python()?,
    };
    let wants_rust_ref = select.impls.is_empty() || select.impls.iter().any(|i| i == "rust-ref");
    let rust_ref = if wants_rust_ref {
        Some(implementations::build_rust_ref(root)?)
    } else {
        None
    };
    let mut all = implementations::builtin(root, &python, rust_ref.as_deref());
    if select.interpreters || !select.interpreter_paths.is_empty() {
        let pythons = if select.interpreter_paths.is_empty() {
            implementations::discover_pythons()
        } else {
            let mut chosen = Vec::new();
            for p in &select.interpreter_paths {
                match implementations::probe_python(p) {
                    Some(i) => chosen.push(i),
                    None => bail!(
                        "{} is not a runnable CPython or PyPy implementing Python 3.8 or newer",
                        p.display()
                    ),
                }
            }
            chosen
        };
        eprintln!(
            "interpreter matrix: {}",
            pythons
                .iter()
                .map(|i| format!("{} at {}", i.describe(), i.path.display()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        all.extend(implementations::interpreter_matrix(root, &pythons));
    }
    let impls = implementations::select(all, &select.impls, root, &python)?;
    if let Some(file) = &select.expectations {
        if impls.len() != 1 {
            bail!(
                "--expectations names the file of one implementation; select exactly one with --impl"
            );
        }
        if !file.is_file() {
            bail!("--expectations {}: no such file", file.display());
        }
    }
    let mut with_expectations = Vec::new();
    for imp in impls {
        let file = match (&select.expectations, &select.spec) {
            (Some(path), _) => ExpectationFile::load(path, &imp.name, &all_ids)?,
            // Scratch cases: the committed expectation files name the suite's cases.
            (None, Some(_)) => ExpectationFile {
                implementation: imp.name.clone(),
                ..ExpectationFile::default()
            },
            (None, None) => {
                ExpectationFile::load_for(&root.join("fixtures/expectations"), &imp.name, &all_ids)?
            }
        };
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
    let mut matrix = run_matrix(&cases, &impls, &options, &on_result);
    bar.finish_and_clear();
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
    let paths = report::write_all(&out_dir, &matrix, &cases)?;
    print_claims(root, &matrix, &cases);
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
        "{} cells in {:.1} s; {} unexpected{}. Reports: {}, {}, {}, {}",
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
        paths.junit.display(),
        paths.html.display()
    );
    // The plain closing line CI readers look for: a cell "passed" when its verdict was the
    // expected one (a pass, or a divergence its expectation file records).
    println!(
        "conformance: {} passed, {} failed",
        matrix.results.len() - unexpected,
        unexpected + spec_errors
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

fn coverage(root: &Path, check: bool) -> Result<ExitCode> {
    let suite = load_dir(&root.join("spec"));
    let file = CoverageFile::load(&root.join("spec/coverage.yaml"), &suite.cases)?;
    write_or_check(
        &root.join("spec/COVERAGE.md"),
        &file.render(&suite.cases),
        check,
        "cargo xtask conformance coverage",
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

/// `cargo xtask bench-pool`: pool-ref (`pool-ref-bench`, release build) next to CPython's
/// `multiprocessing.Pool` (`fixtures/bench/cpython_pool_bench.py`), same parameters, same
/// machine. Each round runs both benchmark programs back to back (alternating which goes
/// first); every ratio is computed within a round, then the median over rounds is shown.
/// Ratios are "how many times better pool-ref is": throughput rust ÷ CPython, latency and
/// start time CPython ÷ rust.
fn bench_pool(
    root: &Path,
    pinned: bool,
    quick: bool,
    rounds: u32,
    python: Option<&Path>,
) -> Result<ExitCode> {
    use serde_json::Value;
    use std::collections::BTreeMap;
    use std::process::{Command, Stdio};

    fn run_json(program: &Path, args: &[String], pinned: bool) -> Result<Vec<Value>> {
        let mut cmd = if pinned {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        cmd.args(args).stdin(Stdio::null()).stderr(Stdio::inherit());
        let out = cmd
            .output()
            .with_context(|| format!("running {}", program.display()))?;
        if !out.status.success() {
            bail!("{} {:?} failed: {}", program.display(), args, out.status);
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.trim_start().starts_with('{'))
            .map(|l| serde_json::from_str(l).with_context(|| format!("bad JSON line {l:?}")))
            .collect()
    }
    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
    fn num(v: f64) -> String {
        if !v.is_finite() {
            return "-".into();
        }
        if v >= 10_000.0 {
            let digits = format!("{:.0}", v);
            let mut out = String::new();
            for (i, ch) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i) % 3 == 0 {
                    out.push(',');
                }
                out.push(ch);
            }
            out
        } else if v >= 100.0 {
            format!("{v:.1}")
        } else if v >= 10.0 {
            format!("{v:.2}")
        } else {
            format!("{v:.3}")
        }
    }
    fn spread(v: &[f64], f: fn(f64) -> String) -> String {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if v.len() > 1 {
            format!(" ({}–{})", f(lo), f(hi))
        } else {
            String::new()
        }
    }
    /// Row key of a measurement: bench, worker count, and CPython's start method.
    fn key(line: &Value) -> (String, i64) {
        (
            line["bench"].as_str().unwrap_or("?").to_owned(),
            line["procs"].as_i64().unwrap_or(0),
        )
    }

    if pinned {
        let found = Command::new("taskset")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            bail!("--pinned needs `taskset` (util-linux) on PATH");
        }
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("bench-pool: building pool-ref-bench (release)");
    let built = Command::new(&cargo)
        .current_dir(root)
        .args([
            "build",
            "--release",
            "-p",
            "pool-ref",
            "--bin",
            "pool-ref-bench",
        ])
        .status()
        .context("running cargo build")?;
    if !built.success() {
        bail!("cargo build of pool-ref-bench failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| root.join(d))
        .unwrap_or_else(|| root.join("target"));
    let rust_bin = target.join("release/pool-ref-bench");
    let python = match python {
        Some(p) => p.to_path_buf(),
        None => implementations::find_python()?,
    };
    let script = root.join("fixtures/bench/cpython_pool_bench.py");
    let mut rust_args = Vec::new();
    let mut py_args = vec![
        "-u".to_owned(),
        script.display().to_string(),
        "--start-method".into(),
        "fork".into(),
        "--context-methods".into(),
        "spawn,forkserver".into(),
    ];
    if quick {
        rust_args.push("--quick".to_owned());
        py_args.push("--quick".into());
    }

    let loadavg = || {
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| s.split_whitespace().next().map(str::to_owned))
            .unwrap_or_else(|| "?".into())
    };
    let load_before = loadavg();
    let rounds = rounds.max(1);
    let mode = if pinned {
        "pinned (taskset -c 0)"
    } else {
        "unpinned"
    };
    // Per round: rust lines, CPython lines.
    let mut results: Vec<(Vec<Value>, Vec<Value>)> = Vec::new();
    let mut raw = String::new();
    for round in 0..rounds {
        eprintln!("bench-pool: round {}/{rounds}, {mode}", round + 1);
        let (rust, py) = if round % 2 == 0 {
            let r = run_json(&rust_bin, &rust_args, pinned)?;
            (r, run_json(&python, &py_args, pinned)?)
        } else {
            let p = run_json(&python, &py_args, pinned)?;
            (run_json(&rust_bin, &rust_args, pinned)?, p)
        };
        for line in rust.iter().chain(&py) {
            let mut line = line.clone();
            line["round"] = round.into();
            line["pinned"] = pinned.into();
            raw.push_str(&line.to_string());
            raw.push('\n');
        }
        results.push((rust, py));
    }
    let out_dir = target.join("bench-pool");
    std::fs::create_dir_all(&out_dir)?;
    let raw_path = out_dir.join(if pinned {
        "pinned.jsonl"
    } else {
        "unpinned.jsonl"
    });
    std::fs::write(&raw_path, raw)?;

    let label = |bench: &str, procs: i64, method: &str, tasks: Option<i64>| -> String {
        let k = tasks.map_or_else(|| "?".to_owned(), |t| format!("{}k", t / 1000));
        let base = match bench {
            "start_shutdown" => format!("start+close/join N={procs}"),
            "start_apply_shutdown" => format!("start+1 apply+close/join N={procs}"),
            "apply_rtt" => "apply() round trip, Pool(2)".into(),
            "map_cs1" => format!("map {k}, chunksize=1"),
            "map_default" => format!("map {k}, default chunksize"),
            "imap_unordered_cs1" => format!("imap_unordered {k}, cs=1"),
            "apply_async_cb" => format!("apply_async+callback {k}"),
            "pipe_rtt" => "raw pipe RTT, 1 byte".into(),
            "seqpacket_rtt" => "raw seqpacket RTT, 1 byte".into(),
            "bytes_16m_rtt" => "apply() 16 MiB bytes round trip".into(),
            "pipe_16m_rtt" => "raw pipe 16 MiB round trip".into(),
            "pipe_16m_rtt_1m" => "raw pipe 16 MiB RTT, 1 MiB pipes".into(),
            other => other.into(),
        };
        if method.is_empty() || method == "fork" {
            base
        } else {
            format!("{base} [{method}]")
        }
    };
    let python_version = results
        .iter()
        .flat_map(|(_, p)| p)
        .find_map(|l| l["python"].as_str())
        .unwrap_or("?")
        .to_owned();
    println!(
        "pool-ref vs CPython {python_version} multiprocessing.Pool (fork unless noted), {mode}, \
         {rounds} round(s){}",
        if quick { ", --quick" } else { "" }
    );
    println!(
        "speedup = how many times better pool-ref is (throughput rust/cpython; time cpython/rust), per round; median (min–max) over rounds"
    );
    println!(
        "{:38} {:8} {:>14} {:>14} {:>22}  target",
        "measurement", "unit", "pool-ref", "cpython", "speedup"
    );
    // Rows in CPython's order (bench, procs, method), then pool-ref-only rows.
    let mut rows: Vec<(String, i64, String)> = Vec::new();
    for line in results[0].1.iter() {
        let (b, n) = key(line);
        let m = line["method"].as_str().unwrap_or("").to_owned();
        rows.push((b, n, m));
    }
    for line in results[0].0.iter() {
        let (b, n) = key(line);
        if !rows.iter().any(|(rb, rn, _)| *rb == b && *rn == n) {
            rows.push((b, n, String::new()));
        }
    }
    let mut missed = 0;
    /// One table row's values over the rounds.
    #[derive(Default)]
    struct Cell {
        rust: Vec<f64>,
        cpython: Vec<f64>,
        ratio: Vec<f64>,
    }
    let mut per_method: BTreeMap<(String, i64, String), Cell> = BTreeMap::new();
    for (rust, py) in &results {
        for (b, n, m) in &rows {
            let find = |lines: &[Value], method: Option<&str>| {
                lines
                    .iter()
                    .find(|l| {
                        key(l) == (b.clone(), *n)
                            && method.is_none_or(|m| l["method"].as_str() == Some(m))
                    })
                    .and_then(|l| Some((l["value"].as_f64()?, l["unit"].as_str()?.to_owned())))
            };
            let r = find(rust, None);
            let c = if m.is_empty() {
                None
            } else {
                find(py, Some(m))
            };
            let entry = per_method.entry((b.clone(), *n, m.clone())).or_default();
            if let Some((rv, _)) = &r {
                entry.rust.push(*rv);
            }
            if let Some((cv, unit)) = &c {
                entry.cpython.push(*cv);
                if let Some((rv, _)) = &r {
                    entry.ratio.push(if unit.ends_with("/s") {
                        rv / cv
                    } else {
                        cv / rv
                    });
                }
            }
        }
    }
    for (b, n, m) in &rows {
        let Cell {
            rust: rv,
            cpython: cv,
            ratio,
        } = &per_method[&(b.clone(), *n, m.clone())];
        let first = results[0]
            .0
            .iter()
            .chain(&results[0].1)
            .find(|l| key(l) == (b.clone(), *n));
        let unit = first
            .and_then(|l| l["unit"].as_str())
            .unwrap_or("")
            .replace("us", "µs");
        let tasks = first.and_then(|l| l["tasks"].as_i64());
        let target = match (b.as_str(), *n, m.as_str()) {
            ("map_cs1", _, "fork") => Some(10.0),
            ("apply_rtt", _, "fork") => Some(5.0),
            ("start_shutdown", 2, "fork") => Some(1.0),
            ("bytes_16m_rtt", _, "fork") => Some(1.0),
            _ => None,
        };
        let speed = median(ratio.clone());
        let verdict = match target {
            Some(t) if speed >= t => format!("≥{t}× met"),
            Some(t) => {
                missed += 1;
                format!("≥{t}× MISSED")
            }
            None => String::new(),
        };
        println!(
            "{:38} {:8} {:>14} {:>14} {:>22}  {verdict}",
            label(b, *n, m, tasks),
            unit,
            num(median(rv.clone())),
            num(median(cv.clone())),
            if ratio.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.2}×{}", speed, spread(ratio, |x| format!("{x:.2}")))
            },
        );
    }
    // The 16 MiB round trip against the raw pipe bandwidth measured in the same run (the
    // better of default and enlarged pipes), per round.
    let value = |lines: &[Value], bench: &str| {
        lines
            .iter()
            .find(|l| l["bench"].as_str() == Some(bench))
            .and_then(|l| l["value"].as_f64())
    };
    let of_raw: Vec<f64> = results
        .iter()
        .filter_map(|(rust, _)| {
            let pool = value(rust, "bytes_16m_rtt")?;
            let raw = [value(rust, "pipe_16m_rtt"), value(rust, "pipe_16m_rtt_1m")]
                .into_iter()
                .flatten()
                .reduce(f64::max)?;
            Some(pool / raw)
        })
        .collect();
    if !of_raw.is_empty() {
        let share = median(of_raw.clone());
        let met = share >= 0.5;
        if !met {
            missed += 1;
        }
        println!(
            "{:38} {:8} {:>14} {:>14} {:>22}  {}",
            "16 MiB round trip ÷ best raw pipe",
            "",
            format!("{share:.2}"),
            "",
            spread(&of_raw, |x| format!("{x:.2}")).trim().to_owned(),
            if met { "≥0.5 met" } else { "≥0.5 MISSED" }
        );
    }
    println!(
        "1-min load average before/after: {load_before}/{} (other work on this machine skews \
         unpinned figures most)",
        loadavg()
    );
    println!("raw measurements: {}", raw_path.display());
    if missed > 0 {
        println!("{missed} target(s) missed");
    }
    Ok(ExitCode::SUCCESS)
}
