//! The implementations COMPLIANCE.md reports on (its rows and columns): which Pool class,
//! on which interpreter, from which pinned package, and how each is run.

use anyhow::{Result, bail};
use conformance::implementations;

/// Which interpreter runs a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interp {
    /// The venv's CPython.
    Venv,
    /// A PyPy outside the venv (`--pypy`, `$POOLSPEC_PYPY` or `pypy3` on `PATH`), with its
    /// own standard library.
    PyPy,
}

/// One implementation `COMPLIANCE.md` reports on.
#[derive(Debug, Clone)]
pub struct Subject {
    /// How the table names it: the Python class under test.
    pub label: &'static str,
    /// The interpreter it runs on.
    pub interp: Interp,
    /// The implementation spec (`cargo xtask conformance --impl SPEC`).
    pub spec: &'static str,
    /// The pinned package it comes from (`None`: the standard library).
    pub package: Option<&'static str>,
    /// The module whose import proves the package is installed.
    pub module: &'static str,
    /// Guard multiplier and worker threads, for slow implementations.
    pub timeout_multiplier: f64,
    pub jobs: Option<usize>,
    /// Extra `PYTHONPATH` entry (relative to the root), for factory modules.
    pub pythonpath: Option<&'static str>,
    /// Run the driver in a network namespace of its own with only loopback up
    /// (`probe::loopback_only`), so nothing it starts can listen beyond 127.0.0.1.
    pub loopback: bool,
    /// One line on how it is run, for the table.
    pub how: &'static str,
}

/// Every subject COMPLIANCE.md reports on, in its order.
pub fn subjects() -> Vec<Subject> {
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
    pub fn title(&self) -> String {
        match self.interp {
            Interp::Venv => format!("`{}`", self.label),
            Interp::PyPy => format!("`{}` on PyPy", self.label),
        }
    }
}

/// Why a subject was not run.
#[derive(Debug, Clone)]
pub struct Unavailable {
    pub subject: Subject,
    pub why: String,
}

/// The subjects `--impl` names (none: all), refusing a spec that is not a subject.
pub fn choose(impls: &[String]) -> Result<Vec<Subject>> {
    let chosen: Vec<Subject> = subjects()
        .into_iter()
        .filter(|s| impls.is_empty() || impls.iter().any(|i| i == s.spec))
        .collect();
    for wanted in impls {
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
    Ok(chosen)
}

/// The pinned packages under test, in subject order (billiard, multiprocess, ray).
pub fn packages_under_test() -> Vec<&'static str> {
    subjects().iter().filter_map(|s| s.package).collect()
}
