//! `cargo xtask compliance --from SHARD.json...` end to end on small hand-made shard files
//! (nothing is installed or run): the two shards of a measurement render the same
//! COMPLIANCE.md as the whole measurement (one shard of one), and bad inputs are refused in
//! one line naming the file, with nothing written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use conformance::shard::Shard;
use serde_json::{Value, json};

const CASES: [(&str, &str, bool); 3] = [
    ("BLK-008", "blocking", false),
    ("CHK-007", "chunking", true),
    ("ERR-003", "errors", false),
];
const SUBJECTS: [&str; 2] = ["cpython-threadpool", "python:billiard.pool:Pool"];

/// One cell: billiard fails ERR-003 as its expectation file says; everything else passes.
fn cell(case: &str, area: &str, quirk: bool, implementation: &str) -> Value {
    let mut cell = json!({
        "case": case, "area": area, "quirk": quirk, "implementation": implementation,
        "status": "pass", "verdict": "pass", "duration_ms": 0,
    });
    if case == "ERR-003" && implementation.contains("billiard") {
        cell["status"] = json!("fail");
        cell["verdict"] = json!("expected-fail");
        cell["reason"] = json!("the error's type differs");
        cell["expected"] = json!({"status": "fail", "reason": "billiard wraps the error"});
    }
    cell
}

/// Shard `shard`'s file: the cells it owns, by the hash every shard uses.
fn shard_file(shard: Shard, suite_hash: &str) -> Value {
    let mut results = Vec::new();
    let mut statuses = Vec::new();
    for (case, area, quirk) in CASES {
        for implementation in SUBJECTS {
            if !shard.owns(&format!("{case}/{implementation}")) {
                continue;
            }
            let c = cell(case, area, quirk, implementation);
            statuses.push(json!({
                "case": case, "implementation": implementation, "statuses": [c["status"]],
            }));
            results.push(c);
        }
    }
    json!({
        "kind": "poolspec-compliance-shard",
        "version": 2,
        "shard": {"index": shard.index, "count": shard.count},
        "suite_hash": suite_hash,
        "narrowed": true,
        "run": {
            "interpreter": "CPython 3.11.7",
            "pypy": null,
            "node": null,
            "installed": [["billiard", "4.3.2"], ["pip", "23.2.1"]],
            "runs": 1,
            "cases": CASES.map(|(id, area, quirk)| json!({"id": id, "area": area, "quirk": quirk})),
            "subjects": SUBJECTS.map(|s| json!([s, s])),
            "unavailable": [
                ["pypy-fork", "no `pypy3` on PATH"],
                ["exec:node fixtures/drivers/js/workerpool_driver.js", "`node` is not on PATH: the Node.js pools are skipped"],
            ],
        },
        "results": results,
        "statuses": statuses,
    })
}

fn write(dir: &Path, name: &str, value: &Value) -> PathBuf {
    let path = dir.join(name);
    let text = serde_json::to_string_pretty(value).expect("JSON of a shard file");
    std::fs::write(&path, text).expect("writing a shard file");
    path
}

fn from(files: &[&Path], out: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg("compliance")
        .arg("--from")
        .args(files)
        .arg("--out")
        .arg(out);
    cmd.output().expect("running xtask")
}

#[test]
fn two_shards_render_what_the_whole_measurement_does() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let whole = write(d, "whole.json", &shard_file(Shard::WHOLE, "abc"));
    let halves: Vec<PathBuf> = (1..=2)
        .map(|index| {
            let shard = Shard { index, count: 2 };
            let file = shard_file(shard, "abc");
            // Both shards have cells, so the merge has something to do.
            assert!(!file["results"].as_array().unwrap().is_empty());
            write(d, &format!("shard-{index}-of-2.json"), &file)
        })
        .collect();

    let run = from(&[&whole], &d.join("whole.md"));
    if let Ok(keep) = std::env::var("KEEP_MD") {
        let _ = std::fs::copy(&whole, keep);
    }
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let run = from(&[&halves[1], &halves[0]], &d.join("merged.md"));
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let whole_md = std::fs::read_to_string(d.join("whole.md")).unwrap();
    let merged_md = std::fs::read_to_string(d.join("merged.md")).unwrap();
    assert_eq!(merged_md, whole_md);
    assert!(
        whole_md.starts_with("# Third-party compliance\n"),
        "{whole_md}"
    );
    assert!(whole_md.contains("ERR-003"), "{whole_md}");
    // A Node.js pool not run is one row, and the section on Promises is there.
    assert!(
        whole_md.contains("| not run: `node` is not on PATH: the Node.js pools are skipped |"),
        "{whole_md}"
    );
    assert!(
        whole_md.contains("## Node.js pools: Promises for blocking calls"),
        "{whole_md}"
    );
}

#[test]
fn bad_shard_files_are_refused_in_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let half = |index, hash| shard_file(Shard { index, count: 2 }, hash);
    let one = write(d, "one.json", &half(1, "abc"));
    let two = write(d, "two.json", &half(2, "abc"));
    let other_suite = write(d, "other-suite.json", &half(2, "def"));
    let text = serde_json::to_string(&half(2, "abc")).unwrap();
    let truncated = d.join("truncated.json");
    std::fs::write(&truncated, &text[..text.len() / 2]).unwrap();
    let report = d.join("report.json");
    std::fs::write(&report, r#"{"version": 1, "seed": 7}"#).unwrap();
    let out = d.join("COMPLIANCE.md");

    let cases: [(Vec<&Path>, String); 5] = [
        (
            vec![&one],
            format!("{}: shards of 2 are missing 2/2", one.display()),
        ),
        (
            vec![&one, &two, &two],
            format!(
                "{}: shard 2/2 is given twice (also {})",
                two.display(),
                two.display()
            ),
        ),
        (
            vec![&one, &other_suite],
            format!(
                "{}: a shard of another suite (suite hash def",
                other_suite.display()
            ),
        ),
        (
            vec![&one, &truncated],
            format!("{}: not a compliance shard file", truncated.display()),
        ),
        (
            vec![&report, &one],
            format!("{}: not a compliance shard file", report.display()),
        ),
    ];
    for (files, expected) in cases {
        let run = from(&files, &out);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(&expected), "{expected}\n{stderr}");
        assert!(!out.exists(), "{expected}: wrote {}", out.display());
    }
}
