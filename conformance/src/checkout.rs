//! Finding the poolspec checkout (the folder holding `spec/`, `conformance/` and the
//! workspace's `Cargo.toml`) at run time.
//!
//! The binaries must not trust the folder they were compiled in: with a `CARGO_TARGET_DIR`
//! shared by two clones, one clone's `cargo xtask` can run the binary the other clone built,
//! and that clone may have moved or been deleted. So the checkout is `$POOLSPEC_ROOT` when it
//! is set, else the nearest ancestor of the current directory that holds the markers (the
//! same folder cargo itself found the workspace from), else an error saying both.

use std::path::{Path, PathBuf};

/// Names the checkout explicitly (for running from outside it).
pub const ROOT_ENV: &str = "POOLSPEC_ROOT";

/// What a folder must hold to be a poolspec checkout.
const MARKERS: [&str; 3] = ["spec", "conformance", "Cargo.toml"];

/// Why no checkout was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckoutError {
    /// `$POOLSPEC_ROOT` names a folder without the markers.
    #[error(
        "${ROOT_ENV} is {}, which is not a poolspec checkout (it needs spec/, conformance/ and \
         Cargo.toml)",
        path.display()
    )]
    NotACheckout { path: PathBuf },
    /// Neither `$POOLSPEC_ROOT` nor an ancestor of the current directory.
    #[error(
        "no poolspec checkout here: neither {} nor any folder above it holds spec/, \
         conformance/ and Cargo.toml; run from inside the checkout or set ${ROOT_ENV}",
        cwd.display()
    )]
    NotFound { cwd: PathBuf },
    /// The current directory cannot be read (deleted, no permission).
    #[error("reading the current directory: {message}")]
    NoCurrentDir { message: String },
}

/// Whether `dir` holds the markers of a poolspec checkout.
pub fn is_checkout(dir: &Path) -> bool {
    dir.join(MARKERS[0]).is_dir() && dir.join(MARKERS[1]).is_dir() && dir.join(MARKERS[2]).is_file()
}

/// The checkout: `$POOLSPEC_ROOT`, else the nearest ancestor of the current directory
/// holding the markers.
pub fn find() -> Result<PathBuf, CheckoutError> {
    let cwd = std::env::current_dir().map_err(|e| CheckoutError::NoCurrentDir {
        message: e.to_string(),
    })?;
    find_from(std::env::var_os(ROOT_ENV).map(PathBuf::from), &cwd)
}

/// [`find`] with its inputs given: `explicit` wins (and must be a checkout), else the nearest
/// ancestor of `cwd` (itself included).
pub fn find_from(explicit: Option<PathBuf>, cwd: &Path) -> Result<PathBuf, CheckoutError> {
    if let Some(path) = explicit.filter(|p| !p.as_os_str().is_empty()) {
        let path = if path.is_relative() {
            cwd.join(path)
        } else {
            path
        };
        return if is_checkout(&path) {
            Ok(path)
        } else {
            Err(CheckoutError::NotACheckout { path })
        };
    }
    cwd.ancestors()
        .find(|dir| is_checkout(dir))
        .map(Path::to_path_buf)
        .ok_or_else(|| CheckoutError::NotFound {
            cwd: cwd.to_path_buf(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_checkout(dir: &Path) {
        std::fs::create_dir_all(dir.join("spec")).unwrap();
        std::fs::create_dir_all(dir.join("conformance")).unwrap();
        std::fs::write(dir.join("Cargo.toml"), "[workspace]\n").unwrap();
    }

    #[test]
    fn the_nearest_ancestor_with_the_markers_is_the_checkout() {
        let tmp = tempfile::tempdir().unwrap();
        let outer = tmp.path().join("outer");
        let inner = outer.join("nested/clone");
        fake_checkout(&outer);
        fake_checkout(&inner);
        let deep = inner.join("conformance/src");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(find_from(None, &deep).unwrap(), inner);
        assert_eq!(find_from(None, &inner).unwrap(), inner);
        assert_eq!(find_from(None, &outer.join("nested")).unwrap(), outer);
        // A folder with only some of the markers is not one.
        std::fs::remove_file(inner.join("Cargo.toml")).unwrap();
        assert_eq!(find_from(None, &deep).unwrap(), outer);
    }

    #[test]
    fn the_variable_wins_and_must_name_a_checkout() {
        let tmp = tempfile::tempdir().unwrap();
        let there = tmp.path().join("there");
        fake_checkout(&there);
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        assert_eq!(find_from(Some(there.clone()), &elsewhere).unwrap(), there);
        assert_eq!(
            find_from(Some("there".into()), tmp.path()).unwrap(),
            tmp.path().join("there")
        );
        let err = find_from(Some(elsewhere.clone()), &there).unwrap_err();
        assert_eq!(
            err,
            CheckoutError::NotACheckout {
                path: elsewhere.clone()
            }
        );
        assert!(err.to_string().contains("POOLSPEC_ROOT"), "{err}");
        // An empty variable counts as unset.
        assert_eq!(find_from(Some("".into()), &there).unwrap(), there);
    }

    #[test]
    fn nowhere_says_where_it_looked_and_what_to_do() {
        let tmp = tempfile::tempdir().unwrap();
        let err = find_from(None, tmp.path()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&tmp.path().display().to_string()), "{text}");
        assert!(text.contains("set $POOLSPEC_ROOT"), "{text}");
    }
}
