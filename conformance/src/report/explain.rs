//! `cargo xtask conformance explain CASE`: one case for a person who has not opened its
//! YAML. The claim, its tags and citations with links ([`cite`](super::cite)), the program
//! and its gates in words ([`describe`](crate::spec::describe)), what must be observed, and
//! then each implementation's status from a run (the last report, or a fresh run of the one
//! case), with the [`detail`](super::detail) of every cell that is not a pass: its reason, its
//! diff against the oracle and its history.

use std::fmt::Write as _;
use std::path::Path;

use super::cite::{SourceIndex, cite};
use super::detail;
use super::model::{CellKind, Model};
use crate::spec::describe;
use crate::spec::suggest::nearest;
use crate::spec::{LoadedCase, Probe};

/// How many ids an unknown id's error suggests.
const SUGGESTED: usize = 3;

/// No case has the id asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no case `{id}`{}", suggestion(closest))]
pub struct UnknownCase {
    pub id: String,
    /// The nearest ids, best first (possibly none).
    pub closest: Vec<String>,
}

fn suggestion(closest: &[String]) -> String {
    match closest {
        [] => "; `cargo xtask conformance lint` lists the cases it loads".to_owned(),
        ids => format!("; the closest: {}", ids.join(", ")),
    }
}

/// The case with id `id` (ignoring case, should no id match exactly).
pub fn find_case<'c>(cases: &'c [LoadedCase], id: &str) -> Result<&'c LoadedCase, UnknownCase> {
    cases
        .iter()
        .find(|c| c.id() == id)
        .or_else(|| cases.iter().find(|c| c.id().eq_ignore_ascii_case(id)))
        .ok_or_else(|| UnknownCase {
            id: id.to_owned(),
            closest: nearest(id, cases.iter().map(|c| c.id()), SUGGESTED)
                .into_iter()
                .map(str::to_owned)
                .collect(),
        })
}

/// Where the statuses come from: a run's model and what to call it (`target/conformance/
/// report.jsonl`, `this run`), or why there are none.
#[derive(Debug)]
pub enum Statuses<'m, 'a> {
    From {
        model: &'m Model<'a>,
        source: String,
    },
    Missing(String),
}

/// What to explain.
#[derive(Debug)]
pub struct Explain<'m, 'a> {
    pub case: &'a LoadedCase,
    /// Case files are shown relative to this folder.
    pub root: &'a Path,
    pub sources: &'a SourceIndex,
    pub statuses: Statuses<'m, 'a>,
    /// Only this implementation's status (`--impl`).
    pub only: Option<&'a str>,
}

/// The whole explanation, ending in a newline.
pub fn render(e: &Explain<'_, '_>) -> String {
    let mut out = String::new();
    about(&mut out, e);
    program(&mut out, e.case);
    statuses(&mut out, e);
    out
}

fn about(out: &mut String, e: &Explain<'_, '_>) {
    let c = e.case;
    let file = c.file.strip_prefix(e.root).unwrap_or(&c.file);
    let _ = writeln!(
        out,
        "{} ({}, {}; {})",
        c.id(),
        c.area.as_str(),
        if c.is_quirk() { "quirk" } else { "contract" },
        file.display()
    );
    let _ = writeln!(out, "{}\n", c.case.claim);
    let _ = writeln!(out, "tags: {}", c.case.tags.join(", "));
    if !c.case.versions.is_empty() {
        let v: Vec<String> = c
            .case
            .versions
            .iter()
            .map(|(lang, range)| format!("{lang} {range}"))
            .collect();
        let _ = writeln!(out, "holds for: {}", v.join(", "));
    }
    let _ = writeln!(out, "cites:");
    for citation in &c.case.cite {
        let cited = cite(citation, e.sources);
        let quote = cited
            .quote
            .map(|q| format!(" \u{2014} \"{q}\""))
            .unwrap_or_default();
        let _ = writeln!(out, "  {:7}{}{quote}", cited.kind, cited.text);
        if let Some(link) = cited.link {
            let _ = writeln!(out, "  {:7}{link}", "");
        }
    }
}

fn program(out: &mut String, c: &LoadedCase) {
    let p = &c.program;
    let _ = writeln!(out, "\nprogram:");
    let _ = writeln!(out, "  pool:  {}", describe::pool(&p.pool));
    if !c.case.requires.is_empty() {
        let _ = writeln!(out, "  needs: {}", c.case.requires.join(", "));
    }
    section(out, "steps", describe::steps(p));
    section(out, "tasks", describe::tasks(p));
    section(out, "gates", describe::gates(p));
    let probes: Vec<String> = c.case.observe.iter().map(probe).collect();
    if !probes.is_empty() {
        let _ = writeln!(out, "  observes: {}", probes.join("; "));
    }
    let _ = writeln!(out, "\nmust observe (by inclusion):");
    let expect = serde_yaml::to_string(&c.case.expect).unwrap_or_default();
    for line in expect.lines() {
        let _ = writeln!(out, "  {line}");
    }
}

fn section(out: &mut String, name: &str, lines: Vec<String>) {
    for (i, line) in lines.iter().enumerate() {
        let head = if i == 0 {
            format!("{name}:")
        } else {
            String::new()
        };
        let _ = writeln!(out, "  {head:7}{line}");
    }
}

fn probe(p: &Probe) -> String {
    match p {
        Probe::Order { name, events } => format!("order {name} of {}", events.join(", ")),
        Probe::MaxConcurrency => "max_concurrency".to_owned(),
        Probe::WorkerProcesses => "worker_processes".to_owned(),
        Probe::TasksByProcess => "tasks_by_process".to_owned(),
        Probe::CallbackContext => "callback_context".to_owned(),
        Probe::WorkersVsProcesses => "workers_vs_processes".to_owned(),
    }
}

fn statuses(out: &mut String, e: &Explain<'_, '_>) {
    let id = e.case.id();
    let (model, source) = match &e.statuses {
        Statuses::Missing(why) => {
            let _ = writeln!(out, "\nresults: {why}");
            return;
        }
        Statuses::From { model, source } => (model, source),
    };
    let _ = writeln!(out, "\nresults (from {source}):");
    let names: Vec<&str> = match e.only {
        Some(only) => vec![only],
        None => model.names(),
    };
    let width = names.iter().map(|n| n.len()).max().unwrap_or(0);
    for name in names {
        let Some(cell) = model.cell(id, name) else {
            let why = if model.names().contains(&name) {
                "not run"
            } else {
                "not in this run"
            };
            let _ = writeln!(out, "  {name:width$}  {why}");
            continue;
        };
        let _ = writeln!(out, "  {name:width$}  {}", cell.kind.label());
        if cell.kind == CellKind::Pass {
            continue;
        }
        for line in detail::lines(cell) {
            let _ = writeln!(out, "    {line}");
        }
    }
}
