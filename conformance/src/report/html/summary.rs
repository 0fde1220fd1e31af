//! The top of the page: the header (sizes, suite, oracle, the one-line verdict) and the
//! table of implementations (versions, cells by kind, contract/quirk compliance).

use std::fmt::Write as _;

use super::counts::GridCounts;
use super::escape::escape;
use crate::implementations::ORACLE;
use crate::report::model::{CellKind, Model};

/// The header: what ran, and whether every result was the expected one.
pub fn header(out: &mut String, model: &Model<'_>) {
    let _ = writeln!(
        out,
        "<header>\n<h1>poolspec conformance</h1>\n<p class=\"meta\">{} cases × {} implementations \
         · {} cells · suite <code>{}</code> · {:.1} s{} · oracle <b>{}</b> · poolspec {}</p>",
        model.cases.len(),
        model.run.implementations.len(),
        model.cells.len(),
        escape(&model.suite_hash()),
        model.run.wall.as_secs_f64(),
        model
            .started
            .as_deref()
            .map(|t| format!(" · started <time>{}</time>", escape(t)))
            .unwrap_or_default(),
        escape(ORACLE),
        escape(env!("CARGO_PKG_VERSION")),
    );
    if let Some(i) = &model.interruption {
        let _ = writeln!(
            out,
            "<p class=\"banner bad\" id=\"interrupted\">{}</p><br>",
            escape(&i.headline())
        );
    }
    let unexpected = model.unexpected;
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
}

/// One row per implementation.
pub fn implementations(out: &mut String, model: &Model<'_>, counts: &GridCounts) {
    out.push_str(
        "<section id=\"summary\">\n<h2>Implementations</h2>\n<table class=\"summary\">\n<thead><tr>\
         <th>implementation</th><th>version</th><th>start method</th>",
    );
    for k in CellKind::COUNTED {
        let _ = write!(
            out,
            "<th title=\"{}: {}\"><span class=\"sw v-{}\"></span>{}</th>",
            escape(k.key()),
            escape(k.means()),
            k.key(),
            escape(k.short())
        );
    }
    out.push_str(
        "<th title=\"contract cases with status pass\">contract</th>\
         <th title=\"CPython-quirk cases with status pass\">CPython quirks</th></tr></thead>\n<tbody>\n",
    );
    for s in &model.implementations {
        let i = s.implementation;
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
        for k in CellKind::COUNTED {
            let n = counts.of(&i.name, k);
            if n == 0 {
                out.push_str("<td class=\"zero\">0</td>");
            } else {
                let _ = write!(out, "<td class=\"n v-{}\">{n}</td>", k.key());
            }
        }
        for part in [s.compliance.contract, s.compliance.quirk] {
            let _ = write!(
                out,
                "<td class=\"comp\"><span class=\"bar\"><span style=\"width:{}%\"></span></span>{}/{}</td>",
                part.percent(),
                part.passed,
                part.cases
            );
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}
