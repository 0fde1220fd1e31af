//! `cargo xtask compliance`: the suite on real third-party pools, rendered as `COMPLIANCE.md`.
//!
//! 1. A project-owned virtual environment, `target/thirdparty-venv`, gets the pinned versions
//!    of billiard, multiprocess and Ray from `fixtures/thirdparty/requirements.txt` (everything
//!    they pull in is pinned there too, so an install today and one next month resolve to the
//!    same files; `packages.rs` reads it, pip gets it as constraints).
//! 2. The suite runs, each case twice (an observation that changes between the runs is
//!    reported as unstable), on CPython's `multiprocessing.Pool` (fork, the reference),
//!    `multiprocessing.pool.ThreadPool`, `billiard.pool.Pool`, `multiprocess.pool.Pool` and
//!    Ray's `ray.util.multiprocessing.Pool`, all under the venv's interpreter, and on the
//!    standard library's `Pool` under PyPy (`pypy-fork`, run by `--pypy`, `$POOLSPEC_PYPY` or
//!    `pypy3` with its own standard library, no venv; without one its row says "not run").
//!    Ray runs through `fixtures/thirdparty/ray_pool.py`, which starts one local Ray instance
//!    per driver (no dashboard, a fixed number of logical CPUs), inside a network namespace
//!    whose only interface is loopback (`probe.rs`).
//!    The Node.js pools `workerpool` and `multiprocess-pool` run too, through their JavaScript
//!    drivers (`node fixtures/drivers/js/<pool>_driver.js`, named `js-<pool>` as their hello
//!    says), when their install (below) is ready; otherwise their rows say "not run" and why.
//! 3. `COMPLIANCE.md` is rendered from the results alone (no dates, no durations, no paths
//!    outside the repository), so a rerun on the same machine reproduces it byte for byte;
//!    `--check` reruns and compares instead of writing. Every divergence is listed with the
//!    reason from the implementation's `fixtures/expectations/<stem>.yaml`. A case whose
//!    status changes from run to run because of a race in the implementation is declared by
//!    an entry whose reason starts with `Unstable:` (read in `table.rs`); it is reported as
//!    unstable whatever one run saw, so the file does not flip with the race. Instability that
//!    nothing declares, or an observation that changes while its status does not, is printed
//!    on the terminal (the former also fails the command).
//!
//! A third party that cannot be installed or started is recorded as such in `COMPLIANCE.md`
//! instead of failing the command. Nothing here is needed by `cargo xtask conformance` or CI.
//!
//! `--impl SPEC` and `--case PATTERN` narrow the run (to check one column quickly, e.g.
//! `--impl pypy-fork --case BLK-`); a narrowed run writes `target/compliance/COMPLIANCE.md`,
//! never the committed file.
//!
//! The install step also puts the pinned Node.js pools (`fixtures/thirdparty-node/`) into
//! `target/thirdparty-node/` with `npm ci` (`node.rs`; without `node` one line says so, and
//! `--no-install` takes what is there). COMPLIANCE.md then says, in a section of its own, what
//! a Promise-based API means for their verdicts (`render.rs`).
//!
//! `--shard K/N` runs one shard's part of the cells and writes `target/compliance/
//! shard-K-of-N.json` instead of COMPLIANCE.md; `--from SHARD.json...` merges all the shards'
//! files and renders COMPLIANCE.md from them exactly as one run would (`shards/`).
//!
//! Modules: `subjects.rs` (what is measured), `packages.rs` and `install.rs` (the pinned
//! venv), `node.rs` (the pinned Node.js packages), `probe.rs` (can it run here),
//! `measure.rs` (running the suite), `measurement.rs` (what is rendered from), `shards/`
//! (shard files and their merge), `table.rs` (what each cell means, tallied) and `render.rs`
//! (the Markdown).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use conformance::report;
use conformance::shard::Shard;
use conformance::spec::{LoadedCase, load_dir};

use crate::flags::CaseFilter;

pub mod install;
pub mod measure;
pub mod measurement;
pub mod node;
pub mod packages;
pub mod probe;
pub mod render;
pub mod shards;
pub mod subjects;
pub mod table;

use install::{InstallFailure, VENV};
use measurement::{CaseFacts, Measurement};
use packages::Pins;
use render::{Header, SuiteFacts};
use shards::ShardFile;
use table::Finding;

#[derive(Args, Debug, Clone)]
pub struct ComplianceArgs {
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
    /// python:billiard.pool:Pool). A run narrowed by --impl or --case writes
    /// target/compliance/COMPLIANCE.md.
    #[arg(long = "impl", value_name = "SPEC")]
    impls: Vec<String>,
    #[command(flatten)]
    cases: CaseFilter,
    /// Run only shard K of N of the (case × implementation) cells and write
    /// target/compliance/shard-K-of-N.json instead of COMPLIANCE.md.
    #[arg(long, value_name = "K/N", conflicts_with = "check")]
    shard: Option<Shard>,
    /// Run nothing: merge these shard files (all N shards of one run) and render
    /// COMPLIANCE.md from them (or check it with --check).
    #[arg(
        long,
        value_name = "SHARD.json",
        num_args = 1..,
        conflicts_with_all = ["shard", "impls", "no_install", "python", "pypy", "runs"]
    )]
    from: Vec<PathBuf>,
    /// Write the Markdown here instead of COMPLIANCE.md (or, for a narrowed run,
    /// target/compliance/COMPLIANCE.md).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

impl ComplianceArgs {
    /// Whether the run is narrowed to some subjects or cases (and so must not be written to
    /// the committed `COMPLIANCE.md`).
    fn narrowed(&self) -> bool {
        !self.impls.is_empty() || self.cases.narrows()
    }
}

/// `cargo xtask compliance`.
pub fn run(root: &Path, args: &ComplianceArgs) -> Result<ExitCode> {
    if !args.from.is_empty() {
        return from_shards(root, args);
    }
    if args.check && args.narrowed() {
        bail!("--check compares the whole COMPLIANCE.md; it takes no --impl or --case");
    }
    let chosen = subjects::choose(&args.impls)?;
    let venv = root.join(VENV);
    let python = install::venv_python(&venv);
    let install_failures = prepare_venv(root, &venv, args, &chosen)?;
    let node = prepare_node(root, args, &chosen)?;
    let interpreter = install::interpreter_version(&python)?;
    let installed = install::installed_versions(&python);

    let (cases, all_ids) = load_cases(root, &args.cases)?;
    let ids: Vec<&str> = all_ids.iter().map(String::as_str).collect();
    let prepared = measure::prepare(
        root,
        chosen,
        &python,
        args.pypy.as_deref(),
        &install_failures,
        &node,
        &ids,
    )?;
    let runs = args.runs.max(1);
    let out_dir = root.join("target/compliance");
    // No earlier run's report may outlive this one if it is interrupted (Ctrl-C ends this
    // command at once).
    report::clear(&out_dir)?;
    let (matrix, statuses) = measure::run_all(
        &cases,
        &prepared.runnable,
        runs,
        &out_dir.join("histories"),
        args.verbose,
        args.shard,
    );
    let paths = report::write_all(&out_dir, &matrix, &cases)?;
    println!("\nCompliance (status pass):");
    print!("{}", report::compliance_lines(&matrix));
    println!(
        "reports: {}, {}",
        paths.jsonl.display(),
        paths.markdown.display()
    );
    let measurement = Measurement {
        header: Header {
            interpreter,
            pypy: prepared.pypy,
            node: prepared.node,
            installed,
            runs,
        },
        cases: CaseFacts::of(&cases),
        suite: suite_facts(&cases),
        matrix,
        statuses,
        ran: prepared
            .runnable
            .iter()
            .map(|r| (r.subject.clone(), r.implementation.name.clone()))
            .collect(),
        unavailable: prepared.unavailable,
    };
    if let Some(shard) = args.shard {
        let file = ShardFile::of(&measurement, shard, args.narrowed());
        let path = file.write(&out_dir)?;
        println!(
            "wrote {} ({} cells); merge all {} with `cargo xtask compliance --from`",
            path.display(),
            file.results.len(),
            shard.count
        );
        return Ok(ExitCode::SUCCESS);
    }
    finish(root, args, &measurement, args.narrowed())
}

/// `--from`: the shards' files merged into one measurement, rendered as one run's.
fn from_shards(root: &Path, args: &ComplianceArgs) -> Result<ExitCode> {
    let mut files = Vec::new();
    for path in &args.from {
        files.push((path.clone(), ShardFile::read(path)?));
    }
    let (measurement, narrowed) = shards::merge::merge(&files)?;
    if args.check && narrowed {
        bail!("--check compares the whole COMPLIANCE.md; these shards are of a narrowed run");
    }
    println!(
        "compliance: merged {} shard file{} ({} cells)",
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        measurement.matrix.results.len()
    );
    finish(root, args, &measurement, narrowed || args.cases.narrows())
}

/// Prints the findings, writes (or checks) the Markdown; exits 1 on unexplained results.
fn finish(
    root: &Path,
    args: &ComplianceArgs,
    measurement: &Measurement,
    narrowed: bool,
) -> Result<ExitCode> {
    let text = measurement.render();
    let findings = table::findings(&measurement.matrix, &measurement.statuses);
    for f in &findings {
        eprintln!("{f}");
    }
    let out_dir = root.join("target/compliance");
    // A narrowed run is never the committed file.
    let target = match &args.out {
        Some(path) => path.clone(),
        None if narrowed => out_dir.join("COMPLIANCE.md"),
        None => root.join("COMPLIANCE.md"),
    };
    let mut code = write_or_check(&target, &text, args.check, &out_dir)?;
    let unexplained = findings
        .iter()
        .filter(|f| matches!(f, Finding::Unexplained { .. }))
        .count();
    if unexplained > 0 {
        println!(
            "{unexplained} unexplained results: update fixtures/expectations/ for them (COMPLIANCE.md marks them)"
        );
        code = ExitCode::from(1);
    }
    Ok(code)
}

/// Makes sure the venv exists and (unless `--no-install`) holds the pinned packages of the
/// chosen subjects. Returns the packages that could not be installed.
fn prepare_venv(
    root: &Path,
    venv: &Path,
    args: &ComplianceArgs,
    chosen: &[subjects::Subject],
) -> Result<Vec<InstallFailure>> {
    if args.no_install {
        let python = install::venv_python(venv);
        if !python.exists() {
            bail!(
                "{} does not exist: run `cargo xtask compliance` without --no-install first",
                python.display()
            );
        }
        return Ok(Vec::new());
    }
    let pins = Pins::load(root)?;
    let packages: Vec<&'static str> = chosen
        .iter()
        .filter(|s| s.interp != subjects::Interp::Node)
        .filter_map(|s| s.package)
        .collect();
    install::install(
        root,
        venv,
        args.python.as_deref(),
        &pins,
        &packages,
        &subjects::packages_under_test(),
    )
}

/// The Node.js pools' packages: installed (unless `--no-install`, which takes them as they
/// are) when a chosen subject runs on Node; the reason they are not ready is printed once.
fn prepare_node(
    root: &Path,
    args: &ComplianceArgs,
    chosen: &[subjects::Subject],
) -> Result<node::NodeInstall> {
    if chosen.iter().all(|s| s.interp != subjects::Interp::Node) {
        return Ok(node::NodeInstall::Skipped(
            "no Node.js subject was chosen".into(),
        ));
    }
    let install = if args.no_install {
        node::installed(root)?
    } else {
        node::install(root)?
    };
    if let node::NodeInstall::Skipped(why) | node::NodeInstall::Failed(why) = &install {
        eprintln!("compliance: {why}");
    }
    Ok(install)
}

/// The selected cases, and the ids of every case (which expectation entries may name).
fn load_cases(root: &Path, filter: &CaseFilter) -> Result<(Vec<LoadedCase>, Vec<String>)> {
    let suite = load_dir(&root.join("spec"));
    if !suite.errors.is_empty() {
        for e in &suite.errors {
            eprintln!("spec error: {e}");
        }
        bail!("spec/ does not load; fix it before measuring third parties");
    }
    let all_ids: Vec<String> = suite.cases.iter().map(|c| c.id().to_owned()).collect();
    let cases: Vec<LoadedCase> = suite
        .cases
        .into_iter()
        .filter(|c| filter.matches(c.id()))
        .collect();
    if cases.is_empty() {
        bail!("no case matches --case {}", filter.cases.join(" --case "));
    }
    Ok((cases, all_ids))
}

fn suite_facts(cases: &[LoadedCase]) -> SuiteFacts {
    SuiteFacts::of(
        cases.iter().map(|c| (c.area, c.is_quirk())),
        report::suite_hash(cases),
    )
}

/// Writes COMPLIANCE.md, or with `check` compares it (a differing run leaves its text in
/// `out_dir` and exits 1).
fn write_or_check(target: &Path, text: &str, check: bool, out_dir: &Path) -> Result<ExitCode> {
    if !check {
        std::fs::write(target, text).with_context(|| format!("writing {}", target.display()))?;
        println!("wrote {}", target.display());
        return Ok(ExitCode::SUCCESS);
    }
    let have = std::fs::read_to_string(target).unwrap_or_default();
    if have == text {
        println!("{} is current", target.display());
        return Ok(ExitCode::SUCCESS);
    }
    let regenerated = out_dir.join("COMPLIANCE.md");
    std::fs::create_dir_all(out_dir)?;
    std::fs::write(&regenerated, text)?;
    println!(
        "{} differs from this run (regenerated copy: {}); run `cargo xtask compliance`",
        target.display(),
        regenerated.display()
    );
    Ok(ExitCode::from(1))
}

#[cfg(test)]
mod recorded;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ComplianceArgs,
    }

    #[test]
    fn a_narrowed_run_is_never_the_committed_file() {
        let parse = |line: &[&str]| {
            Cli::try_parse_from(std::iter::once("compliance").chain(line.iter().copied()))
                .unwrap()
                .args
        };
        assert!(!parse(&[]).narrowed());
        assert!(parse(&["--impl", "pypy-fork"]).narrowed());
        assert!(parse(&["--case", "BLK-"]).narrowed());
    }

    #[test]
    fn from_takes_no_flag_of_a_run() {
        let parse = |line: &[&str]| {
            Cli::try_parse_from(std::iter::once("compliance").chain(line.iter().copied()))
                .map(|c| c.args)
        };
        let ok = parse(&["--from", "a.json", "b.json", "--out", "x.md"]).unwrap();
        assert_eq!(ok.from.len(), 2);
        for bad in [
            &["--from", "a.json", "--shard", "1/2"][..],
            &["--from", "a.json", "--impl", "pypy-fork"],
            &["--from", "a.json", "--runs", "3"],
            &["--shard", "1/2", "--check"],
            &["--shard", "3/2"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
