//! Writing a run's report files: `report.jsonl`, `summary.md`, `junit.xml`, `report.html`.

use std::path::{Path, PathBuf};

use super::model::Model;
use super::{html, jsonl, junit, markdown};
use crate::runner::MatrixRun;
use crate::spec::LoadedCase;

/// The files one run writes, under `target/conformance/`.
#[derive(Debug, Clone)]
pub struct ReportPaths {
    pub jsonl: PathBuf,
    pub markdown: PathBuf,
    pub junit: PathBuf,
    /// The static HTML matrix.
    pub html: PathBuf,
}

/// A report file could not be written.
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
}

/// Writes `report.jsonl`, `summary.md`, `junit.xml` and `report.html` under `dir`.
pub fn write_all(
    dir: &Path,
    run: &MatrixRun,
    cases: &[LoadedCase],
) -> Result<ReportPaths, WriteError> {
    std::fs::create_dir_all(dir).map_err(|source| WriteError::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    let paths = ReportPaths {
        jsonl: dir.join("report.jsonl"),
        markdown: dir.join("summary.md"),
        junit: dir.join("junit.xml"),
        html: dir.join("report.html"),
    };
    let model = Model::new(run, cases);
    let write = |path: &PathBuf, text: String| {
        std::fs::write(path, text).map_err(|source| WriteError::Write {
            path: path.clone(),
            source,
        })
    };
    write(&paths.jsonl, jsonl::render(&model))?;
    write(&paths.markdown, markdown::render(&model))?;
    write(&paths.junit, junit::render(&model))?;
    write(&paths.html, html::page(&model))?;
    Ok(paths)
}
