//! Reading the small YAML side files (expectations, claims, coverage, tags) with errors that
//! name file, line and column. Cases have their own loader in `spec::load`.

use std::path::Path;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;

/// Reads and parses `path`; a parse error reads `path:line:col: message`.
pub fn read_yaml<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml::from_str(&text).map_err(|e| {
        let loc = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        anyhow::anyhow!("{}{loc}: {e}", path.display())
    })
}
