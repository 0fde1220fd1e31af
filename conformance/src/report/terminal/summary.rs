//! The per-implementation summary: pass, expected-fail and unexpected counts with contract
//! and quirk compliance, one row each, and under a row the areas where something is not a
//! pass. Every number comes from the [`Model`]; nothing is recounted here but the per-area
//! tally of the cells' kinds.

use std::fmt::Write as _;

use indexmap::IndexMap;

use super::style::Style;
use crate::report::model::{CellKind, Model};

/// The summary table, with a heading line.
pub fn render(model: &Model<'_>, style: Style) -> String {
    let mut out = String::new();
    let cases = model
        .cells
        .iter()
        .map(|c| c.result.case.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let heading = format!(
        "{} cells ({} cases on {} implementations) in {:.1} s",
        model.cells.len(),
        cases,
        model.implementations.len(),
        model.run.wall.as_secs_f64()
    );
    let _ = writeln!(out, "{}", style.heading(&heading));
    if let Some(i) = &model.interruption {
        let line = format!(
            "{}: the counts are of the cells that finished",
            i.describe()
        );
        let _ = writeln!(out, "{}", style.bad(&line));
    }
    let name_w = model
        .implementations
        .iter()
        .map(|s| s.implementation.name.len())
        .max()
        .unwrap_or(0)
        .max("implementation".len());
    let header = format!(
        "  {:name_w$}  {:>5}  {:>13}  {:>10}  {:>9}  {:>14}",
        "implementation", "pass", "expected-fail", "unexpected", "contract", "CPython quirks"
    );
    let _ = writeln!(out, "{}", style.heading(&header));
    for s in &model.implementations {
        let (contract, quirk) = (s.compliance.contract, s.compliance.quirk);
        let expected = format!("{:>13}", s.expected_fail);
        let unexpected = format!("{:>10}", s.unexpected);
        let _ = writeln!(
            out,
            "  {:name_w$}  {:>5}  {}  {}  {:>9}  {:>14}",
            s.implementation.name,
            s.passed,
            if s.expected_fail > 0 {
                style.known(&expected)
            } else {
                expected
            },
            if s.unexpected > 0 {
                style.bad(&unexpected)
            } else {
                unexpected
            },
            format!("{}/{}", contract.passed, contract.cases),
            format!("{}/{}", quirk.passed, quirk.cases),
        );
        for line in areas_not_passing(model, &s.implementation.name) {
            let _ = writeln!(out, "    {}", style.dim(&line));
        }
    }
    out
}

/// Where an implementation did not pass, one kind at a time in legend order, each with its
/// areas in the run's order: `expected-fail: faults 10, workers 6, ...` (wrapped at
/// [`WIDTH`]). Nothing when every cell passed.
fn areas_not_passing(model: &Model<'_>, implementation: &str) -> Vec<String> {
    let mut kinds: IndexMap<CellKind, IndexMap<&str, usize>> = IndexMap::new();
    for c in model.cells_of(implementation) {
        if c.kind != CellKind::Pass {
            *kinds
                .entry(c.kind)
                .or_default()
                .entry(c.result.area.as_str())
                .or_default() += 1;
        }
    }
    kinds.sort_keys();
    let mut lines = Vec::new();
    for (kind, areas) in kinds {
        let mut line = format!("{}:", kind.label());
        for (n, (area, count)) in areas.iter().enumerate() {
            let item = format!(
                " {area} {count}{}",
                if n + 1 < areas.len() { "," } else { "" }
            );
            if line.len() + item.len() > WIDTH {
                lines.push(line);
                line = " ".repeat(kind.label().len() + 1);
            }
            line.push_str(&item);
        }
        lines.push(line);
    }
    lines
}

/// The width the area lines wrap at (a narrow terminal's, less the indent).
const WIDTH: usize = 92;
