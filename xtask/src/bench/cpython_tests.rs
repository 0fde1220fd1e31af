//! CPython's own Pool tests, run in the same invocation as the suite: the newest CPython on
//! this machine that has its `test` package (`python3.X` on PATH, then pyenv's versions).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::usage::{Usage, measure};

/// A CPython found by name, not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub version: (u32, u32, u32),
    pub path: PathBuf,
}

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

/// `python3.13` → (3, 13): the version in an interpreter's file name.
pub fn version_of_name(name: &str) -> Option<(u32, u32)> {
    let (major, minor) = name.strip_prefix("python")?.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// `3.13.0` → (3, 13, 0): a pyenv version folder (`3.13.0t`, `pypy3.10-7.3`: none).
pub fn version_of_dir(name: &str) -> Option<(u32, u32, u32)> {
    let mut parts = name.split('.').map(|p| p.parse::<u32>().ok());
    let v = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(v)
}

/// Every `python3.X` in the folders of `path_var` and `<pyenv>/versions/*/bin/python3`,
/// newest minor version first (CPython 3 only), PATH before pyenv within a version. A
/// version found twice keeps both: a pyenv shim on PATH may not run a version pyenv has.
pub fn candidates(path_var: Option<&std::ffi::OsStr>, pyenv: Option<&Path>) -> Vec<Candidate> {
    let mut found = Vec::new();
    for dir in path_var.map(std::env::split_paths).into_iter().flatten() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        for name in names {
            if let Some((3, minor)) = version_of_name(&name) {
                found.push(Candidate {
                    version: (3, minor, 0),
                    path: dir.join(&name),
                });
            }
        }
    }
    if let Some(Ok(entries)) = pyenv.map(|p| std::fs::read_dir(p.join("versions"))) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let bin = entry.path().join("bin/python3");
            if let (Some(v @ (3, _, _)), true) = (version_of_dir(&name), bin.is_file()) {
                found.push(Candidate {
                    version: v,
                    path: bin,
                });
            }
        }
    }
    // Stable: within one minor version, discovery order (PATH, then pyenv).
    found.sort_by_key(|c| std::cmp::Reverse((c.version.0, c.version.1)));
    found
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

/// The newest candidate whose `test` package has the multiprocessing tests.
pub fn find() -> Option<(Candidate, String)> {
    let pyenv = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")));
    candidates(std::env::var_os("PATH").as_deref(), pyenv.as_deref())
        .into_iter()
        .find_map(|c| {
            let code = "import test.test_multiprocessing_spawn, platform; \
                        print(platform.python_version())";
            output(&c.path, code).map(|v| (c, v))
        })
}

/// Runs the Pool tests of every start method the platform has, timed.
pub fn run() -> CpythonTests {
    let Some((python, version)) = find() else {
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
            version,
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
    fn versions_from_names() {
        assert_eq!(version_of_name("python3.13"), Some((3, 13)));
        assert_eq!(version_of_name("python3.13-config"), None);
        assert_eq!(version_of_name("python3"), None);
        assert_eq!(version_of_dir("3.12.1"), Some((3, 12, 1)));
        assert_eq!(version_of_dir("3.13.0t"), None);
        assert_eq!(version_of_dir("pypy3.10-7.3.12"), None);
    }

    #[test]
    fn newest_first_path_before_pyenv_both_kept() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        for name in [
            "python3.11",
            "python3.12",
            "python3.12-config",
            "python3",
            "python2.7",
        ] {
            std::fs::write(bin.join(name), "").unwrap();
        }
        let pyenv = dir.path().join("pyenv");
        for v in ["3.13.0", "3.12.1", "2.7.18", "3.14.0t"] {
            let b = pyenv.join("versions").join(v).join("bin");
            std::fs::create_dir_all(&b).unwrap();
            std::fs::write(b.join("python3"), "").unwrap();
        }
        let path_var = std::env::join_paths([&bin, &dir.path().join("missing")]).unwrap();
        let found = candidates(Some(&path_var), Some(&pyenv));
        let got: Vec<(u32, u32, u32, bool)> = found
            .iter()
            .map(|c| {
                let v = c.version;
                (v.0, v.1, v.2, c.path.starts_with(&bin))
            })
            .collect();
        let want = [
            (3, 13, 0, false),
            (3, 12, 0, true),
            (3, 12, 1, false),
            (3, 11, 0, true),
        ];
        assert_eq!(got, want);
    }
}
