//! The HTML report, `report.html`: the matrix as one static, self-contained page.
//!
//! Cases × implementations, one colour per kind of cell, rows grouped by area with each case's
//! claim and its contract/quirk kind; a summary per implementation (counts by kind and
//! contract/quirk compliance); and, on clicking a cell, its details: status, reason, the
//! expectation-file entry, the observation, the diff against the oracle and the raw history.
//!
//! The page has no external assets and makes no request: CSS (`report.css`) and script
//! (`report.js`) are inline and a Content-Security-Policy forbids everything else. The matrix
//! itself is plain HTML, readable without the script. Every string is HTML-escaped; the data
//! the script reads ([`data::PageData`]) is embedded as JSON in `<script
//! type="application/json">` blocks with every `<` written as `\u003c`, so no string can end
//! the block. Each raw history is a block of its own (capped at [`HISTORY_CAP`]), parsed only
//! when its cell is opened, so the page stays quick with the full interpreter matrix. A URL
//! fragment `#cell=CASE/IMPLEMENTATION` opens that cell's details on load.

mod counts;
pub mod data;
mod escape;
mod matrix;
mod summary;

use std::fmt::Write as _;

pub use data::HISTORY_CAP;
pub use escape::{cell_fragment, escape, script_json, script_safe_json};

use crate::report::model::Model;
use crate::runner::MatrixRun;
use crate::spec::LoadedCase;

/// The page's style sheet.
pub const CSS: &str = include_str!("report.css");
/// The page's script: the details panel, the filter, folding areas.
pub const JS: &str = include_str!("report.js");

/// The whole page of a run ([`page`] of its model).
pub fn render(run: &MatrixRun, cases: &[LoadedCase]) -> String {
    page(&Model::new(run, cases))
}

/// The whole page.
pub fn page(model: &Model<'_>) -> String {
    let (data, histories) = data::page_data(model);
    let counts = counts::GridCounts::of_model(model);
    let mut out =
        String::with_capacity(64 * 1024 + histories.iter().map(String::len).sum::<usize>());
    head(&mut out, model);
    summary::header(&mut out, model);
    summary::implementations(&mut out, model, &counts);
    matrix::section(&mut out, model, &counts);
    out.push_str("</main>\n");
    // The details panel, the data, the script.
    out.push_str(
        "<aside id=\"panel\" hidden><button type=\"button\" id=\"close\" title=\"close (Esc)\">×</button>\
         <div id=\"panel-body\"></div></aside>\n",
    );
    let _ = writeln!(
        out,
        "<script type=\"application/json\" id=\"data\">{}</script>",
        script_json(&data)
    );
    for (n, block) in histories.iter().enumerate() {
        let _ = writeln!(
            out,
            "<script type=\"application/json\" id=\"h-{n}\">{block}</script>"
        );
    }
    let _ = write!(out, "<script>{JS}</script>\n</body>\n</html>\n");
    out
}

/// From the doctype to the opening of `<main>`: title, security policy, style.
fn head(out: &mut String, model: &Model<'_>) {
    let title = format!(
        "poolspec conformance: {} cases × {} implementations{}",
        model.cases.len(),
        model.run.implementations.len(),
        model
            .interruption
            .as_ref()
            .map(|i| format!(" ({})", i.describe()))
            .unwrap_or_default()
    );
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main id=\"main\">\n",
        escape(&title)
    );
}

/// The page on a small run with hostile text: every case and implementation present, nothing
/// unescaped, the data complete, histories whole, truncated or missing.
#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::escape::truncate;
    use super::*;
    use crate::expectations::Expected;
    use crate::implementations::ORACLE;
    use crate::report::model::CellKind;
    use crate::runner::{CaseResult, ImplementationReport, MatrixRun};
    use crate::spec::LoadedCase;
    use crate::spec::load::{Suite, load_str};
    use crate::verdict::{Status, Verdict};

    /// The key of a cell in the embedded data (what the fragment decodes to).
    fn cell_key(case: &str, implementation: &str) -> String {
        format!("{case}/{implementation}")
    }

    const BLOCKING: &str = "format: 1
area: blocking
cases:
  - id: BLK-1
    claim: apply returns the task's value, even <b>bold</b> & \"quoted\" ones.
    cite: [{doc: 'library/multiprocessing.html#multiprocessing.pool.Pool.apply'}]
    tags: [contract]
    steps:
      - apply: {task: 5}
    expect: {steps: {s1: {returned: 5}}}
  - id: BLK-2
    claim: a quirk whose claim says </script><script>alert(1)</script>.
    cite: [{doc: 'library/multiprocessing.html#multiprocessing.pool.Pool.apply'}]
    tags: [quirk]
    steps:
      - apply: {task: 6}
    expect: {steps: {s1: {returned: 6}}}
";
    const ORDERING: &str = "format: 1
area: ordering
cases:
  - id: ORD-1
    claim: map returns results in input order.
    cite: [{doc: 'library/multiprocessing.html#multiprocessing.pool.Pool.map'}]
    tags: [contract]
    steps:
      - map: {tasks: [1, 2]}
    expect: {steps: {s1: {returned: [1, 2]}}}
";

    fn cases() -> Vec<LoadedCase> {
        let mut suite = Suite::default();
        load_str(Path::new("spec/blocking.yaml"), BLOCKING, &mut suite);
        load_str(Path::new("spec/ordering.yaml"), ORDERING, &mut suite);
        assert!(suite.errors.is_empty(), "{:?}", suite.errors);
        suite.cases
    }

    const ODD: &str = "exec:./drv --flag \"<x>\" & 'y'/z";

    fn result(case: &LoadedCase, imp: &str, status: Status, verdict: Verdict) -> CaseResult {
        CaseResult {
            case: case.id().to_owned(),
            area: case.area,
            quirk: case.is_quirk(),
            implementation: imp.to_owned(),
            status,
            verdict,
            reason: None,
            expected: None,
            fault: None,
            observation: Some(json!({"steps": {"s1": {"returned": 5}}})),
            unstable: None,
            history: None,
            duration_ms: 12,
        }
    }

    fn run(cases: &[LoadedCase], dir: &Path) -> MatrixRun {
        let imps = [ORACLE, "rust-ref", ODD];
        let mut results = Vec::new();
        for c in cases {
            for imp in imps {
                results.push(result(c, imp, Status::Pass, Verdict::Pass));
            }
        }
        // BLK-1 fails on rust-ref with a hostile reason and observation, and has a history.
        let small = dir.join("small.json");
        std::fs::write(&small, r#"{"events": [{"who": "</script><!--"}]}"#).unwrap();
        let r = &mut results[1];
        r.status = Status::Fail;
        r.verdict = Verdict::Unexpected;
        r.reason = Some("returned </script><b>6</b> & not 5".into());
        r.observation = Some(json!({"steps": {"s1": {"returned": "</script>"}}}));
        r.history = Some(small);
        // BLK-1 is an expected failure on ODD, with a history over the cap.
        let big = dir.join("big.json");
        let events: Vec<Value> = (0..4000)
            .map(|n| json!({"seq": n, "who": "parent/main", "event": {"event": "call"}}))
            .collect();
        std::fs::write(
            &big,
            serde_json::to_string_pretty(&json!({ "events": events })).unwrap(),
        )
        .unwrap();
        let r = &mut results[2];
        r.status = Status::Timeout;
        r.verdict = Verdict::ExpectedFail;
        r.expected = Some(Expected {
            status: Status::Timeout,
            reason: "hangs <forever>".into(),
        });
        r.history = Some(big);
        // BLK-2 has no result on rust-ref; its history on the oracle is missing.
        results.remove(4);
        results[3].history = Some(dir.join("missing.json"));
        MatrixRun {
            implementations: imps
                .iter()
                .map(|n| ImplementationReport {
                    name: (*n).to_owned(),
                    info: None,
                    capabilities: vec![],
                })
                .collect(),
            results,
            wall: Duration::from_millis(1500),
        }
    }

    /// The text of `<script type="application/json" id="ID">`.
    fn block<'a>(page: &'a str, id: &str) -> &'a str {
        let open = format!("<script type=\"application/json\" id=\"{id}\">");
        let start = page.find(&open).expect("block present") + open.len();
        let len = page[start..].find("</script>").expect("block closed");
        &page[start..start + len]
    }

    #[test]
    fn escaping() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(
            escape("a\u{0}b\u{1b}[31m\tc\n"),
            "a\u{FFFD}b\u{FFFD}[31m\tc\n"
        );
        assert_eq!(escape("plain ✓ text"), "plain ✓ text");
        let v = json!({"s": "</script><!-- <b>", "n": [1, "<"]});
        let text = script_json(&v);
        assert!(!text.contains('<'), "{text}");
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
        assert_eq!(
            cell_fragment("FLT-001", "exec:./d x/y"),
            "#cell=FLT-001/exec%3A.%2Fd%20x%2Fy"
        );
        assert_eq!(truncate("aé", 2), ("a", true));
    }

    #[test]
    fn the_page_has_every_case_and_implementation() {
        let dir = tempfile::tempdir().unwrap();
        let cases = cases();
        let run = run(&cases, dir.path());
        let page = render(&run, &cases);

        for c in &cases {
            assert!(
                page.contains(&format!("data-case=\"{}\"", escape(c.id()))),
                "{}",
                c.id()
            );
            assert!(page.contains(&escape(&c.case.claim)), "{}", c.case.claim);
        }
        for i in &run.implementations {
            assert!(
                page.contains(&format!("<span>{}", escape(&i.name))),
                "{}",
                i.name
            );
        }
        assert!(page.contains("<tbody class=\"area\" data-area=\"blocking\">"));
        assert!(page.contains("<tbody class=\"area\" data-area=\"ordering\">"));
        assert!(page.contains(&escape(&cell_fragment("BLK-1", ODD))));

        // Nothing hostile survives unescaped: the only script elements are ours.
        assert!(!page.contains("<b>bold"));
        assert!(!page.contains("<b>6"));
        assert!(!page.contains("<x>"));
        assert!(!page.contains("alert(1)</script>"));
        assert!(!page.contains("<!--"));
        assert_eq!(
            page.matches("<script").count(),
            page.matches("</script>").count()
        );
        assert_eq!(
            page.matches("<script").count(),
            4,
            "data, two histories, code"
        );

        // The data has every cell that ran, with its details.
        let data: Value = serde_json::from_str(block(&page, "data")).unwrap();
        let cells = data["cells"].as_object().unwrap();
        assert_eq!(cells.len(), run.results.len());
        for r in &run.results {
            assert!(cells.contains_key(&cell_key(&r.case, &r.implementation)));
        }
        assert!(!cells.contains_key(&cell_key("BLK-2", "rust-ref")));
        assert!(page.contains("<td class=\"c none\""));
        let fail = &cells[&cell_key("BLK-1", "rust-ref")];
        assert_eq!(fail["kind"], "fail");
        assert_eq!(fail["reason"], "returned </script><b>6</b> & not 5");
        let text = |v: &Value| {
            data["texts"][v.as_u64().unwrap() as usize]
                .as_str()
                .unwrap()
        };
        assert!(text(&fail["diff"]).contains("-    returned: 5"));
        assert!(text(&fail["observation"]).contains("</script>"));
        // Identical observations are stored once.
        let oracle = &cells[&cell_key("ORD-1", ORACLE)];
        assert_eq!(
            oracle["observation"],
            cells[&cell_key("ORD-1", ODD)]["observation"]
        );
        assert_eq!(
            cells[&cell_key("BLK-1", ORACLE)]["diff_note"],
            "this is the oracle"
        );
        assert_eq!(data["cases"]["BLK-2"]["quirk"], true);
        assert_eq!(data["impls"][2], ODD);

        // Histories: the small one whole, the big one truncated, the missing one noted.
        let h = fail["h"].as_u64().unwrap();
        let small: Value = serde_json::from_str(block(&page, &format!("h-{h}"))).unwrap();
        assert_eq!(small["events"][0]["who"], "</script><!--");
        let xfail = &cells[&cell_key("BLK-1", ODD)];
        assert_eq!(xfail["kind"], "expected-fail");
        assert_eq!(xfail["expected"]["reason"], "hangs <forever>");
        assert_eq!(xfail["history_truncated"], true);
        let h = xfail["h"].as_u64().unwrap();
        let big: Value = serde_json::from_str(block(&page, &format!("h-{h}"))).unwrap();
        let big = big.as_str().unwrap();
        assert!(big.len() <= HISTORY_CAP && big.len() > HISTORY_CAP - 4);
        assert!(xfail["history_bytes"].as_u64().unwrap() > HISTORY_CAP as u64);
        assert!(
            cells[&cell_key("BLK-2", ORACLE)]["history_error"]
                .as_str()
                .is_some()
        );
    }

    #[test]
    fn every_kind_has_a_colour_and_a_label() {
        for k in CellKind::ALL {
            assert!(CSS.contains(&format!(".v-{}{{", k.key())), "{k:?}");
            assert!(!k.short().is_empty() && !k.means().is_empty(), "{k:?}");
        }
        // The page's legend is every counted kind, each with its own colour.
        let run = MatrixRun {
            implementations: vec![],
            results: vec![],
            wall: Duration::ZERO,
        };
        let page = render(&run, &[]);
        for k in CellKind::COUNTED {
            assert!(
                page.contains(&format!("<span class=\"key v-{}\"", k.key())),
                "{k:?}"
            );
        }
    }
}
