//! CPython's own Pool tests, run in the same invocation as the suite: the newest CPython on
//! this machine that has its `test` package (found as `--interpreters` finds them).

use std::path::Path;
use std::process::{Command, Stdio};

use conformance::interpreters::{Interpreter, Runtime, discover_pythons};
use serde::{Deserialize, Serialize};

use super::usage::{Usage, measure};

/// What the CPython tests measured, or why they were not run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CpythonTests {
    Ran {
        python: String,
        version: String,
        methods: Vec<String>,
        /// The test run's exit status was 0.
        passed: bool,
        usage: Usage,
    },
    Skipped {
        reason: String,
    },
}

fn output(python: &Path, code: &str) -> Option<String> {
    let out = Command::new(python)
        .args(["-c", code])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The newest CPython found (`interpreters::discover_pythons`: PATH and pyenv, each the
/// binary behind any shim) whose `test` package has the multiprocessing tests.
pub fn find() -> Option<Interpreter> {
    let mut found: Vec<Interpreter> = discover_pythons()
        .into_iter()
        .filter(|i| i.runtime == Runtime::CPython)
        .collect();
    found.sort_by_key(|i| std::cmp::Reverse(version_numbers(&i.version)));
    found
        .into_iter()
        .find(|i| output(&i.path, "import test.test_multiprocessing_spawn").is_some())
}

/// `3.13.0` → [3, 13, 0], for ordering.
fn version_numbers(version: &str) -> Vec<u32> {
    version.split('.').filter_map(|p| p.parse().ok()).collect()
}

/// Runs the Pool tests of every start method the platform has, timed.
pub fn run() -> CpythonTests {
    let Some(python) = find() else {
        return CpythonTests::Skipped {
            reason: "no CPython with its test package (test.test_multiprocessing_spawn) found"
                .into(),
        };
    };
    let methods: Vec<String> = output(
        &python.path,
        "import multiprocessing as m; print(' '.join(m.get_all_start_methods()))",
    )
    .unwrap_or_default()
    .split_whitespace()
    .filter(|m| ["fork", "spawn", "forkserver"].contains(m))
    .map(str::to_owned)
    .collect();
    let mut cmd = Command::new(&python.path);
    cmd.args(["-m", "test"]);
    cmd.args(methods.iter().map(|m| format!("test_multiprocessing_{m}")));
    cmd.args(["-m", "*Pool*"]);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let (status, usage) = measure(|| cmd.status());
    match status {
        Ok(status) => CpythonTests::Ran {
            python: python.path.display().to_string(),
            version: python.version.clone(),
            methods,
            passed: status.success(),
            usage,
        },
        Err(e) => CpythonTests::Skipped {
            reason: format!("{} -m test: {e}", python.path.display()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_numerically() {
        assert!(version_numbers("3.13.0") > version_numbers("3.9.18"));
        assert!(version_numbers("3.12.1") > version_numbers("3.12.0"));
    }
}
