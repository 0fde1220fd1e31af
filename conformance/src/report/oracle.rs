//! The oracle's committed observations, for diffs when the oracle is not part of the run.
//!
//! `fixtures/snapshots/cpython-fork/<case>.snap` holds what CPython-fork observed for each
//! case (insta's format: a `---` header block, then the observation as YAML; written by
//! `tests/snapshots.rs`). A run without `cpython-fork` (a third party's CI runs only its own
//! pool) still shows every non-pass's diff against the oracle by reading them here, each
//! file once and only when a diff is asked for.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::implementations::ORACLE;

/// The committed oracle snapshots of one folder, loaded by case id on first use.
#[derive(Debug)]
pub struct OracleSnapshots {
    dir: PathBuf,
    /// Case id → its observation (`None`: no snapshot, or one that does not parse).
    loaded: Mutex<HashMap<String, Option<Arc<Value>>>>,
}

impl OracleSnapshots {
    /// The snapshots in `dir` (`<dir>/<case>.snap`).
    pub fn new(dir: impl Into<PathBuf>) -> OracleSnapshots {
        OracleSnapshots {
            dir: dir.into(),
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// The repository's own: `<root>/fixtures/snapshots/cpython-fork`.
    pub fn committed(root: &Path) -> OracleSnapshots {
        OracleSnapshots::new(root.join("fixtures/snapshots").join(ORACLE))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The oracle's committed observation of `case`, if there is a readable snapshot.
    pub fn observation(&self, case: &str) -> Option<Arc<Value>> {
        // An id is a file name here: refuse anything that could leave the folder.
        if case.is_empty() || case.contains(['/', '\\']) || case.starts_with('.') {
            return None;
        }
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        loaded
            .entry(case.to_owned())
            .or_insert_with(|| {
                let text = std::fs::read_to_string(self.dir.join(format!("{case}.snap"))).ok()?;
                parse_snap(&text).map(Arc::new)
            })
            .clone()
    }
}

/// The value of an insta snapshot file: the YAML after its `---` header block (`None` when
/// it does not parse or holds `null`).
pub fn parse_snap(text: &str) -> Option<Value> {
    let body = match text.strip_prefix("---\n") {
        Some(rest) => rest.split_once("\n---\n").map_or("", |(_, body)| body),
        None => text,
    };
    match serde_yaml::from_str::<Value>(body).ok()? {
        Value::Null => None,
        v => Some(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_its_body_after_the_header() {
        let text =
            "---\nsource: x.rs\ndescription: \"a: b\"\n---\nsteps:\n  s1:\n    returned: 5\n";
        assert_eq!(
            parse_snap(text),
            Some(serde_json::json!({"steps": {"s1": {"returned": 5}}}))
        );
        assert_eq!(parse_snap("---\nsource: x\n---\n~\n"), None);
    }

    #[test]
    fn the_committed_snapshots_load_by_id_and_nothing_else_does() {
        let oracle = OracleSnapshots::committed(&crate::workspace_root());
        let obs = oracle.observation("BLK-001").expect("BLK-001's snapshot");
        assert!(obs.get("steps").is_some(), "{obs}");
        assert!(oracle.observation("NO-SUCH-1").is_none());
        assert!(oracle.observation("../rust-ref/BLK-001").is_none());
    }
}
