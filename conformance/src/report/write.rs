//! Writing a run's report files: `report.jsonl`, `summary.md`, `junit.xml`, `report.html`;
//! and clearing an output folder of an earlier run's reports before a new run starts.
//!
//! Every file is written atomically ([`write_atomic`]: a temporary file in the same folder,
//! renamed over the target), so a crash mid-write leaves the whole file or none, never half.
//! The earlier run's files are removed at the start of a run, not left until its end: a run
//! that is killed, or fails before writing, must not leave a report describing another run
//! where its own belongs. (An "in progress" marker in their place would itself become a lie
//! when the runner is killed with SIGKILL; an absent report claims nothing.)

use std::path::{Path, PathBuf};

use super::model::Model;
use super::{html, jsonl, junit, markdown};
use crate::atomic_write::write_atomic;
use crate::runner::MatrixRun;
use crate::spec::LoadedCase;

/// The report files' names, in the order they are written.
pub const REPORT_FILES: [&str; 4] = ["report.jsonl", "summary.md", "junit.xml", "report.html"];
/// The folder of raw histories, next to the reports.
pub const HISTORIES: &str = "histories";

/// The files one run writes, under `target/conformance/`.
#[derive(Debug, Clone)]
pub struct ReportPaths {
    pub jsonl: PathBuf,
    pub markdown: PathBuf,
    pub junit: PathBuf,
    /// The static HTML matrix.
    pub html: PathBuf,
}

/// A report file could not be written, or an earlier one removed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("creating {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("removing the earlier report {}", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Writes `report.jsonl`, `summary.md`, `junit.xml` and `report.html` under `dir`.
pub fn write_all(
    dir: &Path,
    run: &MatrixRun,
    cases: &[LoadedCase],
) -> Result<ReportPaths, WriteError> {
    write_model(dir, &Model::new(run, cases))
}

/// [`write_all`] of a model built by the caller (say, of an interrupted run:
/// [`Model::interrupted`]).
pub fn write_model(dir: &Path, model: &Model<'_>) -> Result<ReportPaths, WriteError> {
    std::fs::create_dir_all(dir).map_err(|source| WriteError::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    let [jsonl_name, markdown_name, junit_name, html_name] = REPORT_FILES;
    let paths = ReportPaths {
        jsonl: dir.join(jsonl_name),
        markdown: dir.join(markdown_name),
        junit: dir.join(junit_name),
        html: dir.join(html_name),
    };
    let write = |path: &PathBuf, text: String| {
        write_atomic(path, text.as_bytes()).map_err(|source| WriteError::Write {
            path: path.clone(),
            source,
        })
    };
    write(&paths.jsonl, jsonl::render(model))?;
    write(&paths.markdown, markdown::render(model))?;
    write(&paths.junit, junit::render(model))?;
    write(&paths.html, html::page(model))?;
    Ok(paths)
}

/// Removes an earlier run's reports from `dir`: the four files, the histories folder, and
/// any temporary file a crashed write left (`.report.jsonl.*.tmp`). Other files are left
/// alone; a missing folder or file is fine.
pub fn clear(dir: &Path) -> Result<(), WriteError> {
    let remove = |path: PathBuf, result: std::io::Result<()>| match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(WriteError::Remove { path, source: e })
        }
        _ => Ok(()),
    };
    for name in REPORT_FILES {
        let path = dir.join(name);
        remove(path.clone(), std::fs::remove_file(&path))?;
    }
    let histories = dir.join(HISTORIES);
    remove(histories.clone(), std::fs::remove_dir_all(&histories))?;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let leftover = REPORT_FILES
            .iter()
            .any(|f| name.starts_with(&format!(".{f}.")) && name.ends_with(".tmp"));
        if leftover {
            remove(entry.path(), std::fs::remove_file(entry.path()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_removes_an_earlier_report_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in REPORT_FILES {
            std::fs::write(d.join(name), "old").unwrap();
        }
        std::fs::create_dir_all(d.join("histories/cpython-fork")).unwrap();
        std::fs::write(d.join("histories/cpython-fork/BLK-001.json"), "{}").unwrap();
        std::fs::write(d.join(".report.html.Ab12.tmp"), "half").unwrap();
        std::fs::write(d.join("notes.txt"), "mine").unwrap();
        std::fs::write(d.join(".other.tmp"), "not ours").unwrap();
        clear(d).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".other.tmp", "notes.txt"]);
        // Twice, or on a folder that does not exist: nothing to do.
        clear(d).unwrap();
        clear(&d.join("missing")).unwrap();
    }
}
