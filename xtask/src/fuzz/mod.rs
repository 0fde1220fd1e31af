//! `cargo xtask fuzz`: differential fuzzing of an implementation against CPython.
//!
//! Every run writes `report.json` into its `--out` folder (`report.rs`); `--shard K/N` runs
//! one contiguous part of a seed's program indices, and `fuzz merge` (`merge.rs`) joins the
//! shards' reports into the whole run's.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use conformance::fuzz::generate::Feature;
use conformance::fuzz::report::{
    FOUND_DIR, FuzzReport, IndexRange, ORACLE_FAULTS_DIR, ORACLE_FLAKES_DIR, RunFacts, Settings,
    case_file,
};
use conformance::fuzz::{self, FuzzOptions, FuzzSummary, PairOutcome, emit};
use conformance::implementations::{self, Implementation};
use conformance::runner::RunOptions;
use conformance::shard::Shard;
use indicatif::{ProgressBar, ProgressStyle};

use crate::flags::{Guards, Progress};

mod merge;
mod report;

#[derive(Subcommand, Debug)]
pub enum FuzzCommand {
    /// Merge the report.json of a run's shards (or of runs over adjacent index ranges of one
    /// seed) into one, with their found case files.
    Merge(merge::MergeArgs),
}

// A run takes the flags below; `merge` only its own.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct FuzzArgs {
    #[command(subcommand)]
    command: Option<FuzzCommand>,
    /// The implementation to fuzz: a built-in one (e.g. rust-ref, cpython-threadpool),
    /// `python:MODULE:ATTR` or `exec:COMMAND ARGS`, as for `conformance --impl`.
    #[arg(long = "impl", value_name = "NAME", required = true)]
    implementation: Option<String>,
    /// The oracle it is compared with.
    #[arg(long, default_value = "cpython-fork")]
    oracle: String,
    /// Programs to run (default 1000 unless --time is given).
    #[arg(long)]
    cases: Option<u64>,
    /// Stop taking new programs after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    time: Option<f64>,
    /// The run's seed (decimal or 0x-hex); printed, so any run can be repeated.
    /// Default: from the clock.
    #[arg(long, value_parser = parse_seed)]
    seed: Option<u64>,
    /// Index of the first program (with --cases 1: rerun one program of a seed).
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Run only shard K of N of the --cases programs (a contiguous part of their indices;
    /// together the N shards run exactly the programs one run would). Needs --seed and
    /// --cases; merge the shards' reports with `fuzz merge`.
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    /// Lanes running programs in parallel (each a pair of warm drivers).
    #[arg(long)]
    jobs: Option<usize>,
    /// Steps of a raw program, at most.
    #[arg(long, default_value_t = 10)]
    max_steps: usize,
    /// Candidate programs to run while shrinking, at most.
    #[arg(long, default_value_t = 400)]
    shrink_runs: u32,
    #[command(flatten)]
    guards: Guards,
    /// Where report.json, found cases and their raw histories go.
    #[arg(long, value_name = "DIR", default_value = "target/fuzz")]
    out: PathBuf,
    /// The Python interpreter of the implementation under test (a virtual environment's, or
    /// another CPython version's). Default: $POOLSPEC_PYTHON, else python3.
    #[arg(long)]
    python: Option<PathBuf>,
    /// The Python interpreter of the oracle. Default: $POOLSPEC_PYTHON, else python3.
    #[arg(long)]
    oracle_python: Option<PathBuf>,
    /// Leave parts of the vocabulary out of every program (comma-separated or repeated):
    /// unserializable, raises, echo, callbacks, timeouts, terminate, maxtasksperchild,
    /// initializer, with-block, kwargs, iterable-raises, blobs, large-values (byte strings
    /// cut to 1 KiB). For fuzzing past a divergence already known.
    #[arg(long, value_delimiter = ',', value_parser = parse_feature, value_name = "FEATURE")]
    exclude: Vec<Feature>,
    /// Compare exceptions by type only, not by message.
    #[arg(long)]
    ignore_messages: bool,
    /// Print the legalized program of --start as YAML and exit (nothing is run).
    #[arg(long)]
    print: bool,
    #[command(flatten)]
    progress: Progress,
}

fn parse_feature(s: &str) -> Result<Feature, String> {
    Feature::parse(s).ok_or_else(|| {
        let all: Vec<&str> = Feature::ALL.iter().map(|f| f.name()).collect();
        format!("`{s}` is not a feature (one of: {})", all.join(", "))
    })
}

fn parse_seed(s: &str) -> Result<u64, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|e| format!("`{s}` is not a seed (decimal or 0x-hex u64): {e}"))
}

pub fn run(root: &Path, args: &FuzzArgs) -> Result<ExitCode> {
    if let Some(FuzzCommand::Merge(merge)) = &args.command {
        return merge::run(root, merge);
    }
    let Some(implementation) = args.implementation.as_deref() else {
        bail!("--impl is required");
    };
    if args.shard.is_some() {
        // Every shard must draw from the same stream, and own a fixed part of it.
        if args.seed.is_none() {
            bail!("--shard needs --seed: every shard of a run must be given the same seed");
        }
        if args.time.is_some() {
            bail!(
                "--shard does not take --time: a time-bounded run has no fixed set of programs to split (give --cases)"
            );
        }
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let exclude: BTreeSet<Feature> = args.exclude.iter().copied().collect();
    let excluded_names = (!exclude.is_empty()).then(|| {
        exclude
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(",")
    });
    if args.print {
        let case = fuzz::program_case(seed, args.start, args.max_steps, &exclude);
        print!("{}", emit::program_file(&case)?);
        return Ok(ExitCode::SUCCESS);
    }
    let (oracle, target) = pair(root, args, implementation)?;
    let out = if args.out.is_absolute() {
        args.out.clone()
    } else {
        root.join(&args.out)
    };
    let cases = match (args.cases, args.time) {
        (None, None) => Some(1000),
        (c, _) => c,
    };
    let range = owned_range(args.start, cases, args.shard);
    let cases = cases.map(|_| range.len());
    let mut options = FuzzOptions {
        seed,
        start: range.start,
        cases,
        time: args.time.map(Duration::from_secs_f64),
        max_steps: args.max_steps,
        shrink_runs: args.shrink_runs,
        exclude: exclude.clone(),
        ignore_messages: args.ignore_messages,
        run: RunOptions {
            timeout_multiplier: args.guards.timeout_multiplier,
            history_dir: None,
            ..RunOptions::default()
        },
        history_dir: Some(out.join("histories")),
        ..FuzzOptions::default()
    };
    if let Some(jobs) = args.jobs {
        options.jobs = jobs.max(1);
    }
    let budget = match (cases, args.time) {
        (Some(n), Some(t)) => format!("{n} programs or {t} s"),
        (Some(n), None) => format!("{n} programs"),
        (None, Some(t)) => format!("{t} s"),
        (None, None) => String::new(),
    };
    let shard = args
        .shard
        .map(|s| format!(" (shard {s}: programs {}..{})", range.start, range.end))
        .unwrap_or_default();
    eprintln!(
        "fuzz: {} against {} (oracle), seed {seed:#x}, {budget}{shard}, {} lanes{}",
        target.name,
        oracle.name,
        options.jobs,
        excluded_names
            .as_ref()
            .map(|n| format!(", without {n}"))
            .unwrap_or_default()
    );
    let facts = RunFacts {
        seed,
        implementation: target.name.clone(),
        oracle: oracle.name.clone(),
        settings: Settings {
            max_steps: args.max_steps,
            exclude: exclude.iter().map(|f| f.name().to_owned()).collect(),
            ignore_messages: args.ignore_messages,
        },
        range,
        shard: args.shard,
    };
    let report_path = report::write(&out, &FuzzReport::started(&facts))?;
    let bar = progress_bar(args, cases);
    let summary = fuzz::fuzz(&oracle, &target, &options, &|n| {
        if let Some(bar) = &bar {
            bar.set_position(n);
        }
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let code = write_findings(&out, args, (&oracle, &target), &summary, excluded_names)?;
    report::write(&out, &FuzzReport::finished(&facts, &summary))?;
    println!("Report: {}", report_path.display());
    Ok(code)
}

/// The program indices a run owns: `cases` of them from `start` (none known yet for a run
/// bounded by time alone), or its shard's contiguous part of those.
fn owned_range(start: u64, cases: Option<u64>, shard: Option<Shard>) -> IndexRange {
    let n = cases.unwrap_or(0);
    let part = shard.map_or(0..n, |s| s.range(n));
    IndexRange {
        start: start.saturating_add(part.start),
        end: start.saturating_add(part.end),
    }
}

/// Writes what the run found (divergence, oracle fault, oracle flakes) under `out` and
/// prints it; the exit status says whether anything was found.
fn write_findings(
    out: &Path,
    args: &FuzzArgs,
    (oracle, target): (&Implementation, &Implementation),
    summary: &FuzzSummary,
    excluded_names: Option<String>,
) -> Result<ExitCode> {
    let seed = summary.seed;
    let per_program = summary.steps as f64 / summary.programs.max(1) as f64;
    if !summary.oracle_flakes.is_empty() {
        let dir = out.join(ORACLE_FLAKES_DIR);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for flake in &summary.oracle_flakes {
            let PairOutcome::OracleFault {
                reason,
                history,
                stderr,
            } = &flake.fault
            else {
                continue;
            };
            let stem = dir.join(&flake.case.id);
            std::fs::write(
                out.join(case_file(ORACLE_FLAKES_DIR, &flake.case)),
                emit::program_file(&flake.case)?,
            )?;
            if let Some(h) = history {
                std::fs::write(
                    stem.with_extension("history.json"),
                    serde_json::to_string_pretty(h)?,
                )?;
            }
            if let Some(e) = stderr {
                std::fs::write(stem.with_extension("stderr.txt"), e)?;
            }
            println!(
                "fuzz: the oracle failed program #{} once ({reason}) and ran it cleanly on a second try; kept in {}",
                flake.index,
                dir.display()
            );
        }
    }
    let Some(found) = &summary.found else {
        println!(
            "fuzz: {} programs agreed with {} ({per_program:.1} steps each on average), seed {seed:#x}, in {:.1} s",
            summary.programs,
            oracle.name,
            summary.wall.as_secs_f64()
        );
        return Ok(ExitCode::SUCCESS);
    };
    let reproduce = reproduce_command(args, seed, found.index, excluded_names.as_deref());
    match &found.outcome {
        PairOutcome::OracleFault {
            reason,
            history,
            stderr,
        } => {
            let dir = out.join(ORACLE_FAULTS_DIR);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            // The name the report gives it.
            let file = out.join(case_file(ORACLE_FAULTS_DIR, &found.original));
            std::fs::write(&file, emit::program_file(&found.original)?)
                .with_context(|| format!("writing {}", file.display()))?;
            if let Some(history) = history {
                let path = dir.join(format!("{}.history.json", found.original.id));
                std::fs::write(&path, serde_json::to_string_pretty(history)?)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("Oracle's raw history: {}", path.display());
            }
            if let Some(stderr) = stderr.as_ref().filter(|s| !s.is_empty()) {
                let path = dir.join(format!("{}.stderr.txt", found.original.id));
                std::fs::write(&path, stderr)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("Oracle driver's stderr: {}", path.display());
            }
            println!(
                "fuzz: the oracle did not run program #{} cleanly: {reason}\n\
                 This is a bug of the fuzzer (a program CPython does not define got through the \
                 legalizer), not of {}.\nProgram: {}\nReproduce: {reproduce}",
                found.index,
                target.name,
                file.display()
            );
            Ok(ExitCode::from(1))
        }
        PairOutcome::Agree => Ok(ExitCode::SUCCESS),
        PairOutcome::Diverge {
            oracle: observed,
            target: target_observed,
            differences,
        } => {
            let provenance = emit::Provenance {
                implementation: target.name.clone(),
                oracle: oracle.name.clone(),
                reproduce: reproduce.clone(),
                original_steps: found.original.steps.len(),
                shrink_runs: found.shrink_runs,
            };
            let text = emit::case_file(
                &found.shrunk,
                observed,
                target_observed,
                differences,
                &provenance,
            )?;
            let dir = out.join(FOUND_DIR);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let file = out.join(case_file(FOUND_DIR, &found.shrunk));
            std::fs::write(&file, &text).with_context(|| format!("writing {}", file.display()))?;
            println!(
                "fuzz: program #{} of seed {seed:#x} diverges on {} ({} programs run, found after {:.1} s).",
                found.index,
                target.name,
                summary.programs,
                found.after.as_secs_f64()
            );
            println!(
                "Shrunk from {} to {} steps in {} runs ({:.1} s){}.",
                found.original.steps.len(),
                found.shrunk.steps.len(),
                found.shrink_runs,
                (summary.wall - found.after).as_secs_f64(),
                if found.reproduced {
                    ""
                } else {
                    "; WARNING: reruns did not reproduce it exactly (nondeterministic program?)"
                }
            );
            for d in differences.iter().take(8) {
                println!("  {d}");
            }
            if differences.len() > 8 {
                println!("  … and {} more differences", differences.len() - 8);
            }
            println!("Case: {}", file.display());
            let names = [&oracle.name, &target.name];
            let firsts = [&found.first_histories.0, &found.first_histories.1];
            for (name, history) in names.into_iter().zip(firsts) {
                if let Some(history) = history {
                    let dir = out.join("histories").join(implementations::file_stem(name));
                    std::fs::create_dir_all(&dir)?;
                    let path = dir.join(format!("{}.first-run.json", found.original.id));
                    std::fs::write(&path, serde_json::to_string_pretty(history)?)?;
                }
            }
            if let Some(h) = &found.histories {
                println!("Raw histories: {}", h.display());
            }
            println!("Reproduce: {reproduce}");
            Ok(ExitCode::from(1))
        }
    }
}

/// The oracle and the implementation under test, each on its own interpreter. When both are
/// the same built-in, the target is renamed so the two stay apart in reports: `NAME#2` on the
/// same interpreter (a determinism check of the generator), `NAME@VERSION` on another.
fn pair(
    root: &Path,
    args: &FuzzArgs,
    implementation: &str,
) -> Result<(Implementation, Implementation)> {
    let default_python = implementations::find_python();
    let pick = |chosen: &Option<PathBuf>| -> Result<PathBuf> {
        match (chosen, &default_python) {
            (Some(p), _) => Ok(p.clone()),
            (None, Ok(p)) => Ok(p.clone()),
            (None, Err(e)) => bail!("{e:#}"),
        }
    };
    let python = pick(&args.python)?;
    let oracle_python = pick(&args.oracle_python)?;
    let wants_rust_ref = [implementation, args.oracle.as_str()].contains(&"rust-ref");
    let rust_ref = if wants_rust_ref {
        Some(implementations::build_rust_ref(root)?)
    } else {
        None
    };
    // Each side gets its own interpreter: `--python` names the implementation's, so that
    // fuzzing a pool in a venv, or CPython 3.13, still compares with the reference CPython.
    let oracle_builtin = implementations::builtin(root, &oracle_python, rust_ref.as_deref());
    let target_builtin = implementations::builtin(root, &python, rust_ref.as_deref());
    let oracle = implementations::parse_spec(&args.oracle, root, &oracle_python, &oracle_builtin)?;
    let mut target = implementations::parse_spec(implementation, root, &python, &target_builtin)?;
    if oracle.name == target.name {
        if oracle.command.program == target.command.program {
            // The oracle against a second instance of itself: any divergence is a program
            // whose observation is not forced, i.e. a bug of the legalizer.
            eprintln!(
                "fuzz: {} against itself: checking that generated programs are deterministic",
                target.name
            );
            target.name = format!("{}#2", target.name);
        } else {
            // The same built-in on another interpreter: name it by that interpreter's version.
            let version = implementations::probe_python(&python)
                .map_or_else(|| python.display().to_string(), |i| i.version);
            target.name = format!("{}@{version}", target.name);
        }
    }
    Ok((oracle, target))
}

/// A bar over the programs (a spinner when only time bounds the run), when one is wanted.
fn progress_bar(args: &FuzzArgs, cases: Option<u64>) -> Option<ProgressBar> {
    if args.progress.bar_wanted() {
        let bar = match cases {
            Some(n) if args.time.is_none() => ProgressBar::new(n),
            _ => ProgressBar::new_spinner(),
        };
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} programs ({per_sec})",
        ) {
            bar.set_style(style);
        }
        Some(bar)
    } else {
        None
    }
}

/// The command line that reruns the one program `index` of `seed` with the same settings.
fn reproduce_command(
    args: &FuzzArgs,
    seed: u64,
    index: u64,
    excluded_names: Option<&str>,
) -> String {
    let mut reproduce = format!(
        "cargo xtask fuzz --impl '{}' --oracle '{}' --seed {seed:#x} --start {} --cases 1 --max-steps {}",
        args.implementation.as_deref().unwrap_or_default(),
        args.oracle,
        index,
        args.max_steps
    );
    if let Some(names) = excluded_names {
        reproduce += &format!(" --exclude {names}");
    }
    if args.ignore_messages {
        reproduce += " --ignore-messages";
    }
    if let Some(p) = &args.python {
        reproduce += &format!(" --python {}", p.display());
    }
    if let Some(p) = &args.oracle_python {
        reproduce += &format!(" --oracle-python {}", p.display());
    }
    reproduce
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_owns_its_part_of_the_programs_from_start() {
        let range = |start, cases, shard: Option<&str>| {
            let r = owned_range(start, cases, shard.map(|s| s.parse().unwrap()));
            (r.start, r.end)
        };
        assert_eq!(range(0, Some(40), None), (0, 40));
        assert_eq!(range(100, Some(40), Some("1/3")), (100, 114));
        assert_eq!(range(100, Some(40), Some("3/3")), (127, 140));
        assert_eq!(range(5, None, None), (5, 5));
    }
}
