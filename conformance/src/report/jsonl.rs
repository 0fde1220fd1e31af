//! `report.jsonl`, the source of truth of a run: a header, one record per cell, and a footer
//! with the counts and `"complete": true`.
//!
//! A run that was interrupted (Ctrl-C) still ends its report with a footer, which says
//! `"complete": false` and why: `"interrupted": {"signal", "finished", "planned"}`, the
//! records being the cells that finished. That is a valid, honest report of part of a run.
//! A report without its footer is invalid: the run was cut short without saying so (killed,
//! or the file was cut). Whoever reads a report reads it through [`read`] (or at least
//! [`validate_jsonl`], or [`check_jsonl`] to learn whether it is complete), so neither a
//! cut-short nor an interrupted report is ever taken for a whole one.
//!
//! A shard's report (`--shard K/N`) is an ordinary report of the cells it owns; its header's
//! `shard` says which (`{"index", "count", "run", "matrix_cells", "cases"}`, see
//! `shard::ShardRun`) and its footer counts only its own cells. A report merged from the
//! shards (`merge`) has no `shard`: it is the whole run's.

use serde::{Deserialize, Serialize};

use super::model::{Counts, Model};
use crate::cancel::Interruption;
use crate::implementations::ORACLE;
use crate::protocol::PROTOCOL_VERSION;
use crate::runner::{CaseResult, ImplementationReport};
use crate::shard::ShardRun;
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
    /// The folders added with `--spec DIR`, as given (none: the built-in suite alone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spec_folders: Vec<String>,
    /// When the run started, UTC, RFC 3339 to the second (absent in older reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// Which shard of which run the report holds (`--shard K/N`); absent for a whole run and
    /// for a merged one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardRun>,
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
    /// The added folder the case came from (absent: the built-in `spec/`).
    #[serde(skip_serializing_if = "Option::is_none")]
    spec_folder: Option<String>,
}

/// One cell, as read.
#[derive(Debug, Clone, Deserialize)]
pub struct Record {
    #[serde(flatten)]
    pub result: CaseResult,
    pub diff_against_oracle: Option<String>,
    #[serde(default)]
    pub spec_folder: Option<String>,
}

/// The last line: the run ended, whole (`complete`) or interrupted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Footer {
    /// Always `footer`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Every planned cell finished. When false, `interrupted` says why.
    pub complete: bool,
    /// Present exactly when the run was interrupted (and `complete` is false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<Interruption>,
    pub wall_ms: u64,
    pub counts: Counts,
}

/// What [`check_jsonl`] found in a valid report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The number of results.
    pub results: usize,
    /// Why the report covers only part of its run; `None` for a complete report.
    pub interrupted: Option<Interruption>,
}

impl Report {
    /// Whether the report covers its whole run (its footer says `"complete": true`).
    pub fn is_complete(&self) -> bool {
        self.footer.complete
    }
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
    #[error("line {line}: the footer contradicts itself: {why}")]
    Inconsistent { line: usize, why: &'static str },
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
        spec_folders: model.spec_folders(),
        started: model.started.clone(),
        shard: model.shard.clone(),
    };
    push_line(&mut out, &header);
    for cell in &model.cells {
        push_line(
            &mut out,
            &RecordOut {
                result: cell.result,
                kind: "result",
                diff_against_oracle: cell.diff(),
                spec_folder: model.added_folder_of(&cell.result.case),
            },
        );
    }
    let footer = Footer {
        kind: "footer".into(),
        complete: model.interruption.is_none(),
        interrupted: model.interruption.clone(),
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

/// Checks that a JSON-lines report is valid: header first, footer last, results between, and
/// a footer that is either complete or says why not. Returns the number of results; an
/// interrupted report is valid too ([`check_jsonl`] tells them apart).
pub fn validate_jsonl(text: &str) -> Result<usize, JsonlError> {
    Ok(check_jsonl(text)?.results)
}

/// [`validate_jsonl`], also telling a complete report from an interrupted one.
pub fn check_jsonl(text: &str) -> Result<Checked, JsonlError> {
    let lines = typed_lines(text)?;
    let results = lines.len() - 2;
    let Some((line, footer, _)) = lines.last() else {
        return Err(JsonlError::Empty);
    };
    let interrupted = footer_state(*line, footer, results)?;
    Ok(Checked {
        results,
        interrupted,
    })
}

/// The footer's `complete` and `interrupted`, checked against each other and the results.
fn footer_state(
    line: usize,
    footer: &str,
    results: usize,
) -> Result<Option<Interruption>, JsonlError> {
    #[derive(Deserialize)]
    struct State {
        complete: bool,
        #[serde(default)]
        interrupted: Option<Interruption>,
    }
    let state: State = serde_json::from_str(footer).map_err(|source| JsonlError::Malformed {
        line,
        kind: "footer",
        source,
    })?;
    let why = match (state.complete, &state.interrupted) {
        (true, None) => return Ok(None),
        (true, Some(_)) => "complete, yet interrupted",
        (false, None) => "not complete, and no interruption says why",
        (false, Some(i)) if i.finished != results => {
            "interrupted after a number of cells other than the results it holds"
        }
        (false, Some(i)) if i.finished >= i.planned => {
            "interrupted, yet every planned cell finished"
        }
        (false, Some(_)) => return Ok(state.interrupted),
    };
    Err(JsonlError::Inconsistent { line, why })
}

/// Reads a report, checking that it is valid ([`validate_jsonl`]) and that every line is
/// what its type says. An interrupted report reads too: see [`Report::is_complete`].
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
    footer_state(*fl, f, lines.len() - 2)?;
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

    const INTERRUPTED: &str = r#"{"type":"footer","complete":false,"interrupted":{"signal":"SIGINT","finished":1,"planned":4},"wall_ms":5,"counts":{"cells":1,"unexpected":0,"per_implementation":{"cpython-fork":{"pass":1}},"compliance":{"cpython-fork":{"contract":{"passed":1,"cases":1},"quirk":{"passed":0,"cases":0}}}}}"#;

    #[test]
    fn an_interrupted_report_is_valid_and_says_so() {
        let text = report(&[HEADER, RESULT, INTERRUPTED]);
        assert_eq!(validate_jsonl(&text).unwrap(), 1);
        let checked = check_jsonl(&text).unwrap();
        let why = checked.interrupted.unwrap();
        assert_eq!(
            (why.signal.as_str(), why.finished, why.planned),
            ("SIGINT", 1, 4)
        );
        let r = read(&text).unwrap();
        assert!(!r.is_complete());
        assert_eq!(r.footer.interrupted.unwrap().planned, 4);
        // A complete report: no interruption, and its footer has no such key.
        let whole = report(&[HEADER, RESULT, FOOTER]);
        assert_eq!(check_jsonl(&whole).unwrap().interrupted, None);
        assert!(read(&whole).unwrap().is_complete());
        assert!(!FOOTER.contains("interrupted"));
    }

    #[test]
    fn a_footer_that_contradicts_itself_is_invalid() {
        let whole_yet_interrupted =
            INTERRUPTED.replace(r#""complete":false"#, r#""complete":true"#);
        let silent = FOOTER.replace(r#""complete":true"#, r#""complete":false"#);
        let miscounted = INTERRUPTED.replace(r#""finished":1"#, r#""finished":2"#);
        let all_done = INTERRUPTED.replace(r#""planned":4"#, r#""planned":1"#);
        for (footer, why) in [
            (&whole_yet_interrupted, "complete, yet interrupted"),
            (&silent, "no interruption says why"),
            (&miscounted, "other than the results it holds"),
            (&all_done, "every planned cell finished"),
        ] {
            let text = report(&[HEADER, RESULT, footer]);
            let err = validate_jsonl(&text).unwrap_err();
            assert!(
                matches!(err, JsonlError::Inconsistent { line: 3, .. }),
                "{err}"
            );
            assert!(err.to_string().contains(why), "{err}");
            assert!(read(&text).is_err());
        }
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
