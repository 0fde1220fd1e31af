//! What `cargo xtask conformance` prints: the matrix as plain text, and the details of every
//! cell that is not a plain pass.

use std::fmt::Write as _;

use super::model::Model;
use crate::verdict::Verdict;

/// The matrix as plain text: one row per case, one column per implementation.
pub fn matrix(model: &Model<'_>) -> String {
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
            let label = model.cell(c.id(), n).map_or("-", |cell| cell.kind.label());
            let _ = write!(out, "  {label:w$}");
        }
        out.push('\n');
    }
    out
}

/// Every cell that is not a plain pass, with its reason and diff against the oracle.
pub fn details(model: &Model<'_>) -> String {
    let mut out = String::new();
    for cell in model
        .cells
        .iter()
        .filter(|c| c.result.verdict != Verdict::Pass)
    {
        let r = cell.result;
        let _ = writeln!(
            out,
            "{} on {}: {}",
            r.case,
            r.implementation,
            cell.kind.label()
        );
        if let Some(reason) = &r.reason {
            let _ = writeln!(out, "  why: {reason}");
        }
        if let Some(e) = &r.expected {
            let _ = writeln!(out, "  expected {}: {}", e.status.as_str(), e.reason);
        }
        if let Some(u) = &r.unstable {
            let _ = writeln!(out, "  unstable: {u}");
        }
        for line in cell.diff().into_iter().flat_map(str::lines) {
            let _ = writeln!(out, "  {line}");
        }
        if let Some(h) = &r.history {
            let _ = writeln!(out, "  history: {}", h.display());
        }
    }
    out
}
