//! Per-implementation expectation files (`fixtures/expectations/<impl>.yaml`): the known
//! divergences, each with a reason.
//!
//! Unlisted cases are expected to pass. A listed case that passes is an *unexpected pass* and
//! fails the run until the entry is removed, so these files only shrink as implementations
//! improve. An entry naming a case that does not exist is an error. An implementation without
//! a file of its own may share one: `pypy-3.9-fork` that of `pypy-fork`, `pypy-threadpool`
//! that of `cpython-threadpool` (see [`ExpectationFile::load_for`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::verdict::Status;
use crate::yaml::YamlError;

/// The contents of one expectation file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectationFile {
    /// The implementation these entries are about.
    pub implementation: String,
    /// Case id → the expected non-pass status and why.
    #[serde(default)]
    pub cases: BTreeMap<String, Expected>,
}

/// One known divergence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    /// The status the case gets on this implementation.
    pub status: Status,
    /// Why, in a sentence a reviewer would accept.
    pub reason: String,
}

/// Why an expectation file did not load: it does not read or parse, was written for another
/// implementation, or an entry is wrong (each variant names the file and the entry's case).
#[derive(Debug, thiserror::Error)]
pub enum ExpectationError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("{}: written for `{written_for}`, used for `{used_for}`", path.display())]
    OtherImplementation {
        path: PathBuf,
        written_for: String,
        used_for: String,
    },
    #[error("{}: entry `{case}` names no case in spec/", path.display())]
    UnknownCase { path: PathBuf, case: String },
    #[error("{}: entry `{case}` expects pass; remove it instead", path.display())]
    ExpectsPass { path: PathBuf, case: String },
    #[error("{}: entry `{case}` has no reason", path.display())]
    NoReason { path: PathBuf, case: String },
}

impl ExpectationFile {
    /// Loads `path` (an absent file means "every case passes"), checking that every entry
    /// names an existing case.
    pub fn load(
        path: &Path,
        implementation: &str,
        known: &[&str],
    ) -> Result<ExpectationFile, ExpectationError> {
        if !path.exists() {
            return Ok(ExpectationFile {
                implementation: implementation.to_owned(),
                cases: BTreeMap::new(),
            });
        }
        let file: ExpectationFile = crate::yaml::read_yaml(path)?;
        if file.implementation != implementation {
            return Err(ExpectationError::OtherImplementation {
                path: path.to_path_buf(),
                written_for: file.implementation,
                used_for: implementation.to_owned(),
            });
        }
        for (id, entry) in &file.cases {
            let (path, case) = (path.to_path_buf(), id.clone());
            if !known.contains(&id.as_str()) {
                return Err(ExpectationError::UnknownCase { path, case });
            }
            if entry.status == Status::Pass {
                return Err(ExpectationError::ExpectsPass { path, case });
            }
            if entry.reason.trim().is_empty() {
                return Err(ExpectationError::NoReason { path, case });
            }
        }
        Ok(file)
    }

    /// Loads the expectations of `implementation` from `dir` (`fixtures/expectations/`): the
    /// first file that exists of those [`expectation_names`] lists (its own `<stem>.yaml`,
    /// else for `pypy-3.9-fork` `pypy-fork.yaml`, else `cpython-fork.yaml`), applied to it.
    /// None existing means every case is expected to pass.
    ///
    /// [`expectation_names`]: crate::implementations::expectation_names
    pub fn load_for(
        dir: &Path,
        implementation: &str,
        known: &[&str],
    ) -> Result<ExpectationFile, ExpectationError> {
        use crate::implementations::{expectation_names, file_stem};

        for name in expectation_names(implementation) {
            let path = dir.join(format!("{}.yaml", file_stem(&name)));
            if path.exists() {
                let mut file = ExpectationFile::load(&path, &name, known)?;
                file.implementation = implementation.to_owned();
                return Ok(file);
            }
        }
        ExpectationFile::load(
            &dir.join(format!("{}.yaml", file_stem(implementation))),
            implementation,
            known,
        )
    }

    pub fn expected(&self, case: &str) -> Option<&Expected> {
        self.cases.get(case)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<ExpectationFile, ExpectationError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.yaml");
        std::fs::write(&path, text).unwrap();
        ExpectationFile::load(&path, "x", &["A-1"])
    }

    #[test]
    fn an_entry_for_a_missing_case_is_an_error() {
        let err = load("implementation: x\ncases:\n  B-9: {status: fail, reason: r}\n");
        assert!(err.unwrap_err().to_string().contains("`B-9` names no case"));
    }

    #[test]
    fn a_typo_names_line_and_column() {
        let err = load("implementation: x\ncases:\n  A-1: {status: fail, raeson: r}\n");
        let msg = err.unwrap_err().to_string();
        assert!(msg.contains("x.yaml:3:"), "{msg}");
        assert!(msg.contains("unknown field `raeson`"), "{msg}");
    }

    #[test]
    fn a_matrix_implementation_shares_its_builtins_file() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write(
            "pypy-fork.yaml",
            "implementation: pypy-fork\ncases:\n  A-1: {status: fail, reason: r}\n",
        );
        let f = ExpectationFile::load_for(dir.path(), "pypy-3.9-fork", &["A-1"]).unwrap();
        assert_eq!(f.implementation, "pypy-3.9-fork");
        assert_eq!(f.expected("A-1").unwrap().status, Status::Fail);
        // The built-in itself, and one with no file at all.
        let f = ExpectationFile::load_for(dir.path(), "pypy-fork", &["A-1"]).unwrap();
        assert!(f.expected("A-1").is_some());
        let f = ExpectationFile::load_for(dir.path(), "pypy-3.9-spawn", &["A-1"]).unwrap();
        assert!(f.cases.is_empty());
        // A built-in on PyPy shares CPython's file of the same built-in.
        write(
            "cpython-threadpool.yaml",
            "implementation: cpython-threadpool\ncases:\n  A-1: {status: unsupported, reason: r}\n",
        );
        let f = ExpectationFile::load_for(dir.path(), "pypy-threadpool", &["A-1"]).unwrap();
        assert_eq!(f.implementation, "pypy-threadpool");
        assert_eq!(f.expected("A-1").unwrap().status, Status::Unsupported);
        // A file of its own wins.
        write(
            "pypy-3.9-fork.yaml",
            "implementation: pypy-3.9-fork\ncases: {}\n",
        );
        let f = ExpectationFile::load_for(dir.path(), "pypy-3.9-fork", &["A-1"]).unwrap();
        assert!(f.cases.is_empty());
    }

    #[test]
    fn a_valid_file_loads() {
        let f = load("implementation: x\ncases:\n  A-1: {status: fail, reason: r}\n").unwrap();
        assert_eq!(f.expected("A-1").unwrap().status, Status::Fail);
    }
}
