//! `summary.md`, the run as Markdown (suitable for `$GITHUB_STEP_SUMMARY`): a table per
//! implementation, the matrix, the observations that differ from the oracle's, and every
//! cell that did not pass with its reason and diff.

use std::fmt::Write as _;

use super::model::{Model, Part};
use crate::implementations::ORACLE;
use crate::verdict::Verdict;

fn escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The Markdown summary.
pub fn render(model: &Model<'_>) -> String {
    let mut out = String::new();
    summary(&mut out, model);
    matrix(&mut out, model);
    differences(&mut out, model);
    not_passing(&mut out, model);
    out
}

/// The title, the one-line verdict and the table of implementations.
fn summary(out: &mut String, model: &Model<'_>) {
    let unexpected = model.unexpected;
    let _ = writeln!(out, "# poolspec conformance\n");
    if let Some(i) = &model.interruption {
        let _ = writeln!(out, "> **{}**\n", i.headline());
    }
    let _ = writeln!(
        out,
        "{} cases × {} implementations, suite `{}`, {:.1} s{}. **{}**\n",
        model.cases.len(),
        model.run.implementations.len(),
        model.suite_hash(),
        model.run.wall.as_secs_f64(),
        model
            .started
            .as_deref()
            .map(|t| format!(", started {t}"))
            .unwrap_or_default(),
        if unexpected == 0 {
            "Every result was the expected one.".to_owned()
        } else {
            format!("{unexpected} unexpected results.")
        }
    );
    let _ = writeln!(
        out,
        "| implementation | version | pass | expected-fail | unexpected | contract | CPython quirks |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let part = |p: Part| format!("{}/{}", p.passed, p.cases);
    for s in &model.implementations {
        let i = s.implementation;
        let version = i
            .info
            .as_ref()
            .map(|x| escape(x.interpreter.as_deref().unwrap_or(&x.version)))
            .unwrap_or_else(|| "(did not start)".into());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            i.name,
            version,
            s.passed,
            s.expected_fail,
            s.unexpected,
            part(s.compliance.contract),
            part(s.compliance.quirk)
        );
    }
}

/// One row per case, with its kind (contract or quirk) and one label per implementation.
fn matrix(out: &mut String, model: &Model<'_>) {
    let names = model.names();
    let _ = writeln!(out, "\n## Matrix\n");
    let _ = write!(out, "| case | area | kind |");
    for n in &names {
        let _ = write!(out, " {n} |");
    }
    let _ = write!(out, "\n|---|---|---|");
    for _ in &names {
        out.push_str("---|");
    }
    out.push('\n');
    for c in model.cases {
        let _ = write!(
            out,
            "| {} | {} | {} |",
            c.id(),
            c.area.as_str(),
            if c.is_quirk() { "quirk" } else { "contract" }
        );
        for n in &names {
            let label = model
                .cell(c.id(), n)
                .map_or("-", |cell| cell.judged().label());
            let _ = write!(out, " {label} |");
        }
        out.push('\n');
    }
}

fn differences(out: &mut String, model: &Model<'_>) {
    let diffs = model.differences();
    if !diffs.is_empty() {
        let _ = writeln!(out, "\n## Observations that differ from {ORACLE}\n");
        for (case, imps) in &diffs {
            let _ = writeln!(out, "- `{case}`: {}", imps.join(", "));
        }
    }
}

/// Every cell that is not a plain pass: its label, why, and its diff against the oracle.
fn not_passing(out: &mut String, model: &Model<'_>) {
    let mut notable = model
        .cells
        .iter()
        .filter(|c| c.result.verdict != Verdict::Pass)
        .peekable();
    if notable.peek().is_none() {
        return;
    }
    let _ = writeln!(out, "\n## Not passing\n");
    for cell in notable {
        let r = cell.result;
        let why = r
            .expected
            .as_ref()
            .map(|e| format!("expected: {}", e.reason))
            .or_else(|| r.reason.clone())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "- `{}` on `{}`: {}: {}",
            r.case,
            r.implementation,
            cell.judged().label(),
            escape(&why)
        );
        if let Some(diff) = cell.diff() {
            let _ = writeln!(out, "\n  ```diff");
            for line in diff.lines() {
                let _ = writeln!(out, "  {line}");
            }
            let _ = writeln!(out, "  ```");
        }
    }
}
