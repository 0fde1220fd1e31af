//! The matrix: cases × implementations, rows grouped by area (each group foldable, with its
//! counts), each cell a link that opens its details, and a footer of passes per column. It is
//! plain HTML, readable without the script.

use std::fmt::Write as _;

use super::counts::GridCounts;
use super::escape::{cell_fragment, escape, truncate};
use crate::implementations::ORACLE;
use crate::report::model::{Cell, CellKind, Model};
use crate::spec::{Area, LoadedCase};

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Counted as a pass (a changed cell is).
fn is_pass(cell: &Cell<'_>) -> bool {
    cell.kind.key() == CellKind::Pass.key()
}

/// The matrix section: controls and legend, then the table.
pub fn section(out: &mut String, model: &Model<'_>, counts: &GridCounts) {
    controls(out, counts);
    let names = model.names();
    // The claim column takes what the implementations' columns leave of the window.
    let _ = write!(
        out,
        "<table class=\"matrix\" style=\"--claim:max(200px, calc(100vw - {}px))\">",
        names.len() * 42 + 240
    );
    head(out, model);
    for (area, group) in by_area(model.cases) {
        area_rows(out, model, area, &group);
    }
    out.push_str("<tfoot><tr><th colspan=\"3\" class=\"foot\">passing</th>");
    for n in &names {
        let pass = counts.of(n, CellKind::Pass);
        let all = counts.all_of(n);
        let _ = write!(
            out,
            "<td class=\"foot\" title=\"{}: {pass} of {all} cells pass\">{pass}</td>",
            escape(n)
        );
    }
    out.push_str("</tr></tfoot>\n</table>\n</section>\n");
}

/// The filter, the "only rows that did not pass" switch and the legend with totals.
fn controls(out: &mut String, counts: &GridCounts) {
    out.push_str(
        "<section id=\"matrix\">\n<h2>Matrix</h2>\n<div class=\"controls\">\
         <input type=\"search\" id=\"filter\" placeholder=\"filter: case id or words of the claim\" aria-label=\"filter cases\"> \
         <label><input type=\"checkbox\" id=\"notable\"> only rows where something did not pass</label>\
         <span class=\"legend\">",
    );
    for k in CellKind::COUNTED {
        let _ = write!(
            out,
            "<span class=\"key v-{}\" title=\"{}\">{} <b>{}</b> {}</span>",
            k.key(),
            escape(k.means()),
            escape(k.short()),
            escape(k.key()),
            counts.total(k)
        );
    }
    out.push_str(
        "<span class=\"key\"><span class=\"k q\">Q</span> CPython quirk, <span class=\"k\">C</span> contract</span>\
         </span></div>\n<p class=\"hint\">Click a cell for its details; click an area to fold it.</p>\n",
    );
}

/// The column headers: case, kind, claim, one rotated name per implementation.
fn head(out: &mut String, model: &Model<'_>) {
    out.push_str(
        "\n<thead><tr><th class=\"id\">case</th>\
         <th class=\"kind\" title=\"C: contract (what every Pool must do); Q: CPython quirk (what CPython happens to do)\">kind</th>\
         <th class=\"claim\">claim</th>",
    );
    for i in &model.run.implementations {
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

/// One area: its group row (name and counts), then a row per case.
fn area_rows(out: &mut String, model: &Model<'_>, area: Area, group: &[&LoadedCase]) {
    let names = model.names();
    let in_group: Vec<&Cell<'_>> = group
        .iter()
        .flat_map(|c| names.iter().filter_map(|n| model.cell(c.id(), n)))
        .collect();
    let xfail = in_group
        .iter()
        .filter(|c| c.kind.key() == CellKind::ExpectedFail.key())
        .count();
    let bad = in_group
        .iter()
        .filter(|c| !c.result.verdict.is_ok())
        .count();
    let mut count = format!("{} case{}", group.len(), plural(group.len()));
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
        columns = 3 + names.len(),
    );
    for c in group {
        case_row(out, model, &names, c);
    }
    out.push_str("</tbody>\n");
}

/// One case: id, kind, claim, and a cell per implementation.
fn case_row(out: &mut String, model: &Model<'_>, names: &[&str], c: &LoadedCase) {
    let all_pass = names
        .iter()
        .all(|n| model.cell(c.id(), n).is_some_and(is_pass));
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
    for n in names {
        match model.cell(c.id(), n) {
            Some(cell) => {
                let r = cell.result;
                let k = cell.kind;
                let why = r
                    .unstable
                    .as_deref()
                    .or(r.expected.as_ref().map(|e| e.reason.as_str()))
                    .or(r.reason.as_deref())
                    .map(|w| format!(": {}", truncate(w, 300).0))
                    .unwrap_or_default();
                let _ = write!(
                    out,
                    "<td class=\"c v-{}\"><a href=\"{}\" title=\"{}\">{}</a></td>",
                    k.key(),
                    escape(&cell_fragment(c.id(), n)),
                    escape(&format!("{} on {n}: {}{why}", c.id(), k.key())),
                    escape(k.short())
                );
            }
            None => out.push_str("<td class=\"c none\" title=\"not run\">–</td>"),
        }
    }
    out.push_str("</tr>\n");
}
