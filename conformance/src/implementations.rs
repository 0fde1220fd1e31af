//! The implementations the runner knows how to start.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::driver::DriverCommand;

/// Environment variable naming the Python interpreter for the CPython drivers.
pub const PYTHON_ENV: &str = "POOLSPEC_PYTHON";

/// The implementation whose observations are the oracle.
pub const ORACLE: &str = "cpython-fork";

/// One implementation under test: a name and how to start its driver.
#[derive(Debug, Clone)]
pub struct Implementation {
    /// Short stable name, used in reports, snapshot folders and expectation file names.
    pub name: String,
    pub command: DriverCommand,
}

/// Finds the Python interpreter: `$POOLSPEC_PYTHON` if set, else `python3` on `PATH`.
pub fn find_python() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(PYTHON_ENV) {
        let p = PathBuf::from(p);
        return which::which(&p)
            .with_context(|| format!("{PYTHON_ENV}={} is not an executable", p.display()));
    }
    which::which("python3").context("no `python3` on PATH (set POOLSPEC_PYTHON to choose one)")
}

/// Builds the `rust-ref` driver (`pool-ref-driver`, debug profile) with the cargo that is
/// running us (or `cargo` on `PATH`) and returns the binary's path.
pub fn build_rust_ref(root: &Path) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(&cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "pool-ref",
            "--bin",
            "pool-ref-driver",
        ])
        .current_dir(root)
        .status()
        .with_context(|| format!("running {}", cargo.to_string_lossy()))?;
    if !status.success() {
        bail!("building pool-ref-driver failed ({status})");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("debug").join("pool-ref-driver"))
}

/// The built-in implementations, in report order: the four CPython ones, then `rust-ref`
/// when its driver binary is given.
pub fn builtin(root: &Path, python: &Path, rust_ref: Option<&Path>) -> Vec<Implementation> {
    let driver = root.join("fixtures/drivers/cpython_driver.py");
    let cpython = |name: &str, method: &str, class: &str| Implementation {
        name: name.to_owned(),
        command: DriverCommand {
            program: python.display().to_string(),
            args: vec![
                // -u: unbuffered; -I would drop PYTHONPATH, which third-party pools need.
                "-u".into(),
                driver.display().to_string(),
                "--start-method".into(),
                method.into(),
                "--pool-class".into(),
                class.into(),
            ],
            env: vec![("PYTHONDONTWRITEBYTECODE".into(), "1".into())],
        },
    };
    let mut all = vec![
        cpython("cpython-fork", "fork", "Pool"),
        cpython("cpython-spawn", "spawn", "Pool"),
        cpython("cpython-forkserver", "forkserver", "Pool"),
        cpython("cpython-threadpool", "fork", "ThreadPool"),
    ];
    if let Some(driver) = rust_ref {
        all.push(Implementation {
            name: "rust-ref".to_owned(),
            command: DriverCommand {
                program: driver.display().to_string(),
                args: Vec::new(),
                env: Vec::new(),
            },
        });
    }
    all
}

/// Picks implementations by name from `all`; an empty selection means all of them.
pub fn select(all: Vec<Implementation>, names: &[String]) -> Result<Vec<Implementation>> {
    if names.is_empty() {
        return Ok(all);
    }
    let mut chosen = Vec::new();
    for n in names {
        match all.iter().find(|i| &i.name == n) {
            Some(i) => chosen.push(i.clone()),
            None => bail!(
                "unknown implementation `{n}` (known: {})",
                all.iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    Ok(chosen)
}
