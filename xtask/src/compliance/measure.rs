//! Running the suite on the subjects that can run: each made into a driver (its interpreter,
//! `PYTHONPATH`, network namespace and expectation file), then one matrix per group of equal
//! run options (the fast subjects together, slow ones alone), every run's status kept, and
//! the matrices joined back into one. A shard (`--shard K/N`) runs each subject alone on the
//! cases whose cells it owns.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use conformance::driver::DriverCommand;
use conformance::expectations::ExpectationFile;
use conformance::implementations::{self, Implementation, Interpreter, Runtime};
use conformance::runner::{CaseResult, MatrixRun, RunOptions, run_matrix};
use conformance::spec::LoadedCase;

use conformance::shard::Shard;

use super::install::InstallFailure;
use super::node::{self, NodeFacts, NodeInstall};
use super::probe::{loopback_only, probe, wrap};
use super::shards::cell_key;
use super::subjects::{Interp, Subject, Unavailable};
use super::table::Statuses;

/// A subject ready to run: its driver and its expectation file.
pub struct Runnable {
    pub subject: Subject,
    pub implementation: Implementation,
    pub expectations: ExpectationFile,
}

/// The chosen subjects, split by whether they can run here.
pub struct Prepared {
    /// In subject order.
    pub runnable: Vec<Runnable>,
    /// In subject order, with why.
    pub unavailable: Vec<Unavailable>,
    /// The PyPy a runnable subject runs on (`PyPy 7.3.11 (Python 3.9.16)`).
    pub pypy: Option<String>,
    /// Node.js and the npm packages of the runnable Node subjects, when there are any.
    pub node: Option<NodeFacts>,
}

/// Makes each chosen subject a driver, or records why it cannot run here. `venv` is the
/// venv's interpreter; `pypy` the `--pypy` choice, looked up only when a subject needs it;
/// `node` what the install step did for the Node.js pools.
pub fn prepare(
    root: &Path,
    chosen: Vec<Subject>,
    venv: &Path,
    pypy: Option<&Path>,
    install_failures: &[InstallFailure],
    node: &NodeInstall,
    case_ids: &[&str],
) -> Result<Prepared> {
    let venv_builtin = implementations::builtin(root, venv, None);
    let mut found_pypy: Option<Result<Interpreter, String>> = None;
    let mut runnable = Vec::new();
    let mut unavailable = Vec::new();
    let mut node_packages = Vec::new();
    for subject in chosen {
        if subject.interp == Interp::Node {
            match node_driver(root, &subject, node) {
                Ok((implementation, version)) => {
                    let expectations = ExpectationFile::load_for(
                        &root.join("fixtures/expectations"),
                        &implementation.name,
                        case_ids,
                    )?;
                    node_packages.push((subject.module.to_owned(), version));
                    runnable.push(Runnable {
                        subject,
                        implementation,
                        expectations,
                    });
                }
                Err(why) => {
                    eprintln!("compliance: {} is not run: {why}", subject.title());
                    unavailable.push(Unavailable { subject, why });
                }
            }
            continue;
        }
        let (python, builtin): (PathBuf, _) = match subject.interp {
            // (Node subjects were made drivers above.)
            Interp::Venv | Interp::Node => (venv.to_path_buf(), venv_builtin.clone()),
            Interp::PyPy => match found_pypy
                .get_or_insert_with(|| implementations::find_pypy(pypy).map_err(|e| e.to_string()))
            {
                Ok(found) => (
                    found.path.clone(),
                    implementations::builtin_on(root, &found.path, Runtime::PyPy, None),
                ),
                Err(why) => {
                    eprintln!("compliance: {} is not run: {why}", subject.title());
                    unavailable.push(Unavailable {
                        subject,
                        why: why.clone(),
                    });
                    continue;
                }
            },
        };
        if let Some(pkg) = subject.package
            && let Some(failure) = install_failures.iter().find(|f| f.package == pkg)
        {
            unavailable.push(Unavailable {
                subject,
                why: format!("not installed: {}", failure.why),
            });
            continue;
        }
        if let Err(why) = probe(root, &python, &subject) {
            eprintln!("compliance: {} is not available: {why}", subject.title());
            unavailable.push(Unavailable { subject, why });
            continue;
        }
        let mut imp = implementations::parse_spec(subject.spec, root, &python, &builtin)?;
        if let Some(extra) = subject.pythonpath {
            imp.command
                .env
                .push(("PYTHONPATH".into(), root.join(extra).display().to_string()));
        }
        if subject.loopback {
            match loopback_only() {
                Some(prefix) => wrap(&mut imp.command, &prefix),
                None => {
                    let why = "needs `unshare -n` (or `unshare -rn`) and `ip` to run in a \
                               loopback-only network namespace"
                        .to_owned();
                    eprintln!("compliance: {} is not run: {why}", subject.title());
                    unavailable.push(Unavailable { subject, why });
                    continue;
                }
            }
        }
        let expectations =
            ExpectationFile::load_for(&root.join("fixtures/expectations"), &imp.name, case_ids)?;
        runnable.push(Runnable {
            subject,
            implementation: imp,
            expectations,
        });
    }
    let pypy = match &found_pypy {
        Some(Ok(found)) if runnable.iter().any(|r| r.subject.interp == Interp::PyPy) => {
            Some(found.describe())
        }
        _ => None,
    };
    let node = (!node_packages.is_empty()).then(|| NodeFacts {
        node: node::node_version(),
        packages: node_packages,
    });
    Ok(Prepared {
        runnable,
        unavailable,
        pypy,
        node,
    })
}

/// A Node subject's driver: `node` on its script of `fixtures/drivers/js/` (by absolute
/// path), named as its hello names it, told where the installed packages are; with the
/// version of its package. `Err`: why it cannot run here, in one line.
fn node_driver(
    root: &Path,
    subject: &Subject,
    install: &NodeInstall,
) -> Result<(Implementation, String), String> {
    let dir = match install {
        NodeInstall::Ready(dir) => dir,
        NodeInstall::Skipped(why) | NodeInstall::Failed(why) => return Err(why.clone()),
    };
    let version = node::package_version(dir, subject.module)?;
    node::probe(dir, subject.module)?;
    let mut words = subject
        .spec
        .strip_prefix("exec:")
        .unwrap_or(subject.spec)
        .split_whitespace();
    let program = words.next().unwrap_or("node").to_owned();
    let args = words
        .map(|w| match root.join(w) {
            path if path.exists() => path.display().to_string(),
            _ => w.to_owned(),
        })
        .collect();
    let implementation = Implementation {
        name: subject.exec_name.unwrap_or(subject.spec).to_owned(),
        command: DriverCommand {
            program,
            args,
            env: vec![(
                "POOLSPEC_NODE_MODULES".into(),
                dir.join("node_modules").display().to_string(),
            )],
        },
    };
    Ok((implementation, version))
}

/// Subjects that share their run options, run as one matrix.
#[derive(Clone)]
struct Group {
    timeout_multiplier: f64,
    jobs: Option<usize>,
    /// Indices into the runnable subjects.
    members: Vec<usize>,
}

fn groups(runnable: &[Runnable]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for (i, r) in runnable.iter().enumerate() {
        let s = &r.subject;
        match groups
            .iter_mut()
            .find(|g| g.timeout_multiplier == s.timeout_multiplier && g.jobs == s.jobs)
        {
            Some(g) => g.members.push(i),
            None => groups.push(Group {
                timeout_multiplier: s.timeout_multiplier,
                jobs: s.jobs,
                members: vec![i],
            }),
        }
    }
    groups
}

/// What to run: each group with every case, or, for a shard, each subject with the cases
/// whose cells the shard owns (so a shard runs exactly its cells).
fn batches(
    cases: &[LoadedCase],
    runnable: &[Runnable],
    shard: Option<Shard>,
) -> Vec<(Group, Vec<usize>, Vec<LoadedCase>)> {
    let mut out = Vec::new();
    for group in groups(runnable) {
        let Some(shard) = shard else {
            let members = group.members.clone();
            out.push((group, members, cases.to_vec()));
            continue;
        };
        for &i in &group.members {
            let name = &runnable[i].implementation.name;
            let owned: Vec<LoadedCase> = cases
                .iter()
                .filter(|c| shard.owns(&cell_key(c.id(), name)))
                .cloned()
                .collect();
            if !owned.is_empty() {
                out.push((group.clone(), vec![i], owned));
            }
        }
    }
    out
}

/// Runs every case `runs` times on every runnable subject (a shard: its cells). Returns the joined matrix (each
/// cell's first run, in case then subject order) and every run's status of every cell.
pub fn run_all(
    cases: &[LoadedCase],
    runnable: &[Runnable],
    runs: u32,
    history_dir: &Path,
    verbose: bool,
    shard: Option<Shard>,
) -> (MatrixRun, Statuses) {
    let _ = std::fs::remove_dir_all(history_dir);
    let mut parts = Vec::new();
    // Every run's status of every cell (the matrix keeps only the first run's result).
    let seen: Mutex<Statuses> = Mutex::new(Statuses::new());
    for (group, members, cases) in batches(cases, runnable, shard) {
        let cases = cases.as_slice();
        let impls: Vec<(Implementation, ExpectationFile)> = members
            .iter()
            .map(|&i| {
                (
                    runnable[i].implementation.clone(),
                    runnable[i].expectations.clone(),
                )
            })
            .collect();
        let mut run_options = RunOptions {
            timeout_multiplier: group.timeout_multiplier,
            repeat: runs,
            history_dir: Some(history_dir.to_path_buf()),
            ..RunOptions::default()
        };
        if let Some(j) = group.jobs {
            run_options.jobs = j;
        }
        eprintln!(
            "compliance: {} cases × {} ({}), {} runs each, {} jobs",
            cases.len(),
            impls
                .iter()
                .map(|(i, _)| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if group.timeout_multiplier == 1.0 {
                "guards ×1".to_owned()
            } else {
                format!("guards ×{}", group.timeout_multiplier)
            },
            runs,
            run_options.jobs
        );
        let started = Instant::now();
        let total = cases.len() * impls.len() * runs as usize;
        let done = AtomicUsize::new(0);
        let progress = |r: &CaseResult| {
            seen.lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry((r.implementation.clone(), r.case.clone()))
                .or_default()
                .insert(r.status);
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if verbose || n % 50 == 0 || n == total {
                eprintln!(
                    "  {n}/{total} {:.0} s  {} on {}: {}",
                    started.elapsed().as_secs_f64(),
                    r.case,
                    r.implementation,
                    r.status.as_str()
                );
            }
        };
        parts.push(run_matrix(cases, &impls, &run_options, &progress));
    }
    let order: Vec<String> = runnable
        .iter()
        .map(|r| r.implementation.name.clone())
        .collect();
    let statuses = seen.into_inner().unwrap_or_else(|e| e.into_inner());
    (merge(parts, cases, &order), statuses)
}

/// Joins runs made with different options into one matrix, results in case order, then in
/// `order` (so the reports and the oracle diffs read as if it had been one run).
pub fn merge(parts: Vec<MatrixRun>, cases: &[LoadedCase], order: &[String]) -> MatrixRun {
    let mut implementations = Vec::new();
    let mut results = Vec::new();
    let mut wall = Duration::ZERO;
    for p in parts {
        implementations.extend(p.implementations);
        results.extend(p.results);
        wall += p.wall;
    }
    implementations.sort_by_key(|i| order.iter().position(|n| *n == i.name));
    let case_index = |id: &str| cases.iter().position(|c| c.id() == id);
    results.sort_by_key(|r| {
        (
            case_index(&r.case),
            order.iter().position(|n| *n == r.implementation),
        )
    });
    MatrixRun {
        implementations,
        results,
        wall,
    }
}
