//! The comparison and its views on constructed pairs of reports: a regression, a fix, an
//! observation change, other status changes, added and removed cells, cases and
//! implementations; timing that never counts; bad inputs, each naming its file.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{CompareError, Group, Side, compare, markdown, terminal};
use crate::report::jsonl;

/// One cell: case, implementation, status, verdict, reason, observation.
type CellSpec<'a> = (&'a str, &'a str, &'a str, &'a str, Option<&'a str>, Value);

/// The text of a complete report of `cells` on `implementations`, with `ms` as every timing.
fn report_text(implementations: &[&str], cells: &[CellSpec<'_>], ms: u64) -> String {
    let header = json!({
        "type": "header", "harness": "poolspec", "harness_version": "0.1.0", "protocol": 2,
        "case_format": 1, "suite_hash": "5e1f00d5c0ffee00", "cases": 4, "oracle": "cpython-fork",
        "started": format!("2026-01-01T00:00:{:02}Z", ms % 60),
        "implementations": implementations.iter()
            .map(|n| json!({"name": n, "capabilities": []})).collect::<Vec<_>>(),
    });
    let mut lines = vec![header.to_string()];
    for (case, implementation, status, verdict, reason, observation) in cells {
        let mut r = json!({
            "type": "result", "case": case, "area": "ordering", "quirk": false,
            "implementation": implementation, "status": status, "verdict": verdict,
            "duration_ms": ms, "history": format!("/tmp/run-{ms}/{implementation}/{case}.json"),
        });
        if let Some(reason) = reason {
            r["reason"] = json!(reason);
        }
        if !observation.is_null() {
            r["observation"] = observation.clone();
        }
        lines.push(r.to_string());
    }
    let footer = json!({
        "type": "footer", "complete": true, "wall_ms": ms * 10,
        "counts": {"cells": cells.len(), "unexpected": 0, "per_implementation": {}, "compliance": {}},
    });
    lines.push(footer.to_string());
    lines.join("\n") + "\n"
}

fn side(path: &str, text: &str) -> Side {
    Side {
        path: PathBuf::from(path),
        report: jsonl::read(text).expect("a valid report"),
    }
}

fn obs(results: &[u32]) -> Value {
    json!({"results": {"s1": results}, "worker_processes": 2})
}

/// The pair every view is pinned on.
fn pair() -> (Side, Side) {
    let old = report_text(
        &["cpython-fork", "threadpool", "gone"],
        &[
            ("WRK-001", "cpython-fork", "pass", "pass", None, obs(&[1])),
            (
                "WRK-001",
                "threadpool",
                "fail",
                "unexpected",
                Some("no worker"),
                obs(&[1]),
            ),
            (
                "ORD-001",
                "cpython-fork",
                "pass",
                "pass",
                None,
                obs(&[1, 2, 3]),
            ),
            (
                "ORD-001",
                "threadpool",
                "fail",
                "expected-fail",
                Some("order"),
                obs(&[2]),
            ),
            ("ORD-002", "cpython-fork", "pass", "pass", None, obs(&[4])),
            ("ORD-002", "gone", "pass", "pass", None, obs(&[4])),
            ("ORD-003", "cpython-fork", "pass", "pass", None, obs(&[5])),
            ("ORD-003", "threadpool", "pass", "pass", None, obs(&[5])),
            ("OLD-001", "cpython-fork", "pass", "pass", None, obs(&[6])),
            ("OLD-001", "threadpool", "pass", "pass", None, obs(&[6])),
        ],
        3,
    );
    let new = report_text(
        &["cpython-fork", "threadpool", "fresh"],
        &[
            (
                "WRK-001",
                "cpython-fork",
                "fail",
                "unexpected",
                Some("worker_processes is 0, not 2"),
                obs(&[0]),
            ),
            ("WRK-001", "threadpool", "pass", "pass", None, obs(&[1])),
            ("WRK-001", "fresh", "pass", "pass", None, obs(&[1])),
            (
                "ORD-001",
                "cpython-fork",
                "pass",
                "pass",
                None,
                obs(&[1, 3, 2]),
            ),
            (
                "ORD-001",
                "threadpool",
                "timeout",
                "expected-fail",
                Some("hung"),
                Value::Null,
            ),
            ("ORD-002", "cpython-fork", "pass", "pass", None, obs(&[4])),
            ("ORD-002", "threadpool", "pass", "pass", None, obs(&[4])),
            ("ORD-003", "cpython-fork", "pass", "pass", None, obs(&[5])),
            ("NEW-001", "cpython-fork", "pass", "pass", None, obs(&[7])),
            (
                "NEW-001",
                "threadpool",
                "crash",
                "unexpected",
                Some("exited early"),
                Value::Null,
            ),
        ],
        9,
    );
    (
        side("old/report.jsonl", &old),
        side("new/report.jsonl", &new),
    )
}

#[test]
fn every_kind_of_change_lands_in_its_group() {
    let (old, new) = pair();
    let c = compare(&old, &new);
    let cells = |g: Group| -> Vec<String> {
        c.of(g)
            .map(|x| format!("{}/{}", x.case, x.implementation))
            .collect()
    };
    assert_eq!(
        cells(Group::Regression),
        ["WRK-001/cpython-fork", "NEW-001/threadpool"]
    );
    assert_eq!(cells(Group::Fix), ["WRK-001/threadpool"]);
    assert_eq!(cells(Group::StatusChange), ["ORD-001/threadpool"]);
    assert_eq!(cells(Group::ObservationChange), ["ORD-001/cpython-fork"]);
    assert_eq!(cells(Group::Added), ["ORD-002/threadpool"]);
    assert_eq!(cells(Group::Removed), ["ORD-003/threadpool"]);
    let names = |m: &[(String, usize)]| {
        m.iter()
            .map(|(n, k)| format!("{n}:{k}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&c.added.cases), ["NEW-001:2"]);
    assert_eq!(names(&c.added.implementations), ["fresh:1"]);
    assert_eq!(names(&c.removed.cases), ["OLD-001:2"]);
    assert_eq!(names(&c.removed.implementations), ["gone:1"]);
    assert!(c.regressed());
}

#[test]
fn a_fix_alone_is_no_regression() {
    let cells = |status, verdict| -> String {
        report_text(
            &["a"],
            &[("ORD-001", "a", status, verdict, None, obs(&[1]))],
            1,
        )
    };
    let (old, new) = (
        side("old", &cells("fail", "unexpected")),
        side("new", &cells("pass", "pass")),
    );
    let c = compare(&old, &new);
    assert_eq!(c.count(Group::Fix), 1);
    assert!(!c.regressed());
    // The other way round, and a pass that became an expected failure: regressions.
    assert!(compare(&new, &old).regressed());
    let expected = side("x", &cells("fail", "expected-fail"));
    assert!(compare(&new, &expected).regressed());
}

#[test]
fn two_identical_runs_differ_in_nothing_but_timing() {
    let (old, _) = pair();
    let mut again = old.clone();
    for r in &mut again.report.records {
        r.result.duration_ms += 1000;
        r.result.history = Some(PathBuf::from("/elsewhere"));
    }
    again.report.footer.wall_ms += 1;
    again.report.header.started = Some("2027-02-02T02:02:02Z".into());
    let c = compare(&old, &again);
    assert!(c.is_empty(), "{c:?}");
    assert!(!c.regressed());
    assert_eq!(terminal::render(&c), "no differences\n");
    assert!(markdown::render(&c).contains("no differences"));
}

#[test]
fn the_terminal_view() {
    let (old, new) = pair();
    insta::assert_snapshot!(terminal::render(&compare(&old, &new)));
}

#[test]
fn the_markdown_view() {
    let (old, new) = pair();
    insta::assert_snapshot!(markdown::render(&compare(&old, &new)));
}

#[test]
fn the_markdown_view_stays_within_its_budget() {
    // 3,000 regressions, each with a reason and a diff: far more than a comment holds.
    let many = |status: &str, verdict: &str, n: u32| -> String {
        let cells: Vec<(String, Value)> = (0..3000)
            .map(|i| (format!("GEN-{i:04}"), obs(&[n, i])))
            .collect();
        let specs: Vec<CellSpec<'_>> = cells
            .iter()
            .map(|(id, o)| {
                (
                    id.as_str(),
                    "a",
                    status,
                    verdict,
                    Some("a long reason"),
                    o.clone(),
                )
            })
            .collect();
        report_text(&["a"], &specs, 1)
    };
    let (old, new) = (
        side("old", &many("pass", "pass", 1)),
        side("new", &many("fail", "unexpected", 2)),
    );
    let c = compare(&old, &new);
    assert_eq!(c.count(Group::Regression), 3000);
    let text = markdown::render(&c);
    assert!(
        text.chars().count() <= markdown::COMMENT_LIMIT,
        "{}",
        text.len()
    );
    assert!(text.contains("more not shown"), "{text}");
    assert!(text.trim_end().ends_with("for all of it._"));
    // Every opened block is closed.
    assert_eq!(
        text.matches("<details>").count(),
        text.matches("</details>").count()
    );
    // The table: at most 50 rows and a last one saying how many more are below.
    assert_eq!(text.matches("\n| GEN-").count(), 50);
    assert!(text.contains("\n| … 2950 more below | | | |\n"));
    // A small budget: the summary and table head stay; every change is shown or counted.
    let small = markdown::render_within(&c, 4_000);
    assert!(small.len() <= 4_000, "{}", small.len());
    let shown = small.matches("- **GEN-").count();
    assert!(shown > 0, "{small}");
    let not_shown: usize = small
        .rsplit("\n_")
        .next()
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a count of what was left out");
    assert_eq!(shown + not_shown, 3000, "{small}");
}

/// Writes `text` to `name` under `dir`, returning its path.
fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bad_inputs_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let whole = report_text(
        &["a"],
        &[("ORD-001", "a", "pass", "pass", None, obs(&[1]))],
        1,
    );
    let truncated: String = whole.lines().take(2).map(|l| format!("{l}\n")).collect();
    let cases = [
        (file(d, "empty.jsonl", ""), "empty report"),
        (file(d, "cut.jsonl", &truncated), "no footer"),
        (file(d, "notes.txt", "some notes\n"), "not JSON"),
        (file(d, "other.json", "{\"type\":\"x\"}\n"), "not a header"),
        (d.join("missing.jsonl"), "cannot read"),
        (d.join("empty-folder"), "cannot read"),
    ];
    std::fs::create_dir(d.join("empty-folder")).unwrap();
    for (path, why) in cases {
        let err = Side::read(&path).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with(&path.display().to_string()), "{text}");
        assert!(text.contains(why), "{text}");
        assert!(!text.contains('\n'), "one line: {text}");
        assert!(matches!(
            err,
            CompareError::Read { .. } | CompareError::Invalid { .. }
        ));
    }
    // A folder holding a report reads as that report.
    let run = d.join("run");
    std::fs::create_dir(&run).unwrap();
    file(&run, "report.jsonl", &whole);
    let side = Side::read(&run).unwrap();
    assert_eq!(side.path, run.join("report.jsonl"));
    assert_eq!(side.report.records.len(), 1);
}

#[test]
fn an_interrupted_report_compares_and_says_so() {
    let (old, _) = pair();
    let mut cut = old.clone();
    cut.report.records.truncate(8);
    cut.report.footer.complete = false;
    cut.report.footer.interrupted = Some(crate::cancel::Interruption {
        signal: "SIGINT".into(),
        finished: 8,
        planned: 10,
    });
    let c = compare(&old, &cut);
    assert_eq!(c.removed.cases, [("OLD-001".to_owned(), 2)]);
    assert!(!c.regressed());
    let text = terminal::render(&c);
    assert!(
        text.contains(
            "(suite 5e1f00d5c0ffee00, 8 cells, interrupted (SIGINT) after 8 of 10 cells)"
        ),
        "{text}"
    );
    assert!(markdown::render(&c).contains("> The new report was interrupted (SIGINT)"));
}
