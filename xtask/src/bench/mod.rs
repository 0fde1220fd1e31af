//! `cargo xtask bench`: the suite's wall and CPU time per implementation, each run alone and
//! then all together (the median over `--rounds`), next to CPython's own Pool tests run in
//! the same invocation; the floor of each implementation (`floor.rs`) and, with
//! `--profile`, where its cells' time goes (`profile.rs`, from `conformance::cell_timing`).
//! `table.rs` holds the record of the run (`--json`) and prints it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use conformance::cell_timing;
use conformance::expectations::ExpectationFile;
use conformance::implementations::{self, Implementation};
use conformance::runner::{MatrixRun, RunOptions, run_matrix};
use conformance::spec::LoadedCase;

use crate::conformance::select::{Prepared, Select, prepare};

pub mod cpython_tests;
pub mod floor;
pub mod profile;
pub mod table;
pub mod usage;

use floor::{Floor, PoolCost};
use table::{Bench, Row};
use usage::{Usage, measure};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    select: Select,
    /// Runs per measurement; the median (by wall time) is reported.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// One round and one repeat of each pool measurement: a smoke run (CI, tests).
    #[arg(long)]
    quick: bool,
    /// Also show where each implementation's cells spend their time, phase by phase.
    #[arg(long)]
    profile: bool,
    /// Write the whole measurement as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Do not run CPython's own Pool tests.
    #[arg(long)]
    no_cpython_tests: bool,
}

type Impl = (Implementation, ExpectationFile);

/// `rounds` runs of `impls`, timed; the profile of the last one when `profile`.
fn rounds_of(
    cases: &[LoadedCase],
    impls: &[Impl],
    options: &RunOptions,
    rounds: u32,
    profile: bool,
) -> (Usage, MatrixRun, Option<profile::Profile>) {
    let mut usages = Vec::new();
    let mut last = None;
    for round in 1..=rounds {
        let timed = profile && round == rounds;
        if timed {
            cell_timing::enable();
        }
        let started = Instant::now();
        let (run, usage) = measure(|| run_matrix(cases, impls, options, &|_| {}));
        let end = Instant::now();
        let prof = timed
            .then(|| profile::profile(&cell_timing::take(), started, end, options.jobs.max(1)));
        usages.push(usage);
        last = Some((run, prof));
    }
    let (run, prof) = last.unwrap_or_else(|| {
        let run = run_matrix(cases, impls, options, &|_| {});
        (run, None)
    });
    (usage::median(usages), run, prof)
}

pub fn run(root: &Path, args: &BenchArgs) -> Result<ExitCode> {
    let Prepared { cases, impls, .. } = prepare(root, &args.select)?;
    let options = RunOptions::default();
    let rounds = if args.quick { 1 } else { args.rounds.max(1) };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The supervisor is built on its first use (a relink, or more on a target folder built
    // with other features); paid here, not in the first implementation's timing.
    conformance::supervisor::binary().map_err(|e| anyhow::anyhow!("the supervisor: {e}"))?;
    let load_before = crate::bench_pool::measure::loadavg();
    eprintln!(
        "bench: {} cases × {} implementations, {rounds} round(s), each alone then together",
        cases.len(),
        impls.len()
    );
    let mut rows = Vec::new();
    let mut runs = Vec::new();
    for imp in &impls {
        let one = std::slice::from_ref(imp);
        let (alone, run, prof) = rounds_of(&cases, one, &options, rounds, args.profile);
        eprintln!("  {}: {:.2} s", imp.0.name, alone.wall_s);
        rows.push(Row {
            name: imp.0.name.clone(),
            alone,
            floor: None,
            profile: prof,
        });
        runs.push(run);
    }
    let (together, _, _) = rounds_of(&cases, &impls, &options, rounds, false);
    eprintln!("  all together: {:.2} s", together.wall_s);

    let python = match &args.select.python {
        Some(p) => p.clone(),
        None => implementations::find_python()?,
    };
    let repeats = if args.quick { 1 } else { 3 };
    let profiles: Vec<Option<&profile::Profile>> =
        rows.iter().map(|r| r.profile.as_ref()).collect();
    let floors = floors(
        root,
        &python,
        &cases,
        &runs,
        &profiles,
        cores,
        options.jobs,
        repeats,
    );
    for (row, floor) in rows.iter_mut().zip(floors) {
        row.floor = floor;
    }
    let present: Vec<&Floor> = rows.iter().filter_map(|r| r.floor.as_ref()).collect();
    let together_floor =
        (!present.is_empty()).then(|| floor::combine(&present, cores, options.jobs));

    let cpython_tests = (!args.no_cpython_tests).then(|| {
        eprintln!("  CPython's own Pool tests ...");
        cpython_rounds(rounds)
    });
    let bench = Bench {
        cases: cases.len(),
        rounds,
        jobs: options.jobs,
        cores,
        load_before,
        load_after: crate::bench_pool::measure::loadavg(),
        implementations: rows,
        together,
        together_floor,
        cpython_tests,
    };
    print!("{}", table::render(&bench));
    print!("{}", table::render_profile(&bench));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&bench)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// CPython's tests `rounds` times, the median by wall time (a skip is not repeated).
fn cpython_rounds(rounds: u32) -> cpython_tests::CpythonTests {
    use cpython_tests::CpythonTests;
    let mut ran = Vec::new();
    for _ in 0..rounds {
        match cpython_tests::run() {
            skipped @ CpythonTests::Skipped { .. } => return skipped,
            r @ CpythonTests::Ran { .. } => ran.push(r),
        }
    }
    let wall = |r: &CpythonTests| match r {
        CpythonTests::Ran { usage, .. } => usage.wall_s,
        CpythonTests::Skipped { .. } => 0.0,
    };
    ran.sort_by(|a, b| wall(a).total_cmp(&wall(b)));
    let mid = ran.len() / 2;
    ran.swap_remove(mid)
}

/// What one implementation's run alone started and waited for.
struct Started {
    name: String,
    /// The pools its cells started, by processes.
    sizes: Vec<u32>,
    /// Its cheapest cell that started a pool, in seconds.
    cheapest: Option<f64>,
    /// The timeouts its cells let expire by design, in seconds.
    waits: f64,
}

/// Each implementation's floor, from its last run alone. Outside CPython's start methods, a
/// pool costs what the profile measured starting and stopping pools (pool start + teardown),
/// or without `--profile` the cheapest cell.
#[allow(clippy::too_many_arguments)]
fn floors(
    root: &Path,
    python: &Path,
    cases: &[LoadedCase],
    runs: &[MatrixRun],
    profiles: &[Option<&profile::Profile>],
    cores: usize,
    jobs: usize,
    repeats: u32,
) -> Vec<Option<Floor>> {
    let by_id: HashMap<&str, &LoadedCase> = cases.iter().map(|c| (c.id(), c)).collect();
    let pools: Vec<Started> = runs
        .iter()
        .map(|run| {
            let name = run.implementations.first().map(|i| i.name.clone());
            let default = run
                .implementations
                .first()
                .and_then(|i| i.info.as_ref())
                .and_then(|i| i.default_processes)
                .unwrap_or(cores as u32);
            let mut sizes = Vec::new();
            let mut cheapest: Option<f64> = None;
            let mut waits = 0.0;
            for r in &run.results {
                let Some(case) = by_id.get(r.case.as_str()) else {
                    continue;
                };
                waits += floor::deliberate_wait(&case.program, r.observation.as_ref());
                if let Some(n) = floor::pool_of(case, r, default) {
                    sizes.push(n);
                    let s = r.duration_ms as f64 / 1000.0;
                    cheapest = Some(cheapest.map_or(s, |c| c.min(s)));
                }
            }
            Started {
                name: name.unwrap_or_default(),
                sizes,
                cheapest,
                waits,
            }
        })
        .collect();
    let methods: BTreeSet<String> = pools
        .iter()
        .filter_map(|p| floor::start_method(&p.name).map(str::to_owned))
        .collect();
    let sizes: BTreeSet<u32> = pools
        .iter()
        .filter(|p| floor::start_method(&p.name).is_some())
        .flat_map(|p| p.sizes.iter().copied())
        .collect();
    let measured: BTreeMap<(String, u32), PoolCost> = if methods.is_empty() {
        BTreeMap::new()
    } else {
        floor::measure_cpython(root, python, &methods, &sizes, repeats).unwrap_or_else(|e| {
            eprintln!("bench: the CPython pool floor was not measured: {e:#}");
            BTreeMap::new()
        })
    };
    pools
        .into_iter()
        .zip(profiles)
        .map(
            |(
                Started {
                    name,
                    sizes,
                    cheapest,
                    waits,
                },
                prof,
            )| {
                let method = floor::start_method(&name);
                let known = method.is_some_and(|m| {
                    sizes
                        .iter()
                        .all(|n| measured.contains_key(&(m.to_owned(), *n)))
                });
                if let (Some(m), true) = (method, known) {
                    let cost = |n: u32| measured[&(m.to_owned(), n)];
                    let source = "Pool(n) start + close/join, pool_floor.py";
                    Some(floor::floor(&sizes, cost, waits, cores, jobs, source))
                } else if let (Some(p), false) = (prof, sizes.is_empty()) {
                    let c = (p.pool_start_s + p.teardown_s) / sizes.len() as f64;
                    let cost = |_| PoolCost {
                        wall_s: c,
                        cpu_s: None,
                    };
                    let source =
                        format!("its pool start + teardown, {:.1} ms per pool", c * 1000.0);
                    Some(floor::floor(&sizes, cost, waits, cores, jobs, &source))
                } else {
                    let c = cheapest?;
                    let cost = |_| PoolCost {
                        wall_s: c,
                        cpu_s: None,
                    };
                    let source = format!("its cheapest cell, {:.0} ms, per pool", c * 1000.0);
                    Some(floor::floor(&sizes, cost, waits, cores, jobs, &source))
                }
            },
        )
        .collect()
}
