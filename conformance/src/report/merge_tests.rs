//! Every refusal of [`merge`] and [`read_shard`], and a merge that succeeds.

use super::*;

const COUNTS: &str =
    r#""counts":{"cells":0,"unexpected":0,"per_implementation":{},"compliance":{}}"#;
const IMPLS: [&str; 2] = ["cpython-fork", "rust-ref"];

/// The text of shard `k` of `n` of run `run`, holding `cells` (case, implementation);
/// `interrupted`: planned cells of an interrupted shard.
fn text(
    k: u32,
    n: u32,
    run: &str,
    suite: &str,
    cells: &[(&str, &str)],
    interrupted: Option<usize>,
) -> String {
    let shard = format!(
        r#","shard":{{"index":{k},"count":{n},"run":"{run}","matrix_cells":4,"cases":["BLK-001","BLK-002"]}}"#
    );
    let impls: Vec<String> = IMPLS
        .iter()
        .map(|i| format!(r#"{{"name":"{i}","capabilities":[]}}"#))
        .collect();
    let mut out = format!(
        r#"{{"type":"header","harness":"poolspec","harness_version":"0.1.0","protocol":2,"case_format":1,"suite_hash":"{suite}","cases":2,"oracle":"cpython-fork","implementations":[{}]{shard}}}"#,
        impls.join(",")
    );
    out.push('\n');
    for (case, imp) in cells {
        out.push_str(&format!(
            r#"{{"case":"{case}","area":"blocking","quirk":false,"implementation":"{imp}","status":"pass","verdict":"pass","history":"/elsewhere/{imp}/{case}.json","duration_ms":3,"type":"result"}}"#
        ));
        out.push('\n');
    }
    let state = match interrupted {
        None => r#""complete":true"#.to_owned(),
        Some(planned) => format!(
            r#""complete":false,"interrupted":{{"signal":"SIGINT","finished":{},"planned":{planned}}}"#,
            cells.len()
        ),
    };
    out.push_str(&format!(
        r#"{{"type":"footer",{state},"wall_ms":{k},{COUNTS}}}"#
    ));
    out.push('\n');
    out
}

fn shard(name: &str, text: &str) -> ShardReport {
    ShardReport {
        path: PathBuf::from(format!("{name}/report.jsonl")),
        report: jsonl::read(text).unwrap(),
    }
}

const A: [(&str, &str); 2] = [("BLK-002", "rust-ref"), ("BLK-001", "cpython-fork")];
const B: [(&str, &str); 2] = [("BLK-001", "rust-ref"), ("BLK-002", "cpython-fork")];

fn two_shards() -> Vec<ShardReport> {
    vec![
        shard("s1", &text(1, 2, "r", "h", &A, None)),
        shard("s2", &text(2, 2, "r", "h", &B, None)),
    ]
}

/// The one-line message of a refusal, which must name `file`.
fn refused(shards: &[ShardReport], allow: bool, file: &str) -> MergeError {
    let err = merge(shards, allow).unwrap_err();
    let line = err.to_string();
    assert!(line.contains(file) && !line.contains('\n'), "{line}");
    err
}

#[test]
fn the_shards_of_a_run_merge_into_a_whole_run() {
    let merged = merge(&two_shards(), false).unwrap();
    assert_eq!(merged.records.len(), 4);
    assert!(merged.header.shard.is_none());
    assert_eq!(merged.interruption, None);
    assert_eq!(merged.wall, Duration::from_millis(2));
    // Histories are looked for beside each shard's report, not where the shard wrote them.
    let h = merged.records[0].result.history.clone().unwrap();
    assert_eq!(h, Path::new("s1/histories/rust-ref/BLK-002.json"));
    assert_eq!(
        merged.case_ids().into_iter().collect::<Vec<_>>(),
        ["BLK-001", "BLK-002"]
    );
    let mut merged = merged;
    let moves = merged.rebase_histories(Path::new("out/histories"));
    assert_eq!(moves[0].1, Path::new("out/histories/rust-ref/BLK-002.json"));
}

#[test]
fn a_file_that_is_not_a_report_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "hello\n").unwrap();
    let err = read_shard(&path).unwrap_err();
    assert!(matches!(err, MergeError::NotAReport { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("{}: not a report", path.display()))
    );
    let missing = read_shard(&dir.path().join("nothing-here")).unwrap_err();
    assert!(matches!(missing, MergeError::Read { .. }), "{missing}");
}

#[test]
fn a_folder_is_read_through_its_report_and_a_truncated_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let whole = text(1, 2, "r", "h", &A, None);
    std::fs::write(dir.path().join("report.jsonl"), &whole).unwrap();
    assert_eq!(read_shard(dir.path()).unwrap().report.records.len(), 2);
    let cut: String = whole.lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.path().join("report.jsonl"), cut).unwrap();
    let err = read_shard(dir.path()).unwrap_err();
    assert!(matches!(err, MergeError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("report.jsonl: truncated"), "{err}");
}

#[test]
fn an_incomplete_shard_is_refused_unless_allowed_and_then_the_merge_says_so() {
    let shards = vec![
        shard("s1", &text(1, 2, "r", "h", &A[..1], Some(2))),
        shard("s2", &text(2, 2, "r", "h", &B, None)),
    ];
    let err = refused(&shards, false, "s1/report.jsonl");
    assert!(matches!(err, MergeError::Incomplete { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("interrupted (SIGINT) after 1 of 2 cells")
    );
    let merged = merge(&shards, true).unwrap();
    let i = merged.interruption.unwrap();
    assert_eq!((i.signal.as_str(), i.finished, i.planned), ("SIGINT", 3, 4));
}

#[test]
fn a_whole_run_is_not_a_shard() {
    let whole = text(1, 2, "r", "h", &A, None).replacen(
        r#","shard":{"index":1,"count":2,"run":"r","matrix_cells":4,"cases":["BLK-001","BLK-002"]}"#,
        "",
        1,
    );
    let shards = vec![
        shard("s2", &text(2, 2, "r", "h", &B, None)),
        shard("w", &whole),
    ];
    let err = refused(&shards, false, "w/report.jsonl");
    assert!(matches!(err, MergeError::NotAShard { .. }), "{err}");
}

#[test]
fn mixed_suites_are_refused_naming_both_files() {
    let shards = vec![
        shard("s1", &text(1, 2, "r", "h", &A, None)),
        shard("s2", &text(2, 2, "r", "other", &B, None)),
    ];
    let err = refused(&shards, false, "s1/report.jsonl");
    assert!(matches!(err, MergeError::MixedSuites { .. }), "{err}");
    assert!(err.to_string().contains("s2/report.jsonl"), "{err}");
}

#[test]
fn shards_of_different_runs_are_refused() {
    for other in [
        text(2, 2, "q", "h", &B, None),
        text(2, 3, "r", "h", &B, None),
    ] {
        let shards = vec![
            shard("s1", &text(1, 2, "r", "h", &A, None)),
            shard("s2", &other),
        ];
        let err = refused(&shards, false, "s2/report.jsonl");
        assert!(matches!(err, MergeError::DifferentRuns { .. }), "{err}");
    }
}

#[test]
fn the_same_shard_twice_is_refused() {
    let mut shards = two_shards();
    shards.push(shard("again", &text(2, 2, "r", "h", &B, None)));
    let err = refused(&shards, false, "again/report.jsonl");
    assert!(matches!(err, MergeError::DuplicateShard { .. }), "{err}");
    assert!(err.to_string().contains("both are shard 2/2"), "{err}");
}

#[test]
fn a_cell_in_two_shards_is_refused() {
    let shards = vec![
        shard("s1", &text(1, 2, "r", "h", &A, None)),
        shard("s2", &text(2, 2, "r", "h", &[B[0], A[1]], None)),
    ];
    let err = refused(&shards, false, "s2/report.jsonl");
    assert!(matches!(err, MergeError::Overlap { .. }), "{err}");
    assert!(err.to_string().contains("BLK-001 on cpython-fork"), "{err}");
}

#[test]
fn missing_shards_are_named() {
    let shards = vec![shard("s2", &text(2, 4, "r", "h", &B, None))];
    let err = refused(&shards, false, "s2/report.jsonl");
    assert!(matches!(err, MergeError::MissingShards { .. }), "{err}");
    assert!(
        err.to_string().contains("shards 1, 3, 4 of 4 missing"),
        "{err}"
    );
}

#[test]
fn missing_cells_are_refused() {
    let shards = vec![
        shard("s1", &text(1, 2, "r", "h", &A, None)),
        shard("s2", &text(2, 2, "r", "h", &B[..1], None)),
    ];
    let err = refused(&shards, false, "s1/report.jsonl");
    assert!(
        matches!(
            err,
            MergeError::MissingCells {
                found: 3,
                expected: 4,
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(merge(&[], false), Err(MergeError::Nothing)));
}

#[test]
fn the_merged_cells_follow_the_suite_and_the_header_and_the_suite_must_be_the_checkouts() {
    let suite = crate::spec::load_dir(&crate::workspace_root().join("spec")).cases;
    let picked: Vec<LoadedCase> = suite
        .iter()
        .filter(|c| ["BLK-001", "BLK-002"].contains(&c.id()))
        .cloned()
        .collect();
    let hash = suite_hash(&picked);
    let shards = vec![
        shard("s1", &text(1, 2, "r", &hash, &A, None)),
        shard("s2", &text(2, 2, "r", &hash, &B, None)),
    ];
    let (run, cases) = merge(&shards, false).unwrap().run(&suite).unwrap();
    let order: Vec<(&str, &str)> = run
        .results
        .iter()
        .map(|r| (r.case.as_str(), r.implementation.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("BLK-001", "cpython-fork"),
            ("BLK-001", "rust-ref"),
            ("BLK-002", "cpython-fork"),
            ("BLK-002", "rust-ref")
        ]
    );
    assert_eq!(cases.len(), 2);
    // Cases of another suite: refused, naming the first report.
    let err = merge(&two_shards(), false)
        .unwrap()
        .run(&suite)
        .unwrap_err();
    assert!(matches!(err, MergeError::SuiteNotHere { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("s1/report.jsonl: suite hash h,"),
        "{err}"
    );
    let unknown = [("NOPE-001", "rust-ref"), A[1]];
    let shards = vec![
        shard("s1", &text(1, 2, "r", &hash, &unknown, None)),
        shard("s2", &text(2, 2, "r", &hash, &B, None)),
    ];
    let err = merge(&shards, false).unwrap().run(&suite).unwrap_err();
    assert!(err.to_string().contains("case NOPE-001 is not in"), "{err}");
}
