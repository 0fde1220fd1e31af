//! The Node.js pools under test (`workerpool`, `multiprocess-pool`): pinned in
//! `fixtures/thirdparty-node/package.json` with its `package-lock.json`, installed by `npm ci`
//! into `target/thirdparty-node/` (never globally), where the JavaScript drivers of
//! `fixtures/drivers/js/` find them. A machine without `node` or `npm` gets one line, not a
//! failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

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

/// Installs the pinned Node.js packages into `target/thirdparty-node/` unless they are there.
pub fn install(root: &Path) -> Result<NodeInstall> {
    for tool in ["node", "npm"] {
        if !on_path(tool) {
            return Ok(NodeInstall::Skipped(format!(
                "`{tool}` is not on PATH: the Node.js pools are skipped"
            )));
        }
    }
    let pins = root.join(PINS);
    let dir = root.join(INSTALL_DIR);
    let lock = std::fs::read_to_string(pins.join("package-lock.json"))
        .with_context(|| format!("reading {PINS}/package-lock.json"))?;
    let stamp = std::fs::read_to_string(dir.join(STAMP)).ok();
    if !needs_install(&lock, stamp.as_deref()) && dir.join("node_modules").is_dir() {
        eprintln!("compliance: {INSTALL_DIR} has every pinned Node.js package");
        return Ok(NodeInstall::Ready(dir));
    }
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
