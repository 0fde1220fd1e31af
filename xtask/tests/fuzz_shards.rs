//! `cargo xtask fuzz --shard K/N` and `fuzz merge` end to end, on rust-ref (cheap): one run
//! of 40 programs and the merge of its 3 shards cover the same programs with the same
//! results; merging refuses a missing shard and a file that is not a report, writing
//! nothing. (Deduplicating divergences is tested on constructed reports, in
//! `conformance::fuzz::merge`.)

use std::path::Path;
use std::process::{Command, Output};

use conformance::fuzz::report::{self, FuzzReport, IndexRange};

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("running xtask")
}

fn fuzz(out: &Path, shard: Option<&str>) -> FuzzReport {
    let out_arg = out.display().to_string();
    let mut args = vec![
        "fuzz",
        "--impl",
        "rust-ref",
        "--seed",
        "7",
        "--cases",
        "40",
        "--no-progress",
        "--out",
    ];
    args.push(&out_arg);
    if let Some(s) = shard {
        args.extend(["--shard", s]);
    }
    let run = xtask(&args);
    assert!(
        run.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    report::read(out).expect("the run's report").1
}

#[test]
fn three_merged_shards_run_what_one_run_does() {
    let dir = tempfile::tempdir().expect("temp dir");
    let whole = fuzz(&dir.path().join("whole"), None);
    let shards: Vec<FuzzReport> = (1..=3)
        .map(|k| fuzz(&dir.path().join(format!("s{k}")), Some(&format!("{k}/3"))))
        .collect();
    // Disjoint contiguous ranges, each shard its own part.
    let ranges: Vec<(u64, u64)> = shards
        .iter()
        .map(|r| (r.range.start, r.range.end))
        .collect();
    assert_eq!(ranges, [(0, 14), (14, 27), (27, 40)]);
    assert!(
        shards
            .iter()
            .all(|r| r.complete && r.programs == r.range.len())
    );

    let merged_dir = dir.path().join("merged");
    let out = merged_dir.display().to_string();
    let s = |k: u32| dir.path().join(format!("s{k}")).display().to_string();
    let merge = xtask(&["fuzz", "merge", &s(1), &s(2), &s(3), "--out", &out]);
    assert!(
        merge.status.success(),
        "{}",
        String::from_utf8_lossy(&merge.stderr)
    );
    let merged = report::read(&merged_dir).expect("the merged report").1;

    assert_eq!(merged.range, IndexRange { start: 0, end: 40 });
    assert_eq!(merged.range, whole.range);
    assert_eq!(merged.programs, whole.programs);
    assert_eq!(merged.programs, 40);
    assert_eq!(merged.agreements, whole.agreements);
    assert_eq!(merged.divergences, whole.divergences);
    assert_eq!(merged.oracle_faults, whole.oracle_faults);
    assert_eq!(merged.parts.len(), 3);
    assert!(merged.complete && whole.complete);
    assert_eq!(
        (merged.seed, &merged.implementation),
        (7, &whole.implementation)
    );
}

#[test]
fn merge_refusals_name_the_file_and_write_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let shard = dir.path().join("s1");
    std::fs::create_dir_all(&shard).unwrap();
    let text = r#"{"version":1,"seed":7,"implementation":"rust-ref","oracle":"cpython-fork",
        "settings":{"max_steps":10,"exclude":[],"ignore_messages":false},
        "range":{"start":0,"end":20},"shard":{"index":1,"count":2},
        "parts":[],"programs":20,"agreements":20,"divergences":[],"oracle_faults":[],
        "oracle_flakes":[],"complete":true}"#;
    std::fs::write(shard.join("report.json"), text).unwrap();
    let not_a_report = dir.path().join("notes.json");
    std::fs::write(&not_a_report, "{\"version\": 1, \"seed\": \"x\"}").unwrap();
    let out = dir.path().join("merged");
    let refuse = |inputs: &[&Path], expected: &str| {
        let mut args = vec!["fuzz".to_owned(), "merge".to_owned()];
        args.extend(inputs.iter().map(|p| p.display().to_string()));
        args.extend(["--out".to_owned(), out.display().to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = xtask(&args);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!out.exists());
    };
    let report = shard.join("report.json").display().to_string();
    refuse(&[&shard], &format!("{report}: shards of 2 are missing 2/2"));
    refuse(
        &[&shard, &shard],
        &format!("{report}: shard 1/2 is given twice"),
    );
    refuse(
        &[&shard, &not_a_report],
        &format!("{}: not a fuzzing report", not_a_report.display()),
    );
}
