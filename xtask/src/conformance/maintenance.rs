//! The maintenance subcommands of `cargo xtask conformance`: checks of spec/ and fixtures/,
//! and the files derived from them (regenerated, or compared with `--check`), plus `smoke`,
//! whose flags and work live in `smoke.rs`, `explain`, in `explain.rs`, and `merge`, in `merge.rs`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use conformance::claims::ClaimsFile;
use conformance::coverage::CoverageFile;
use conformance::lint;
use conformance::spec::{json_schema, load_dir};

use super::explain::{self, ExplainArgs};
use super::history::{self, BadgeArgs, DiffArgs, TrendArgs};
use super::merge::{self, MergeArgs};
use crate::smoke::{self, SmokeArgs};

#[derive(Subcommand, Debug)]
pub enum Maintenance {
    /// Check spec/ and fixtures/: ids, citations, tags, and every reference between files.
    Lint(LintArgs),
    /// Check a new driver: its handshake and a few trivial cases, explaining every protocol
    /// mistake found (`smoke --impl exec:./my-driver`).
    Smoke(SmokeArgs),
    /// One case in words, and each implementation's status with its diff (`explain ORD-004`).
    ///
    /// The claim, citations with links, program and gates in words, and each
    /// implementation's status from the last report (or a fresh run with --run), with the
    /// diff against CPython-fork of every non-pass.
    Explain(ExplainArgs),
    /// Compare two runs' reports cell by cell (`diff OLD NEW`): regressions first; exit 1
    /// when something regressed, 2 when a report cannot be read.
    Diff(DiffArgs),
    /// One SVG badge per implementation of a report (contract and quirk compliance).
    Badge(BadgeArgs),
    /// One line per report found under a folder, oldest first: start, suite, contract
    /// compliance per implementation.
    Trend(TrendArgs),
    /// Merge the reports of a run's shards (`--shard K/N`) into the report one run would
    /// have written (`merge target/shard-* --out target/conformance`).
    Merge(MergeArgs),
    /// Regenerate spec/case.schema.json from the Rust types (or check it with --check).
    Schema(Check),
    /// Regenerate spec/CLAIMS.md from spec/claims.yaml (or check it with --check).
    Claims(Check),
    /// Regenerate spec/COVERAGE.md from spec/coverage.yaml (or check it with --check).
    Coverage(Check),
}

/// `lint`'s flags.
#[derive(Args, Debug)]
pub struct LintArgs {
    /// Also check this folder of your own cases, with the built-in ones (repeatable).
    #[arg(long, value_name = "DIR")]
    spec: Vec<PathBuf>,
}

/// `--check`: compare with the committed file instead of writing it.
#[derive(Args, Debug)]
pub struct Check {
    #[arg(long)]
    check: bool,
}

pub fn run(root: &Path, command: &Maintenance) -> Result<ExitCode> {
    match command {
        Maintenance::Lint(args) => run_lint(root, &args.spec),
        Maintenance::Smoke(args) => smoke::run(root, args),
        Maintenance::Explain(args) => explain::run(root, args),
        Maintenance::Diff(args) => history::diff(args),
        Maintenance::Badge(args) => history::badge(args),
        Maintenance::Trend(args) => history::trend(args),
        Maintenance::Merge(args) => merge::run(root, args),
        Maintenance::Schema(c) => schema(root, c.check),
        Maintenance::Claims(c) => claims(root, c.check),
        Maintenance::Coverage(c) => coverage(root, c.check),
    }
}

fn run_lint(root: &Path, added: &[PathBuf]) -> Result<ExitCode> {
    let (suite, problems) = lint::lint_folders(root, added);
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

/// Writes `text` to `path`, or with `check` only says whether the file already holds it
/// (exit 1 when it does not, naming the command that regenerates it).
pub fn write_or_check(path: &Path, text: &str, check: bool, regenerate: &str) -> Result<ExitCode> {
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
