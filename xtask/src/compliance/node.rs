//! The Node.js pools under test (`workerpool`, `multiprocess-pool`): pinned in
//! `fixtures/thirdparty-node/package.json` with its `package-lock.json`, installed by `npm ci`
//! into `target/thirdparty-node/` (never globally), where the JavaScript drivers of
//! `fixtures/drivers/js/` find them. A machine without `node` or `npm` gets one line, not a
//! failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The pins, relative to the workspace root.
pub const PINS: &str = "fixtures/thirdparty-node";
/// Where `npm ci` installs them, relative to the workspace root.
pub const INSTALL_DIR: &str = "target/thirdparty-node";
/// The files `npm ci` reads, copied from `PINS` into `INSTALL_DIR`.
const MANIFESTS: [&str; 2] = ["package.json", "package-lock.json"];
/// The lock file of the last successful install, to skip an install that is current.
const STAMP: &str = "installed-package-lock.json";

/// What the install step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeInstall {
    /// The pinned packages are in `node_modules` of this folder.
    Ready(PathBuf),
    /// Not attempted: the reason, in one line (no `node` or `npm` on `PATH`).
    Skipped(String),
    /// `npm ci` failed: its last words.
    Failed(String),
}

/// Whether `npm ci` must run: the last install's lock (`stamp`, absent before the first)
/// differs from the pinned one.
pub fn needs_install(pinned_lock: &str, stamp: Option<&str>) -> bool {
    stamp != Some(pinned_lock)
}

/// What COMPLIANCE.md's header says about the Node.js pools' runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFacts {
    /// `node --version`: `v20.20.2`.
    pub node: String,
    /// `(package, version)` of the installed pools, in subject order.
    pub packages: Vec<(String, String)>,
}

/// The installed packages as they are, installing nothing (`--no-install`): `Ready` when
/// `node` runs and the last install's lock is the pinned one.
pub fn installed(root: &Path) -> Result<NodeInstall> {
    if !on_path("node") {
        return Ok(NodeInstall::Skipped(
            "`node` is not on PATH: the Node.js pools are skipped".into(),
        ));
    }
    let dir = root.join(INSTALL_DIR);
    let lock = std::fs::read_to_string(root.join(PINS).join("package-lock.json"))
        .with_context(|| format!("reading {PINS}/package-lock.json"))?;
    let stamp = std::fs::read_to_string(dir.join(STAMP)).ok();
    if needs_install(&lock, stamp.as_deref()) || !dir.join("node_modules").is_dir() {
        return Ok(NodeInstall::Skipped(format!(
            "{INSTALL_DIR} does not hold the pinned packages (run `cargo xtask compliance` without --no-install)"
        )));
    }
    Ok(NodeInstall::Ready(dir))
}

/// Installs the pinned Node.js packages into `target/thirdparty-node/` unless they are there.
pub fn install(root: &Path) -> Result<NodeInstall> {
    for tool in ["node", "npm"] {
        if !on_path(tool) {
            return Ok(NodeInstall::Skipped(format!(
                "`{tool}` is not on PATH: the Node.js pools are skipped"
            )));
        }
    }
    if let NodeInstall::Ready(dir) = installed(root)? {
        eprintln!("compliance: {INSTALL_DIR} has every pinned Node.js package");
        return Ok(NodeInstall::Ready(dir));
    }
    let pins = root.join(PINS);
    let dir = root.join(INSTALL_DIR);
    let lock = std::fs::read_to_string(pins.join("package-lock.json"))
        .with_context(|| format!("reading {PINS}/package-lock.json"))?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {INSTALL_DIR}"))?;
    for name in MANIFESTS {
        std::fs::copy(pins.join(name), dir.join(name))
            .with_context(|| format!("copying {PINS}/{name} to {INSTALL_DIR}"))?;
    }
    eprintln!("compliance: npm ci in {INSTALL_DIR}");
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .context("running npm")?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("npm failed")
            .trim()
            .to_owned();
        eprintln!("compliance: npm ci failed:\n{stderr}");
        return Ok(NodeInstall::Failed(format!("`npm ci` failed: {last}")));
    }
    std::fs::write(dir.join(STAMP), &lock)
        .with_context(|| format!("writing {INSTALL_DIR}/{STAMP}"))?;
    Ok(NodeInstall::Ready(dir))
}

/// The version of the installed `package` (from its `package.json`), or why there is none.
pub fn package_version(dir: &Path, package: &str) -> Result<String, String> {
    let manifest = dir.join("node_modules").join(package).join("package.json");
    let text = std::fs::read_to_string(&manifest)
        .map_err(|_| format!("{package} is not installed in {INSTALL_DIR}/node_modules"))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{INSTALL_DIR}/node_modules/{package}/package.json: {e}"))?;
    json["version"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{INSTALL_DIR}/node_modules/{package}/package.json has no version"))
}

/// `node --version` (`v20.20.2`), or `node` when it does not say.
pub fn node_version() -> String {
    Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "node".into())
}

/// Whether `node` can load the installed `package` (a broken install is one "not run" line
/// in COMPLIANCE.md instead of a column of errors).
pub fn probe(dir: &Path, package: &str) -> Result<(), String> {
    let module = dir.join("node_modules").join(package);
    let out = Command::new("node")
        .args(["-e", "require(process.argv[1])"])
        .arg(&module)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run node: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(stderr
        .lines()
        .find(|l| l.contains("Error"))
        .map(|l| l.trim().to_owned())
        .unwrap_or_else(|| format!("node cannot load {package}")))
}

/// Whether `tool --version` runs.
fn on_path(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_install_is_needed_until_the_installed_lock_is_the_pinned_one() {
        assert!(needs_install("{\"a\":1}", None));
        assert!(needs_install("{\"a\":1}", Some("{\"a\":2}")));
        assert!(!needs_install("{\"a\":1}", Some("{\"a\":1}")));
    }

    #[test]
    fn the_pins_name_both_pools_at_exact_versions() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let manifest = std::fs::read_to_string(root.join(PINS).join("package.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&manifest).unwrap();
        let deps = json["dependencies"].as_object().unwrap();
        for name in ["workerpool", "multiprocess-pool"] {
            let version = deps[name].as_str().unwrap();
            assert!(
                version.chars().all(|c| c.is_ascii_digit() || c == '.'),
                "{name} is not pinned to an exact version: {version}"
            );
        }
        let lock = std::fs::read_to_string(root.join(PINS).join("package-lock.json")).unwrap();
        assert!(lock.contains("\"node_modules/workerpool\""));
        assert!(lock.contains("\"node_modules/multiprocess-pool\""));
    }
}
