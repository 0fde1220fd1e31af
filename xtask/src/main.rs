//! poolspec's project automation, in the cargo-xtask style: `cargo xtask <command>`.
//!
//! This file only parses the command line and dispatches: each command lives in its own
//! module with its own flags (`#[derive(Args)]`) and `run`, and the flags several commands
//! share are defined once in `flags.rs`.
//!
//! - `cargo xtask conformance` runs every case on every built-in implementation, prints the
//!   matrix, and writes reports under `target/conformance/`.
//! - `cargo xtask conformance lint | schema | claims | coverage | smoke` check or regenerate
//!   derived files, or check a new driver.
//! - `cargo xtask compliance` runs the suite on pinned third-party pools and PyPy and writes
//!   COMPLIANCE.md.
//! - `cargo xtask fuzz --impl NAME` compares random programs on an implementation with
//!   CPython and shrinks the first divergence to a case file.
//! - `cargo xtask mutants` runs the suite on one-defect variants of CPython's Pool and
//!   reports the mutation score.
//! - `cargo xtask bench` reports the suite's wall and CPU time per implementation next to
//!   CPython's own Pool tests, and the floor and profile of each implementation;
//!   `cargo xtask bench-pool` compares pool-ref's speed with CPython's Pool.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod bench_pool;
mod compliance;
mod conformance;
mod flags;
mod fuzz;
mod mutants;
mod smoke;
#[cfg(test)]
mod workflow_commands;

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
    Compliance(compliance::ComplianceArgs),
    /// Run the conformance matrix (or one of its maintenance subcommands).
    Conformance(Box<conformance::ConformanceArgs>),
    /// Differential fuzzing: random programs on an implementation and on CPython, the first
    /// divergence shrunk to a case file (`fuzz --impl rust-ref --cases 10000`).
    Fuzz(fuzz::FuzzArgs),
    /// Mutation testing of the spec: run it on one-defect variants of CPython's Pool
    /// (fixtures/mutants/) and report which cases kill which mutant, and the score.
    Mutants(mutants::MutantsArgs),
    /// Report the suite's wall time per implementation (each run alone, then all together).
    Bench(bench::BenchArgs),
    /// Benchmark pool-ref against CPython's multiprocessing.Pool side by side, with ratios.
    BenchPool(bench_pool::BenchPoolArgs),
}

/// The exit status of a command that could not do its job at all (as opposed to one that
/// ran and found problems, which exits 1).
const ERROR_STATUS: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Found at run time, not where this binary was compiled: with a shared target folder
    // another clone may have built it.
    let root = match ::conformance::checkout::find() {
        Ok(root) => root,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(ERROR_STATUS);
        }
    };
    let outcome = match cli.command {
        Command::Compliance(args) => compliance::run(&root, &args),
        Command::Conformance(args) => conformance::run(&root, &args),
        Command::Fuzz(args) => fuzz::run(&root, &args),
        Command::Mutants(args) => mutants::run(&root, &args),
        Command::Bench(args) => bench::run(&root, &args),
        Command::BenchPool(args) => bench_pool::run(&root, &args),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(ERROR_STATUS)
        }
    }
}
