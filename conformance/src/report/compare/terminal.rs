//! The terminal view of a comparison: a line per side, the summary, then each group's
//! changes (regressions first), each with its reason and observation diff.

use std::fmt::Write as _;

use super::{Change, Comparison, Group, Membership, RunInfo};

/// The comparison as plain text; exactly `no differences\n` when nothing differs.
pub fn render(c: &Comparison) -> String {
    if c.is_empty() {
        return "no differences\n".into();
    }
    let mut out = String::new();
    side(&mut out, "old", &c.old);
    side(&mut out, "new", &c.new);
    let _ = writeln!(out, "{}", c.summary());
    for group in Group::ALL {
        let mut changes = c.of(group).peekable();
        if changes.peek().is_none() {
            continue;
        }
        let _ = writeln!(out, "\n{}:", group.title());
        for change in changes {
            cell(&mut out, change);
        }
    }
    membership(&mut out, "Added", &c.added);
    membership(&mut out, "Removed", &c.removed);
    out
}

fn side(out: &mut String, label: &str, run: &RunInfo) {
    let _ = write!(
        out,
        "{label}: {} (suite {}, {} cells",
        run.path, run.suite_hash, run.cells
    );
    if let Some(why) = &run.interrupted {
        let _ = write!(out, ", {why}");
    }
    let _ = writeln!(out, ")");
}

/// `  CASE on IMPL: old → new`, the reason, and the observation diff indented.
fn cell(out: &mut String, change: &Change) {
    let _ = writeln!(
        out,
        "  {} on {}: {}",
        change.case,
        change.implementation,
        change.transition()
    );
    if let Some(reason) = change.reason() {
        let _ = writeln!(out, "    reason: {reason}");
    }
    if let Some(diff) = &change.observation_diff {
        for line in diff.lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
}

fn membership(out: &mut String, how: &str, m: &Membership) {
    if m.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{how}:");
    let plural = |n: usize| if n == 1 { "cell" } else { "cells" };
    for (name, n) in &m.implementations {
        let _ = writeln!(out, "  implementation {name} ({n} {})", plural(*n));
    }
    for (name, n) in &m.cases {
        let _ = writeln!(out, "  case {name} ({n} {})", plural(*n));
    }
}
