//! `cargo xtask conformance diff` end to end on real runs (two cases on ThreadPool): two
//! identical runs differ in nothing; a run with one expectation deliberately broken names
//! exactly that cell and exits 1; bad inputs exit 2 with one line naming the file. The same
//! runs feed `badge` and `trend`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const IMPL: &str = "cpython-threadpool";

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("conformance")
        .args(args)
        .output()
        .expect("running xtask")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs WRK-001 (an expected failure of ThreadPool) and ORD-001 into `out`.
fn run(out: &Path, expectations: Option<&Path>) -> Output {
    let out_s = out.display().to_string();
    let mut args = vec![
        "--case", "WRK-001", "--case", "ORD-001", "--impl", IMPL, "--out", &out_s,
    ];
    let file;
    if let Some(e) = expectations {
        file = e.display().to_string();
        args.extend(["--expectations", &file]);
    }
    xtask(&args)
}

fn diff(old: &Path, new: &Path, extra: &[&str]) -> Output {
    let (old, new) = (old.display().to_string(), new.display().to_string());
    let mut args = vec!["diff", old.as_str(), new.as_str()];
    args.extend(extra);
    xtask(&args)
}

/// The committed expectations of ThreadPool without the entry for WRK-001.
fn broken_expectations(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let committed =
        std::fs::read_to_string(root.join("fixtures/expectations/cpython-threadpool.yaml"))
            .expect("the committed expectations");
    let mut lines = committed.lines().peekable();
    let mut kept = Vec::new();
    while let Some(line) = lines.next() {
        if line == "  WRK-001:" {
            // Skip the entry's own (more indented) lines.
            while lines.peek().is_some_and(|l| l.starts_with("    ")) {
                lines.next();
            }
            continue;
        }
        kept.push(line);
    }
    assert!(
        kept.len() < committed.lines().count(),
        "the entry was removed"
    );
    let path = dir.join("broken.yaml");
    std::fs::write(&path, kept.join("\n") + "\n").expect("test setup");
    path
}

#[test]
fn diff_of_real_runs_badges_and_trend() {
    let tmp = tempfile::tempdir().expect("test setup");
    let runs = tmp.path().join("runs");
    let (a, b, c) = (runs.join("a"), runs.join("b"), runs.join("c"));
    for dir in [&a, &b] {
        let out = run(dir, None);
        assert!(out.status.success(), "{:?}", text(&out));
    }
    let broken = broken_expectations(tmp.path());
    let out = run(&c, Some(&broken));
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));

    let report = std::fs::read_to_string(a.join("report.jsonl")).expect("test setup");
    assert!(
        report
            .lines()
            .next()
            .expect("test setup")
            .contains("\"started\":\"20"),
        "{report}"
    );
    let summary = std::fs::read_to_string(a.join("summary.md")).expect("summary.md");
    assert!(summary.contains(" s, started 20"), "{summary}");
    let html = std::fs::read_to_string(a.join("report.html")).expect("report.html");
    assert!(html.contains(" · started <time>20"));

    // Two identical runs: one line, exit 0 (folders or files alike).
    let out = diff(&a, &b.join("report.jsonl"), &[]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_eq!(text(&out).0, "no differences\n");

    // The broken expectation: exactly that cell, a regression, exit 1.
    let out = diff(&a, &c, &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("\n1 regression\n"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "\nRegressions:\n  WRK-001 on {IMPL}: fail (expected) → fail (unexpected)\n"
        )),
        "{stdout}"
    );
    assert_eq!(stdout.matches(" on ").count(), 1, "{stdout}");
    // The other way round it is a fix, and nothing regressed.
    let out = diff(&c, &a, &[]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert!(text(&out).0.contains("\n1 fix\n"));
    // As a pull-request comment.
    let out = diff(&a, &c, &["--format", "markdown"]);
    let stdout = text(&out).0;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout.starts_with("### poolspec diff\n\n**1 regression**"),
        "{stdout}"
    );
    assert!(stdout.contains(&format!(
        "| WRK-001 | {IMPL} | fail (expected) | fail (unexpected) |"
    )));

    // Bad inputs: one line naming the file, exit 2, nothing on stdout.
    let bad = tmp.path().join("bad");
    std::fs::create_dir(&bad).expect("test setup");
    let cut: String = report.lines().take(2).map(|l| format!("{l}\n")).collect();
    let inputs = [
        ("truncated.jsonl", Some(cut.as_str())),
        ("empty.jsonl", Some("")),
        ("notes.txt", Some("these are notes\n")),
        ("missing.jsonl", None),
    ];
    for (name, content) in inputs {
        let path = bad.join(name);
        if let Some(content) = content {
            std::fs::write(&path, content).expect("test setup");
        }
        for (old, new) in [(&a, &path), (&path, &a)] {
            let out = diff(old, new, &[]);
            let (stdout, stderr) = text(&out);
            assert_eq!(out.status.code(), Some(2), "{name}: {stdout}{stderr}");
            assert_eq!(stdout, "", "{name}");
            assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
            assert!(stderr.contains(&path.display().to_string()), "{stderr}");
        }
    }

    // Badges: one per implementation of the run.
    let badges = tmp.path().join("badges");
    let out = xtask(&[
        "badge",
        &a.display().to_string(),
        "--out",
        &badges.display().to_string(),
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let svg = std::fs::read_to_string(badges.join(format!("{IMPL}.svg"))).expect("test setup");
    assert!(
        svg.starts_with("<svg ") && svg.contains("contract 1/2"),
        "{svg}"
    );

    // Trend: the three runs, and a warning for a bad file among them.
    std::fs::write(runs.join("cut.jsonl"), &cut).expect("test setup");
    let out = xtask(&["trend", &runs.display().to_string()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
    assert!(stdout.starts_with("started "), "{stdout}");
    assert!(
        stderr.contains("cut.jsonl") && stderr.lines().count() == 1,
        "{stderr}"
    );
}
