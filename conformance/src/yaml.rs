//! Reading the small YAML side files (expectations, claims, coverage, tags) with errors that
//! name file, line and column. Cases have their own loader in `spec::load`.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Why a side file did not load: it could not be read (the cause is the I/O error), or it
/// does not parse (the message leads with `path:line:col`).
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}{}: {message}", path.display(), location(*line, *column))]
    Parse {
        path: PathBuf,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        _ => String::new(),
    }
}

/// Reads and parses `path`; a parse error reads `path:line:col: message`.
pub fn read_yaml<T: DeserializeOwned>(path: &Path) -> Result<T, YamlError> {
    let text = std::fs::read_to_string(path).map_err(|source| YamlError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_yaml::from_str(&text).map_err(|e| {
        let loc = e.location();
        YamlError::Parse {
            path: path.to_path_buf(),
            line: loc.as_ref().map(|l| l.line()),
            column: loc.as_ref().map(|l| l.column()),
            message: e.to_string(),
        }
    })
}
