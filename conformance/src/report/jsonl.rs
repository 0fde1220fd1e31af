//! `report.jsonl`, the source of truth of a run: a header, one record per cell, and a footer
//! with the counts and `"complete": true`.
//!
//! A report without its footer is invalid: the run was cut short. Whoever reads a report reads
//! it through [`read`] (or at least [`validate_jsonl`]), so a cut-short report is never taken
//! for a whole one.

use serde::{Deserialize, Serialize};

use super::model::{Counts, Model};
use crate::implementations::ORACLE;
use crate::protocol::PROTOCOL_VERSION;
use crate::runner::{CaseResult, ImplementationReport};
use crate::spec::FORMAT_VERSION;

/// The first line: what produced the report, and of which suite.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    /// Always `header`.
    #[serde(rename = "type")]
    pub kind: String,
    pub harness: String,
    pub harness_version: String,
    pub protocol: u32,
    pub case_format: u32,
    pub suite_hash: String,
    pub cases: usize,
    pub oracle: String,
    pub implementations: Vec<ImplementationReport>,
}

/// One cell, as written: the result, its type, and its diff against the oracle.
#[derive(Serialize)]
struct RecordOut<'a> {
    #[serde(flatten)]
    result: &'a CaseResult,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    diff_against_oracle: Option<&'a str>,
}

/// One cell, as read.
#[derive(Debug, Clone, Deserialize)]
pub struct Record {
    #[serde(flatten)]
    pub result: CaseResult,
    pub diff_against_oracle: Option<String>,
}

/// The last line: the run finished.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Footer {
    /// Always `footer`.
    #[serde(rename = "type")]
    pub kind: String,
    pub complete: bool,
    pub wall_ms: u64,
    pub counts: Counts,
}

/// A whole report, read back.
#[derive(Debug, Clone)]
pub struct Report {
    pub header: Header,
    pub records: Vec<Record>,
    pub footer: Footer,
}

/// Why a text is not a valid report. Lines are numbered from 1, blank lines included.
#[derive(Debug, thiserror::Error)]
pub enum JsonlError {
    #[error("empty report")]
    Empty,
    #[error("line {line}: not JSON: {source}")]
    NotJson {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("the first line is not a header")]
    NoHeader,
    #[error("no footer: the run was cut short, the report is invalid")]
    NoFooter,
    #[error("line {line}: a line between header and footer is not a result")]
    NotAResult { line: usize },
    #[error("line {line}: a malformed {kind}: {source}")]
    Malformed {
        line: usize,
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// The JSON-lines report: header, one record per cell, footer.
pub fn render(model: &Model<'_>) -> String {
    let mut out = String::new();
    let header = Header {
        kind: "header".into(),
        harness: "poolspec".into(),
        harness_version: env!("CARGO_PKG_VERSION").into(),
        protocol: PROTOCOL_VERSION,
        case_format: FORMAT_VERSION,
        suite_hash: model.suite_hash(),
        cases: model.cases.len(),
        oracle: ORACLE.into(),
        implementations: model.run.implementations.clone(),
    };
    push_line(&mut out, &header);
    for cell in &model.cells {
        push_line(
            &mut out,
            &RecordOut {
                result: cell.result,
                kind: "result",
                diff_against_oracle: cell.diff(),
            },
        );
    }
    let footer = Footer {
        kind: "footer".into(),
        complete: true,
        wall_ms: model.run.wall.as_millis() as u64,
        counts: model.counts(),
    };
    push_line(&mut out, &footer);
    out
}

/// One line of JSON (`null` should a value not serialize, say a path that is not UTF-8).
fn push_line(out: &mut String, value: &impl Serialize) {
    out.push_str(&serde_json::to_string(value).unwrap_or_else(|_| "null".into()));
    out.push('\n');
}

/// The non-blank lines, numbered from 1, with their `type`.
fn typed_lines(text: &str) -> Result<Vec<(usize, &str, String)>, JsonlError> {
    #[derive(Deserialize)]
    struct Typed {
        #[serde(rename = "type", default)]
        kind: Option<String>,
    }
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| (n + 1, l))
        .collect();
    let kind = |(line, l): (usize, &str)| -> Result<String, JsonlError> {
        let value: serde_json::Value =
            serde_json::from_str(l).map_err(|source| JsonlError::NotJson { line, source })?;
        Ok(serde_json::from_value::<Typed>(value)
            .ok()
            .and_then(|t| t.kind)
            .unwrap_or_default())
    };
    let (Some(&first), Some(&last)) = (lines.first(), lines.last()) else {
        return Err(JsonlError::Empty);
    };
    if kind(first)? != "header" {
        return Err(JsonlError::NoHeader);
    }
    if lines.len() < 2 || kind(last)? != "footer" {
        return Err(JsonlError::NoFooter);
    }
    let mut out = Vec::with_capacity(lines.len());
    for (n, &(line, l)) in lines.iter().enumerate() {
        let k = kind((line, l))?;
        if n > 0 && n + 1 < lines.len() && k != "result" {
            return Err(JsonlError::NotAResult { line });
        }
        out.push((line, l, k));
    }
    Ok(out)
}

/// Checks that a JSON-lines report is complete: header first, footer last, results between.
/// Returns the number of results.
pub fn validate_jsonl(text: &str) -> Result<usize, JsonlError> {
    Ok(typed_lines(text)?.len() - 2)
}

/// Reads a report, checking that it is complete ([`validate_jsonl`]) and that every line is
/// what its type says.
pub fn read(text: &str) -> Result<Report, JsonlError> {
    fn parse<T: for<'de> Deserialize<'de>>(
        line: usize,
        l: &str,
        kind: &'static str,
    ) -> Result<T, JsonlError> {
        serde_json::from_str(l).map_err(|source| JsonlError::Malformed { line, kind, source })
    }
    let lines = typed_lines(text)?;
    let (Some((hl, h, _)), Some((fl, f, _))) = (lines.first(), lines.last()) else {
        return Err(JsonlError::Empty);
    };
    let header: Header = parse(*hl, h, "header")?;
    let footer: Footer = parse(*fl, f, "footer")?;
    let records = lines[1..lines.len() - 1]
        .iter()
        .map(|(line, l, _)| parse(*line, l, "result"))
        .collect::<Result<Vec<Record>, _>>()?;
    Ok(Report {
        header,
        records,
        footer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = r#"{"type":"header","harness":"poolspec","harness_version":"0.1.0","protocol":2,"case_format":1,"suite_hash":"00","cases":1,"oracle":"cpython-fork","implementations":[{"name":"cpython-fork","capabilities":[]}]}"#;
    const RESULT: &str = r#"{"case":"BLK-001","area":"blocking","quirk":false,"implementation":"cpython-fork","status":"pass","verdict":"pass","duration_ms":3,"type":"result"}"#;
    const FOOTER: &str = r#"{"type":"footer","complete":true,"wall_ms":5,"counts":{"cells":1,"unexpected":0,"per_implementation":{"cpython-fork":{"pass":1}},"compliance":{"cpython-fork":{"contract":{"passed":1,"cases":1},"quirk":{"passed":0,"cases":0}}}}}"#;

    fn report(lines: &[&str]) -> String {
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    #[test]
    fn a_whole_report_reads() {
        let text = report(&[HEADER, RESULT, "", FOOTER]);
        assert_eq!(validate_jsonl(&text).unwrap(), 1);
        let r = read(&text).unwrap();
        assert_eq!(r.header.suite_hash, "00");
        assert_eq!(r.records.len(), 1);
        assert_eq!(r.records[0].result.case, "BLK-001");
        assert!(r.footer.complete);
        assert_eq!(
            r.footer.counts.compliance["cpython-fork"].contract.passed,
            1
        );
        assert_eq!(validate_jsonl(&report(&[HEADER, FOOTER])).unwrap(), 0);
    }

    #[test]
    fn a_report_without_its_footer_is_invalid() {
        for text in [report(&[HEADER, RESULT]), report(&[HEADER])] {
            assert!(matches!(validate_jsonl(&text), Err(JsonlError::NoFooter)));
            assert!(matches!(read(&text), Err(JsonlError::NoFooter)));
        }
    }

    #[test]
    fn the_header_comes_first() {
        let text = report(&[RESULT, HEADER, FOOTER]);
        assert!(matches!(validate_jsonl(&text), Err(JsonlError::NoHeader)));
        let text = report(&[HEADER, HEADER, FOOTER]);
        assert!(matches!(
            validate_jsonl(&text),
            Err(JsonlError::NotAResult { line: 2 })
        ));
    }

    #[test]
    fn garbage_and_empty_are_invalid() {
        let text = report(&[HEADER, "not json {", FOOTER]);
        let err = validate_jsonl(&text).unwrap_err();
        assert!(matches!(err, JsonlError::NotJson { line: 2, .. }), "{err}");
        assert!(err.to_string().starts_with("line 2: not JSON"), "{err}");
        assert!(matches!(validate_jsonl(""), Err(JsonlError::Empty)));
        assert!(matches!(validate_jsonl("\n  \n"), Err(JsonlError::Empty)));
        // Valid JSON of the right types, yet not a result: read refuses it.
        let text = report(&[HEADER, r#"{"type":"result"}"#, FOOTER]);
        assert_eq!(validate_jsonl(&text).unwrap(), 1);
        assert!(matches!(
            read(&text),
            Err(JsonlError::Malformed {
                line: 2,
                kind: "result",
                ..
            })
        ));
    }
}
