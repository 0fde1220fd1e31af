//! The full matrix as text (`--matrix`): one row per case, one column per implementation.

use std::fmt::Write as _;

use super::style::Style;
use crate::report::model::{CellKind, Model};

/// The matrix as plain text.
pub fn matrix(model: &Model<'_>) -> String {
    styled(model, Style::default())
}

/// The matrix, its labels coloured by [`paint`] when `style` says so.
pub fn styled(model: &Model<'_>, style: Style) -> String {
    let names = model.names();
    let id_width = model
        .cases
        .iter()
        .map(|c| c.id().len())
        .max()
        .unwrap_or(4)
        .max(4);
    let widths: Vec<usize> = names.iter().map(|n| n.len().max(15)).collect();
    let mut out = String::new();
    let _ = write!(out, "{:id_width$}  {:16}", "case", "area");
    for (n, w) in names.iter().zip(&widths) {
        let _ = write!(out, "  {n:w$}");
    }
    out.push('\n');
    for c in model.cases {
        let _ = write!(out, "{:id_width$}  {:16}", c.id(), c.area.as_str());
        for (n, w) in names.iter().zip(&widths) {
            let kind = model.cell(c.id(), n).map(|cell| cell.kind);
            let label = kind.map_or("-", CellKind::label);
            // Padded as plain text, so colour codes never shift the columns.
            let padded = format!("{label:w$}");
            let _ = write!(
                out,
                "  {}",
                kind.map_or(padded.clone(), |k| paint(style, k, &padded))
            );
        }
        out.push('\n');
    }
    out
}

/// A label in its kind's colour: green for a pass, yellow for a known divergence, red for
/// anything that fails the run, plain for a case that did not apply.
pub fn paint(style: Style, kind: CellKind, text: &str) -> String {
    match kind {
        CellKind::Pass => style.good(text),
        CellKind::ExpectedFail => style.known(text),
        CellKind::NotApplicable => text.to_owned(),
        _ => style.bad(text),
    }
}
