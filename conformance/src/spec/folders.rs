//! The spec folders of a run: the built-in `spec/` and the folders added with `--spec DIR`,
//! loaded into one suite so that an id is unique across all of them.

use std::path::{Path, PathBuf};

use super::load::{Source, Suite, load_dir_into};

/// An added folder that cannot be a spec folder. Unlike a broken file (a [`SpecError`] of
/// the suite, the other files still load), this stops the run: the user named it.
///
/// [`SpecError`]: super::load::SpecError
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("--spec {}: no such folder", dir.display())]
    Missing { dir: PathBuf },
    #[error("--spec {}: not a folder (give the folder that holds the case files)", dir.display())]
    NotAFolder { dir: PathBuf },
    #[error("--spec {}: no case file (*.yaml) in it", dir.display())]
    NoCaseFile { dir: PathBuf },
}

/// Loads `builtin` (the built-in `spec/`, unless the run takes only added folders) and then
/// each added folder, in the order given.
pub fn load_folders(builtin: Option<&Path>, added: &[PathBuf]) -> Result<Suite, FolderError> {
    let mut suite = Suite::default();
    if let Some(dir) = builtin {
        load_dir_into(dir, &Source::BuiltIn, &mut suite);
    }
    for dir in added {
        if !dir.exists() {
            return Err(FolderError::Missing { dir: dir.clone() });
        }
        if !dir.is_dir() {
            return Err(FolderError::NotAFolder { dir: dir.clone() });
        }
        let has_cases = std::fs::read_dir(dir).is_ok_and(|rd| {
            rd.flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        });
        if !has_cases {
            return Err(FolderError::NoCaseFile { dir: dir.clone() });
        }
        load_dir_into(dir, &Source::Added(dir.clone()), &mut suite);
    }
    Ok(suite)
}
