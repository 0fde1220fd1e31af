//! Rendering a run: the terminal matrix, `report.jsonl`, `summary.md` and `junit.xml` (and,
//! through [`crate::html`], `report.html`).
//!
//! The JSON-lines report is the source of truth: a header, one record per cell, and a footer
//! with the counts and `"complete": true`. A report without its footer is invalid (the run was
//! cut short). The other files are views of the same data.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;
use similar::TextDiff;

use crate::implementations::ORACLE;
use crate::protocol::PROTOCOL_VERSION;
use crate::runner::{CaseResult, MatrixRun};
use crate::spec::{FORMAT_VERSION, LoadedCase};
use crate::verdict::{Verdict, cell_label};

/// The files one run writes, under `target/conformance/`.
#[derive(Debug, Clone)]
pub struct ReportPaths {
    pub jsonl: PathBuf,
    pub markdown: PathBuf,
    pub junit: PathBuf,
    /// The static HTML matrix ([`crate::html`]).
    pub html: PathBuf,
}

/// A stable fingerprint of the suite (FNV-1a over ids and compiled programs), so reports of
/// different suites are never compared as if they were the same.
pub fn suite_hash(cases: &[LoadedCase]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for c in cases {
        let text = format!(
            "{}\n{}\n{}\n",
            c.id(),
            serde_json::to_string(&c.program).unwrap_or_default(),
            c.case.expect
        );
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// The YAML text of a cell's observation (empty when none was recorded).
pub fn observation_yaml(result: &CaseResult) -> String {
    result
        .observation
        .as_ref()
        .and_then(|o| serde_yaml::to_string(o).ok())
        .unwrap_or_default()
}

/// A unified diff of `result`'s observation against the oracle's for the same case, or
/// `None` when they are equal or the oracle did not run.
pub fn diff_against_oracle(run: &MatrixRun, result: &CaseResult) -> Option<String> {
    if result.implementation == ORACLE {
        return None;
    }
    let oracle = run.result(&result.case, ORACLE)?;
    let (a, b) = (observation_yaml(oracle), observation_yaml(result));
    if a == b {
        return None;
    }
    let diff = TextDiff::from_lines(&a, &b);
    Some(
        diff.unified_diff()
            .context_radius(2)
            .header(ORACLE, &result.implementation)
            .to_string(),
    )
}

/// The matrix as plain text: one row per case, one column per implementation.
pub fn terminal_matrix(run: &MatrixRun, cases: &[LoadedCase]) -> String {
    let names: Vec<&str> = run
        .implementations
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    let id_width = cases.iter().map(|c| c.id().len()).max().unwrap_or(4).max(4);
    let widths: Vec<usize> = names.iter().map(|n| n.len().max(15)).collect();
    let mut out = String::new();
    let _ = write!(out, "{:id_width$}  {:16}", "case", "area");
    for (n, w) in names.iter().zip(&widths) {
        let _ = write!(out, "  {n:w$}");
    }
    out.push('\n');
    for c in cases {
        let _ = write!(out, "{:id_width$}  {:16}", c.id(), c.area.as_str());
        for (n, w) in names.iter().zip(&widths) {
            let label = run
                .result(c.id(), n)
                .map(|r| {
                    if r.unstable.is_some() {
                        "UNSTABLE"
                    } else {
                        cell_label(r.status, r.verdict)
                    }
                })
                .unwrap_or("-");
            let _ = write!(out, "  {label:w$}");
        }
        out.push('\n');
    }
    out
}

/// Every cell that is not a plain pass, with its reason and diff against the oracle.
pub fn details(run: &MatrixRun) -> String {
    let mut out = String::new();
    for r in run.results.iter().filter(|r| r.verdict != Verdict::Pass) {
        let label = if r.unstable.is_some() {
            "UNSTABLE"
        } else {
            cell_label(r.status, r.verdict)
        };
        let _ = writeln!(out, "{} on {}: {label}", r.case, r.implementation);
        if let Some(reason) = &r.reason {
            let _ = writeln!(out, "  why: {reason}");
        }
        if let Some(e) = &r.expected {
            let _ = writeln!(out, "  expected {}: {}", e.status.as_str(), e.reason);
        }
        if let Some(u) = &r.unstable {
            let _ = writeln!(out, "  unstable: {u}");
        }
        if let Some(diff) = diff_against_oracle(run, r) {
            for line in diff.lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
        if let Some(h) = &r.history {
            let _ = writeln!(out, "  history: {}", h.display());
        }
    }
    out
}

/// Counts of verdicts and statuses, overall and per implementation.
pub fn counts(run: &MatrixRun) -> serde_json::Value {
    let mut per_impl: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    for r in &run.results {
        let label = crate::verdict::cell_kind(r.status, r.verdict, r.unstable.is_some());
        *per_impl
            .entry(&r.implementation)
            .or_default()
            .entry(label)
            .or_default() += 1;
    }
    json!({
        "cells": run.results.len(),
        "unexpected": run.unexpected().count(),
        "per_implementation": per_impl,
        "compliance": compliance(run),
    })
}

/// Per implementation, how many `contract` and how many `quirk` cases pass. Contract cases
/// say what every Pool must do; quirk cases record what CPython happens to do (hang where an
/// error would be better, say), so an implementation that differs there is told it differs,
/// not that it is broken.
pub fn compliance(run: &MatrixRun) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for i in &run.implementations {
        let mine: Vec<&CaseResult> = run
            .results
            .iter()
            .filter(|r| r.implementation == i.name)
            .collect();
        let part = |quirk: bool| {
            let of: Vec<&&CaseResult> = mine.iter().filter(|r| r.quirk == quirk).collect();
            let passed = of
                .iter()
                .filter(|r| r.status == crate::verdict::Status::Pass)
                .count();
            json!({"passed": passed, "cases": of.len()})
        };
        out.insert(
            i.name.clone(),
            json!({"contract": part(false), "quirk": part(true)}),
        );
    }
    serde_json::Value::Object(out)
}

/// One line per implementation: `name  contract 60/60, CPython quirks 8/10`.
pub fn compliance_lines(run: &MatrixRun) -> String {
    let c = compliance(run);
    let mut out = String::new();
    for i in &run.implementations {
        let n = |kind: &str, field: &str| c[&i.name][kind][field].as_u64().unwrap_or(0);
        let _ = writeln!(
            out,
            "  {:24} contract {}/{}, CPython quirks {}/{}",
            i.name,
            n("contract", "passed"),
            n("contract", "cases"),
            n("quirk", "passed"),
            n("quirk", "cases")
        );
    }
    out
}

/// For each case, the implementations whose observation differs from the oracle's: the
/// version and start-method differences, at a glance.
pub fn differences(run: &MatrixRun, cases: &[LoadedCase]) -> Vec<(String, Vec<String>)> {
    cases
        .iter()
        .filter_map(|c| {
            let oracle = run.result(c.id(), ORACLE)?;
            let differing: Vec<String> = run
                .results
                .iter()
                .filter(|r| r.case == c.id() && r.implementation != ORACLE)
                .filter(|r| r.observation.is_some() && r.observation != oracle.observation)
                .map(|r| r.implementation.clone())
                .collect();
            (!differing.is_empty()).then(|| (c.id().to_owned(), differing))
        })
        .collect()
}

/// Writes `report.jsonl`, `summary.md`, `junit.xml` and `report.html` under `dir`.
pub fn write_all(dir: &Path, run: &MatrixRun, cases: &[LoadedCase]) -> Result<ReportPaths> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let paths = ReportPaths {
        jsonl: dir.join("report.jsonl"),
        markdown: dir.join("summary.md"),
        junit: dir.join("junit.xml"),
        html: dir.join("report.html"),
    };
    std::fs::write(&paths.jsonl, jsonl(run, cases))
        .with_context(|| format!("writing {}", paths.jsonl.display()))?;
    std::fs::write(&paths.markdown, markdown(run, cases))
        .with_context(|| format!("writing {}", paths.markdown.display()))?;
    std::fs::write(&paths.junit, junit(run))
        .with_context(|| format!("writing {}", paths.junit.display()))?;
    std::fs::write(&paths.html, crate::html::render(run, cases))
        .with_context(|| format!("writing {}", paths.html.display()))?;
    Ok(paths)
}

/// The JSON-lines report: header, one record per cell, footer.
pub fn jsonl(run: &MatrixRun, cases: &[LoadedCase]) -> String {
    let mut out = String::new();
    let header = json!({
        "type": "header",
        "harness": "poolspec",
        "harness_version": env!("CARGO_PKG_VERSION"),
        "protocol": PROTOCOL_VERSION,
        "case_format": FORMAT_VERSION,
        "suite_hash": suite_hash(cases),
        "cases": cases.len(),
        "oracle": ORACLE,
        "implementations": run.implementations,
    });
    out.push_str(&header.to_string());
    out.push('\n');
    for r in &run.results {
        let mut record = serde_json::to_value(r).unwrap_or_default();
        if let Some(map) = record.as_object_mut() {
            map.insert("type".into(), json!("result"));
            if let Some(d) = diff_against_oracle(run, r) {
                map.insert("diff_against_oracle".into(), json!(d));
            }
        }
        out.push_str(&record.to_string());
        out.push('\n');
    }
    let footer = json!({
        "type": "footer",
        "complete": true,
        "wall_ms": run.wall.as_millis() as u64,
        "counts": counts(run),
    });
    out.push_str(&footer.to_string());
    out.push('\n');
    out
}

/// Checks that a JSON-lines report is complete: header first, footer last, records between.
pub fn validate_jsonl(text: &str) -> Result<usize, String> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let kind = |l: &str| -> Result<String, String> {
        let v: serde_json::Value = serde_json::from_str(l).map_err(|e| format!("not JSON: {e}"))?;
        Ok(v["type"].as_str().unwrap_or("").to_owned())
    };
    let (Some(first), Some(last)) = (lines.first(), lines.last()) else {
        return Err("empty report".into());
    };
    if kind(first)? != "header" {
        return Err("the first line is not a header".into());
    }
    if kind(last)? != "footer" {
        return Err("no footer: the run was cut short, the report is invalid".into());
    }
    let records = lines.len() - 2;
    for l in &lines[1..lines.len() - 1] {
        if kind(l)? != "result" {
            return Err("a line between header and footer is not a result".into());
        }
    }
    Ok(records)
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The Markdown summary (suitable for `$GITHUB_STEP_SUMMARY`).
pub fn markdown(run: &MatrixRun, cases: &[LoadedCase]) -> String {
    let mut out = String::new();
    let unexpected = run.unexpected().count();
    let _ = writeln!(out, "# poolspec conformance\n");
    let _ = writeln!(
        out,
        "{} cases × {} implementations, suite `{}`, {:.1} s. **{}**\n",
        cases.len(),
        run.implementations.len(),
        suite_hash(cases),
        run.wall.as_secs_f64(),
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
    let comp = compliance(run);
    for i in &run.implementations {
        let mine: Vec<&CaseResult> = run
            .results
            .iter()
            .filter(|r| r.implementation == i.name)
            .collect();
        let n = |v: Verdict| mine.iter().filter(|r| r.verdict == v).count();
        let version = i
            .info
            .as_ref()
            .map(|x| md_escape(x.interpreter.as_deref().unwrap_or(&x.version)))
            .unwrap_or_else(|| "(did not start)".into());
        let part = |kind: &str| {
            format!(
                "{}/{}",
                comp[&i.name][kind]["passed"].as_u64().unwrap_or(0),
                comp[&i.name][kind]["cases"].as_u64().unwrap_or(0)
            )
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            i.name,
            version,
            n(Verdict::Pass),
            n(Verdict::ExpectedFail),
            mine.iter().filter(|r| !r.verdict.is_ok()).count(),
            part("contract"),
            part("quirk")
        );
    }
    let _ = writeln!(out, "\n## Matrix\n");
    let _ = write!(out, "| case | area | kind |");
    for i in &run.implementations {
        let _ = write!(out, " {} |", i.name);
    }
    let _ = write!(out, "\n|---|---|---|");
    for _ in &run.implementations {
        out.push_str("---|");
    }
    out.push('\n');
    for c in cases {
        let _ = write!(
            out,
            "| {} | {} | {} |",
            c.id(),
            c.area.as_str(),
            if c.is_quirk() { "quirk" } else { "contract" }
        );
        for i in &run.implementations {
            let label = run
                .result(c.id(), &i.name)
                .map(|r| cell_label(r.status, r.verdict))
                .unwrap_or("-");
            let _ = write!(out, " {label} |");
        }
        out.push('\n');
    }
    let diffs = differences(run, cases);
    if !diffs.is_empty() {
        let _ = writeln!(out, "\n## Observations that differ from {ORACLE}\n");
        for (case, imps) in &diffs {
            let _ = writeln!(out, "- `{case}`: {}", imps.join(", "));
        }
    }
    let notable: Vec<&CaseResult> = run
        .results
        .iter()
        .filter(|r| r.verdict != Verdict::Pass)
        .collect();
    if !notable.is_empty() {
        let _ = writeln!(out, "\n## Not passing\n");
        for r in notable {
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
                cell_label(r.status, r.verdict),
                md_escape(&why)
            );
            if let Some(diff) = diff_against_oracle(run, r) {
                let _ = writeln!(out, "\n  ```diff");
                for line in diff.lines() {
                    let _ = writeln!(out, "  {line}");
                }
                let _ = writeln!(out, "  ```");
            }
        }
    }
    out
}

fn xml_escape(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .fold(String::with_capacity(s.len()), |mut acc, c| {
            match c {
                '&' => acc.push_str("&amp;"),
                '<' => acc.push_str("&lt;"),
                '>' => acc.push_str("&gt;"),
                '"' => acc.push_str("&quot;"),
                '\'' => acc.push_str("&apos;"),
                c => acc.push(c),
            }
            acc
        })
}

/// JUnit XML: one test suite per implementation, one test case per spec case. Expected
/// failures are reported as skipped with their reason; unexpected results as failures.
pub fn junit(run: &MatrixRun) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"poolspec\" tests=\"{}\" failures=\"{}\" time=\"{:.3}\">",
        run.results.len(),
        run.unexpected().count(),
        run.wall.as_secs_f64()
    );
    for i in &run.implementations {
        let mine: Vec<&CaseResult> = run
            .results
            .iter()
            .filter(|r| r.implementation == i.name)
            .collect();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
            xml_escape(&i.name),
            mine.len(),
            mine.iter().filter(|r| !r.verdict.is_ok()).count(),
            mine.iter()
                .filter(|r| r.verdict == Verdict::ExpectedFail)
                .count()
        );
        for r in mine {
            let _ = write!(
                out,
                "    <testcase classname=\"{}.{}\" name=\"{}\" time=\"{:.3}\"",
                xml_escape(&i.name),
                r.area.as_str(),
                xml_escape(&r.case),
                r.duration_ms as f64 / 1000.0
            );
            match r.verdict {
                Verdict::Pass => out.push_str("/>\n"),
                Verdict::ExpectedFail => {
                    let reason = r.expected.as_ref().map(|e| e.reason.as_str()).unwrap_or("");
                    let _ = writeln!(
                        out,
                        ">\n      <skipped message=\"expected {}: {}\"/>\n    </testcase>",
                        r.status.as_str(),
                        xml_escape(reason)
                    );
                }
                Verdict::UnexpectedPass | Verdict::Unexpected => {
                    let label = cell_label(r.status, r.verdict);
                    let msg = r
                        .unstable
                        .as_deref()
                        .or(r.reason.as_deref())
                        .unwrap_or(label);
                    let body = diff_against_oracle(run, r).unwrap_or_default();
                    let _ = writeln!(
                        out,
                        ">\n      <failure type=\"{label}\" message=\"{}\">{}</failure>\n    </testcase>",
                        xml_escape(msg),
                        xml_escape(&body)
                    );
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
