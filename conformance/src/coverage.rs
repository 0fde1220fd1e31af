//! `spec/coverage.yaml` → `spec/COVERAGE.md`: which cases cover each Pool test of CPython's
//! test suite and each documented behaviour, with the gaps explained.
//!
//! The check (run by `cargo test` through the lint) makes the table impossible to let go
//! stale: every case it names exists, every entry has cases or a reason for the gap, the
//! rendered file is current, and every test method of CPython's Pool test classes, as found
//! in the installed interpreter's `test/_test_multiprocessing.py`, has an entry.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;

use crate::spec::LoadedCase;
use crate::yaml::YamlError;

/// The CPython test classes whose every test method must appear in `tests`.
pub const POOL_TEST_CLASSES: &[&str] = &[
    "_TestPool",
    "_TestPoolWorkerErrors",
    "_TestPoolWorkerLifetime",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoverageFile {
    pub format: u32,
    /// `Class.test_method` → coverage.
    pub tests: IndexMap<String, Entry>,
    /// A documented behaviour (doc anchor: statement) → coverage.
    pub documented: IndexMap<String, Entry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    #[serde(default)]
    pub cases: Vec<String>,
    #[serde(default)]
    pub gap: Option<String>,
}

/// Why `spec/coverage.yaml` did not load: it does not read or parse, is of another format,
/// or an entry is empty or names a case that does not exist.
#[derive(Debug, thiserror::Error)]
pub enum CoverageError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("{}: coverage format {format} is not supported", path.display())]
    Format { path: PathBuf, format: u32 },
    #[error("{}: `{what}` has neither cases nor a gap reason", path.display())]
    Empty { path: PathBuf, what: String },
    #[error("{}: `{what}` names unknown case `{case}`", path.display())]
    UnknownCase {
        path: PathBuf,
        what: String,
        case: String,
    },
}

impl CoverageFile {
    pub fn load(path: &Path, cases: &[LoadedCase]) -> Result<CoverageFile, CoverageError> {
        let file: CoverageFile = crate::yaml::read_yaml(path)?;
        if file.format != 1 {
            return Err(CoverageError::Format {
                path: path.to_path_buf(),
                format: file.format,
            });
        }
        for (what, entry) in file.tests.iter().chain(&file.documented) {
            if entry.cases.is_empty() && entry.gap.as_deref().is_none_or(|g| g.trim().is_empty()) {
                return Err(CoverageError::Empty {
                    path: path.to_path_buf(),
                    what: what.clone(),
                });
            }
            for id in &entry.cases {
                if !cases.iter().any(|c| c.id() == id) {
                    return Err(CoverageError::UnknownCase {
                        path: path.to_path_buf(),
                        what: what.clone(),
                        case: id.clone(),
                    });
                }
            }
        }
        Ok(file)
    }

    /// Test methods of [`POOL_TEST_CLASSES`] in `source` (CPython's test file) lacking an entry.
    pub fn missing_tests(&self, source: &str) -> Vec<String> {
        test_methods(source)
            .into_iter()
            .filter(|name| !self.tests.contains_key(name))
            .collect()
    }

    /// The Markdown committed as `spec/COVERAGE.md`.
    pub fn render(&self, cases: &[LoadedCase]) -> String {
        let mut out = String::from(
            "# Coverage of CPython's Pool tests and documented behaviours\n\n\
             Generated from `spec/coverage.yaml` by `cargo xtask conformance coverage`; do not \
             edit. `cargo test` checks that it is current, that every case it names exists, and \
             that every test method of CPython's `_TestPool`, `_TestPoolWorkerErrors` and \
             `_TestPoolWorkerLifetime` has a row.\n\n",
        );
        let covered =
            |m: &IndexMap<String, Entry>| m.values().filter(|e| !e.cases.is_empty()).count();
        let _ = writeln!(
            out,
            "{} of {} CPython Pool tests and {} of {} documented behaviours are covered by cases; \
             {} cases in all.\n",
            covered(&self.tests),
            self.tests.len(),
            covered(&self.documented),
            self.documented.len(),
            cases.len()
        );
        for (title, map, label) in [
            (
                "CPython's Pool tests (`Lib/test/_test_multiprocessing.py`)",
                &self.tests,
                "test",
            ),
            (
                "Documented behaviours (`Doc/library/multiprocessing.rst`)",
                &self.documented,
                "behaviour",
            ),
        ] {
            let _ = writeln!(
                out,
                "## {title}\n\n| {label} | cases | gap |\n|---|---|---|"
            );
            for (what, e) in map {
                let ids: Vec<String> = e.cases.iter().map(|c| format!("`{c}`")).collect();
                let _ = writeln!(
                    out,
                    "| {} | {} | {} |",
                    what.replace('|', "\\|"),
                    ids.join(", "),
                    e.gap.as_deref().unwrap_or("").replace('|', "\\|")
                );
            }
            out.push('\n');
        }
        out
    }
}

/// `Class.test_x` for every test method of the Pool test classes in CPython's test file.
pub fn test_methods(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut class: Option<&str> = None;
    for line in source.lines() {
        if let Some(rest) = line.strip_prefix("class ") {
            let name = rest.split(['(', ':']).next().unwrap_or("").trim();
            class = POOL_TEST_CLASSES.iter().copied().find(|c| *c == name);
            continue;
        }
        if !line.starts_with(' ') && !line.trim().is_empty() && !line.starts_with('#') {
            // Any other top-level statement ends the class body.
            if !line.starts_with('@') {
                class = None;
            }
            continue;
        }
        if let (Some(c), Some(rest)) = (class, line.strip_prefix("    def test_")) {
            let name = rest.split('(').next().unwrap_or("");
            out.push(format!("{c}.test_{name}"));
        }
    }
    out
}

/// The source of `test/_test_multiprocessing.py` of `python`, if that interpreter has its
/// test package (some distributions strip it).
pub fn cpython_test_source(python: &Path) -> Option<String> {
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import os, test; print(os.path.join(os.path.dirname(test.__file__), '_test_multiprocessing.py'))",
        ])
        .output()
        .ok()?;
    let path = String::from_utf8(out.stdout).ok()?;
    std::fs::read_to_string(path.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_test_methods_of_the_pool_classes_only() {
        let src = "class _TestPool(BaseTestCase):\n    def test_a(self):\n        pass\n    def helper(self):\n        pass\n\ndef f():\n    pass\n\nclass _TestOther(BaseTestCase):\n    def test_b(self):\n        pass\nclass _TestPoolWorkerErrors(BaseTestCase):\n    def test_c(self): pass\n";
        assert_eq!(
            test_methods(src),
            ["_TestPool.test_a", "_TestPoolWorkerErrors.test_c"]
        );
    }
}
