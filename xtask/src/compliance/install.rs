//! The project-owned virtual environment `target/thirdparty-venv`: created when missing,
//! given each package under test at its pinned version (one pip call per package, with the
//! requirements file as constraints), and asked what it holds.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use conformance::implementations;

use super::packages::{Installed, Pins, REQUIREMENTS};

/// The virtual environment, relative to the workspace root.
pub const VENV: &str = "target/thirdparty-venv";

/// A package under test that pip could not install (its column says so).
#[derive(Debug, Clone)]
pub struct InstallFailure {
    pub package: &'static str,
    /// `pip install ...` and pip's last words.
    pub why: String,
}

/// The venv's interpreter.
pub fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin/python")
}

/// Creates the venv if needed and installs whatever package of `packages` (the packages
/// under test chosen; `under_test` is all of them) is missing or at another version than
/// pinned. Returns the packages that failed to install.
pub fn install(
    root: &Path,
    venv: &Path,
    base: Option<&Path>,
    pins: &Pins,
    packages: &[&'static str],
    under_test: &[&'static str],
) -> Result<Vec<InstallFailure>> {
    let python = venv_python(venv);
    if !python.exists() {
        create_venv(root, venv, base)?;
    }
    if packages.is_empty() {
        return Ok(Vec::new());
    }
    let installed = installed_versions(&python);
    // The chosen packages and every dependency; packages under test that were not chosen
    // may be missing.
    let all_pinned = pins
        .0
        .iter()
        .filter(|p| {
            packages.iter().any(|c| *c == p.name) || !under_test.iter().any(|u| *u == p.name)
        })
        .all(|p| installed.has(p));
    if all_pinned {
        eprintln!("compliance: {} has every pinned package", venv.display());
        return Ok(Vec::new());
    }
    let mut failures = Vec::new();
    // One pip call per package under test, so a failure (Ray's wheels are platform-specific)
    // costs only that package.
    for &package in under_test {
        let Some(pin) = pins.get(package) else {
            bail!("{package} is not pinned in {REQUIREMENTS}");
        };
        if !packages.contains(&package) || installed.has(pin) {
            continue;
        }
        if let Some(failure) = pip_install(root, &python, package, &pin.requirement())? {
            failures.push(failure);
        }
    }
    Ok(failures)
}

fn create_venv(root: &Path, venv: &Path, base: Option<&Path>) -> Result<()> {
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
    Ok(())
}

/// `pip install -c REQUIREMENTS requirement`; `Some` when pip failed.
fn pip_install(
    root: &Path,
    python: &Path,
    package: &'static str,
    requirement: &str,
) -> Result<Option<InstallFailure>> {
    eprintln!("compliance: pip install {requirement}");
    let out = Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg("-c")
        .arg(root.join(REQUIREMENTS))
        .arg(requirement)
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .context("running pip")?;
    if out.status.success() {
        return Ok(None);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("pip failed")
        .trim()
        .to_owned();
    eprintln!("compliance: installing {package} failed:\n{stderr}");
    Ok(Some(InstallFailure {
        package,
        why: format!("`pip install {requirement}` failed: {last}"),
    }))
}

/// Every distribution the interpreter sees (none when it does not run).
pub fn installed_versions(python: &Path) -> Installed {
    let script = "import importlib.metadata as m\n\
                  for d in m.distributions():\n    print(d.metadata['Name'], d.version)";
    let Ok(out) = Command::new(python)
        .args(["-c", script])
        .stderr(Stdio::null())
        .output()
    else {
        return Installed::default();
    };
    Installed::from_listing(&String::from_utf8_lossy(&out.stdout))
}

/// `CPython 3.11.7`.
pub fn interpreter_version(python: &Path) -> Result<String> {
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
