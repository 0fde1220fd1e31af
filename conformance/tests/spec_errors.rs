//! Spec errors, through `load_dir` on real files: a broken file is reported once, with its
//! path, line and column, and stops nothing else.

use std::path::{Path, PathBuf};

use conformance::spec::{SpecError, Suite, load_dir};
use conformance::workspace_root;

fn blocking_yaml() -> String {
    std::fs::read_to_string(workspace_root().join("spec/blocking.yaml"))
        .expect("reading spec/blocking.yaml")
}

/// The ids of the cases in `intact`, loaded on its own.
fn intact_ids(intact: &str) -> Vec<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("blocking.yaml"), intact).expect("writing");
    let suite = load_dir(dir.path());
    assert!(suite.errors.is_empty(), "{:?}", suite.errors);
    assert!(!suite.cases.is_empty());
    suite.cases.iter().map(|c| c.id().to_owned()).collect()
}

/// Replaces the first occurrence of `from` in `text` (the suite grows; the first case stays).
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "no `{from}` in blocking.yaml");
    text.replacen(from, to, 1)
}

/// The 1-based line and column of `token` within the one occurrence of `anchor` in `text`.
fn position(text: &str, anchor: &str, token: &str) -> (usize, usize) {
    assert_eq!(text.matches(anchor).count(), 1, "`{anchor}` is not unique");
    let within = anchor.find(token).expect("the token is in its anchor");
    text.lines()
        .enumerate()
        .find_map(|(i, line)| line.find(anchor).map(|col| (i + 1, col + within + 1)))
        .expect("anchor present")
}

/// Loads a folder holding `intact` (a copy of `spec/blocking.yaml`) and `broken` (the copy
/// with a mistake, sorted before it so it is read first), checks that exactly one error is
/// reported, for `broken`, at the position of `token` (within `anchor`), and that the intact
/// copy's cases all loaded.
fn one_error_at(intact: &str, broken: &str, anchor: &str, token: &str) -> SpecError {
    let dir = tempfile::tempdir().expect("temp dir");
    let broken_path: PathBuf = dir.path().join("a_broken.yaml");
    let intact_path: PathBuf = dir.path().join("blocking.yaml");
    std::fs::write(&broken_path, broken).expect("writing");
    std::fs::write(&intact_path, intact).expect("writing");

    let Suite { cases, errors, .. } = load_dir(dir.path());

    assert_eq!(errors.len(), 1, "{errors:#?}");
    let err = errors.into_iter().next().expect("one error");
    let (line, column) = position(broken, anchor, token);
    assert_eq!(err.file, broken_path);
    assert_eq!((err.line, err.column), (Some(line), Some(column)), "{err}");
    let prefix = format!("{}:{line}:{column}: ", broken_path.display());
    let shown = err.to_string();
    assert!(
        shown.starts_with(&prefix),
        "{shown:?} does not start with {prefix:?}"
    );
    assert!(!shown.contains('\n'), "{shown:?}");

    let loaded: Vec<&str> = cases.iter().map(|c| c.id()).collect();
    assert_eq!(
        loaded,
        intact_ids(intact),
        "the intact file's cases did not all load"
    );
    assert!(cases.iter().all(|c| c.file == intact_path));
    err
}

#[test]
fn a_typo_in_a_field_name_is_located() {
    let intact = blocking_yaml();
    let broken = edit(&intact, "\n    claim:", "\n    cliam:");
    let err = one_error_at(&intact, &broken, "cliam:", "cliam");
    assert!(
        err.message
            .contains("unknown key `cliam` in a case; did you mean `claim`?"),
        "the message names the closest key: {err}"
    );
    assert!(err.message.contains("unknown field `cliam`"), "{err}");
    assert!(
        err.message.contains("`claim`"),
        "the message lists the known fields: {err}"
    );
}

#[test]
fn an_unknown_operation_is_located() {
    let intact = blocking_yaml();
    let broken = edit(&intact, "- apply: ", "- aply: ");
    let err = one_error_at(&intact, &broken, "- aply: ", "aply");
    assert!(
        err.message
            .contains("unknown operation `aply`; did you mean `apply`?"),
        "the message names the closest operation: {err}"
    );
    assert!(err.message.contains("unknown variant `aply`"), "{err}");
    assert!(
        err.message.contains("`apply`"),
        "the message lists the known variants: {err}"
    );
}

#[test]
fn a_value_of_the_wrong_type_is_located() {
    let intact = blocking_yaml();
    let broken = edit(
        &intact,
        "\n    tags:",
        "\n    pool: {processes: two}\n    tags:",
    );
    let err = one_error_at(&intact, &broken, "processes: two", "two");
    assert!(
        err.message
            .contains("invalid value: string \"two\", expected an integer or `default`"),
        "{err}"
    );
}

#[test]
fn an_unreadable_directory_is_one_error_without_position() {
    let missing = Path::new("/nonexistent/poolspec/spec");
    let suite = load_dir(missing);
    assert!(suite.cases.is_empty());
    assert_eq!(suite.errors.len(), 1, "{:?}", suite.errors);
    let err = &suite.errors[0];
    assert_eq!((err.line, err.column), (None, None));
    assert!(
        err.to_string()
            .starts_with("/nonexistent/poolspec/spec: cannot read the spec directory: "),
        "{err}"
    );
}
