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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use conformance::expectations::ExpectationFile;
use conformance::implementations::{self, Implementation};
use conformance::runner::{CaseResult, RunOptions, WarmDriver, run_matrix};
use conformance::spec::{LoadedCase, load_dir};
use conformance::verdict::Status;
use serde::{Deserialize, Serialize};

/// The mutants' module, relative to the workspace root.
pub const MODULE_DIR: &str = "fixtures/mutants";
const MODULE: &str = "poolspec_mutants";

#[derive(Args, Debug)]
pub struct MutantsArgs {
    /// Run every case on every mutant (the full table of killing cases) instead of stopping
    /// at each mutant's first killing case.
    #[arg(long)]
    all: bool,
    /// Only this mutant (repeatable); `--list` shows the names.
    #[arg(long = "mutant", value_name = "NAME")]
    mutants: Vec<String>,
    /// Only cases whose id starts with, or contains, this text (repeatable).
    #[arg(long = "case", value_name = "PATTERN")]
    cases: Vec<String>,
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
    /// The Python interpreter (default: $POOLSPEC_PYTHON, else python3 on PATH).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Where report.md, report.json and the raw histories go.
    #[arg(long, value_name = "DIR", default_value = "target/mutants")]
    out: PathBuf,
    /// Print nothing while running (only the results).
    #[arg(long)]
    no_progress: bool,
}

/// One mutant, as `poolspec_mutants.py --manifest` describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mutant {
    pub name: String,
    pub theme: String,
    /// The defect, from the docstring.
    pub doc: String,
    /// The observation that exposes the defect: what a case must look at to kill it.
    pub observes: String,
    /// Case ids or id prefixes to try before the others.
    #[serde(default)]
    pub try_first: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    control: String,
    mutants: Vec<Mutant>,
}

/// A case that killed a mutant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kill {
    pub case: String,
    pub status: Status,
    pub reason: String,
}

/// What running the cases on one mutant gave.
#[derive(Debug, Clone, Serialize)]
pub struct MutantResult {
    #[serde(flatten)]
    pub mutant: Mutant,
    /// Killing cases, in the order they ran.
    pub kills: Vec<Kill>,
    /// Cases run (fewer than selected when the run stopped at the first kill).
    pub cases_run: usize,
    /// Why the mutant's driver could not run a case at all (then it is neither killed nor
    /// surviving).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken: Option<String>,
    pub duration_ms: u64,
}

impl MutantResult {
    pub fn killed(&self) -> bool {
        self.broken.is_none() && !self.kills.is_empty()
    }

    pub fn survived(&self) -> bool {
        self.broken.is_none() && self.kills.is_empty()
    }
}

/// Killed / total, and the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Score {
    pub killed: usize,
    pub survived: usize,
    pub broken: usize,
    pub total: usize,
}

impl Score {
    pub fn of(results: &[MutantResult]) -> Score {
        Score {
            killed: results.iter().filter(|r| r.killed()).count(),
            survived: results.iter().filter(|r| r.survived()).count(),
            broken: results.iter().filter(|r| r.broken.is_some()).count(),
            total: results.len(),
        }
    }

    /// `killed/total (p%)`.
    pub fn render(&self) -> String {
        let percent = if self.total == 0 {
            0.0
        } else {
            100.0 * self.killed as f64 / self.total as f64
        };
        format!("{}/{} ({percent:.1}%)", self.killed, self.total)
    }
}

/// The control run: the unmodified Pool on the selected cases.
#[derive(Debug, Clone, Serialize)]
pub struct ControlSummary {
    pub implementation: String,
    pub passed: usize,
    /// Cases the control cannot run (unsupported, not applicable): left out of the mutant runs.
    pub skipped: Vec<String>,
    /// Cases the control did not pass: the run stops.
    pub failed: Vec<Kill>,
    pub duration_ms: u64,
}

/// The whole run, as report.json holds it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub score: Score,
    /// `first-kill` or `all`.
    pub mode: String,
    pub cases: usize,
    pub python: String,
    pub control: ControlSummary,
    pub mutants: Vec<MutantResult>,
    pub wall_ms: u64,
}

/// A status that kills a mutant: the case saw something other than a pass, for a reason
/// that depends on the pool (not on a capability or a language version).
pub fn is_kill(status: Status) -> bool {
    matches!(
        status,
        Status::Fail | Status::Error | Status::Crash | Status::Timeout
    )
}

/// The order a mutant's cases run in: first the cases matching each `try_first` entry (an id,
/// or a prefix of ids), entry by entry, each in suite order; then the rest in suite order.
/// Deterministic, and every case exactly once.
pub fn case_order(ids: &[&str], try_first: &[String]) -> Vec<usize> {
    let mut taken = vec![false; ids.len()];
    let mut order = Vec::with_capacity(ids.len());
    for pattern in try_first {
        for (i, id) in ids.iter().enumerate() {
            if !taken[i] && id.starts_with(pattern.as_str()) {
                taken[i] = true;
                order.push(i);
            }
        }
    }
    order.extend((0..ids.len()).filter(|&i| !taken[i]));
    order
}

/// Whether a case id matches `--case` patterns (none: every case), as in `conformance`.
fn selected(id: &str, patterns: &[String]) -> bool {
    patterns.is_empty()
        || patterns
            .iter()
            .any(|p| id.starts_with(p.as_str()) || id.contains(p.as_str()))
}

fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

fn kill_of(result: &CaseResult) -> Kill {
    Kill {
        case: result.case.clone(),
        status: result.status,
        reason: result.reason.clone().unwrap_or_default(),
    }
}

/// `ORD-001 (fail), LIF-004 (timeout)`.
fn kill_list(kills: &[Kill]) -> String {
    kills
        .iter()
        .map(|k| format!("{} ({})", k.case, k.status.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn md_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// report.md.
pub fn render_markdown(report: &Report) -> String {
    let mut out = String::new();
    let s = &report.score;
    let _ = writeln!(out, "# Mutation score: {}\n", s.render());
    let _ = writeln!(
        out,
        "Generated by `cargo xtask mutants{}`: {} cases on `{}` (the unmodified \
         `multiprocessing.pool.Pool`) and on {} one-defect variants of it from \
         `{MODULE_DIR}/{MODULE}.py`, {}. A mutant is killed by a case whose status is not \
         `pass`. Python: {}.\n",
        if report.mode == "all" { " --all" } else { "" },
        report.cases,
        report.control.implementation,
        s.total,
        if report.mode == "all" {
            "every case on every mutant"
        } else {
            "each mutant stopping at its first killing case"
        },
        report.python,
    );
    let c = &report.control;
    let _ = writeln!(
        out,
        "- Control: {} of {} cases pass{}{}.",
        c.passed,
        report.cases,
        if c.skipped.is_empty() {
            String::new()
        } else {
            format!(
                "; not run on the mutants (the control cannot run them): {}",
                c.skipped.join(", ")
            )
        },
        if c.failed.is_empty() {
            String::new()
        } else {
            format!("; **FAILED**: {} (no mutant was run)", kill_list(&c.failed))
        }
    );
    let _ = writeln!(
        out,
        "- Killed {}, survived {}, broken {}; wall time {:.1} s.\n",
        s.killed,
        s.survived,
        s.broken,
        report.wall_ms as f64 / 1000.0
    );

    let survivors: Vec<&MutantResult> = report.mutants.iter().filter(|r| r.survived()).collect();
    if !survivors.is_empty() {
        let _ = writeln!(out, "## Survivors\n");
        let _ = writeln!(
            out,
            "| mutant | theme | defect | an observation that would kill it |"
        );
        let _ = writeln!(out, "|---|---|---|---|");
        for r in &survivors {
            let m = &r.mutant;
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                m.name,
                m.theme,
                md_cell(&m.doc),
                md_cell(&m.observes)
            );
        }
        out.push('\n');
    }
    let broken: Vec<&MutantResult> = report
        .mutants
        .iter()
        .filter(|r| r.broken.is_some())
        .collect();
    if !broken.is_empty() {
        let _ = writeln!(out, "## Broken (the driver did not run)\n");
        for r in &broken {
            let _ = writeln!(
                out,
                "- `{}`: {}",
                r.mutant.name,
                one_line(r.broken.as_deref().unwrap_or(""), 300)
            );
        }
        out.push('\n');
    }
    let _ = writeln!(out, "## Mutants\n");
    let _ = writeln!(
        out,
        "| mutant | theme | defect | {} |",
        if report.mode == "all" {
            "killing cases"
        } else {
            "first killing case"
        }
    );
    let _ = writeln!(out, "|---|---|---|---|");
    for r in &report.mutants {
        let verdict = if let Some(why) = &r.broken {
            format!("broken: {}", md_cell(&one_line(why, 120)))
        } else if r.kills.is_empty() {
            "**survived**".to_owned()
        } else {
            kill_list(&r.kills)
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            r.mutant.name,
            r.mutant.theme,
            md_cell(&r.mutant.doc),
            verdict
        );
    }
    let killed: Vec<&MutantResult> = report.mutants.iter().filter(|r| r.killed()).collect();
    if !killed.is_empty() {
        let _ = writeln!(out, "\n## Why each kill\n");
        for r in killed {
            let _ = writeln!(out, "- `{}`", r.mutant.name);
            for k in &r.kills {
                let _ = writeln!(
                    out,
                    "  - {} {}: {}",
                    k.case,
                    k.status.as_str(),
                    md_cell(&one_line(&k.reason, 240))
                );
            }
        }
    }
    out
}

/// The terminal summary: one line per mutant, then the score.
pub fn render_terminal(report: &Report) -> String {
    let mut out = String::new();
    let width = report
        .mutants
        .iter()
        .map(|r| r.mutant.name.len())
        .max()
        .unwrap_or(0);
    for r in &report.mutants {
        let (label, detail) = if let Some(why) = &r.broken {
            ("BROKEN  ", one_line(why, 160))
        } else if r.kills.is_empty() {
            (
                "SURVIVED",
                format!("would need: {}", one_line(&r.mutant.observes, 140)),
            )
        } else {
            ("killed  ", kill_list(&r.kills))
        };
        let _ = writeln!(
            out,
            "{label} {:width$}  {:10} {detail}",
            r.mutant.name, r.mutant.theme
        );
    }
    let s = &report.score;
    let _ = writeln!(
        out,
        "mutation score: {} killed; {} survived, {} broken",
        s.render(),
        s.survived,
        s.broken
    );
    out
}

fn read_manifest(root: &Path, python: &Path) -> Result<Manifest> {
    let script = root.join(MODULE_DIR).join(format!("{MODULE}.py"));
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg("--manifest")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .with_context(|| format!("running {} {}", python.display(), script.display()))?;
    if !out.status.success() {
        bail!(
            "{} --manifest failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let manifest: Manifest = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("reading the manifest of {}", script.display()))?;
    Ok(manifest)
}

/// The driver of `python:poolspec_mutants:ATTR`, named `name`, with the module's folder on
/// `PYTHONPATH`.
fn implementation(root: &Path, python: &Path, attr: &str, name: String) -> Result<Implementation> {
    let mut imp =
        implementations::parse_spec(&format!("python:{MODULE}:{attr}"), root, python, &[])?;
    let mut dirs = vec![root.join(MODULE_DIR)];
    if let Some(existing) = std::env::var_os("PYTHONPATH") {
        dirs.extend(std::env::split_paths(&existing).filter(|p| !p.as_os_str().is_empty()));
    }
    let path = std::env::join_paths(dirs).context("PYTHONPATH")?;
    imp.command
        .env
        .push(("PYTHONPATH".into(), path.to_string_lossy().into_owned()));
    imp.name = name;
    Ok(imp)
}

fn no_expectations(name: &str) -> ExpectationFile {
    ExpectationFile {
        implementation: name.to_owned(),
        cases: BTreeMap::new(),
    }
}

fn python_version(python: &Path) -> String {
    implementations::probe_python(python).map_or_else(
        || python.display().to_string(),
        |i| format!("{} ({})", i.version, i.path.display()),
    )
}

pub fn run(root: &Path, args: &MutantsArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let python = match &args.python {
        Some(p) => p.clone(),
        None => implementations::find_python()?,
    };
    let manifest = read_manifest(root, &python)?;
    if args.list {
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
        return Ok(ExitCode::SUCCESS);
    }
    let mutants: Vec<Mutant> = if args.mutants.is_empty() {
        manifest.mutants.clone()
    } else {
        let mut chosen = Vec::new();
        for name in &args.mutants {
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
        chosen
    };

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
        .filter(|c| selected(c.id(), &args.cases))
        .collect();
    if cases.is_empty() {
        bail!("no case matches the selection");
    }

    let out_dir = if args.out.is_absolute() {
        args.out.clone()
    } else {
        root.join(&args.out)
    };
    let history_dir = out_dir.join("histories");
    let _ = std::fs::remove_dir_all(&history_dir);
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
    let python_shown = python_version(&python);

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
    let control_name = format!("control:{}", manifest.control);
    let control_imp = implementation(root, &python, &manifest.control, control_name.clone())?;
    let matrix = run_matrix(
        &cases,
        &[(control_imp, no_expectations(&control_name))],
        &options,
        &|_| {},
    );
    let mut control = ControlSummary {
        implementation: format!("{MODULE}:{}", manifest.control),
        passed: 0,
        skipped: Vec::new(),
        failed: Vec::new(),
        duration_ms: matrix.wall.as_millis() as u64,
    };
    for r in &matrix.results {
        match r.status {
            Status::Pass => control.passed += 1,
            Status::Unsupported | Status::NotApplicable => control.skipped.push(r.case.clone()),
            _ => control.failed.push(kill_of(r)),
        }
    }
    let runnable: Vec<LoadedCase> = cases
        .iter()
        .filter(|c| !control.skipped.iter().any(|s| s == c.id()))
        .cloned()
        .collect();
    progress(format!(
        "mutants: control passes {}/{} cases in {:.1} s",
        control.passed,
        cases.len(),
        matrix.wall.as_secs_f64()
    ));

    let results = if control.failed.is_empty() {
        run_mutants(
            root, &python, &mutants, &runnable, &options, args, &progress,
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

    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let md_path = out_dir.join("report.md");
    let json_path = out_dir.join("report.json");
    std::fs::write(&md_path, render_markdown(&report))
        .with_context(|| format!("writing {}", md_path.display()))?;
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;

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
        println!("reports: {}, {}", md_path.display(), json_path.display());
        return Ok(ExitCode::from(1));
    }
    print!("{}", render_terminal(&report));
    println!(
        "control {} passes {}/{} cases; {:.1} s in all; reports: {}, {}",
        report.control.implementation,
        report.control.passed,
        report.cases,
        report.wall_ms as f64 / 1000.0,
        md_path.display(),
        json_path.display()
    );
    let s = report.score;
    Ok(if s.survived == 0 && s.broken == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Runs the cases on every mutant, `options.jobs` mutants at a time, each through its own
/// warm driver; results in `mutants` order.
fn run_mutants(
    root: &Path,
    python: &Path,
    mutants: &[Mutant],
    cases: &[LoadedCase],
    options: &RunOptions,
    args: &MutantsArgs,
    progress: &(dyn Fn(String) + Sync),
) -> Result<Vec<MutantResult>> {
    let mut imps = Vec::new();
    for m in mutants {
        imps.push(implementation(
            root,
            python,
            &m.name,
            format!("mutant:{}", m.name),
        )?);
    }
    let ids: Vec<&str> = cases.iter().map(|c| c.id()).collect();
    let next = Mutex::new(0usize);
    let done = Mutex::new(0usize);
    let slots: Vec<Mutex<Option<MutantResult>>> =
        mutants.iter().map(|_| Mutex::new(None)).collect();
    let jobs = options.jobs.max(1).min(mutants.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(mutant) = mutants.get(i) else { break };
                    let result = run_one(mutant, &imps[i], cases, &ids, options, args.all);
                    let finished = {
                        let mut d = done.lock().unwrap_or_else(|e| e.into_inner());
                        *d += 1;
                        *d
                    };
                    let what = if let Some(why) = &result.broken {
                        format!("BROKEN: {}", one_line(why, 160))
                    } else if result.kills.is_empty() {
                        format!("SURVIVED {} cases", result.cases_run)
                    } else {
                        format!("killed by {}", kill_list(&result.kills))
                    };
                    progress(format!(
                        "[{finished}/{}] {} {what} ({:.1} s)",
                        mutants.len(),
                        mutant.name,
                        result.duration_ms as f64 / 1000.0
                    ));
                    *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                }
            });
        }
    });
    Ok(slots
        .into_iter()
        .filter_map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect())
}

fn run_one(
    mutant: &Mutant,
    imp: &Implementation,
    cases: &[LoadedCase],
    ids: &[&str],
    options: &RunOptions,
    all: bool,
) -> MutantResult {
    let started = Instant::now();
    let mut driver = WarmDriver::new(imp.clone(), no_expectations(&imp.name));
    let mut result = MutantResult {
        mutant: mutant.clone(),
        kills: Vec::new(),
        cases_run: 0,
        broken: None,
        duration_ms: 0,
    };
    for i in case_order(ids, &mutant.try_first) {
        let (case_result, _) = driver.run(&cases[i], options);
        result.cases_run += 1;
        let reason = case_result.reason.as_deref().unwrap_or("");
        if reason.starts_with("driver did not start") {
            result.broken = Some(format!("{}: {reason}", case_result.case));
            break;
        }
        if is_kill(case_result.status) {
            result.kills.push(kill_of(&case_result));
            if !all {
                break;
            }
            if case_result.status != Status::Fail {
                // The driver answered an error (its teardown hung, a worker outlived the
                // pool, ...) or was killed: a fresh one, so that what this case left behind
                // in the driver process is not blamed on the next case.
                driver.stop();
                driver = WarmDriver::new(imp.clone(), no_expectations(&imp.name));
            }
        }
    }
    driver.stop();
    result.duration_ms = started.elapsed().as_millis() as u64;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mutant(name: &str) -> Mutant {
        Mutant {
            name: name.to_owned(),
            theme: "order".to_owned(),
            doc: "map returns its results | reversed.".to_owned(),
            observes: "map's results in input order".to_owned(),
            try_first: vec!["ORD-001".to_owned()],
        }
    }

    fn result(name: &str, kills: &[(&str, Status)], broken: Option<&str>) -> MutantResult {
        MutantResult {
            mutant: mutant(name),
            kills: kills
                .iter()
                .map(|(case, status)| Kill {
                    case: (*case).to_owned(),
                    status: *status,
                    reason: format!("{case} saw\nsomething else"),
                })
                .collect(),
            cases_run: 3,
            broken: broken.map(str::to_owned),
            duration_ms: 10,
        }
    }

    fn report(mutants: Vec<MutantResult>, mode: &str) -> Report {
        Report {
            score: Score::of(&mutants),
            mode: mode.to_owned(),
            cases: 3,
            python: "3.11.7".to_owned(),
            control: ControlSummary {
                implementation: "poolspec_mutants:Control".to_owned(),
                passed: 3,
                skipped: Vec::new(),
                failed: Vec::new(),
                duration_ms: 5,
            },
            mutants,
            wall_ms: 1234,
        }
    }

    #[test]
    fn try_first_cases_run_first_then_the_rest_in_suite_order() {
        let ids = ["BLK-001", "ORD-001", "ORD-002", "LIF-003", "ORD-010"];
        assert_eq!(case_order(&ids, &[]), vec![0, 1, 2, 3, 4]);
        assert_eq!(
            case_order(&ids, &["LIF-003".to_owned(), "ORD-".to_owned()]),
            vec![3, 1, 2, 4, 0]
        );
        // An exact id is a prefix too; overlapping and unknown entries change nothing more.
        assert_eq!(
            case_order(
                &ids,
                &["ORD-001".to_owned(), "ORD-".to_owned(), "XYZ-".to_owned()]
            ),
            vec![1, 2, 4, 0, 3]
        );
    }

    #[test]
    fn the_order_holds_every_case_exactly_once() {
        let ids = ["A-1", "A-2", "B-1", "B-2", "C-1"];
        let mut order = case_order(&ids, &["B-".to_owned(), "A-2".to_owned(), "B-1".to_owned()]);
        order.sort_unstable();
        assert_eq!(order, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn only_statuses_about_the_pool_kill() {
        for s in [Status::Fail, Status::Error, Status::Crash, Status::Timeout] {
            assert!(is_kill(s), "{s:?}");
        }
        for s in [Status::Pass, Status::Unsupported, Status::NotApplicable] {
            assert!(!is_kill(s), "{s:?}");
        }
    }

    #[test]
    fn the_score_counts_killed_survived_and_broken() {
        let results = vec![
            result("A", &[("ORD-001", Status::Fail)], None),
            result("B", &[], None),
            result("C", &[("BLK-002", Status::Timeout)], None),
            result("D", &[], Some("driver did not start")),
        ];
        let score = Score::of(&results);
        assert_eq!(
            score,
            Score {
                killed: 2,
                survived: 1,
                broken: 1,
                total: 4
            }
        );
        assert_eq!(score.render(), "2/4 (50.0%)");
        assert_eq!(Score::of(&[]).render(), "0/0 (0.0%)");
    }

    #[test]
    fn the_markdown_report_lists_survivors_with_what_would_kill_them() {
        let text = render_markdown(&report(
            vec![
                result(
                    "MapReversed",
                    &[("ORD-001", Status::Fail), ("CHK-002", Status::Timeout)],
                    None,
                ),
                result("ApplyDropsKwds", &[], None),
            ],
            "all",
        ));
        assert!(
            text.starts_with("# Mutation score: 1/2 (50.0%)\n"),
            "{text}"
        );
        assert!(text.contains("`cargo xtask mutants --all`"), "{text}");
        assert!(text.contains("## Survivors"), "{text}");
        assert!(
            text.contains(
                "| `ApplyDropsKwds` | order | map returns its results \\| reversed. | map's results in input order |"
            ),
            "{text}"
        );
        assert!(
            text.contains("| `MapReversed` | order | map returns its results \\| reversed. | ORD-001 (fail), CHK-002 (timeout) |"),
            "{text}"
        );
        // Reasons are one line each.
        assert!(
            text.contains("  - ORD-001 fail: ORD-001 saw something else\n"),
            "{text}"
        );
        assert!(!text.contains("## Broken"), "{text}");
    }

    #[test]
    fn the_markdown_report_of_a_clean_run_has_no_survivors_section() {
        let text = render_markdown(&report(
            vec![result("MapReversed", &[("ORD-001", Status::Fail)], None)],
            "first-kill",
        ));
        assert!(
            text.starts_with("# Mutation score: 1/1 (100.0%)\n"),
            "{text}"
        );
        assert!(!text.contains("## Survivors"), "{text}");
        assert!(text.contains("first killing case"), "{text}");
        assert!(text.contains("each mutant stopping at its first killing case"));
    }

    #[test]
    fn the_terminal_summary_has_a_line_per_mutant_and_the_score() {
        let text = render_terminal(&report(
            vec![
                result("MapReversed", &[("ORD-001", Status::Fail)], None),
                result("ApplyDropsKwds", &[], None),
                result("Broken", &[], Some("ORD-001: driver did not start")),
            ],
            "first-kill",
        ));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("killed   MapReversed"), "{text}");
        assert!(lines[0].ends_with("ORD-001 (fail)"), "{text}");
        assert!(lines[1].starts_with("SURVIVED ApplyDropsKwds"), "{text}");
        assert!(
            lines[1].ends_with("would need: map's results in input order"),
            "{text}"
        );
        assert!(lines[2].starts_with("BROKEN   Broken"), "{text}");
        assert_eq!(
            lines[3],
            "mutation score: 1/3 (33.3%) killed; 1 survived, 1 broken"
        );
    }

    #[test]
    fn the_manifest_reads_as_python_prints_it() {
        let text = r#"{"control": "Control", "themes": {"order": "x"}, "mutants": [
            {"name": "MapReversed", "theme": "order", "doc": "d", "observes": "o",
             "try_first": ["ORD-001"]},
            {"name": "NoHints", "theme": "order", "doc": "d", "observes": "o"}]}"#;
        let m: Manifest = serde_json::from_str(text).unwrap();
        assert_eq!(m.control, "Control");
        assert_eq!(m.mutants[0].try_first, vec!["ORD-001"]);
        assert!(m.mutants[1].try_first.is_empty());
    }

    #[test]
    fn long_reasons_are_cut_to_one_line() {
        assert_eq!(one_line("a\n  b\tc", 10), "a b c");
        assert_eq!(one_line("abcdefghijkl", 5), "abcd…");
    }
}
