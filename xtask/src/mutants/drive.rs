//! Running the suite on the control and on the mutants: reading the module's manifest,
//! one warm driver per mutant (`options.jobs` mutants at a time), each stopping at its first
//! kill unless `--all`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use conformance::expectations::ExpectationFile;
use conformance::implementations::{self, Implementation};
use conformance::runner::{RunOptions, WarmDriver, run_matrix};
use conformance::spec::LoadedCase;
use conformance::verdict::Status;

use super::model::{
    ControlSummary, MODULE, MODULE_DIR, Manifest, Mutant, MutantResult, case_order, is_kill,
    kill_of,
};
use super::render::{kill_list, one_line};

/// What `poolspec_mutants.py --manifest` prints: the control's name and every mutant.
pub fn read_manifest(root: &Path, python: &Path) -> Result<Manifest> {
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

/// The interpreter as report.json shows it: its version and path.
pub fn python_version(python: &Path) -> String {
    implementations::probe_python(python).map_or_else(
        || python.display().to_string(),
        |i| format!("{} ({})", i.version, i.path.display()),
    )
}

/// The control run: every selected case on the unmodified Pool. Returns its summary and the
/// cases the mutants run (those the control could run at all).
pub fn run_control(
    root: &Path,
    python: &Path,
    control: &str,
    cases: &[LoadedCase],
    options: &RunOptions,
) -> Result<(ControlSummary, Vec<LoadedCase>)> {
    let name = format!("control:{control}");
    let imp = implementation(root, python, control, name.clone())?;
    let matrix = run_matrix(cases, &[(imp, no_expectations(&name))], options, &|_| {});
    let mut summary = ControlSummary {
        implementation: format!("{MODULE}:{control}"),
        passed: 0,
        skipped: Vec::new(),
        failed: Vec::new(),
        duration_ms: matrix.wall.as_millis() as u64,
    };
    for r in &matrix.results {
        match r.status {
            Status::Pass => summary.passed += 1,
            Status::Unsupported | Status::NotApplicable => summary.skipped.push(r.case.clone()),
            _ => summary.failed.push(kill_of(r)),
        }
    }
    let runnable = cases
        .iter()
        .filter(|c| !summary.skipped.iter().any(|s| s == c.id()))
        .cloned()
        .collect();
    Ok((summary, runnable))
}

/// Runs the cases on every mutant, `options.jobs` mutants at a time, each through its own
/// warm driver; results in `mutants` order.
pub fn run_mutants(
    root: &Path,
    python: &Path,
    mutants: &[Mutant],
    cases: &[LoadedCase],
    options: &RunOptions,
    all: bool,
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
                    let result = run_one(mutant, &imps[i], cases, &ids, options, all);
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

/// One mutant through one warm driver: its cases in `case_order`, until the first kill
/// unless `all`.
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
