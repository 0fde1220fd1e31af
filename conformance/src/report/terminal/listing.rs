//! Cells one by one: the full detail of a cell (reason, expectation, instability, its diff
//! against the oracle, its history), shown for every unexpected result; and the expected
//! failures, one line each (`-v`) or in full (`-vv`, `--show expected`).

use std::fmt::Write as _;

use super::matrix::paint;
use super::style::Style;
use crate::report::detail;
use crate::report::model::{Cell, Model};
use crate::verdict::Verdict;

/// Every cell that is not a plain pass, in full, without colour.
pub fn details(model: &Model<'_>) -> String {
    let mut out = String::new();
    for cell in model
        .cells
        .iter()
        .filter(|c| c.result.verdict != Verdict::Pass)
    {
        out.push_str(&detail(cell, Style::default()));
    }
    out
}

/// One cell in full: `CASE on IMPL: LABEL`, then why, what was expected, the instability, the
/// diff against the oracle ([`Cell::diff`]) and the history's path, each indented.
pub fn detail(cell: &Cell<'_>, style: Style) -> String {
    let r = cell.result;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} on {}: {}",
        r.case,
        r.implementation,
        paint(style, cell.kind, cell.kind.label())
    );
    for line in detail::lines(cell) {
        // The history's path is where to look next, not what happened: dimmed.
        let line = match line.strip_prefix("history: ") {
            Some(path) => format!("history: {}", style.dim(path)),
            None => line,
        };
        let _ = writeln!(out, "  {line}");
    }
    out
}

/// The cells whose verdict fails the run, in the run's order.
pub fn unexpected<'m, 'a>(model: &'m Model<'a>) -> impl Iterator<Item = &'m Cell<'a>> {
    model.cells.iter().filter(|c| !c.result.verdict.is_ok())
}

/// The cells that did not pass, as their expectation files say, grouped by implementation in
/// column order.
pub fn expected_failures<'m, 'a>(model: &'m Model<'a>) -> Vec<&'m Cell<'a>> {
    model
        .names()
        .into_iter()
        .flat_map(|name| model.cells_of(name).collect::<Vec<_>>())
        .filter(|c| c.result.verdict == Verdict::ExpectedFail)
        .collect()
}

/// One line per expected failure: case, implementation, status, the expectation's reason.
pub fn expected_lines(cells: &[&Cell<'_>], style: Style) -> String {
    let width = |f: fn(&Cell<'_>) -> usize| cells.iter().map(|c| f(c)).max().unwrap_or(0);
    let case_w = width(|c| c.result.case.len());
    let impl_w = width(|c| c.result.implementation.len());
    let status_w = width(|c| c.result.status.as_str().len());
    let mut out = String::new();
    for c in cells {
        let r = c.result;
        let reason = r.expected.as_ref().map_or("", |e| e.reason.as_str());
        let status = format!("{:status_w$}", r.status.as_str());
        let line = format!(
            "  {:case_w$}  {:impl_w$}  {}  {reason}",
            r.case,
            r.implementation,
            style.known(&status)
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}
