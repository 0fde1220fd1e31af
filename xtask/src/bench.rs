//! `cargo xtask bench`: the suite's wall time per implementation, each run alone and then
//! all together (the median over `--rounds`), to see what a slow implementation costs CI.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use conformance::runner::{RunOptions, run_matrix};

use crate::conformance::select::{Prepared, Select, prepare};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    select: Select,
    /// Runs per measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
}

pub fn run(root: &Path, args: &BenchArgs) -> Result<ExitCode> {
    let Prepared { cases, impls, .. } = prepare(root, &args.select)?;
    let options = RunOptions::default();
    let rounds = args.rounds.max(1);
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "{} cases, {} rounds, {} jobs; median wall time in seconds",
        cases.len(),
        rounds,
        options.jobs
    );
    for (imp, exp) in &impls {
        let one = [(imp.clone(), exp.clone())];
        let times: Vec<f64> = (0..rounds)
            .map(|_| {
                run_matrix(&cases, &one, &options, &|_| {})
                    .wall
                    .as_secs_f64()
            })
            .collect();
        println!("  {:22} {:6.2}", imp.name, median(times));
    }
    let times: Vec<f64> = (0..rounds)
        .map(|_| {
            run_matrix(&cases, &impls, &options, &|_| {})
                .wall
                .as_secs_f64()
        })
        .collect();
    println!("  {:22} {:6.2}", "all together", median(times));
    Ok(ExitCode::SUCCESS)
}
