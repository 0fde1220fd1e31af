//! Writing a run's `report.json` (its content is `conformance::fuzz::report`'s).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use conformance::fuzz::report::{FILE_NAME, FuzzReport};

/// Writes `report` to `dir/report.json` through a temporary file, so that a reader never
/// sees half a report. Returns the file.
pub fn write(dir: &Path, report: &FuzzReport) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(FILE_NAME);
    let tmp = dir.join(format!(".{FILE_NAME}.tmp"));
    let text = serde_json::to_string_pretty(report)? + "\n";
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
