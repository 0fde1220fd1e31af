//! What `cargo xtask conformance` prints, on the real binary and a two-cell run (WRK-001 on
//! the oracle, and on the thread pool, where it fails as its expectation file says): a green
//! run is short and ends with the reports line and the closing line CI looks for; colour
//! follows `--color`, `NO_COLOR` and `CLICOLOR_FORCE` (stdout is a pipe here, so `auto` alone
//! never colours); `-q` is one line; `-v` lists the expected failure.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

const ESC: char = '\u{1b}';

/// Runs the two cells with `args` added and the colour variables as given (unset if `None`).
fn run(args: &[&str], no_color: Option<&str>, clicolor_force: Option<&str>) -> Output {
    let out = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args([
        "conformance",
        "--case",
        "WRK-001",
        "--impl",
        "cpython-fork",
        "--impl",
        "cpython-threadpool",
        "--no-progress",
        "--timeout-multiplier",
        "5",
        "--out",
    ])
    .arg(out.path())
    .args(args)
    .env("PYTHONDONTWRITEBYTECODE", "1")
    .env_remove("NO_COLOR")
    .env_remove("CLICOLOR_FORCE");
    if let Some(v) = no_color {
        cmd.env("NO_COLOR", v);
    }
    if let Some(v) = clicolor_force {
        cmd.env("CLICOLOR_FORCE", v);
    }
    let output = cmd.output().unwrap();
    assert!(
        output.status.success(),
        "{output:?}\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    output
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn a_green_run_is_short_and_ends_with_the_closing_line() {
    let text = stdout(&run(&[], None, None));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() <= 40, "{text}");
    assert_eq!(
        lines.last(),
        Some(&"conformance: 2 passed, 0 failed"),
        "{text}"
    );
    assert!(lines[lines.len() - 2].starts_with("Reports in "), "{text}");
    assert!(text.contains("1 expected failure,"), "{text}");
    // No diff of the expected failure without -vv.
    assert!(!text.contains("+++ cpython-threadpool"), "{text}");
    assert!(!text.contains(ESC), "{text}");
}

#[test]
fn colour_follows_the_flag_then_the_environment() {
    let has_esc = |o: Output| stdout(&o).contains(ESC);
    assert!(has_esc(run(&["--color", "always"], Some("1"), None)));
    assert!(has_esc(run(&[], None, Some("1"))));
    assert!(!has_esc(run(&[], Some("1"), Some("1"))));
    assert!(!has_esc(run(&["--color", "never"], None, Some("1"))));
}

#[test]
fn quiet_is_one_line() {
    let o = run(&["-q"], None, None);
    assert_eq!(stdout(&o), "poolspec: 2 cells, 0 unexpected\n");
}

#[test]
fn verbose_lists_the_expected_failure_and_every_finished_cell() {
    let o = run(&["-v"], None, None);
    let text = stdout(&o);
    assert!(
        text.lines()
            .any(|l| l.starts_with("  WRK-001  cpython-threadpool  fail  ")),
        "{text}"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("poolspec: finished ").count(), 2, "{err}");
    // -vv adds its diff.
    let text = stdout(&run(&["-vv"], None, None));
    assert!(text.contains("+++ cpython-threadpool"), "{text}");
}
