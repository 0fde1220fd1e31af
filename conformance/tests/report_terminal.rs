//! The terminal output of `cargo xtask conformance`, pinned by snapshots: a green run, a run
//! with one unexpected failure, `-v`, `-vv`, colour on, and the `-q` line.
//!
//! The run is a recorded real one (`tests/data/recorded-run.jsonl`: the report of a full run
//! on the five built-in implementations, trimmed to two cases of each area, one of them with
//! an expected failure where an area has one), read back with `report::read`, so the diffs
//! shown are real observations' diffs. The unexpected failure is made by dropping one
//! expectation, as a pool that newly diverges would look.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use conformance::report::terminal::{self, TerminalOptions};
use conformance::report::{self, Model};
use conformance::runner::MatrixRun;
use conformance::spec::LoadedCase;
use conformance::verdict::Verdict;

fn recorded() -> MatrixRun {
    let text = include_str!("data/recorded-run.jsonl");
    let report = report::read(text).unwrap();
    MatrixRun {
        implementations: report.header.implementations,
        results: report.records.into_iter().map(|r| r.result).collect(),
        wall: Duration::from_millis(report.footer.wall_ms),
    }
}

/// The built-in cases the recording ran (for the matrix and the observation differences).
fn cases(run: &MatrixRun) -> Vec<LoadedCase> {
    let suite = conformance::spec::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec"));
    suite
        .cases
        .into_iter()
        .filter(|c| run.results.iter().any(|r| r.case == c.id()))
        .collect()
}

/// The recording with the thread pool's expectation for `case` dropped: now unexpected.
fn with_one_unexpected(case: &str) -> MatrixRun {
    let mut run = recorded();
    let r = run
        .results
        .iter_mut()
        .find(|r| r.case == case && r.implementation == "cpython-threadpool")
        .unwrap();
    assert_eq!(r.verdict, Verdict::ExpectedFail);
    r.verdict = Verdict::Unexpected;
    r.expected = None;
    run
}

fn render(run: &MatrixRun, cases: &[LoadedCase], options: TerminalOptions) -> String {
    terminal::render(&Model::new(run, cases), &options)
}

#[test]
fn a_green_run_fits_a_screen() {
    let run = recorded();
    let cases = cases(&run);
    let text = render(&run, &cases, TerminalOptions::default());
    assert!(text.lines().count() <= 40, "{text}");
    assert!(!text.contains('\u{1b}'), "{text}");
    insta::assert_snapshot!("green", text);
}

#[test]
fn an_unexpected_failure_shows_its_reason_and_diff_without_any_flag() {
    let run = with_one_unexpected("WRK-001");
    let cases = cases(&run);
    let text = render(&run, &cases, TerminalOptions::default());
    assert!(
        text.contains("WRK-001 on cpython-threadpool: FAIL"),
        "{text}"
    );
    assert!(text.contains("  why: "), "{text}");
    assert!(text.contains("--- cpython-fork"), "{text}");
    insta::assert_snapshot!("one_unexpected", text);
}

#[test]
fn verbose_lists_expected_failures_one_line_each() {
    let run = recorded();
    let cases = cases(&run);
    let v = |verbosity| TerminalOptions {
        verbosity,
        ..TerminalOptions::default()
    };
    insta::assert_snapshot!("verbose", render(&run, &cases, v(1)));
    let vv = render(&run, &cases, v(2));
    insta::assert_snapshot!("very_verbose", vv);
    // --show expected is -vv's listing, without -v's other additions.
    let show = TerminalOptions {
        show_expected: true,
        ..TerminalOptions::default()
    };
    let shown = render(&run, &cases, show);
    assert!(vv.starts_with(&shown), "{shown}");
}

#[test]
fn colour_marks_labels_and_headings_only() {
    let run = with_one_unexpected("WRK-001");
    let cases = cases(&run);
    let color = TerminalOptions {
        color: true,
        ..TerminalOptions::default()
    };
    let coloured = render(&run, &cases, color);
    assert!(coloured.contains('\u{1b}'));
    insta::assert_snapshot!("colour", coloured.replace('\u{1b}', "<ESC>"));
    // Without its escapes it is the plain text, byte for byte.
    let plain = render(&run, &cases, TerminalOptions::default());
    assert_eq!(strip_ansi(&coloured), plain);
}

#[test]
fn quiet_is_one_line_with_the_unexpected_ids() {
    let run = recorded();
    let green = terminal::quiet_line(&Model::new(&run, &[]), 0);
    let run = with_one_unexpected("WRK-001");
    let red = terminal::quiet_line(&Model::new(&run, &[]), 1);
    let both = format!("{green}\n{red}\n");
    insta::assert_snapshot!("quiet", both);
    assert!(!green.contains('\n') && !red.contains('\n'));
    // Every cell unexpected: twenty ids, then how many more.
    let mut run = recorded();
    for r in &mut run.results {
        r.verdict = Verdict::Unexpected;
    }
    let all = terminal::quiet_line(&Model::new(&run, &[]), 0);
    assert!(all.ends_with(", and 100 more"), "{all}");
    assert_eq!(all.matches(" on ").count(), 20, "{all}");
}

#[test]
fn the_matrix_is_there_when_asked_for() {
    let run = recorded();
    let cases = cases(&run);
    let options = TerminalOptions {
        matrix: true,
        ..TerminalOptions::default()
    };
    let text = render(&run, &cases, options);
    let matrix = terminal::matrix(&Model::new(&run, &cases));
    assert!(text.starts_with(&matrix), "{text}");
}

/// The text with every `ESC [ ... m` sequence removed.
fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
