//! `junit.xml`: one test suite per implementation, one test case per spec case, for CI
//! systems that show JUnit results. Expected failures are reported as skipped with their
//! reason; unexpected results as failures, with the diff against the oracle as their text.
//! An interrupted run opens with a suite `poolspec` whose one test case errs with the
//! interruption, so that CI shows the run as broken, not as a smaller green one.

use std::fmt::Write as _;

use super::model::{Cell, Model};
use crate::verdict::Verdict;

/// Escapes text for XML content and attribute values; control characters other than newline
/// and tab are dropped (XML 1.0 cannot carry them).
fn escape(s: &str) -> String {
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

/// JUnit XML of the whole run.
pub fn render(model: &Model<'_>) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let interrupted = model.interruption.as_ref();
    let _ = writeln!(
        out,
        "<testsuites name=\"poolspec\" tests=\"{}\" failures=\"{}\"{} time=\"{:.3}\">",
        model.cells.len() + usize::from(interrupted.is_some()),
        model.unexpected,
        if interrupted.is_some() {
            " errors=\"1\""
        } else {
            ""
        },
        model.run.wall.as_secs_f64()
    );
    if let Some(i) = interrupted {
        let _ = writeln!(
            out,
            "  <testsuite name=\"poolspec\" tests=\"1\" failures=\"0\" errors=\"1\">\n    \
             <testcase classname=\"poolspec\" name=\"run\">\n      \
             <error type=\"interrupted\" message=\"{}\"/>\n    </testcase>\n  </testsuite>",
            escape(&i.describe())
        );
    }
    for s in &model.implementations {
        let name = &s.implementation.name;
        let mine: Vec<&Cell<'_>> = model.cells_of(name).collect();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
            escape(name),
            mine.len(),
            s.unexpected,
            s.expected_fail
        );
        for cell in mine {
            test_case(&mut out, name, cell);
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn test_case(out: &mut String, implementation: &str, cell: &Cell<'_>) {
    let r = cell.result;
    let _ = write!(
        out,
        "    <testcase classname=\"{}.{}\" name=\"{}\" time=\"{:.3}\"",
        escape(implementation),
        r.area.as_str(),
        escape(&r.case),
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
                escape(reason)
            );
        }
        Verdict::UnexpectedPass | Verdict::Unexpected => {
            let label = cell.judged().label();
            let msg = r
                .unstable
                .as_deref()
                .or(r.reason.as_deref())
                .unwrap_or(label);
            let _ = writeln!(
                out,
                ">\n      <failure type=\"{label}\" message=\"{}\">{}</failure>\n    </testcase>",
                escape(msg),
                escape(cell.diff().unwrap_or_default())
            );
        }
    }
}
