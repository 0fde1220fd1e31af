//! `cargo xtask compliance`: the suite on real third-party pools, rendered as `COMPLIANCE.md`.
//!
//! 1. A project-owned virtual environment, `target/thirdparty-venv`, gets the pinned versions
//!    of billiard, multiprocess and Ray ([`PINS`]; everything they pull in is pinned too, so
//!    an install today and one next month resolve to the same files).
//! 2. The suite runs, each case twice (an observation that changes between the runs is
//!    reported as unstable), on CPython's `multiprocessing.Pool` (fork, the reference),
//!    `multiprocessing.pool.ThreadPool`, `billiard.pool.Pool`, `multiprocess.pool.Pool` and
//!    Ray's `ray.util.multiprocessing.Pool`, all under the venv's interpreter, and on the
//!    standard library's `Pool` under PyPy (`pypy-fork`, run by `--pypy`, `$POOLSPEC_PYPY` or
//!    `pypy3` with its own standard library, no venv; without one its row says "not run").
//!    Ray runs through `fixtures/thirdparty/ray_pool.py`, which starts one local Ray instance
//!    per driver (no dashboard, a fixed number of logical CPUs), inside a network namespace
//!    whose only interface is loopback ([`loopback_only`]).
//! 3. `COMPLIANCE.md` is rendered from the results alone (no dates, no durations, no paths
//!    outside the repository), so a rerun on the same machine reproduces it byte for byte;
//!    `--check` reruns and compares instead of writing. Every divergence is listed with the
//!    reason from the implementation's `fixtures/expectations/<stem>.yaml`. A case whose
//!    status changes from run to run because of a race in the implementation is declared by
//!    an entry whose reason starts with `Unstable:` ([`UNSTABLE_PREFIX`]); it is reported as
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

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use conformance::expectations::ExpectationFile;
use conformance::implementations::{self, Implementation, Runtime};
use conformance::report;
use conformance::runner::{CaseResult, MatrixRun, RunOptions, run_matrix};
use conformance::spec::{Area, LoadedCase, load_dir};
use conformance::verdict::Status;

/// The virtual environment, relative to the workspace root.
pub const VENV: &str = "target/thirdparty-venv";

/// The third parties under test, pinned.
pub const PINS: &[(&str, &str)] = &[
    ("billiard", "4.3.2"),
    ("multiprocess", "0.70.19"),
    ("ray", "2.60.0"),
];

/// Everything the pinned packages pull in, pinned as `pip freeze` showed it right after
/// installing [`PINS`] into a fresh venv (CPython 3.11, Linux x86-64).
const DEPENDENCIES: &[(&str, &str)] = &[
    ("attrs", "26.1.0"),
    ("certifi", "2026.10.18"),
    ("charset-normalizer", "3.5.2"),
    ("click", "8.5.1"),
    ("dill", "0.4.1"),
    ("filelock", "4.2.11"),
    ("idna", "3.20"),
    ("jsonschema", "4.26.0"),
    ("jsonschema-specifications", "2025.9.1"),
    ("msgpack", "1.2.4"),
    ("packaging", "26.3"),
    ("protobuf", "7.36.2"),
    ("PyYAML", "6.0.3"),
    ("referencing", "0.37.0"),
    ("requests", "2.34.2"),
    ("rpds-py", "2026.9.1"),
    ("typing_extensions", "4.16.0"),
    ("urllib3", "2.8.0"),
];

/// How long the Ray smoke test (start an instance, one task, tear down) may take.
const RAY_SMOKE_TIMEOUT: Duration = Duration::from_secs(240);

/// What `cargo xtask compliance` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Use the venv as it is: create nothing, install nothing.
    pub no_install: bool,
    /// Compare the regenerated text with the committed `COMPLIANCE.md` instead of writing it.
    pub check: bool,
    /// The interpreter the venv is created from (default: `$POOLSPEC_PYTHON`, else `python3`).
    pub python: Option<PathBuf>,
    /// Runs of each case per implementation (two, to catch unstable observations).
    pub runs: u32,
    /// Print progress per finished cell.
    pub verbose: bool,
    /// The PyPy for the PyPy column (default: `$POOLSPEC_PYPY`, else `pypy3` on `PATH`).
    pub pypy: Option<PathBuf>,
    /// Only these subjects, by implementation spec (`pypy-fork`, `python:billiard.pool:Pool`).
    pub impls: Vec<String>,
    /// Only cases whose id starts with, or contains, one of these.
    pub cases: Vec<String>,
}

impl Options {
    /// Whether the run is narrowed to some subjects or cases (and so must not be written to
    /// the committed `COMPLIANCE.md`).
    fn narrowed(&self) -> bool {
        !self.impls.is_empty() || !self.cases.is_empty()
    }
}

/// Which interpreter runs a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interp {
    /// The venv's CPython.
    Venv,
    /// A PyPy outside the venv (`--pypy`, `$POOLSPEC_PYPY` or `pypy3` on `PATH`), with its
    /// own standard library.
    PyPy,
}

/// One implementation `COMPLIANCE.md` reports on.
#[derive(Debug, Clone)]
struct Subject {
    /// How the table names it: the Python class under test.
    label: &'static str,
    /// The interpreter it runs on.
    interp: Interp,
    /// The implementation spec (`cargo xtask conformance --impl SPEC`).
    spec: &'static str,
    /// The pinned package it comes from (`None`: the standard library).
    package: Option<&'static str>,
    /// The module whose import proves the package is installed.
    module: &'static str,
    /// Guard multiplier and worker threads, for slow implementations.
    timeout_multiplier: f64,
    jobs: Option<usize>,
    /// Extra `PYTHONPATH` entry (relative to the root), for factory modules.
    pythonpath: Option<&'static str>,
    /// Run the driver in a network namespace of its own with only loopback up
    /// ([`loopback_only`]), so nothing it starts can listen beyond 127.0.0.1.
    loopback: bool,
    /// One line on how it is run, for the table.
    how: &'static str,
}

fn subjects() -> Vec<Subject> {
    vec![
        Subject {
            label: "multiprocessing.Pool",
            interp: Interp::Venv,
            spec: implementations::ORACLE,
            package: None,
            module: "multiprocessing.pool",
            timeout_multiplier: 1.0,
            jobs: None,
            pythonpath: None,
            loopback: false,
            how: "CPython's own Pool, fork start method: the reference",
        },
        Subject {
            label: "multiprocessing.Pool",
            interp: Interp::PyPy,
            spec: "pypy-fork",
            package: None,
            module: "multiprocessing.pool",
            timeout_multiplier: 1.0,
            jobs: None,
            pythonpath: None,
            loopback: false,
            how: "PyPy's own Pool (its standard library), fork start method: built-in `pypy-fork` under `pypy3`",
        },
        Subject {
            label: "multiprocessing.pool.ThreadPool",
            interp: Interp::Venv,
            spec: "cpython-threadpool",
            package: None,
            module: "multiprocessing.pool",
            timeout_multiplier: 1.0,
            jobs: None,
            pythonpath: None,
            loopback: false,
            how: "built-in `cpython-threadpool`",
        },
        Subject {
            label: "billiard.pool.Pool",
            interp: Interp::Venv,
            spec: "python:billiard.pool:Pool",
            package: Some("billiard"),
            module: "billiard.pool",
            timeout_multiplier: 1.0,
            jobs: None,
            pythonpath: None,
            loopback: false,
            how: "`python:billiard.pool:Pool`",
        },
        Subject {
            label: "multiprocess.pool.Pool",
            interp: Interp::Venv,
            spec: "python:multiprocess.pool:Pool",
            package: Some("multiprocess"),
            module: "multiprocess.pool",
            timeout_multiplier: 1.0,
            jobs: None,
            pythonpath: None,
            loopback: false,
            how: "`python:multiprocess.pool:Pool`",
        },
        Subject {
            label: "ray.util.multiprocessing.Pool",
            interp: Interp::Venv,
            spec: "python:ray_pool:Pool",
            package: Some("ray"),
            module: "ray.util.multiprocessing",
            timeout_multiplier: 2.0,
            jobs: Some(2),
            pythonpath: Some("fixtures/thirdparty"),
            loopback: true,
            how: "`python:ray_pool:Pool` (fixtures/thirdparty/ray_pool.py) in a loopback-only network namespace, guards ×2, 2 drivers",
        },
    ]
}

impl Subject {
    /// How the tables name it: the class, and the runtime where it is not the venv's CPython.
    fn title(&self) -> String {
        match self.interp {
            Interp::Venv => format!("`{}`", self.label),
            Interp::PyPy => format!("`{}` on PyPy", self.label),
        }
    }
}

/// Why a subject was not run.
#[derive(Debug, Clone)]
struct Unavailable {
    subject: Subject,
    why: String,
}

/// `cargo xtask compliance`.
pub fn compliance(root: &Path, options: &Options) -> Result<ExitCode> {
    if options.check && options.narrowed() {
        bail!("--check compares the whole COMPLIANCE.md; it takes no --impl or --case");
    }
    let chosen: Vec<Subject> = subjects()
        .into_iter()
        .filter(|s| options.impls.is_empty() || options.impls.iter().any(|i| i == s.spec))
        .collect();
    for wanted in &options.impls {
        if chosen.iter().all(|s| s.spec != wanted) {
            bail!(
                "--impl {wanted}: not a subject of COMPLIANCE.md (subjects: {})",
                subjects()
                    .iter()
                    .map(|s| s.spec)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let packages: Vec<&str> = chosen.iter().filter_map(|s| s.package).collect();
    let venv = root.join(VENV);
    let python = venv.join("bin/python");
    let mut install_failures: Vec<(&'static str, String)> = Vec::new();
    if options.no_install {
        if !python.exists() {
            bail!(
                "{} does not exist: run `cargo xtask compliance` without --no-install first",
                python.display()
            );
        }
    } else {
        install_failures = install(root, &venv, options.python.as_deref(), &packages)?;
    }
    let interpreter = interpreter_version(&python)?;
    let installed = installed_versions(&python);

    let suite = load_dir(&root.join("spec"));
    if !suite.errors.is_empty() {
        for e in &suite.errors {
            eprintln!("spec error: {e}");
        }
        bail!("spec/ does not load; fix it before measuring third parties");
    }
    let all_ids: Vec<String> = suite.cases.iter().map(|c| c.id().to_owned()).collect();
    let ids: Vec<&str> = all_ids.iter().map(String::as_str).collect();
    let cases: Vec<LoadedCase> = suite
        .cases
        .into_iter()
        .filter(|c| {
            options.cases.is_empty()
                || options
                    .cases
                    .iter()
                    .any(|p| c.id().starts_with(p.as_str()) || c.id().contains(p.as_str()))
        })
        .collect();
    if cases.is_empty() {
        bail!("no case matches --case {}", options.cases.join(" --case "));
    }

    let builtin = implementations::builtin(root, &python, None);
    let pypy = if chosen.iter().any(|s| s.interp == Interp::PyPy) {
        Some(implementations::find_pypy(options.pypy.as_deref()))
    } else {
        None
    };
    let mut runnable: Vec<(Subject, Implementation, ExpectationFile)> = Vec::new();
    let mut unavailable: Vec<Unavailable> = Vec::new();
    for subject in chosen {
        let (python, builtin) = match (subject.interp, &pypy) {
            (Interp::Venv, _) => (python.clone(), builtin.clone()),
            (Interp::PyPy, Some(Ok(found))) => (
                found.path.clone(),
                implementations::builtin_on(root, &found.path, Runtime::PyPy, None),
            ),
            (Interp::PyPy, Some(Err(why))) => {
                eprintln!("compliance: {} is not run: {why}", subject.title());
                unavailable.push(Unavailable {
                    subject,
                    why: why.to_string(),
                });
                continue;
            }
            (Interp::PyPy, None) => unreachable!("pypy is looked for when a subject needs it"),
        };
        if let Some(pkg) = subject.package
            && let Some((_, why)) = install_failures.iter().find(|(p, _)| *p == pkg)
        {
            unavailable.push(Unavailable {
                subject,
                why: format!("not installed: {why}"),
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
        let file = ExpectationFile::load_for(&root.join("fixtures/expectations"), &imp.name, &ids)?;
        runnable.push((subject, imp, file));
    }

    let runs = options.runs.max(1);
    let history_dir = root.join("target/compliance/histories");
    let _ = std::fs::remove_dir_all(&history_dir);
    let mut parts = Vec::new();
    // Every run's status of every cell (the matrix keeps only the first run's result).
    let seen: std::sync::Mutex<Statuses> = std::sync::Mutex::new(Statuses::new());
    // One matrix per group of equal options: the fast ones together, slow ones alone.
    let mut groups: Vec<(f64, Option<usize>, Vec<usize>)> = Vec::new();
    for (i, (s, _, _)) in runnable.iter().enumerate() {
        match groups
            .iter_mut()
            .find(|(t, j, _)| *t == s.timeout_multiplier && *j == s.jobs)
        {
            Some(g) => g.2.push(i),
            None => groups.push((s.timeout_multiplier, s.jobs, vec![i])),
        }
    }
    for (multiplier, jobs, members) in &groups {
        let impls: Vec<(Implementation, ExpectationFile)> = members
            .iter()
            .map(|&i| (runnable[i].1.clone(), runnable[i].2.clone()))
            .collect();
        let mut run_options = RunOptions {
            timeout_multiplier: *multiplier,
            repeat: runs,
            history_dir: Some(history_dir.clone()),
            ..RunOptions::default()
        };
        if let Some(j) = jobs {
            run_options.jobs = *j;
        }
        eprintln!(
            "compliance: {} cases × {} ({}), {} runs each, {} jobs",
            cases.len(),
            impls
                .iter()
                .map(|(i, _)| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if *multiplier == 1.0 {
                "guards ×1".to_owned()
            } else {
                format!("guards ×{multiplier}")
            },
            runs,
            run_options.jobs
        );
        let started = Instant::now();
        let total = cases.len() * impls.len() * runs as usize;
        let done = std::sync::atomic::AtomicUsize::new(0);
        let verbose = options.verbose;
        let progress = |r: &CaseResult| {
            seen.lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry((r.implementation.clone(), r.case.clone()))
                .or_default()
                .insert(r.status);
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
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
        parts.push(run_matrix(&cases, &impls, &run_options, &progress));
    }
    let order: Vec<String> = runnable.iter().map(|(_, i, _)| i.name.clone()).collect();
    let matrix = merge(parts, &cases, &order);
    let out_dir = root.join("target/compliance");
    let paths = report::write_all(&out_dir, &matrix, &cases)?;

    let context = Header {
        interpreter,
        pypy: match &pypy {
            Some(Ok(found)) if runnable.iter().any(|(s, _, _)| s.interp == Interp::PyPy) => {
                Some(found.describe())
            }
            _ => None,
        },
        installed,
        runs,
        suite_hash: report::suite_hash(&cases),
    };
    let subjects: Vec<(Subject, String)> = runnable
        .iter()
        .map(|(s, i, _)| (s.clone(), i.name.clone()))
        .collect();
    let statuses = seen.into_inner().unwrap_or_else(|e| e.into_inner());
    let text = render(
        &context,
        &cases,
        &matrix,
        &statuses,
        &subjects,
        &unavailable,
    );

    let mut unexpected = Vec::new();
    for r in &matrix.results {
        let cell = classify(r, &statuses);
        if !cell.explained(r) {
            eprintln!(
                "unexplained: {} on {}: {}{}",
                r.case,
                r.implementation,
                cell.label(),
                r.reason
                    .as_deref()
                    .map(|x| format!(": {x}"))
                    .unwrap_or_default()
            );
            unexpected.push(r);
        } else if r.unstable.is_some() && !matches!(cell, Cell::DeclaredUnstable) {
            // Same status every run, different details: not in COMPLIANCE.md (it would make
            // the file differ from run to run), but worth knowing.
            eprintln!(
                "note: {} on {}: {}",
                r.case,
                r.implementation,
                r.unstable.as_deref().unwrap_or("")
            );
        }
    }
    println!("\nCompliance (status pass):");
    print!("{}", report::compliance_lines(&matrix));
    println!(
        "reports: {}, {}",
        paths.jsonl.display(),
        paths.markdown.display()
    );

    // A narrowed run is never the committed file.
    let target = if options.narrowed() {
        out_dir.join("COMPLIANCE.md")
    } else {
        root.join("COMPLIANCE.md")
    };
    let mut code = ExitCode::SUCCESS;
    if options.check {
        let have = std::fs::read_to_string(&target).unwrap_or_default();
        if have == text {
            println!("{} is current", target.display());
        } else {
            let regenerated = out_dir.join("COMPLIANCE.md");
            std::fs::write(&regenerated, &text)?;
            println!(
                "{} differs from this run (regenerated copy: {}); run `cargo xtask compliance`",
                target.display(),
                regenerated.display()
            );
            code = ExitCode::from(1);
        }
    } else {
        std::fs::write(&target, &text).with_context(|| format!("writing {}", target.display()))?;
        println!("wrote {}", target.display());
    }
    if !unexpected.is_empty() {
        println!(
            "{} unexplained results: update fixtures/expectations/ for them (COMPLIANCE.md marks them)",
            unexpected.len()
        );
        code = ExitCode::from(1);
    }
    Ok(code)
}

/// Requirement lines for pip.
fn pin_lines(pins: &[(&str, &str)]) -> Vec<String> {
    pins.iter().map(|(p, v)| format!("{p}=={v}")).collect()
}

/// Creates the venv if needed and installs whatever pinned package of `packages` is missing
/// or at another version. Returns the packages that failed to install, with pip's last words.
fn install(
    root: &Path,
    venv: &Path,
    base: Option<&Path>,
    packages: &[&str],
) -> Result<Vec<(&'static str, String)>> {
    let python = venv.join("bin/python");
    if !python.exists() {
        let base = match base {
            Some(p) => p.to_path_buf(),
            None => implementations::find_python()?,
        };
        eprintln!(
            "compliance: creating {} with {}",
            venv.display(),
            base.display()
        );
        let status = Command::new(&base)
            .args(["-m", "venv"])
            .arg(venv)
            .current_dir(root)
            .status()
            .with_context(|| format!("running {} -m venv", base.display()))?;
        if !status.success() {
            bail!(
                "{} -m venv {} failed ({status})",
                base.display(),
                venv.display()
            );
        }
    }
    let constraints = venv.join("poolspec-constraints.txt");
    let mut text =
        String::from("# Written by `cargo xtask compliance` (xtask/src/thirdparty.rs).\n");
    for line in pin_lines(PINS).iter().chain(&pin_lines(DEPENDENCIES)) {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(&constraints, text)?;

    if packages.is_empty() {
        return Ok(Vec::new());
    }
    let installed = installed_versions(&python);
    let all_pinned = PINS
        .iter()
        .filter(|(p, _)| packages.contains(p))
        .chain(DEPENDENCIES)
        .all(|(p, v)| installed_version(&installed, p) == Some(*v));
    if all_pinned {
        eprintln!("compliance: {} has every pinned package", venv.display());
        return Ok(Vec::new());
    }
    let mut failures = Vec::new();
    // One pip call per package under test, so a failure (Ray's wheels are platform-specific)
    // costs only that package.
    for (package, version) in PINS {
        if !packages.contains(package) || installed_version(&installed, package) == Some(*version) {
            continue;
        }
        eprintln!("compliance: pip install {package}=={version}");
        let out = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg("-c")
            .arg(&constraints)
            .arg(format!("{package}=={version}"))
            .current_dir(root)
            .stdin(Stdio::null())
            .output()
            .context("running pip")?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("pip failed")
                .trim()
                .to_owned();
            eprintln!("compliance: installing {package} failed:\n{stderr}");
            failures.push((
                *package,
                format!("`pip install {package}=={version}` failed: {last}"),
            ));
        }
    }
    Ok(failures)
}

/// `name -> version` for every distribution in the venv (lower-case names, `-` for `_`).
fn installed_versions(python: &Path) -> Vec<(String, String)> {
    let script = "import importlib.metadata as m\n\
                  for d in m.distributions():\n    print(d.metadata['Name'], d.version)";
    let Ok(out) = Command::new(python)
        .args(["-c", script])
        .stderr(Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    let mut list: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, v)| (normalize(n), v.trim().to_owned()))
        .collect();
    list.sort();
    list
}

fn normalize(name: &str) -> String {
    name.to_ascii_lowercase().replace(['_', '.'], "-")
}

fn installed_version<'a>(installed: &'a [(String, String)], package: &str) -> Option<&'a str> {
    let key = normalize(package);
    installed
        .iter()
        .find(|(n, _)| *n == key)
        .map(|(_, v)| v.as_str())
}

fn interpreter_version(python: &Path) -> Result<String> {
    let out = Command::new(python)
        .args([
            "-c",
            "import platform; print(platform.python_implementation(), platform.python_version())",
        ])
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        bail!("{} does not run", python.display());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Checks that a subject can be imported (and, for Ray, started and torn down) before the
/// suite runs on it, so a broken install is one line in COMPLIANCE.md instead of a column of
/// errors.
fn probe(root: &Path, python: &Path, subject: &Subject) -> Result<(), String> {
    let script = if subject.pythonpath.is_some() {
        // Factory modules: create a one-worker pool, run one task, tear it down.
        let module = subject
            .spec
            .strip_prefix("python:")
            .and_then(|s| s.rsplit_once(':'))
            .map(|(m, a)| (m.to_owned(), a.to_owned()))
            .unwrap_or_default();
        format!(
            "import {m}\np = {m}.{a}(1)\nassert p.apply(abs, (-3,)) == 3\np.terminate()\np.join()\n",
            m = module.0,
            a = module.1
        )
    } else {
        format!("import {}\n", subject.module)
    };
    let prefix = if subject.loopback {
        loopback_only().unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut cmd = match prefix.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(python);
            c
        }
        None => Command::new(python),
    };
    cmd.args(["-c", &script])
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("RAY_USAGE_STATS_ENABLED", "0");
    if let Some(extra) = subject.pythonpath {
        cmd.env("PYTHONPATH", root.join(extra));
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot run python: {e}"))?;
    let stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut s) = stderr {
            let _ = std::io::Read::read_to_string(&mut s, &mut text);
        }
        text
    });
    let deadline = Instant::now() + RAY_SMOKE_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            // Polling interval of a liveness guard.
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let text = reader.join().unwrap_or_default();
    match status {
        Some(s) if s.success() => Ok(()),
        Some(_) => Err(text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim().to_owned())
            .unwrap_or_else(|| "the smoke test failed".into())),
        None => Err(format!(
            "the smoke test (one pool, one task) did not finish within {} s",
            RAY_SMOKE_TIMEOUT.as_secs()
        )),
    }
}

/// The command prefix that runs a program in a new network namespace whose only interface is
/// loopback: `unshare -n` as root, else `unshare -rn` (an unprivileged user namespace), then
/// `ip link set lo up`. `None` when neither works here. Ray binds its servers to every
/// interface and advertises the machine's address even when told 127.0.0.1; inside such a
/// namespace there is nothing but 127.0.0.1 to bind to or advertise.
fn loopback_only() -> Option<Vec<String>> {
    let script = "ip link set lo up && exec \"$0\" \"$@\"";
    for flags in ["-n", "-rn"] {
        let ok = Command::new("unshare")
            .args([flags, "sh", "-c", script, "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(
                ["unshare", flags, "sh", "-c", script]
                    .map(str::to_owned)
                    .to_vec(),
            );
        }
    }
    None
}

/// Prefixes a driver command with `prefix` (whose last word is a `sh -c` script taking the
/// real program as `$0`).
fn wrap(command: &mut conformance::driver::DriverCommand, prefix: &[String]) {
    let mut args: Vec<String> = prefix[1..].to_vec();
    args.push(std::mem::take(&mut command.program));
    args.append(&mut command.args);
    command.program = prefix[0].clone();
    command.args = args;
}

/// Joins runs made with different options into one matrix, results in case order, then in
/// `order` (so the reports and the oracle diffs read as if it had been one run).
fn merge(parts: Vec<MatrixRun>, cases: &[LoadedCase], order: &[String]) -> MatrixRun {
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

/// `(implementation, case)` → the statuses its runs had.
type Statuses = std::collections::BTreeMap<(String, String), BTreeSet<Status>>;

/// Prefix of an expectation's reason that declares the case unstable on that implementation:
/// its status is not the same from run to run (a race inside the implementation), so
/// COMPLIANCE.md reports it as `unstable` whatever one run observed.
pub const UNSTABLE_PREFIX: &str = "Unstable:";

/// What COMPLIANCE.md says about one cell.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Pass,
    /// The case's `versions` exclude the implementation's language version (PyPy's Python
    /// 3.9 for a claim that holds from 3.10): not run, and not a divergence.
    NotApplicable,
    /// The same status other than pass in every run.
    Diverges(Status),
    /// Declared unstable by its expectation entry.
    DeclaredUnstable,
    /// Statuses differed between runs, and nothing declares it.
    Unstable(BTreeSet<Status>),
}

impl Cell {
    fn label(&self) -> String {
        match self {
            Cell::Pass => "pass".into(),
            Cell::NotApplicable => "n/a".into(),
            Cell::Diverges(s) => s.as_str().into(),
            Cell::DeclaredUnstable => "unstable".into(),
            Cell::Unstable(set) => format!(
                "unstable ({})",
                set.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        }
    }

    /// Whether the implementation's expectation file (or, for `n/a`, the case's `versions`)
    /// accounts for this cell.
    fn explained(&self, r: &CaseResult) -> bool {
        match self {
            Cell::Pass | Cell::NotApplicable => r.expected.is_none(),
            Cell::Diverges(s) => r.expected.as_ref().is_some_and(|e| e.status == *s),
            Cell::DeclaredUnstable => true,
            Cell::Unstable(_) => false,
        }
    }
}

fn classify(r: &CaseResult, statuses: &Statuses) -> Cell {
    if r.expected
        .as_ref()
        .is_some_and(|e| e.reason.starts_with(UNSTABLE_PREFIX))
    {
        return Cell::DeclaredUnstable;
    }
    let key = (r.implementation.clone(), r.case.clone());
    match statuses.get(&key) {
        Some(set) if set.len() > 1 => Cell::Unstable(set.clone()),
        _ if r.status == Status::Pass => Cell::Pass,
        _ if r.status == Status::NotApplicable => Cell::NotApplicable,
        _ => Cell::Diverges(r.status),
    }
}

/// One implementation's cells of a table row: passes out of the cases that apply.
struct Tally {
    pass: usize,
    total: usize,
    unstable: usize,
    not_applicable: usize,
}

impl Tally {
    /// `pass/applicable`, with `(N n/a)` when some cases did not apply.
    fn short(&self) -> String {
        let applicable = self.total - self.not_applicable;
        if self.not_applicable > 0 {
            format!("{}/{applicable} ({} n/a)", self.pass, self.not_applicable)
        } else {
            format!("{}/{applicable}", self.pass)
        }
    }
}

impl std::fmt::Display for Tally {
    /// `pass/applicable`, then how many were unstable and how many did not apply.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let applicable = self.total - self.not_applicable;
        write!(f, "{}/{applicable}", self.pass)?;
        let mut notes = Vec::new();
        if self.unstable > 0 {
            notes.push(format!("{} unstable", self.unstable));
        }
        if self.not_applicable > 0 {
            notes.push(format!("{} n/a", self.not_applicable));
        }
        if !notes.is_empty() {
            write!(f, " ({})", notes.join(", "))?;
        }
        Ok(())
    }
}

/// Everything in the header besides the results.
struct Header {
    interpreter: String,
    /// The PyPy column's interpreter (`PyPy 7.3.11 (Python 3.9.16)`), when it ran.
    pypy: Option<String>,
    installed: Vec<(String, String)>,
    runs: u32,
    suite_hash: String,
}

fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn render(
    ctx: &Header,
    cases: &[LoadedCase],
    matrix: &MatrixRun,
    statuses: &Statuses,
    subjects: &[(Subject, String)],
    unavailable: &[Unavailable],
) -> String {
    let mut out = String::new();
    let areas: Vec<Area> = cases
        .iter()
        .map(|c| c.area)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let quirks = cases.iter().filter(|c| c.is_quirk()).count();
    let version_of = |p: &str| installed_version(&ctx.installed, p).unwrap_or("not installed");

    let _ = writeln!(out, "# Third-party compliance\n");
    let _ = writeln!(
        out,
        "<!-- Generated by `cargo xtask compliance` from a real run; do not edit by hand. \
         `cargo xtask compliance --check` reruns the suite and fails if this file would change. -->\n"
    );
    let _ = writeln!(
        out,
        "How real Pool implementations fare on poolspec's suite: {} cases ({} contract, {} CPython \
         quirks; suite `{}`), each run {} on each implementation.",
        cases.len(),
        cases.len() - quirks,
        quirks,
        ctx.suite_hash,
        match ctx.runs {
            1 => "once".to_owned(),
            2 => "twice".to_owned(),
            n => format!("{n} times"),
        }
    );
    let _ = writeln!(
        out,
        "*Contract* cases state what every Pool must do; *quirk* cases record what CPython's Pool \
         happens to do (often a hang where an error would be better), so failing a quirk case \
         means behaving differently from CPython there, not being broken.\n"
    );
    let _ = writeln!(
        out,
        "- Interpreter: {} in a virtual environment (`{VENV}`).",
        ctx.interpreter
    );
    if let Some(pypy) = &ctx.pypy {
        let _ = writeln!(
            out,
            "- PyPy: {pypy}, `pypy3` with its own standard library (no venv; the third parties \
             are not installed there)."
        );
    }
    let _ = writeln!(
        out,
        "- Packages, pinned in `xtask/src/thirdparty.rs`: {}; dill {} (multiprocess's pickler).",
        PINS.iter()
            .map(|(p, _)| format!("{p} {}", version_of(p)))
            .collect::<Vec<_>>()
            .join(", "),
        version_of("dill")
    );
    let _ = writeln!(
        out,
        "- Ray: one local instance per driver process, started by `fixtures/thirdparty/ray_pool.py` \
         on 127.0.0.1 without dashboard, with 5 logical CPUs (Ray's Pool refuses more workers \
         than the cluster has CPUs, and the suite asks for up to 5; the Pool's actors reserve \
         none of them)."
    );
    let _ = writeln!(
        out,
        "- Reproduce one column: `cargo xtask conformance --python {VENV}/bin/python --impl SPEC` \
         (for Ray, with `PYTHONPATH=fixtures/thirdparty`; for PyPy, \
         `cargo xtask conformance --python pypy3 --impl pypy-fork`).\n"
    );

    // Overview.
    let passes = |name: &str, quirk: Option<bool>, area: Option<Area>| -> Tally {
        let cells: Vec<Cell> = matrix
            .results
            .iter()
            .filter(|r| r.implementation == name)
            .filter(|r| quirk.is_none_or(|q| r.quirk == q))
            .filter(|r| area.is_none_or(|a| r.area == a))
            .map(|r| classify(r, statuses))
            .collect();
        Tally {
            pass: cells.iter().filter(|c| **c == Cell::Pass).count(),
            total: cells.len(),
            unstable: cells
                .iter()
                .filter(|c| matches!(c, Cell::DeclaredUnstable | Cell::Unstable(_)))
                .count(),
            not_applicable: cells.iter().filter(|c| **c == Cell::NotApplicable).count(),
        }
    };
    let _ = writeln!(out, "## Overview\n");
    let _ = writeln!(
        out,
        "Passing cases; an *unstable* case (its status changes from run to run) never counts as \
         passing, and an *n/a* one (its claim holds only for other Python versions than the \
         implementation's, as the case's `versions` say) is not counted.\n"
    );
    let _ = writeln!(
        out,
        "| implementation | run as | contract | CPython quirks | all |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for (s, name) in subjects {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            s.title(),
            s.how,
            passes(name, Some(false), None),
            passes(name, Some(true), None),
            passes(name, None, None),
        );
    }
    for u in unavailable {
        let _ = writeln!(
            out,
            "| {} | {} | not run: {} | — | — |",
            u.subject.title(),
            u.subject.how,
            md(&u.why)
        );
    }

    // Areas.
    let _ = writeln!(out, "\n## Passing cases per area\n");
    let _ = write!(out, "| implementation |");
    for a in &areas {
        let _ = write!(out, " {} |", a.as_str());
    }
    let _ = write!(out, "\n|---|");
    for _ in &areas {
        out.push_str("---|");
    }
    out.push('\n');
    for (s, name) in subjects {
        let _ = write!(out, "| {} |", s.title());
        for a in &areas {
            let _ = write!(out, " {} |", passes(name, None, Some(*a)).short());
        }
        out.push('\n');
    }

    // Divergences.
    let _ = writeln!(out, "\n## Divergences\n");
    let _ = writeln!(
        out,
        "Every case that does not pass, with why. Statuses: *fail* (observed something the case \
         rules out), *timeout* (the liveness guard expired: the pool hung), *error* (the driver \
         could not go on, e.g. a call raised where a handle was needed), *crash* (the driver \
         process died), *unsupported* (the pool lacks what the case needs), *unstable* (the \
         status changes from run to run), *n/a* (not run: the case's `versions` say its claim \
         does not hold for the implementation's Python version). Explanations come from \
         `fixtures/expectations/<implementation>.yaml` (for *n/a*, from the runner); one marked \
         **unexplained** has no matching entry there and shows the runner's reason instead."
    );
    for (s, name) in subjects {
        let _ = writeln!(out, "\n### {} (`{name}`)\n", s.title());
        let rows: Vec<(&CaseResult, Cell)> = matrix
            .results
            .iter()
            .filter(|r| r.implementation == *name)
            .map(|r| (r, classify(r, statuses)))
            .filter(|(r, c)| *c != Cell::Pass || r.expected.is_some())
            .collect();
        if rows.is_empty() {
            let _ = writeln!(out, "Passes every case.");
            continue;
        }
        let _ = writeln!(out, "| case | area | kind | status | why |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for (r, cell) in rows {
            let runner = r.reason.as_deref().unwrap_or("");
            let why = match (&r.expected, cell.explained(r)) {
                (Some(e), true) => e
                    .reason
                    .strip_prefix(UNSTABLE_PREFIX)
                    .map(str::trim)
                    .unwrap_or(&e.reason)
                    .to_owned(),
                (Some(e), false) if cell == Cell::Pass => format!(
                    "**unexpected pass**: the entry expecting {} is out of date ({})",
                    e.status.as_str(),
                    e.reason
                ),
                (Some(e), false) => format!(
                    "**unexplained**: the entry expects {} ({}); this run: {runner}",
                    e.status.as_str(),
                    e.reason
                ),
                (None, true) if cell == Cell::NotApplicable => runner.to_owned(),
                (None, _) => format!("**unexplained**: {runner}"),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                r.case,
                r.area.as_str(),
                if r.quirk { "quirk" } else { "contract" },
                cell.label(),
                md(&why)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pypy: Option<&str>) -> Header {
        Header {
            interpreter: "CPython 3.11.7".into(),
            pypy: pypy.map(str::to_owned),
            installed: Vec::new(),
            runs: 2,
            suite_hash: "0".into(),
        }
    }

    fn empty() -> MatrixRun {
        MatrixRun {
            implementations: Vec::new(),
            results: Vec::new(),
            wall: Duration::ZERO,
        }
    }

    fn pypy_subject() -> Subject {
        let mut found = subjects().into_iter().filter(|s| s.interp == Interp::PyPy);
        let subject = found.next().expect("a PyPy subject");
        assert!(found.next().is_none());
        subject
    }

    #[test]
    fn the_pypy_column_is_pypys_stdlib_pool_under_fork() {
        let s = pypy_subject();
        assert_eq!(s.spec, "pypy-fork");
        assert_eq!(s.package, None);
        assert_eq!(s.title(), "`multiprocessing.Pool` on PyPy");
        let text = render(
            &header(Some("PyPy 7.3.11 (Python 3.9.16)")),
            &[],
            &empty(),
            &Statuses::new(),
            &[(s, "pypy-fork".to_owned())],
            &[],
        );
        assert!(
            text.contains("- PyPy: PyPy 7.3.11 (Python 3.9.16), `pypy3`"),
            "{text}"
        );
        assert!(
            text.contains("| `multiprocessing.Pool` on PyPy | PyPy's own Pool"),
            "{text}"
        );
        assert!(
            text.contains("### `multiprocessing.Pool` on PyPy (`pypy-fork`)"),
            "{text}"
        );
    }

    #[test]
    fn without_pypy_its_column_is_one_not_run_row() {
        let text = render(
            &header(None),
            &[],
            &empty(),
            &Statuses::new(),
            &[],
            &[Unavailable {
                subject: pypy_subject(),
                why: "no `pypy3` on PATH (Debian: `apt-get install pypy3`)".into(),
            }],
        );
        let rows: Vec<&str> = text.lines().filter(|l| l.contains("on PyPy")).collect();
        assert_eq!(rows.len(), 1, "{text}");
        assert!(
            rows[0].contains("| not run: no `pypy3` on PATH (Debian: `apt-get install pypy3`) |"),
            "{}",
            rows[0]
        );
        assert!(!text.contains("- PyPy:"), "{text}");
    }

    fn result(case: &str, area: Area, status: Status) -> CaseResult {
        CaseResult {
            case: case.into(),
            area,
            quirk: false,
            implementation: "pypy-fork".into(),
            status,
            verdict: conformance::verdict::Verdict::judge(status, None),
            reason: (status == Status::NotApplicable).then(|| {
                "the claim holds for python >=3.10; this implementation runs python 3.9.16"
                    .to_owned()
            }),
            expected: None,
            fault: None,
            observation: None,
            unstable: None,
            history: None,
            duration_ms: 0,
        }
    }

    #[test]
    fn a_case_whose_versions_exclude_pypy_is_na_not_a_divergence() {
        let matrix = MatrixRun {
            implementations: Vec::new(),
            results: vec![
                result("CTR-001", Area::Construction, Status::Pass),
                result("CTR-003", Area::Construction, Status::NotApplicable),
            ],
            wall: Duration::ZERO,
        };
        let statuses = Statuses::new();
        let na = &matrix.results[1];
        let cell = classify(na, &statuses);
        assert_eq!(cell, Cell::NotApplicable);
        assert!(cell.explained(na));
        let text = render(
            &header(Some("PyPy 7.3.11 (Python 3.9.16)")),
            &[],
            &matrix,
            &statuses,
            &[(pypy_subject(), "pypy-fork".to_owned())],
            &[],
        );
        assert!(
            text.contains("| 1/1 (1 n/a) | 0/0 | 1/1 (1 n/a) |"),
            "{text}"
        );
        assert!(
            text.contains(
                "| CTR-003 | construction | contract | n/a | the claim holds for python >=3.10; \
                 this implementation runs python 3.9.16 |"
            ),
            "{text}"
        );
        assert!(!text.contains("unexplained**: the claim"), "{text}");
    }

    #[test]
    fn a_narrowed_run_is_never_the_committed_file() {
        let options = |impls: &[&str], cases: &[&str]| Options {
            no_install: true,
            check: false,
            python: None,
            runs: 1,
            verbose: false,
            pypy: None,
            impls: impls.iter().map(|s| s.to_string()).collect(),
            cases: cases.iter().map(|s| s.to_string()).collect(),
        };
        assert!(!options(&[], &[]).narrowed());
        assert!(options(&["pypy-fork"], &[]).narrowed());
        assert!(options(&[], &["BLK-"]).narrowed());
    }
}
