//! The data the page's script reads, as typed structs: the cases, every cell's details, the
//! texts many cells share, and the legend. Raw histories are separate blocks, parsed only
//! when their cell is opened.

use std::collections::HashMap;
use std::path::Path;

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value;

use super::escape::{script_json, script_safe_json, truncate};
use crate::implementations::ORACLE;
use crate::report::model::{Cell, CellKind, Model, observation_yaml};
use crate::spec::LoadedCase;
use crate::verdict::Verdict;

/// The most of one raw history embedded in the page, in bytes. A larger history is embedded
/// as the beginning of its text, marked as truncated; the file itself has all of it.
pub const HISTORY_CAP: usize = 64 * 1024;

/// The `data` block.
#[derive(Debug, Serialize)]
pub struct PageData<'a> {
    pub oracle: &'static str,
    pub impls: Vec<&'a str>,
    /// By case id.
    pub cases: IndexMap<String, CaseData<'a>>,
    /// By `CASE/IMPLEMENTATION` (what a `#cell=` fragment decodes to).
    pub cells: IndexMap<String, CellData<'a>>,
    /// Observations and diffs, each stored once; cells refer to them by index.
    pub texts: Vec<String>,
    /// The legend, by [`CellKind::key`].
    pub kinds: IndexMap<&'static str, KindData>,
}

/// A case as the details panel shows it.
#[derive(Debug, Serialize)]
pub struct CaseData<'a> {
    pub area: &'static str,
    pub claim: &'a str,
    pub quirk: bool,
    pub tags: &'a [String],
    pub cite: Vec<String>,
    /// The case's expectations, as YAML.
    pub expect: String,
    pub file: String,
}

/// Everything the details panel shows about one cell.
#[derive(Debug, Serialize)]
pub struct CellData<'a> {
    pub case: &'a str,
    #[serde(rename = "impl")]
    pub implementation: &'a str,
    pub kind: &'static str,
    pub status: &'static str,
    pub verdict: Verdict,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<ExpectedData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unstable: Option<&'a str>,
    /// The driver fault's one-line summary, and (below) all of it as YAML.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_detail: Option<String>,
    /// Index into [`PageData::texts`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observation: Option<usize>,
    /// Index into [`PageData::texts`]; when there is none, `diff_note` says why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff_note: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_path: Option<String>,
    /// The history's block: `h-N`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub h: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_bytes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_truncated: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_error: Option<String>,
}

/// A cell's entry in its expectation file.
#[derive(Debug, Serialize)]
pub struct ExpectedData<'a> {
    pub status: &'static str,
    pub reason: &'a str,
}

/// A kind's legend entry.
#[derive(Debug, Serialize)]
pub struct KindData {
    pub short: &'static str,
    pub means: &'static str,
}

/// Long texts that many cells share (most implementations observe what the oracle does),
/// stored once.
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

/// A raw history as embedded: the script-safe JSON of its block and what to say about it.
struct EmbeddedHistory {
    block: String,
    bytes: usize,
    truncated: bool,
}

/// Reads a history file. Compact JSON when it fits in [`HISTORY_CAP`]; otherwise the first
/// [`HISTORY_CAP`] bytes of the file's text, as a JSON string.
fn load_history(path: &Path) -> std::io::Result<EmbeddedHistory> {
    let text = std::fs::read_to_string(path)?;
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
        block: script_json(head),
        bytes: text.len(),
        truncated,
    })
}

/// The page's data and its history blocks (script-safe JSON, `h-N` in order).
pub fn page_data<'a>(model: &'a Model<'a>) -> (PageData<'a>, Vec<String>) {
    let names = model.names();
    let mut texts = Texts::default();
    let mut histories = Vec::new();
    let mut cells = IndexMap::new();
    for c in model.cases {
        for n in &names {
            if let Some(cell) = model.cell(c.id(), n) {
                cells.insert(
                    format!("{}/{n}", c.id()),
                    cell_data(model, cell, &mut texts, &mut histories),
                );
            }
        }
    }
    let data = PageData {
        oracle: ORACLE,
        impls: names,
        cases: model
            .cases
            .iter()
            .map(|c| (c.id().to_owned(), case_data(c)))
            .collect(),
        cells,
        texts: texts.list,
        kinds: CellKind::COUNTED
            .iter()
            .map(|k| {
                (
                    k.key(),
                    KindData {
                        short: k.short(),
                        means: k.means(),
                    },
                )
            })
            .collect(),
    };
    (data, histories)
}

fn cell_data<'a>(
    model: &Model<'_>,
    cell: &Cell<'a>,
    texts: &mut Texts,
    histories: &mut Vec<String>,
) -> CellData<'a> {
    let r = cell.result;
    let observation = observation_yaml(r);
    let observation = (!observation.is_empty()).then(|| texts.id(observation));
    let diff = cell.diff().map(|d| texts.id(d.to_owned()));
    let diff_note = diff.is_none().then(|| {
        if r.implementation == ORACLE {
            "this is the oracle"
        } else if model.run.result(&r.case, ORACLE).is_none() {
            "the oracle did not run this case"
        } else if r.observation.is_none() {
            "no observation was recorded"
        } else {
            "identical to the oracle's observation"
        }
    });
    let mut data = CellData {
        case: &r.case,
        implementation: &r.implementation,
        kind: cell.kind.key(),
        status: r.status.as_str(),
        verdict: r.verdict,
        duration_ms: r.duration_ms,
        reason: r.reason.as_deref(),
        expected: r.expected.as_ref().map(|e| ExpectedData {
            status: e.status.as_str(),
            reason: &e.reason,
        }),
        unstable: r.unstable.as_deref(),
        fault: r.fault.as_ref().map(|f| f.summary()),
        fault_detail: r.fault.as_ref().map(|f| {
            let detail = serde_yaml::to_string(f).unwrap_or_default();
            let (head, cut) = truncate(&detail, HISTORY_CAP);
            let mut detail = head.to_owned();
            if cut {
                detail.push_str("\n… (truncated)\n");
            }
            detail
        }),
        observation,
        diff,
        diff_note,
        history_path: None,
        h: None,
        history_bytes: None,
        history_truncated: None,
        history_error: None,
    };
    if let Some(path) = &r.history {
        data.history_path = Some(path.display().to_string());
        match load_history(path) {
            Ok(h) => {
                data.h = Some(histories.len());
                data.history_bytes = Some(h.bytes);
                data.history_truncated = h.truncated.then_some(true);
                histories.push(h.block);
            }
            Err(e) => data.history_error = Some(e.to_string()),
        }
    }
    data
}

fn case_data(c: &LoadedCase) -> CaseData<'_> {
    let cite = c
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
    CaseData {
        area: c.area.as_str(),
        claim: &c.case.claim,
        quirk: c.is_quirk(),
        tags: &c.case.tags,
        cite,
        expect: serde_yaml::to_string(&c.case.expect).unwrap_or_default(),
        file: c.file.display().to_string(),
    }
}
