//! Sharded runs end to end, through the real binary: a selection run as N shards (separate
//! `cargo xtask conformance --shard K/N` processes), merged with `conformance merge`, must
//! give the report one run gives: the same records apart from timing fields (durations, wall
//! time, history paths), and the same Markdown, JUnit and HTML once timings and pids are
//! masked. And every refusal of `merge`: one line naming the file, exit 2, no --out.
//!
//! The default suite and the interpreter matrix are slow; they are `#[ignore]`d:
//! `cargo test -p xtask --test shards -- --ignored`.

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

fn xtask(args: &[&str], paths: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .args(paths)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `select` as one run into `dir/single` and as `n` shards into `dir/shard-K`, merges
/// them into `dir/merged`, and checks the merged report against the single one.
fn shards_merge_into_the_single_run(select: &[&str], n: u32, balanced: bool) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let common = [&["conformance", "--no-progress", "-q"], select].concat();
    let single = d.join("single");
    let run = xtask(&[&common[..], &["--out"]].concat(), &[&single]);
    assert!(
        run.status.code() == Some(0) || run.status.code() == Some(1),
        "{run:?}"
    );
    let balance = single.join("report.jsonl");
    let mut shard_dirs = Vec::new();
    for k in 1..=n {
        let out = d.join(format!("shard-{k}"));
        let shard = format!("{k}/{n}");
        let mut args = [&common[..], &["--shard", &shard]].concat();
        if balanced {
            args.extend(["--balance-from", balance.to_str().unwrap()]);
        }
        let run = xtask(&[&args[..], &["--out"]].concat(), &[&out]);
        let stdout = text(&run.stdout);
        assert!(stdout.starts_with(&format!("shard {shard}: ")), "{stdout}");
        let stderr = text(&run.stderr);
        let basis = if balanced {
            "balanced by the durations of"
        } else {
            "by count"
        };
        assert!(stderr.contains(basis), "{stderr}");
        shard_dirs.push(out);
    }
    let merged = d.join("merged");
    let paths: Vec<&Path> = shard_dirs.iter().map(PathBuf::as_path).collect();
    let run = xtask(
        &[
            "conformance",
            "merge",
            "-q",
            "--out",
            merged.to_str().unwrap(),
        ],
        &paths,
    );
    assert!(
        run.status.code() == Some(0) || run.status.code() == Some(1),
        "{run:?}"
    );
    let (one, all) = (records(&single), records(&merged));
    assert_eq!(one.len(), all.len());
    for (a, b) in one.iter().zip(&all) {
        // The first differing line only: a whole report is too long to read in a failure.
        assert_eq!(a, b, "the single run's line, then the merged report's");
    }
    for view in ["summary.md", "junit.xml", "report.html"] {
        assert_eq!(
            masked(&single.join(view), &single),
            masked(&merged.join(view), &merged),
            "{view}"
        );
    }
}

/// The lines of a report.jsonl without timing fields (and the histories' paths, which name
/// the folder), the header's `shard` left in: a merged report has none.
fn records(dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("report.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            if let Some(o) = v.as_object_mut() {
                for timing in ["duration_ms", "wall_ms", "history"] {
                    o.remove(timing);
                }
            }
            v
        })
        .collect()
}

/// A view with its folder's path, every number (durations, pids, sizes) and the embedded raw
/// histories (whose interleaving differs between any two runs) masked.
fn masked(file: &Path, dir: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let text = text.replace(dir.to_str().unwrap(), "OUT");
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with(r#"<script type="application/json" id="h-"#) {
            continue;
        }
        let mut digits = false;
        for c in line.chars() {
            if c.is_ascii_digit() {
                if !digits {
                    out.push('N');
                }
                digits = true;
            } else {
                digits = false;
                out.push(c);
            }
        }
        out.push('\n');
    }
    out
}

#[test]
fn three_shards_of_a_selection_merge_into_the_single_run() {
    // Four cases on all five built-in implementations: 20 cells.
    let select = [
        "--case", "BLK-001", "--case", "BLK-005", "--case", "ORD-001", "--case", "WRK-001",
    ];
    shards_merge_into_the_single_run(&select, 3, false);
}

#[test]
fn balanced_shards_merge_into_the_single_run() {
    let select = [
        "--case",
        "BLK-00",
        "--impl",
        "cpython-threadpool",
        "--impl",
        "rust-ref",
    ];
    shards_merge_into_the_single_run(&select, 3, true);
}

#[test]
#[ignore = "slow: the whole default suite, four times; cargo test -p xtask --test shards -- --ignored"]
fn three_shards_of_the_default_suite_merge_into_the_single_run() {
    shards_merge_into_the_single_run(&[], 3, false);
}

#[test]
#[ignore = "slow: the interpreter matrix, four times; cargo test -p xtask --test shards -- --ignored"]
fn three_shards_of_the_interpreter_matrix_merge_into_the_single_run() {
    shards_merge_into_the_single_run(&["--interpreters"], 3, false);
}

/// Two real shards of a small run (rust-ref only, fast), made once for the refusals, in
/// cargo's temporary folder for tests (a static is never dropped, so no `TempDir`).
fn fixture() -> &'static [PathBuf; 2] {
    static FIXTURE: OnceLock<[PathBuf; 2]> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("shards-fixture");
        let _ = std::fs::remove_dir_all(&dir);
        [1, 2].map(|k| {
            let out = dir.join(format!("s{k}"));
            let shard = format!("{k}/2");
            let run = xtask(
                &[
                    "conformance",
                    "--no-progress",
                    "-q",
                    "--case",
                    "BLK-00",
                    "--impl",
                    "rust-ref",
                    "--shard",
                    &shard,
                    "--out",
                ],
                &[&out],
            );
            assert_eq!(run.status.code(), Some(0), "{run:?}");
            out.join("report.jsonl")
        })
    })
}

/// A copy of `from` (a fixture's report) under a new folder `name`, with `edit` applied to its
/// lines.
fn edited(
    name: &str,
    from: &Path,
    edit: impl Fn(Vec<String>) -> Vec<String>,
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name).join("report.jsonl");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let lines = std::fs::read_to_string(from)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    std::fs::write(&path, edit(lines).join("\n") + "\n").unwrap();
    (dir, path)
}

/// `merge` of `reports` is refused: exit 2, one line on stderr naming `names` (and containing
/// `says`), nothing on stdout, and no --out folder.
fn refused(reports: &[&Path], names: &Path, says: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("merged");
    let run = xtask(
        &["conformance", "merge", "--out", out.to_str().unwrap()],
        reports,
    );
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(names.to_str().unwrap()) && stderr.contains(says),
        "{stderr}"
    );
    assert!(run.stdout.is_empty(), "{}", text(&run.stdout));
    assert!(!out.exists());
}

#[test]
fn the_fixture_merges() {
    let [s1, s2] = fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("merged");
    let run = xtask(
        &["conformance", "merge", "-q", "--out", out.to_str().unwrap()],
        &[s1, s2],
    );
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    assert!(
        text(&run.stdout).starts_with("poolspec: 9 cells, 0 unexpected"),
        "{run:?}"
    );
    let header = &records(&out)[0];
    assert!(header.get("shard").is_none(), "{header}");
}

#[test]
fn a_file_that_is_not_a_report_is_refused() {
    let [s1, _] = fixture();
    let (_keep, notes) = edited("notes", s1, |_| vec!["hello".to_owned()]);
    refused(&[s1, &notes], &notes, "not a report");
}

#[test]
fn a_truncated_report_is_refused() {
    let [s1, s2] = fixture();
    let (_keep, cut) = edited("cut", s2, |mut l| {
        l.pop();
        l
    });
    refused(&[s1, &cut], &cut, "truncated");
}

/// The shard as if interrupted after all its cells but the last (dropped): planned as before.
fn interrupted(mut lines: Vec<String>) -> Vec<String> {
    let planned = lines.len() - 2;
    lines.truncate(lines.len() - 2);
    lines.push(format!(
        r#"{{"type":"footer","complete":false,"interrupted":{{"signal":"SIGINT","finished":{},"planned":{planned}}},"wall_ms":1,"counts":{{"cells":0,"unexpected":0,"per_implementation":{{}},"compliance":{{}}}}}}"#,
        planned - 1
    ));
    lines
}

#[test]
fn an_incomplete_shard_is_refused_unless_allowed() {
    let [s1, s2] = fixture();
    let (_keep, cut) = edited("interrupted", s2, interrupted);
    refused(&[s1, &cut], &cut, "incomplete: interrupted (SIGINT)");
    // Allowed, the merged report is itself incomplete, and says so.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("merged");
    let run = xtask(
        &[
            "conformance",
            "merge",
            "--allow-incomplete",
            "--out",
            out.to_str().unwrap(),
        ],
        &[s1, &cut],
    );
    assert_eq!(run.status.code(), Some(130), "{run:?}");
    let footer = records(&out).pop().unwrap();
    assert_eq!(footer["complete"], false, "{footer}");
    assert_eq!(footer["interrupted"]["planned"], 9, "{footer}");
    // Every view says so.
    for view in ["summary.md", "report.html", "junit.xml"] {
        let text = std::fs::read_to_string(out.join(view)).unwrap();
        assert!(text.contains("(SIGINT) after 8 of 9 cells"), "{view}");
    }
}

/// `lines` with the header's `key` set to `value`.
fn header_with(key: &'static str, value: Value) -> impl Fn(Vec<String>) -> Vec<String> {
    move |mut lines| {
        let mut h: Value = serde_json::from_str(&lines[0]).unwrap();
        let (object, field) = match key.split_once('.') {
            Some((o, f)) => (&mut h[o], f),
            None => (&mut h, key),
        };
        object[field] = value.clone();
        lines[0] = h.to_string();
        lines
    }
}

#[test]
fn mixed_suites_are_refused_naming_both() {
    let [s1, s2] = fixture();
    let (_keep, other) = edited(
        "other",
        s2,
        header_with("suite_hash", "0123456789abcdef".into()),
    );
    refused(&[s1, &other], s1, "different suites");
    refused(&[s1, &other], &other, "different suites");
}

#[test]
fn shards_of_different_runs_are_refused() {
    let [s1, s2] = fixture();
    let (_keep, other) = edited("other", s2, header_with("shard.run", "another".into()));
    refused(&[s1, &other], &other, "different runs");
    let (_keep, other) = edited("other", s2, header_with("shard.count", 3.into()));
    refused(&[s1, &other], &other, "different runs");
}

#[test]
fn a_duplicate_shard_is_refused() {
    let [s1, s2] = fixture();
    let (_keep, again) = edited("again", s2, |l| l);
    refused(&[s1, s2, &again], &again, "both are shard 2/2");
}

#[test]
fn overlapping_cells_are_refused() {
    let [s1, s2] = fixture();
    let first = std::fs::read_to_string(s1)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_owned();
    let (_keep, more) = edited("more", s2, move |mut l| {
        l.insert(1, first.clone());
        l
    });
    refused(&[s1, &more], &more, "both hold BLK-00");
}

#[test]
fn missing_shards_and_cells_are_refused() {
    let [s1, s2] = fixture();
    refused(&[s1], s1, "shard 2 of 2 missing");
    let (_keep, fewer) = edited("fewer", s2, |mut l| {
        l.remove(1);
        l
    });
    refused(
        &[s1, &fewer],
        s1,
        "the shards of its run hold 8 of its 9 cells",
    );
}
