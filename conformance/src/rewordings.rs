//! Messages CPython itself reworded between versions, mapped back to one canonical form.
//!
//! An observation must not change with the interpreter that ran it: a third party records its
//! snapshots on one CPython and checks them on others (`docs/ci-recipe.md`). Most of what a
//! case observes is the same on every version, but a few exception messages were reworded by
//! CPython itself, with no change in behaviour. Each such rewording is one row of
//! [`REWORDINGS`]: the text a version writes, the canonical text (the reference interpreter's,
//! CPython 3.11, so that the committed snapshots under `fixtures/snapshots/` stay as they are),
//! the CPython change that made it, and the versions that write it. `observe.rs` applies the
//! table wherever it masks addresses, so every message of an observation is normalized once,
//! in one place.
//!
//! How the table was found: the suite run on `python:multiprocessing.pool:Pool` with
//! `--snapshots` recorded on 3.11, then checked on 3.8, 3.10, 3.12 and 3.13; every difference
//! that was not a `not-applicable` cell (see `snapshots.rs`) is a row here.

/// One message CPython reworded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewording {
    /// The text as the rewording versions write it (a substring: the message is often
    /// quoted inside another one, such as `MaybeEncodingError`'s "Reason: '...'").
    pub pattern: &'static str,
    /// What it is replaced by: the reference interpreter's (3.11) text.
    pub canonical: &'static str,
    /// The CPython issue and pull request that changed it.
    pub changed_by: &'static str,
    /// The versions that write `pattern`.
    pub versions: &'static str,
}

/// Every rewording poolspec normalizes. Add a row when a new CPython changes a message a case
/// observes (and a test beside it); never a row for a change in behaviour.
pub const REWORDINGS: &[Rewording] = &[Rewording {
    pattern: "Can't get local object '",
    canonical: "Can't pickle local object '",
    changed_by: "gh-122311 (PR #122386): pickle's error for a local object",
    versions: "3.13",
}];

/// `message` with every rewording of [`REWORDINGS`] replaced by its canonical text.
pub fn canonical(message: &str) -> String {
    REWORDINGS.iter().fold(message.to_owned(), |text, row| {
        if text.contains(row.pattern) {
            text.replace(row.pattern, row.canonical)
        } else {
            text
        }
    })
}

#[cfg(test)]
mod tests {
    use super::{REWORDINGS, canonical};

    /// One test per row: the message as the rewording versions write it, alone and quoted
    /// inside another message, becomes the reference interpreter's.
    #[test]
    fn pickle_local_object_3_13() {
        assert_eq!(
            canonical("Can't get local object 'Driver.execute.<locals>.<lambda>'"),
            "Can't pickle local object 'Driver.execute.<locals>.<lambda>'"
        );
        assert_eq!(
            canonical(
                "Error sending result: '<function f at 0x…>'. Reason: \
                 'AttributeError(\"Can't get local object 'run_task.<locals>.<lambda>'\")'"
            ),
            "Error sending result: '<function f at 0x…>'. Reason: \
             'AttributeError(\"Can't pickle local object 'run_task.<locals>.<lambda>'\")'"
        );
    }

    #[test]
    fn canonical_text_and_other_messages_are_kept() {
        for row in REWORDINGS {
            assert_eq!(canonical(row.canonical), row.canonical);
        }
        assert_eq!(
            canonical("Can't get attribute 'f'"),
            "Can't get attribute 'f'"
        );
    }

    #[test]
    fn every_row_names_its_change_and_versions() {
        for row in REWORDINGS {
            assert_ne!(row.pattern, row.canonical);
            assert!(row.changed_by.contains("gh-"), "{row:?}");
            assert!(!row.versions.is_empty(), "{row:?}");
        }
    }
}
