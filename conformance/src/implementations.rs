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

/// Picks implementations from the command line (see [`parse_spec`]); an empty selection
/// means all of `all`.
pub fn select(
    all: Vec<Implementation>,
    specs: &[String],
    root: &Path,
    python: &Path,
) -> Result<Vec<Implementation>> {
    if specs.is_empty() {
        return Ok(all);
    }
    specs
        .iter()
        .map(|spec| parse_spec(spec, root, python, &all))
        .collect()
}

/// A CPython interpreter found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    pub path: PathBuf,
    /// `major.minor.micro`.
    pub version: String,
}

impl Interpreter {
    /// `major.minor`.
    pub fn short_version(&self) -> &str {
        match self.version.match_indices('.').nth(1) {
            Some((i, _)) => &self.version[..i],
            None => &self.version,
        }
    }
}

/// Asks `path` for its version; `None` unless it is a CPython 3.8 or newer that runs.
pub fn probe_python(path: &Path) -> Option<Interpreter> {
    let out = std::process::Command::new(path)
        .args([
            "-c",
            "import sys, platform; print(platform.python_implementation(), '%d.%d.%d' % sys.version_info[:3])",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let (implementation, version) = text.trim().split_once(' ')?;
    let minor: u32 = version.split('.').nth(1)?.parse().ok()?;
    (implementation == "CPython" && version.starts_with("3.") && minor >= 8).then(|| Interpreter {
        path: path.to_path_buf(),
        version: version.to_owned(),
    })
}

/// Every CPython 3.8+ on this machine: `python3.8` … `python3.14` on `PATH`, and pyenv's
/// versions (`$PYENV_ROOT`, else `~/.pyenv`). One per version, sorted by version.
pub fn discover_pythons() -> Vec<Interpreter> {
    let mut candidates: Vec<PathBuf> = (8..=14)
        .filter_map(|minor| which::which(format!("python3.{minor}")).ok())
        .collect();
    let pyenv = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")));
    if let Some(root) = pyenv
        && let Ok(entries) = std::fs::read_dir(root.join("versions"))
    {
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin/python3"))
            .filter(|p| p.exists())
            .collect();
        found.sort();
        candidates.extend(found);
    }
    let mut seen = std::collections::BTreeMap::new();
    for path in candidates {
        if let Some(interp) = probe_python(&path) {
            seen.entry(version_key(&interp.version)).or_insert(interp);
        }
    }
    seen.into_values().collect()
}

fn version_key(version: &str) -> Vec<u32> {
    version.split('.').filter_map(|p| p.parse().ok()).collect()
}

/// The interpreter matrix: CPython's `Pool` under each start method, for each interpreter,
/// named `cpython-<major.minor>-<method>`.
pub fn interpreter_matrix(root: &Path, pythons: &[Interpreter]) -> Vec<Implementation> {
    let mut out = Vec::new();
    for interp in pythons {
        for imp in builtin(root, &interp.path, None) {
            let Some(method) = imp.name.strip_prefix("cpython-") else {
                continue;
            };
            if method == "threadpool" {
                continue;
            }
            out.push(Implementation {
                name: format!("cpython-{}-{method}", interp.short_version()),
                command: imp.command,
            });
        }
    }
    out
}

/// Parses an implementation named on the command line:
///
/// - a built-in name (`cpython-fork`, `rust-ref`, ...), looked up in `builtin`;
/// - `python:MODULE:ATTR`: any Pool-compatible class or factory, called like
///   `multiprocessing.Pool(processes, initializer, initargs, maxtasksperchild)`, importable by
///   `python` (e.g. `python:billiard.pool:Pool`), driven by the CPython driver;
/// - `exec:COMMAND ARGS`: any executable speaking `spec/PROTOCOL.md` (split on whitespace;
///   quote nothing).
pub fn parse_spec(
    spec: &str,
    root: &Path,
    python: &Path,
    builtin: &[Implementation],
) -> Result<Implementation> {
    if let Some(target) = spec.strip_prefix("python:") {
        let Some((module, attr)) = target.rsplit_once(':') else {
            bail!("`{spec}`: expected python:MODULE:ATTR, e.g. python:billiard.pool:Pool");
        };
        if module.is_empty() || attr.is_empty() {
            bail!("`{spec}`: expected python:MODULE:ATTR, e.g. python:billiard.pool:Pool");
        }
        let driver = root.join("fixtures/drivers/cpython_driver.py");
        return Ok(Implementation {
            name: format!("python:{module}:{attr}"),
            command: DriverCommand {
                program: python.display().to_string(),
                args: vec![
                    "-u".into(),
                    driver.display().to_string(),
                    "--factory".into(),
                    format!("{module}:{attr}"),
                ],
                env: vec![("PYTHONDONTWRITEBYTECODE".into(), "1".into())],
            },
        });
    }
    if let Some(command) = spec.strip_prefix("exec:") {
        let mut words = command.split_whitespace().map(str::to_owned);
        let Some(program) = words.next() else {
            bail!("`{spec}`: expected exec:COMMAND [ARGS...]");
        };
        return Ok(Implementation {
            name: spec.to_owned(),
            command: DriverCommand {
                program,
                args: words.collect(),
                env: Vec::new(),
            },
        });
    }
    builtin
        .iter()
        .find(|i| i.name == spec)
        .cloned()
        .ok_or_else(|| {
            anyhow::anyhow!(
                "unknown implementation `{spec}` (known: {}; or python:MODULE:ATTR, exec:COMMAND)",
                builtin
                    .iter()
                    .map(|i| i.name.as_str())
                    // rust-ref is only in the list when it was asked for (it gets built).
                    .chain(
                        builtin
                            .iter()
                            .all(|i| i.name != "rust-ref")
                            .then_some("rust-ref")
                    )
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// The file name stem for an implementation's expectations and snapshots: its name with
/// every character outside `[A-Za-z0-9._-]` replaced by `_`.
pub fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
