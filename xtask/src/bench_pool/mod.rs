//! `cargo xtask bench-pool`: pool-ref (`pool-ref-bench`, release build) next to CPython's
//! `multiprocessing.Pool` (`fixtures/bench/cpython_pool_bench.py`), same parameters, same
//! machine. Each round runs both benchmark programs back to back (alternating which goes
//! first); every ratio is computed within a round, then the median over rounds is shown.
//! Ratios are "how many times better pool-ref is": throughput rust ÷ CPython, latency and
//! start time CPython ÷ rust. `measure.rs` takes the measurements, `table.rs` prints them.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use crate::flags::Python;

pub mod measure;
pub mod table;

use measure::{Programs, Round};

#[derive(Args, Debug)]
pub struct BenchPoolArgs {
    /// Run both benchmark programs (and all their workers) on CPU 0 (`taskset -c 0`).
    #[arg(long)]
    pinned: bool,
    /// A short smoke run with small sizes.
    #[arg(long)]
    quick: bool,
    /// Rounds; each runs both sides once, ratios are computed per round.
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    #[command(flatten)]
    python: Python,
}

pub fn run(root: &Path, args: &BenchPoolArgs) -> Result<ExitCode> {
    if args.pinned {
        measure::require_taskset()?;
    }
    let rust_bin = measure::build_rust_bench(root)?;
    let programs = Programs {
        rust_bin,
        rust_args: if args.quick {
            vec!["--quick".to_owned()]
        } else {
            Vec::new()
        },
        python: args.python.resolve()?,
        py_args: measure::python_args(root, args.quick),
        pinned: args.pinned,
    };
    let load_before = measure::loadavg();
    let rounds = args.rounds.max(1);
    let mode = if args.pinned {
        "pinned (taskset -c 0)"
    } else {
        "unpinned"
    };
    let (results, raw) = measure::run_rounds(&programs, rounds, mode)?;
    let out_dir = measure::target_dir(root).join("bench-pool");
    std::fs::create_dir_all(&out_dir)?;
    let raw_path = out_dir.join(if args.pinned {
        "pinned.jsonl"
    } else {
        "unpinned.jsonl"
    });
    std::fs::write(&raw_path, raw)?;

    println!(
        "pool-ref vs CPython {} multiprocessing.Pool (fork unless noted), {mode}, \
         {rounds} round(s){}",
        python_version(&results),
        if args.quick { ", --quick" } else { "" }
    );
    println!(
        "speedup = how many times better pool-ref is (throughput rust/cpython; time cpython/rust), per round; median (min–max) over rounds"
    );
    let missed = table::print(&results);
    println!(
        "1-min load average before/after: {load_before}/{} (other work on this machine skews \
         unpinned figures most)",
        measure::loadavg()
    );
    println!("raw measurements: {}", raw_path.display());
    if missed > 0 {
        println!("{missed} target(s) missed");
    }
    Ok(ExitCode::SUCCESS)
}

/// The CPython version the benchmark script reported.
fn python_version(rounds: &[Round]) -> &str {
    rounds
        .iter()
        .flat_map(|r| &r.cpython)
        .find_map(|l| l["python"].as_str())
        .unwrap_or("?")
}
