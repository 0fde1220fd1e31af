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
    /// Node.js (`node` on `PATH`) running a JavaScript driver of `fixtures/drivers/js/`, its
    /// pool from `target/thirdparty-node/` (`node.rs`); no Python involved.
    Node,
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
    /// The pinned package it comes from (`None`: the standard library): a PyPI package for
    /// the venv, an npm package for `Interp::Node`.
    pub package: Option<&'static str>,
    /// The module whose import proves the package is installed (for `Interp::Node`, the
    /// package's folder under `node_modules`).
    pub module: &'static str,
    /// The implementation's name where the spec does not give it: an `exec:` driver's name,
    /// as it says in its hello (its expectation file's stem).
    pub exec_name: Option<&'static str>,
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
            exec_name: None,
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
            exec_name: None,
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
            exec_name: None,
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
            exec_name: None,
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
            exec_name: None,
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
            exec_name: None,
            pythonpath: Some("fixtures/thirdparty"),
            loopback: true,
            how: "`python:ray_pool:Pool` (fixtures/thirdparty/ray_pool.py) in a loopback-only network namespace, guards ×2, 2 drivers",
        },
        Subject {
            label: "workerpool",
            interp: Interp::Node,
            spec: "exec:node fixtures/drivers/js/workerpool_driver.js",
            package: Some("workerpool"),
            module: "workerpool",
            exec_name: Some("js-workerpool"),
            timeout_multiplier: 1.0,
            jobs: None,
            pythonpath: None,
            loopback: false,
            how: "`exec:node fixtures/drivers/js/workerpool_driver.js` (`workerType: 'process'`)",
        },
        Subject {
            label: "multiprocess-pool",
            interp: Interp::Node,
            spec: "exec:node fixtures/drivers/js/multiprocess_pool_driver.js",
            package: Some("multiprocess-pool"),
            module: "multiprocess-pool",
            exec_name: Some("js-multiprocess-pool"),
            timeout_multiplier: 1.0,
            jobs: None,
            pythonpath: None,
            loopback: false,
            how: "`exec:node fixtures/drivers/js/multiprocess_pool_driver.js`",
        },
    ]
}

impl Subject {
    /// How the tables name it: the class, and the runtime where it is not the venv's CPython.
    pub fn title(&self) -> String {
        match self.interp {
            Interp::Venv => format!("`{}`", self.label),
            Interp::PyPy => format!("`{}` on PyPy", self.label),
            Interp::Node => format!("`{}` (npm) on Node.js", self.label),
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

/// The pinned PyPI packages under test, in subject order (billiard, multiprocess, ray).
pub fn packages_under_test() -> Vec<&'static str> {
    subjects()
        .iter()
        .filter(|s| s.interp != Interp::Node)
        .filter_map(|s| s.package)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_node_subject_is_named_as_its_driver_says_in_its_hello() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let node: Vec<Subject> = subjects()
            .into_iter()
            .filter(|s| s.interp == Interp::Node)
            .collect();
        assert_eq!(node.len(), 2);
        for s in node {
            let name = s
                .exec_name
                .expect("an exec: subject names its implementation");
            let script = s
                .spec
                .strip_prefix("exec:node ")
                .expect("run by node on a script");
            let text = std::fs::read_to_string(root.join(script)).unwrap();
            assert!(
                text.contains(&format!("name: '{name}'")),
                "{script}: {name}"
            );
            let expectations = root.join(format!("fixtures/expectations/{name}.yaml"));
            assert!(expectations.is_file(), "{}", expectations.display());
            assert!(s.package.is_some_and(|p| p == s.module));
        }
        assert_eq!(
            packages_under_test(),
            ["billiard", "multiprocess", "ray"],
            "npm packages are not pip's"
        );
    }
}
