//! What `cargo xtask conformance` prints, as pure functions from a [`Model`] and
//! [`TerminalOptions`] to text, so every shape of the output is snapshot-tested.
//!
//! In the shape of cargo-nextest's reporter: the model aggregates, these functions only
//! display. The default output of a green run fits a screen: the per-implementation summary
//! ([`summary`]), one line about the expected failures, and the full detail of every
//! *unexpected* result ([`listing`]), last, next to the closing line. `-v` lists the expected
//! failures one line each and the cases whose observation differs from the oracle's (always
//! shown in an `--interpreters` run); `-vv` (or `--show expected`) shows the expected failures
//! in full; `--matrix` prints the whole [`mod@matrix`] first; `-q` is [`quiet_line`]. Colour
//! ([`style`]) only marks labels and headings.

pub mod listing;
pub mod matrix;
pub mod style;
pub mod summary;

use std::fmt::Write as _;

pub use listing::details;
pub use matrix::matrix;
use style::Style;

use super::model::Model;
use crate::implementations::ORACLE;

/// How much to show, and whether in colour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TerminalOptions {
    /// 0: summary and unexpected results; 1 (`-v`): also a line per expected failure and the
    /// observation differences; 2 (`-vv`): the expected failures in full.
    pub verbosity: u8,
    /// `--show expected`: the expected failures in full, whatever the verbosity.
    pub show_expected: bool,
    /// `--matrix`: the whole matrix first.
    pub matrix: bool,
    /// The cases observed differently from the oracle, whatever the verbosity (the point of
    /// an `--interpreters` run).
    pub differences: bool,
    pub color: bool,
}

/// The run as the terminal shows it (before the closing lines xtask adds).
pub fn render(model: &Model<'_>, options: &TerminalOptions) -> String {
    let style = Style {
        color: options.color,
    };
    let mut out = String::new();
    if options.matrix {
        out.push_str(&matrix::styled(model, style));
        out.push('\n');
    }
    out.push_str(&summary::render(model, style));

    let expected = listing::expected_failures(model);
    let n = expected.len();
    if n > 0 {
        let heading = format!(
            "{}, as the expectation files say",
            plural(n, "expected failure")
        );
        if options.show_expected || options.verbosity >= 2 {
            let _ = writeln!(out, "\n{}:", style.heading(&heading));
            for c in &expected {
                out.push_str(&listing::detail(c, style));
            }
        } else if options.verbosity >= 1 {
            let _ = writeln!(
                out,
                "\n{} (-vv shows their diffs):",
                style.heading(&heading)
            );
            out.push_str(&listing::expected_lines(&expected, style));
        } else {
            let _ = writeln!(
                out,
                "\n{heading} {}",
                style.dim("(-v lists them, -vv shows their diffs)")
            );
        }
    }

    if options.verbosity >= 1 || options.differences {
        let diffs = model.differences();
        if !diffs.is_empty() {
            let heading = format!("Observations that differ from {ORACLE}:");
            let _ = writeln!(out, "\n{}", style.heading(&heading));
            for (case, imps) in diffs {
                let _ = writeln!(out, "  {case:10} {}", imps.join(", "));
            }
        }
    }

    let unexpected: Vec<_> = listing::unexpected(model).collect();
    if !unexpected.is_empty() {
        let heading = format!("{}:", plural(unexpected.len(), "unexpected result"));
        let _ = writeln!(out, "\n{}", style.bad(&heading));
        for c in unexpected {
            out.push_str(&listing::detail(c, style));
        }
    }
    out
}

/// The one line of `-q`: `poolspec: 560 cells, 0 unexpected`, or the ids of the unexpected
/// results (`...; 2 unexpected: ORD-003 on rust-ref, ...`). `spec_errors` counts spec files
/// or cases that did not load.
pub fn quiet_line(model: &Model<'_>, spec_errors: usize) -> String {
    let mut line = format!("poolspec: {} cells", model.cells.len());
    if let Some(i) = &model.interruption {
        let _ = write!(line, " ({})", i.describe());
    }
    let ids: Vec<String> = listing::unexpected(model)
        .map(|c| format!("{} on {}", c.result.case, c.result.implementation))
        .collect();
    if ids.is_empty() {
        let _ = write!(line, ", 0 unexpected");
    } else {
        let _ = write!(line, "; {} unexpected: ", ids.len());
        // A broken implementation can fail every case: the line stays a line.
        if ids.len() > QUIET_IDS {
            let more = ids.len() - QUIET_IDS;
            let _ = write!(line, "{}, and {more} more", ids[..QUIET_IDS].join(", "));
        } else {
            line.push_str(&ids.join(", "));
        }
    }
    if spec_errors > 0 {
        let _ = write!(line, "; {}", spec_errors_line(spec_errors));
    }
    line
}

/// How many unexpected results the `-q` line names.
const QUIET_IDS: usize = 20;

/// `1 spec file or case did not load`, `2 spec files or cases did not load`.
pub fn spec_errors_line(n: usize) -> String {
    if n == 1 {
        "1 spec file or case did not load".to_owned()
    } else {
        format!("{n} spec files or cases did not load")
    }
}

/// `1 expected failure`, `12 expected failures`.
fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}
