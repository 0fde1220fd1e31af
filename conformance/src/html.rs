//! The HTML report, `report.html`: the matrix as one static, self-contained page.
//!
//! Cases × implementations, one colour per verdict, rows grouped by area with each case's
//! claim and its contract/quirk kind; a summary per implementation (verdict counts and
//! contract/quirk compliance); and, on clicking a cell, its details: status, reason, the
//! expectation-file entry, the observation, the diff against the oracle and the raw history.
//!
//! The page has no external assets and makes no request: CSS and script are inline and a
//! Content-Security-Policy forbids everything else. The matrix itself is plain HTML, readable
//! without the script. Every string is HTML-escaped; the data the script reads is embedded as
//! JSON in `<script type="application/json">` blocks with every `<` written as `\u003c`, so no
//! string can end the block. Each raw history is a block of its own (capped at
//! [`HISTORY_CAP`]), parsed only when its cell is opened, so the page stays quick with the
//! full interpreter matrix. A URL fragment `#cell=CASE/IMPLEMENTATION` opens that cell's
//! details on load.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Map, Value, json};

use crate::implementations::ORACLE;
use crate::report::{compliance, diff_against_oracle, observation_yaml, suite_hash};
use crate::runner::{CaseResult, MatrixRun};
use crate::spec::{Area, LoadedCase};

/// The most of one raw history embedded in the page, in bytes. A larger history is embedded
/// as the beginning of its text, marked as truncated; the file itself has all of it.
pub const HISTORY_CAP: usize = 64 * 1024;

/// The kinds of cell, in legend order: name (also the CSS class `v-NAME`), the short label
/// shown in the matrix, and what it means.
pub const KINDS: [(&str, &str, &str); 10] = [
    ("pass", "ok", "passed, as expected"),
    (
        "not-applicable",
        "n/a",
        "the case's versions say its claim does not hold for this language version; not run",
    ),
    (
        "expected-fail",
        "xfail",
        "did not pass, as the implementation's expectation file says",
    ),
    (
        "unexpected-pass",
        "XPASS",
        "passed although the expectation file says it should not: remove the entry",
    ),
    (
        "fail",
        "FAIL",
        "the observation contradicts the case's expectations",
    ),
    (
        "error",
        "ERR",
        "the driver could not run the program, or broke the coordinator's protocol",
    ),
    (
        "crash",
        "CRASH",
        "the driver died, exited early or printed garbage",
    ),
    ("timeout", "TIME", "the liveness guard expired"),
    (
        "unsupported",
        "n/s",
        "the implementation lacks a capability the case requires (and was expected to have it)",
    ),
    (
        "unstable",
        "UNST",
        "repeated runs (--verify) observed different things",
    ),
];

/// The kind of a cell: its verdict, or its status when the verdict is unexpected, or
/// `unstable` (the same labels as [`crate::report::counts`]).
pub fn kind(r: &CaseResult) -> &'static str {
    crate::verdict::cell_kind(r.status, r.verdict, r.unstable.is_some())
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn short_label(kind: &str) -> &'static str {
    KINDS
        .iter()
        .find(|(k, _, _)| *k == kind)
        .map_or("?", |(_, s, _)| s)
}

/// Escapes text for HTML element content and quoted attribute values. Control characters
/// other than tab, newline and carriage return become U+FFFD.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// JSON text made safe inside a `<script>` element: `<` only occurs inside JSON strings, where
/// `\u003c` means the same, so neither `</script>` nor `<!--` can appear.
pub fn script_safe_json(json_text: &str) -> String {
    json_text.replace('<', "\\u003c")
}

/// [`script_safe_json`] of a value.
pub fn script_json(v: &Value) -> String {
    script_safe_json(&serde_json::to_string(v).unwrap_or_else(|_| "null".into()))
}

/// Percent-encodes everything but unreserved characters (the inverse of JavaScript's
/// `decodeURIComponent`).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The fragment that opens a cell's details: `#cell=CASE/IMPLEMENTATION`, each part
/// percent-encoded.
pub fn cell_fragment(case: &str, implementation: &str) -> String {
    format!(
        "#cell={}/{}",
        percent_encode(case),
        percent_encode(implementation)
    )
}

/// The key of a cell in the embedded data (what the fragment decodes to).
fn cell_key(case: &str, implementation: &str) -> String {
    format!("{case}/{implementation}")
}

fn truncate(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    (&s[..cut], true)
}

/// A raw history as embedded: the script-safe JSON of the block and what to say about it.
struct EmbeddedHistory {
    block: String,
    bytes: usize,
    truncated: bool,
}

/// Reads a history file. Compact JSON when it fits in [`HISTORY_CAP`]; otherwise the first
/// [`HISTORY_CAP`] bytes of the file's text, as a JSON string.
fn load_history(path: &Path) -> Result<EmbeddedHistory, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    if let Ok(value) = serde_json::from_str::<Value>(&text) {
        let compact = serde_json::to_string(&value).unwrap_or_default();
        if compact.len() <= HISTORY_CAP {
            return Ok(EmbeddedHistory {
                block: script_safe_json(&compact),
                bytes: text.len(),
                truncated: false,
            });
        }
    }
    let (head, truncated) = truncate(&text, HISTORY_CAP);
    Ok(EmbeddedHistory {
        block: script_json(&Value::String(head.to_owned())),
        bytes: text.len(),
        truncated,
    })
}

/// Long texts that many cells share (most implementations observe what the oracle does),
/// stored once; cells refer to them by index.
#[derive(Default)]
struct Texts {
    list: Vec<String>,
    index: HashMap<String, usize>,
}

impl Texts {
    fn id(&mut self, text: String) -> usize {
        if let Some(&n) = self.index.get(&text) {
            return n;
        }
        let n = self.list.len();
        self.list.push(text.clone());
        self.index.insert(text, n);
        n
    }
}

/// Everything the details panel shows about one cell. Observations and diffs go to `texts`,
/// raw histories to `histories`; the cell refers to them by index.
fn cell_data(
    run: &MatrixRun,
    r: &CaseResult,
    texts: &mut Texts,
    histories: &mut Vec<String>,
) -> Value {
    let mut m = Map::new();
    m.insert("case".into(), json!(r.case));
    m.insert("impl".into(), json!(r.implementation));
    m.insert("kind".into(), json!(kind(r)));
    m.insert("status".into(), json!(r.status.as_str()));
    m.insert(
        "verdict".into(),
        serde_json::to_value(r.verdict).unwrap_or_default(),
    );
    m.insert("duration_ms".into(), json!(r.duration_ms));
    if let Some(reason) = &r.reason {
        m.insert("reason".into(), json!(reason));
    }
    if let Some(e) = &r.expected {
        m.insert(
            "expected".into(),
            json!({"status": e.status.as_str(), "reason": e.reason}),
        );
    }
    if let Some(u) = &r.unstable {
        m.insert("unstable".into(), json!(u));
    }
    if let Some(f) = &r.fault {
        m.insert("fault".into(), json!(f.summary()));
        let detail = serde_yaml::to_string(f).unwrap_or_default();
        let (head, cut) = truncate(&detail, HISTORY_CAP);
        let mut detail = head.to_owned();
        if cut {
            detail.push_str("\n… (truncated)\n");
        }
        m.insert("fault_detail".into(), json!(detail));
    }
    let observation = observation_yaml(r);
    if !observation.is_empty() {
        m.insert("observation".into(), json!(texts.id(observation)));
    }
    let diff_note = if r.implementation == ORACLE {
        Some("this is the oracle")
    } else if run.result(&r.case, ORACLE).is_none() {
        Some("the oracle did not run this case")
    } else if r.observation.is_none() {
        Some("no observation was recorded")
    } else {
        None
    };
    match (diff_note, diff_against_oracle(run, r)) {
        (_, Some(diff)) => {
            m.insert("diff".into(), json!(texts.id(diff)));
        }
        (Some(note), None) => {
            m.insert("diff_note".into(), json!(note));
        }
        (None, None) => {
            m.insert(
                "diff_note".into(),
                json!("identical to the oracle's observation"),
            );
        }
    }
    if let Some(path) = &r.history {
        m.insert("history_path".into(), json!(path.display().to_string()));
        match load_history(path) {
            Ok(h) => {
                m.insert("h".into(), json!(histories.len()));
                m.insert("history_bytes".into(), json!(h.bytes));
                if h.truncated {
                    m.insert("history_truncated".into(), json!(true));
                }
                histories.push(h.block);
            }
            Err(e) => {
                m.insert("history_error".into(), json!(e));
            }
        }
    }
    Value::Object(m)
}

fn case_data(c: &LoadedCase) -> Value {
    let cite: Vec<String> = c
        .case
        .cite
        .iter()
        .map(|x| match serde_json::to_value(x) {
            Ok(Value::Object(o)) => o
                .iter()
                .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", "),
            Ok(v) => v.to_string(),
            Err(_) => String::new(),
        })
        .collect();
    json!({
        "area": c.area.as_str(),
        "claim": c.case.claim,
        "quirk": c.is_quirk(),
        "tags": c.case.tags,
        "cite": cite,
        "expect": serde_yaml::to_string(&c.case.expect).unwrap_or_default(),
        "file": c.file.display().to_string(),
    })
}

/// Cases grouped by area, areas in the order they first appear, cases in their order.
fn by_area(cases: &[LoadedCase]) -> Vec<(Area, Vec<&LoadedCase>)> {
    let mut groups: Vec<(Area, Vec<&LoadedCase>)> = Vec::new();
    for c in cases {
        match groups.iter_mut().find(|(a, _)| *a == c.area) {
            Some((_, v)) => v.push(c),
            None => groups.push((c.area, vec![c])),
        }
    }
    groups
}

/// The whole page.
pub fn render(run: &MatrixRun, cases: &[LoadedCase]) -> String {
    let mut index: HashMap<(&str, &str), &CaseResult> = HashMap::new();
    for r in &run.results {
        index
            .entry((r.case.as_str(), r.implementation.as_str()))
            .or_insert(r);
    }
    let names: Vec<&str> = run
        .implementations
        .iter()
        .map(|i| i.name.as_str())
        .collect();

    // Counts per implementation and overall, by kind.
    let mut per_impl: HashMap<&str, HashMap<&str, usize>> = HashMap::new();
    let mut total: HashMap<&str, usize> = HashMap::new();
    for c in cases {
        for n in &names {
            if let Some(r) = index.get(&(c.id(), *n)) {
                *per_impl.entry(n).or_default().entry(kind(r)).or_default() += 1;
                *total.entry(kind(r)).or_default() += 1;
            }
        }
    }
    let comp = compliance(run);
    let unexpected = run.unexpected().count();

    // The data the script reads.
    let mut histories: Vec<String> = Vec::new();
    let mut texts = Texts::default();
    let mut cells = Map::new();
    for c in cases {
        for n in &names {
            if let Some(r) = index.get(&(c.id(), *n)) {
                cells.insert(
                    cell_key(c.id(), n),
                    cell_data(run, r, &mut texts, &mut histories),
                );
            }
        }
    }
    let case_map: Map<String, Value> = cases
        .iter()
        .map(|c| (c.id().to_owned(), case_data(c)))
        .collect();
    let kinds: Map<String, Value> = KINDS
        .iter()
        .map(|(k, s, d)| ((*k).to_owned(), json!({"short": s, "means": d})))
        .collect();
    let data = json!({
        "oracle": ORACLE,
        "impls": names,
        "cases": case_map,
        "cells": cells,
        "texts": texts.list,
        "kinds": kinds,
    });

    let mut out =
        String::with_capacity(64 * 1024 + histories.iter().map(String::len).sum::<usize>());
    let title = format!(
        "poolspec conformance: {} cases × {} implementations",
        cases.len(),
        names.len()
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

    // Header.
    let _ = writeln!(
        out,
        "<header>\n<h1>poolspec conformance</h1>\n<p class=\"meta\">{} cases × {} implementations \
         · {} cells · suite <code>{}</code> · {:.1} s · oracle <b>{}</b> · poolspec {}</p>",
        cases.len(),
        names.len(),
        run.results.len(),
        escape(&suite_hash(cases)),
        run.wall.as_secs_f64(),
        escape(ORACLE),
        escape(env!("CARGO_PKG_VERSION")),
    );
    if unexpected == 0 {
        out.push_str("<p class=\"banner ok\">Every result was the expected one.</p>\n");
    } else {
        let _ = writeln!(
            out,
            "<p class=\"banner bad\">{unexpected} unexpected result{}.</p>",
            if unexpected == 1 { "" } else { "s" }
        );
    }
    out.push_str("</header>\n");

    // Summary per implementation.
    out.push_str(
        "<section id=\"summary\">\n<h2>Implementations</h2>\n<table class=\"summary\">\n<thead><tr>\
         <th>implementation</th><th>version</th><th>start method</th>",
    );
    for (k, s, d) in KINDS {
        let _ = write!(
            out,
            "<th title=\"{}: {}\"><span class=\"sw v-{k}\"></span>{}</th>",
            escape(k),
            escape(d),
            escape(s)
        );
    }
    out.push_str(
        "<th title=\"contract cases with status pass\">contract</th>\
         <th title=\"CPython-quirk cases with status pass\">CPython quirks</th></tr></thead>\n<tbody>\n",
    );
    for i in &run.implementations {
        let (version, detail, method) = match &i.info {
            Some(info) => (
                format!("{} {}", info.name, info.version),
                [
                    info.interpreter.as_deref(),
                    info.pool_class.as_deref(),
                    Some(info.language.as_str()),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" · "),
                info.start_method.clone().unwrap_or_else(|| "–".into()),
            ),
            None => ("(did not start)".into(), String::new(), "–".into()),
        };
        let oracle = if i.name == ORACLE {
            " <span class=\"tag\">oracle</span>"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<tr><th scope=\"row\">{}{oracle}</th><td title=\"{}\">{}</td><td>{}</td>",
            escape(&i.name),
            escape(&detail),
            escape(&version),
            escape(&method)
        );
        let mine = per_impl.get(i.name.as_str());
        for (k, _, _) in KINDS {
            let n = mine.and_then(|m| m.get(k)).copied().unwrap_or(0);
            if n == 0 {
                out.push_str("<td class=\"zero\">0</td>");
            } else {
                let _ = write!(out, "<td class=\"n v-{k}\">{n}</td>");
            }
        }
        for part in ["contract", "quirk"] {
            let passed = comp[&i.name][part]["passed"].as_u64().unwrap_or(0);
            let of = comp[&i.name][part]["cases"].as_u64().unwrap_or(0);
            let pct = (passed * 100).checked_div(of).unwrap_or(100);
            let _ = write!(
                out,
                "<td class=\"comp\"><span class=\"bar\"><span style=\"width:{pct}%\"></span></span>{passed}/{of}</td>"
            );
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n</section>\n");

    // The matrix.
    out.push_str(
        "<section id=\"matrix\">\n<h2>Matrix</h2>\n<div class=\"controls\">\
         <input type=\"search\" id=\"filter\" placeholder=\"filter: case id or words of the claim\" aria-label=\"filter cases\"> \
         <label><input type=\"checkbox\" id=\"notable\"> only rows where something did not pass</label>\
         <span class=\"legend\">",
    );
    for (k, s, d) in KINDS {
        let _ = write!(
            out,
            "<span class=\"key v-{k}\" title=\"{}\">{} <b>{}</b> {}</span>",
            escape(d),
            escape(s),
            escape(k),
            total.get(k).copied().unwrap_or(0)
        );
    }
    out.push_str(
        "<span class=\"key\"><span class=\"k q\">Q</span> CPython quirk, <span class=\"k\">C</span> contract</span>\
         </span></div>\n<p class=\"hint\">Click a cell for its details; click an area to fold it.</p>\n",
    );
    let columns = 3 + names.len();
    // The claim column takes what the implementations' columns leave of the window.
    let _ = write!(
        out,
        "<table class=\"matrix\" style=\"--claim:max(200px, calc(100vw - {}px))\">",
        names.len() * 42 + 240
    );
    out.push_str(
        "\n<thead><tr><th class=\"id\">case</th>\
         <th class=\"kind\" title=\"C: contract (what every Pool must do); Q: CPython quirk (what CPython happens to do)\">kind</th>\
         <th class=\"claim\">claim</th>",
    );
    for i in &run.implementations {
        let version = i
            .info
            .as_ref()
            .map(|x| x.interpreter.clone().unwrap_or_else(|| x.version.clone()))
            .unwrap_or_else(|| "did not start".into());
        let oracle = i.name == ORACLE;
        let _ = write!(
            out,
            "<th class=\"imp{}\" title=\"{}\"><span>{}{}</span></th>",
            if oracle { " oracle" } else { "" },
            escape(&format!("{}: {version}", i.name)),
            escape(&i.name),
            if oracle { " ◆" } else { "" }
        );
    }
    out.push_str("</tr></thead>\n");
    for (area, group) in by_area(cases) {
        let in_group: Vec<&CaseResult> = group
            .iter()
            .flat_map(|c| {
                names
                    .iter()
                    .filter_map(|n| index.get(&(c.id(), *n)).copied())
            })
            .collect();
        let xfail = in_group
            .iter()
            .filter(|r| kind(r) == "expected-fail")
            .count();
        let bad = in_group.iter().filter(|r| !r.verdict.is_ok()).count();
        let mut count = format!(
            "{} case{}",
            group.len(),
            if group.len() == 1 { "" } else { "s" }
        );
        if xfail > 0 {
            let _ = write!(count, " · {xfail} expected failure{}", plural(xfail));
        }
        if bad > 0 {
            let _ = write!(count, " · <b class=\"bad\">{bad} unexpected</b>");
        }
        let _ = writeln!(
            out,
            "<tbody class=\"area\" data-area=\"{a}\"><tr class=\"group\"><th colspan=\"{columns}\">\
             <span class=\"fold\">▾</span> {a} <span class=\"count\">{count}</span></th></tr>",
            a = escape(area.as_str()),
        );
        for c in group {
            let all_pass = names
                .iter()
                .all(|n| index.get(&(c.id(), *n)).is_some_and(|r| kind(r) == "pass"));
            let _ = write!(
                out,
                "<tr class=\"case{}\" data-case=\"{id}\"><th class=\"id\" scope=\"row\">{id}</th><td class=\"kind\">{}</td>\
                 <td class=\"claim\" title=\"{claim}\"><div>{claim}</div></td>",
                if all_pass { " allpass" } else { "" },
                if c.is_quirk() {
                    "<span class=\"k q\" title=\"quirk: records what CPython happens to do\">Q</span>"
                } else {
                    "<span class=\"k\" title=\"contract: what every Pool must do\">C</span>"
                },
                id = escape(c.id()),
                claim = escape(&c.case.claim),
            );
            for n in &names {
                match index.get(&(c.id(), *n)) {
                    Some(r) => {
                        let k = kind(r);
                        let why = r
                            .unstable
                            .as_deref()
                            .or(r.expected.as_ref().map(|e| e.reason.as_str()))
                            .or(r.reason.as_deref())
                            .map(|w| format!(": {}", truncate(w, 300).0))
                            .unwrap_or_default();
                        let _ = write!(
                            out,
                            "<td class=\"c v-{k}\"><a href=\"{}\" title=\"{}\">{}</a></td>",
                            escape(&cell_fragment(c.id(), n)),
                            escape(&format!("{} on {n}: {k}{why}", c.id())),
                            escape(short_label(k))
                        );
                    }
                    None => out.push_str("<td class=\"c none\" title=\"not run\">–</td>"),
                }
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n");
    }
    out.push_str("<tfoot><tr><th colspan=\"3\" class=\"foot\">passing</th>");
    for n in &names {
        let m = per_impl.get(n);
        let pass = m.and_then(|m| m.get("pass")).copied().unwrap_or(0);
        let all: usize = m.map(|m| m.values().sum()).unwrap_or(0);
        let _ = write!(
            out,
            "<td class=\"foot\" title=\"{}: {pass} of {all} cells pass\">{pass}</td>",
            escape(n)
        );
    }
    out.push_str("</tr></tfoot>\n</table>\n</section>\n</main>\n");

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

const CSS: &str = r#"
*{box-sizing:border-box}
html,body{height:100%}
body{margin:0;font:13px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;background:#f6f8fa;display:flex;flex-direction:column;overflow:hidden}
#main{flex:1 1 auto;min-height:0;overflow:auto;padding-bottom:20px}
header,section{padding:10px 20px}
h1{font-size:20px;margin:0 0 2px}
h2{font-size:15px;margin:0 0 8px}
h3{font-size:13px;margin:16px 0 6px}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.meta{color:#59636e;margin:0}
.banner{display:inline-block;padding:3px 10px;border-radius:6px;margin:6px 0 0;font-weight:600}
.banner.ok{background:#dafbe1;color:#116329}
.banner.bad{background:#ffebe9;color:#a40e26}
table{border-collapse:collapse;background:#fff}
.summary th,.summary td{border:1px solid #d1d9e0;padding:1px 8px;text-align:right;white-space:nowrap}
.summary thead th{background:#f6f8fa;font-weight:600}
.summary th[scope=row],.summary td:nth-child(2),.summary td:nth-child(3){text-align:left}
.summary th[scope=row]{font-weight:600}
.summary td.zero{color:#c8d1da}
.summary td.n{font-weight:600}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:-1px;border:1px solid rgba(0,0,0,.15)}
.bar{display:inline-block;width:60px;height:8px;background:#eef1f4;border-radius:4px;margin-right:6px;overflow:hidden;vertical-align:0}
.bar span{display:block;height:100%;background:#2da44e}
.tag{font-size:10px;font-weight:600;background:#ddf4ff;color:#0550ae;border-radius:8px;padding:0 6px}
.controls{display:flex;flex-wrap:wrap;gap:8px 14px;align-items:center;margin-bottom:4px}
#filter{width:280px;padding:3px 6px;border:1px solid #d1d9e0;border-radius:6px;font:inherit}
.legend{display:flex;flex-wrap:wrap;gap:4px}
.key{padding:1px 6px;border-radius:4px;font-size:11px;white-space:nowrap}
.key b{font-weight:600}
.hint{color:#59636e;margin:2px 0 6px;font-size:12px}
.matrix{border:1px solid #d1d9e0}
.matrix thead th{position:sticky;top:0;z-index:3;background:#fff;border-bottom:2px solid #d1d9e0;vertical-align:bottom;text-align:left;padding:4px 6px}
.matrix th.imp{width:42px;min-width:42px;max-width:42px;padding:4px 0 6px;text-align:center;font-weight:600;font-size:12px}
.matrix th.imp span{display:inline-block;writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap;max-height:190px;overflow:hidden;text-overflow:ellipsis}
.matrix th.imp.oracle{color:#0550ae}
.matrix tr.group th{background:#eef1f4;text-align:left;padding:4px 8px;cursor:pointer;user-select:none;border-top:1px solid #d1d9e0}
.matrix tr.group .count{color:#59636e;font-weight:400;margin-left:6px}
.matrix tr.group .bad{color:#cf222e}
.matrix tbody.collapsed tr.case{display:none}
.matrix tbody.collapsed .fold{display:inline-block;transform:rotate(-90deg)}
.matrix tr.case th.id{position:sticky;left:0;z-index:1;background:#fff;text-align:left;padding:1px 8px;font-weight:600;white-space:nowrap;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.matrix td.kind{text-align:center;padding:0 4px}
.matrix td.claim{padding:1px 8px;color:#3d444d}
.matrix td.claim div{max-width:var(--claim,26vw);min-width:160px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.matrix tr.case:hover th.id,.matrix tr.case:hover td.claim,.matrix tr.case:hover td.kind{background:#ddf4ff}
.matrix tr.case.hidden{display:none}
.matrix td.c{padding:0;border:1px solid #fff;text-align:center;height:20px}
.matrix td.c a{display:block;line-height:19px;color:inherit;text-decoration:none;font-size:10px;font-weight:600;overflow:hidden;white-space:nowrap}
.matrix td.c a:hover,.matrix td.c a:focus{outline:2px solid #1f2328;outline-offset:-2px}
.matrix td.c.sel{outline:3px solid #0969da;outline-offset:-3px}
.matrix td.none{color:#8c959f}
.matrix tr.case.selrow th.id,.matrix tr.case.selrow td.claim{background:#ddf4ff}
.matrix td.foot,.matrix th.foot{text-align:center;font-size:11px;color:#59636e;padding:3px 0;border-top:2px solid #d1d9e0}
.matrix th.foot{text-align:right;padding-right:8px;font-weight:400}
.k{display:inline-block;width:16px;height:16px;line-height:16px;border-radius:3px;font-size:10px;font-weight:700;text-align:center;background:#eef1f4;color:#59636e}
.k.q{background:#fbefff;color:#8250df}
.v-pass{background:#dafbe1;color:#1a7f37}
.v-not-applicable{background:#eaeef2;color:#57606a}
.v-expected-fail{background:#fff1b8;color:#7d4e00}
.v-unexpected-pass{background:#1b7c83;color:#fff}
.v-fail{background:#cf222e;color:#fff}
.v-error{background:#e16f24;color:#fff}
.v-crash{background:#8250df;color:#fff}
.v-timeout{background:#0550ae;color:#fff}
.v-unsupported{background:#8c959f;color:#fff}
.v-unstable{background:repeating-linear-gradient(135deg,#ffcecb 0 5px,#ff8182 5px 10px);color:#6e011a}
#panel{flex:0 0 56%;min-height:0;background:#fff;border-top:2px solid #0969da;box-shadow:0 -6px 18px rgba(31,35,40,.15);overflow:auto;padding:10px 22px 30px;z-index:10}
#panel[hidden]{display:none}
#close{position:sticky;top:0;float:right;font-size:22px;line-height:1;border:1px solid #d1d9e0;background:#fff;border-radius:6px;width:32px;height:32px;cursor:pointer;z-index:1}
#panel h2{font-size:17px;margin:2px 40px 4px 0}
#panel section{padding:0}
.cols{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:0 24px}
@media (max-width:900px){.cols{grid-template-columns:minmax(0,1fr)}}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;vertical-align:2px;margin-right:6px}
.claimtext{font-size:14px;margin:2px 0 6px}
.nav{font-size:12px;margin:0 0 10px;display:flex;gap:12px;flex-wrap:wrap}
.nav a{color:#0969da}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;margin:0}
dl.facts dt{color:#59636e}
dl.facts dd{margin:0;white-space:pre-wrap;word-break:break-word}
pre{background:#f6f8fa;border:1px solid #d1d9e0;border-radius:6px;padding:8px 10px;margin:0;overflow:auto;max-height:60vh;font-size:12px;line-height:1.45;white-space:pre}
pre.diff span{display:block}
pre.diff .add{background:#dafbe1}
pre.diff .del{background:#ffebe9}
pre.diff .hunk{color:#8250df}
pre.diff .file{color:#59636e}
.note{color:#59636e;font-style:italic;margin:0}
details summary{cursor:pointer;color:#0969da}
ul.cite{margin:0;padding-left:18px}
"#;

const JS: &str = r#"
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('data').textContent);
  var main = document.getElementById('main');
  var panel = document.getElementById('panel');
  var body = document.getElementById('panel-body');
  var rows = {};
  Array.prototype.forEach.call(document.querySelectorAll('tr.case'), function (tr) {
    rows[tr.getAttribute('data-case')] = tr;
  });
  var selected = null;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function fragment(c, i) {
    return '#cell=' + encodeURIComponent(c) + '/' + encodeURIComponent(i);
  }
  function link(text, href) {
    var a = el('a', null, text);
    a.href = href;
    return a;
  }
  function section(title, parent) {
    var s = el('section');
    s.appendChild(el('h3', null, title));
    parent.appendChild(s);
    return s;
  }
  function pre(text, cls) {
    return el('pre', cls, text);
  }
  function diffPre(text) {
    var p = el('pre', 'diff');
    text.split('\n').forEach(function (line, n, all) {
      if (n === all.length - 1 && line === '') return;
      var cls = line.indexOf('+++') === 0 || line.indexOf('---') === 0 ? 'file'
        : line.charAt(0) === '+' ? 'add' : line.charAt(0) === '-' ? 'del'
        : line.indexOf('@@') === 0 ? 'hunk' : null;
      p.appendChild(el('span', cls, line || ' '));
    });
    return p;
  }
  function kib(n) {
    return n < 1024 ? n + ' bytes' : (n / 1024).toFixed(1) + ' KiB';
  }
  function unselect() {
    if (selected) {
      selected.cell.classList.remove('sel');
      selected.row.classList.remove('selrow');
      selected = null;
    }
  }
  function close() {
    unselect();
    panel.hidden = true;
  }
  function select(c) {
    unselect();
    var row = rows[c.case];
    var col = data.impls.indexOf(c.impl);
    if (!row || col < 0) return;
    var cell = row.cells[3 + col];
    if (!cell) return;
    cell.classList.add('sel');
    row.classList.add('selrow');
    selected = {cell: cell, row: row};
    // Keep the cell in view above the panel, below the sticky column headers.
    var m = main.getBoundingClientRect(), r = cell.getBoundingClientRect();
    var head = document.querySelector('.matrix thead').getBoundingClientRect().height;
    if (r.top < m.top + head || r.bottom > m.bottom) {
      main.scrollTop += r.top - m.top - Math.max(head + 8, m.height / 2 - r.height);
    }
    if (r.left < m.left || r.right > m.right) main.scrollLeft += r.left - m.left - m.width / 2;
  }
  function showHistory(c, parent) {
    var s = section('Raw history', parent);
    if (c.history_path) {
      var p = el('p', 'note');
      p.appendChild(document.createTextNode('file: '));
      if (location.protocol === 'file:' && c.history_path.charAt(0) === '/') {
        p.appendChild(link(c.history_path, 'file://' + encodeURI(c.history_path)));
      } else {
        p.appendChild(document.createTextNode(c.history_path));
      }
      s.appendChild(p);
    }
    if (c.history_error) {
      s.appendChild(el('p', 'note', 'could not be read when the report was written: ' + c.history_error));
      return;
    }
    if (c.h === undefined) {
      s.appendChild(el('p', 'note', 'none recorded'));
      return;
    }
    var d = el('details');
    var label = 'show (' + kib(c.history_bytes) + (c.history_truncated ? ', truncated to the first 64 KiB' : '') + ')';
    d.appendChild(el('summary', null, label));
    d.addEventListener('toggle', function () {
      if (!d.open || d.querySelector('pre')) return;
      var raw = JSON.parse(document.getElementById('h-' + c.h).textContent);
      var text = typeof raw === 'string' ? raw : JSON.stringify(raw, null, 2);
      if (c.history_truncated) text += '\n… truncated: the file has ' + kib(c.history_bytes) + '.';
      d.appendChild(pre(text));
    });
    s.appendChild(d);
  }
  function show(key) {
    var c = data.cells[key];
    body.textContent = '';
    panel.hidden = false;
    panel.scrollTop = 0;
    if (!c) {
      unselect();
      body.appendChild(el('h2', null, 'No cell ' + key));
      body.appendChild(el('p', 'note', 'This run has no result for that case and implementation.'));
      return;
    }
    var cs = data.cases[c.case] || {};
    var h = el('h2');
    h.appendChild(el('span', 'badge v-' + c.kind, c.kind));
    h.appendChild(document.createTextNode(c.case + ' on ' + c.impl));
    body.appendChild(h);
    if (cs.claim) body.appendChild(el('p', 'claimtext', cs.claim));
    var nav = el('div', 'nav');
    var col = data.impls.indexOf(c.impl);
    if (col > 0) nav.appendChild(link('◀ ' + data.impls[col - 1], fragment(c.case, data.impls[col - 1])));
    if (col >= 0 && col + 1 < data.impls.length) nav.appendChild(link(data.impls[col + 1] + ' ▶', fragment(c.case, data.impls[col + 1])));
    if (c.impl !== data.oracle && data.cells[c.case + '/' + data.oracle]) nav.appendChild(link('the oracle (' + data.oracle + ')', fragment(c.case, data.oracle)));
    body.appendChild(nav);

    var dl = el('dl', 'facts');
    function fact(k, v) {
      if (v === undefined || v === null || v === '') return;
      dl.appendChild(el('dt', null, k));
      dl.appendChild(el('dd', null, v));
    }
    fact('status', c.status);
    fact('verdict', c.verdict);
    fact('reason', c.reason);
    fact('expected entry', c.expected ? c.expected.status + ': ' + c.expected.reason : 'none (expected to pass)');
    fact('unstable', c.unstable);
    fact('driver fault', c.fault);
    fact('duration', c.duration_ms + ' ms');
    fact('area', cs.area);
    fact('kind', cs.quirk ? 'CPython quirk: records what CPython happens to do' : 'contract: what every Pool must do');
    fact('tags', (cs.tags || []).join(', '));
    fact('case file', cs.file);
    var cols = el('div', 'cols');
    var left = el('div'), right = el('div');
    cols.appendChild(left);
    cols.appendChild(right);
    body.appendChild(cols);
    left.appendChild(dl);
    var s = section('Diff against the oracle (' + data.oracle + ')', left);
    if (c.diff !== undefined) s.appendChild(diffPre(data.texts[c.diff])); else s.appendChild(el('p', 'note', c.diff_note || ''));
    if (c.fault_detail) section('Driver fault', left).appendChild(pre(c.fault_detail));
    if (cs.cite && cs.cite.length) {
      var ul = el('ul', 'cite');
      cs.cite.forEach(function (x) { ul.appendChild(el('li', null, x)); });
      section('Citations', left).appendChild(ul);
    }
    s = section('Observation', right);
    if (c.observation !== undefined) s.appendChild(pre(data.texts[c.observation])); else s.appendChild(el('p', 'note', 'none recorded'));
    if (cs.expect) section("The case's expectations", right).appendChild(pre(cs.expect));
    showHistory(c, right);
    select(c);
  }
  function fromHash() {
    var h = location.hash.replace(/^#/, '');
    if (h.indexOf('cell=') !== 0) { close(); return; }
    var key = h.slice(5);
    try { key = decodeURIComponent(key); } catch (e) { /* keep it as written */ }
    show(key);
  }
  function dismiss() {
    close();
    try {
      history.pushState(null, '', location.pathname + location.search);
    } catch (e) {
      var x = window.scrollX, y = window.scrollY;
      location.hash = '';
      window.scrollTo(x, y);
    }
  }
  window.addEventListener('hashchange', fromHash);
  window.addEventListener('popstate', fromHash);
  document.getElementById('close').addEventListener('click', dismiss);
  document.addEventListener('keydown', function (e) {
    if (e.key === 'Escape' && !panel.hidden) dismiss();
  });
  Array.prototype.forEach.call(document.querySelectorAll('tr.group'), function (tr) {
    tr.addEventListener('click', function () { tr.parentNode.classList.toggle('collapsed'); });
  });
  var filter = document.getElementById('filter');
  var notable = document.getElementById('notable');
  function applyFilter() {
    var words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    Object.keys(rows).forEach(function (id) {
      var tr = rows[id];
      var text = (id + ' ' + ((data.cases[id] || {}).claim || '')).toLowerCase();
      var hide = (notable.checked && tr.classList.contains('allpass')) ||
        words.some(function (w) { return text.indexOf(w) < 0; });
      tr.classList.toggle('hidden', hide);
    });
  }
  filter.addEventListener('input', applyFilter);
  notable.addEventListener('change', applyFilter);
  applyFilter();
  fromHash();
})();
"#;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::expectations::Expected;
    use crate::runner::ImplementationReport;
    use crate::spec::load::{Suite, load_str};
    use crate::verdict::{Status, Verdict};

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
        for (k, short, _) in KINDS {
            assert!(CSS.contains(&format!(".v-{k}{{")), "{k}");
            assert_eq!(short_label(k), short);
        }
    }
}
