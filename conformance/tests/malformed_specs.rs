//! The malformed-spec corpus (`fixtures/malformed-specs/`): loaded as one folder together with
//! a valid file, every malformed file is rejected with its own error at its own line and
//! column, and the valid file's cases all still load.

use std::collections::BTreeSet;
use std::path::Path;

use conformance::spec::{MAX_FILE_BYTES, load_dir};
use conformance::workspace_root;

/// Each file of the corpus, the position of its error, and words its message must contain.
const CORPUS: &[(&str, usize, usize, &str)] = &[
    (
        "01-expect-missing-step.yaml",
        11,
        22,
        "case MAL-001: `expect.steps.s9`: the case has no step `s9`; did you mean `s1`? (it has: s1)",
    ),
    (
        "02-gate-after-own-end.yaml",
        10,
        10,
        "gate `g` can never open: it opens after `t.end`; task `t` waits on gate `g` first, which closes a cycle",
    ),
    (
        "03-gate-cycle.yaml",
        10,
        10,
        "gate `a` can never open: it opens after `x.end`; task `x` waits on gate `b` first; gate `b` opens after `y.end`; task `y` waits on gate `a` first, which closes a cycle",
    ),
    (
        "04-barrier-too-large.yaml",
        10,
        10,
        "gate `b` can never open: it opens when 3 wait on it at once, and at most 2 ever can",
    ),
    (
        "05-task-key-misspelt.yaml",
        10,
        24,
        "unknown key `retuns` in a task; did you mean `returns`?",
    ),
    (
        "06-step-key-misspelt.yaml",
        10,
        30,
        "unknown key `chunksiz` in a `map` step; did you mean `chunksize`?",
    ),
    (
        "07-expect-key-misspelt.yaml",
        12,
        20,
        "`expect.steps.s1`: unknown key `retuned` in a step's outcome; did you mean `returned`?",
    ),
    (
        "08-gate-rule-misspelt.yaml",
        10,
        11,
        "unknown gate rule `when_wating`; did you mean `when_waiting`?",
    ),
    (
        "09-pool-key-misspelt.yaml",
        9,
        12,
        "unknown key `proceses` in `pool`; did you mean `processes`?",
    ),
    (
        "10-duplicate-id-in-case.yaml",
        11,
        19,
        "id `a` is used twice in this case (first used at {dir}/10-duplicate-id-in-case.yaml:10:36)",
    ),
    (
        "11-duplicate-case-id-across-files.yaml",
        5,
        9,
        "case BLK-001: duplicate case id: ids are permanent and unique across spec/ (first used at {dir}/00-blocking.yaml:5:9)",
    ),
    (
        "12-duplicate-case-id-in-file.yaml",
        12,
        9,
        "case MAL-012: duplicate case id: ids are permanent and unique across spec/ (first used at {dir}/12-duplicate-case-id-in-file.yaml:5:9)",
    ),
    (
        "13-yaml-syntax-error.yaml",
        10,
        27,
        "did not find expected ',' or ']'",
    ),
    (
        "14-wrong-type.yaml",
        10,
        41,
        "cases[0].steps[0].map.chunksize: invalid type: sequence, expected u32",
    ),
    (
        "15-empty.yaml",
        1,
        1,
        "the file is empty: a spec file starts with `format: 1`",
    ),
    (
        "16-not-utf8.yaml",
        6,
        26,
        "not UTF-8: invalid utf-8 sequence",
    ),
    ("17-deeply-nested.yaml", 11, 159, "recursion limit exceeded"),
    (
        "18-unknown-operation.yaml",
        10,
        9,
        "unknown operation `aply`; did you mean `apply`?",
    ),
    (
        "19-of-missing-step.yaml",
        11,
        19,
        "`get` of `hh`: no earlier step has that id",
    ),
    (
        "20-wait-unknown-gate.yaml",
        12,
        44,
        "task `h-0` waits on `gg`, which is not a gate of this case",
    ),
    (
        "21-await-unknown-event.yaml",
        11,
        24,
        "`t.ended`: `t` has no event `ended` (it has: start, wait, end, exit)",
    ),
    (
        "22-order-unknown-id.yaml",
        13,
        42,
        "order `o`: `u.end`: no id `u` in this case",
    ),
    (
        "23-expect-unknown-task.yaml",
        11,
        22,
        "`expect.tasks.tt`: the case has no task `tt`; did you mean `t`? (it has: t)",
    ),
    (
        "24-expect-probe-not-observed.yaml",
        11,
        42,
        "`expect.max_concurrency`: the case does not observe `max_concurrency`",
    ),
    (
        "25-expect-order-unknown-event.yaml",
        14,
        33,
        "`expect.order.o`: `h.return` is not an event of the order probe `o` (its events: t.end, s2.return)",
    ),
    (
        "26-expect-callbacks-without-callback.yaml",
        12,
        26,
        "`expect.callbacks.h`: step `h` registers no callback or error_callback",
    ),
    (
        "27-await-never-returns.yaml",
        11,
        24,
        "step `s2` can never return: it awaits `t.exit`; task `t` never exits",
    ),
    (
        "28-gate-after-unknown-id.yaml",
        10,
        18,
        "gate `g`: `x.end`: no id `x` in this case",
    ),
    (
        "29-open-unknown-gate.yaml",
        10,
        22,
        "step `s1` opens `g`, which is not a gate of this case",
    ),
    (
        "30-manual-gate-opened-too-late.yaml",
        10,
        10,
        "gate `g` can never open: it is opened only by step `s3`; step `s3` comes after step `s2`; step `s2` awaits `t.end`; task `t` waits on gate `g` first, which closes a cycle",
    ),
    (
        "31-expect-tasks-by-process-unknown-task.yaml",
        14,
        39,
        "`expect.tasks_by_process`: the case has no task `z`; did you mean `x`?",
    ),
    (
        "32-format-version.yaml",
        2,
        9,
        "case format 2 is not supported (this runner reads format 1)",
    ),
    (
        "33-callback-key-misspelt.yaml",
        10,
        50,
        "unknown key `wiat` in a callback; did you mean `wait`?",
    ),
    (
        "34-initializer-waits-unknown-gate.yaml",
        9,
        33,
        "the initializer waits on `g`, which is not a gate of this case",
    ),
    (
        "35-duplicate-gate.yaml",
        11,
        7,
        "cases[0].gates: duplicate key `b` (first used at {dir}/35-duplicate-gate.yaml:10:7)",
    ),
    (
        "36-duplicate-key-in-task.yaml",
        12,
        23,
        "duplicate field `returns` (first used at {dir}/36-duplicate-key-in-task.yaml:12:35)",
    ),
    (
        "37-barrier-size-wrong-type.yaml",
        10,
        25,
        "invalid value: string \"three\", expected a number of waiters, or `processes`",
    ),
    // Made by the test, not committed: one byte over the limit.
    (
        "99-too-large.yaml",
        1,
        1,
        "a spec file may have at most 4194304",
    ),
];

/// The cases of `text` (a copy of a valid spec file) when it is loaded alone.
fn ids_alone(text: &str) -> Vec<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("blocking.yaml"), text).expect("writing");
    let suite = load_dir(dir.path());
    assert!(suite.errors.is_empty(), "{:?}", suite.errors);
    suite.cases.iter().map(|c| c.id().to_owned()).collect()
}

#[test]
fn every_malformed_spec_is_rejected_at_its_position_and_the_rest_still_loads() {
    let corpus = workspace_root().join("fixtures/malformed-specs");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut committed = BTreeSet::new();
    for entry in std::fs::read_dir(&corpus).expect("reading the corpus") {
        let path = entry.expect("a corpus entry").path();
        let name = path.file_name().expect("a file name").to_owned();
        std::fs::copy(&path, dir.path().join(&name)).expect("copying");
        committed.insert(name.to_string_lossy().into_owned());
    }
    let valid = std::fs::read_to_string(workspace_root().join("spec/blocking.yaml"))
        .expect("reading spec/blocking.yaml");
    std::fs::write(dir.path().join("00-blocking.yaml"), &valid).expect("writing");
    let huge = "# padding\n".repeat(usize::try_from(MAX_FILE_BYTES).expect("fits") / 10 + 1);
    std::fs::write(dir.path().join("99-too-large.yaml"), huge).expect("writing");

    let listed: BTreeSet<String> = CORPUS
        .iter()
        .map(|(f, ..)| (*f).to_owned())
        .filter(|f| f != "99-too-large.yaml")
        .collect();
    assert_eq!(
        committed, listed,
        "every corpus file has its expected error in CORPUS, and only those"
    );
    assert!(CORPUS.len() >= 20);

    let suite = load_dir(dir.path());
    let shown = |p: &Path| p.display().to_string();
    let dir_shown = shown(dir.path());
    for (file, line, column, words) in CORPUS {
        let path = dir.path().join(file);
        let errors: Vec<_> = suite.errors.iter().filter(|e| e.file == path).collect();
        assert_eq!(errors.len(), 1, "{file}: {errors:#?}");
        let err = errors[0];
        assert_eq!(
            (err.line, err.column),
            (Some(*line), Some(*column)),
            "{file}: {err}"
        );
        let text = err.to_string();
        let prefix = format!("{}:{line}:{column}: ", shown(&path));
        assert!(text.starts_with(&prefix), "{text:?} starts with {prefix:?}");
        let words = words.replace("{dir}", &dir_shown);
        assert!(text.contains(&words), "{file}:\n  {text}\nlacks\n  {words}");
        assert!(!text.contains('\n'), "{text:?}");
    }
    assert_eq!(suite.errors.len(), CORPUS.len(), "{:#?}", suite.errors);

    // The valid file loads whole; of the corpus only the first case of the file whose second
    // case repeats its id (the repeat is the error).
    let mut expected = ids_alone(&valid);
    expected.push("MAL-012".to_owned());
    let loaded: Vec<String> = suite.cases.iter().map(|c| c.id().to_owned()).collect();
    assert_eq!(loaded, expected);
}

#[test]
fn the_suite_and_the_fuzz_corpus_load_without_errors() {
    for dir in ["spec", "fixtures/fuzz-corpus"] {
        let suite = load_dir(&workspace_root().join(dir));
        assert!(suite.errors.is_empty(), "{dir}: {:#?}", suite.errors);
        assert!(!suite.cases.is_empty(), "{dir}");
    }
}
