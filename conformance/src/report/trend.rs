//! `cargo xtask conformance trend DIR`: a line per report found under DIR, oldest first, with
//! its start time, suite and contract compliance per implementation, to see a history of runs
//! (CI artifacts downloaded into one folder) at a glance.
//!
//! Every `*.jsonl` file under DIR is read, at any depth (CI artifacts nest a report a folder
//! or two down); links are not followed. A file that is not a valid report is skipped with a
//! warning naming it, the others are still shown. Reports sort by `started`, then by path;
//! an older report without `started` comes first, its date shown as `-`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use super::compare::{CompareError, Side};
use super::model::Part;

/// The folder itself could not be listed.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot list: {source}", path.display())]
pub struct TrendError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// One report's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file, relative to the folder given.
    pub path: PathBuf,
    pub started: Option<String>,
    pub suite_hash: String,
    /// Contract compliance per implementation, in the run's order.
    pub contract: IndexMap<String, Part>,
    /// The report covers only part of its run.
    pub interrupted: bool,
}

/// The reports of a folder, in order, and the files that were not reports.
#[derive(Debug)]
pub struct Trend {
    pub entries: Vec<Entry>,
    pub skipped: Vec<CompareError>,
}

/// Reads every report under `dir`.
pub fn collect(dir: &Path) -> Result<Trend, TrendError> {
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    for file in files {
        match Side::read(&file) {
            Ok(side) => entries.push(Entry {
                path: file.strip_prefix(dir).unwrap_or(&file).to_owned(),
                started: side.report.header.started.clone(),
                suite_hash: side.report.header.suite_hash.clone(),
                contract: side
                    .report
                    .footer
                    .counts
                    .compliance
                    .iter()
                    .map(|(name, c)| (name.clone(), c.contract))
                    .collect(),
                interrupted: !side.report.is_complete(),
            }),
            Err(e) => skipped.push(e),
        }
    }
    // `None` sorts before any time; RFC 3339 in UTC sorts as text.
    entries.sort_by(|a, b| (&a.started, &a.path).cmp(&(&b.started, &b.path)));
    Ok(Trend { entries, skipped })
}

/// The `*.jsonl` files under `dir`, in name order at each level.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), TrendError> {
    let listing = std::fs::read_dir(dir).map_err(|source| TrendError {
        path: dir.to_owned(),
        source,
    })?;
    let mut paths: Vec<(PathBuf, std::fs::FileType)> = listing
        .flatten()
        .filter_map(|e| Some((e.path(), e.file_type().ok()?)))
        .collect();
    paths.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, kind) in paths {
        if kind.is_dir() {
            walk(&path, out)?;
        } else if kind.is_file() && path.extension().is_some_and(|x| x == "jsonl") {
            out.push(path);
        }
    }
    Ok(())
}

/// The table: a column per implementation (in order of first appearance), `-` where a
/// report did not run it.
pub fn render(trend: &Trend) -> String {
    let mut names: Vec<&str> = Vec::new();
    for e in &trend.entries {
        for name in e.contract.keys() {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
    let mut rows: Vec<Vec<String>> = vec![
        ["started", "suite"]
            .into_iter()
            .chain(names.iter().copied())
            .chain(["report"])
            .map(str::to_owned)
            .collect(),
    ];
    for e in &trend.entries {
        let mut row = vec![
            e.started.clone().unwrap_or_else(|| "-".into()),
            e.suite_hash.chars().take(8).collect(),
        ];
        for name in &names {
            row.push(
                e.contract
                    .get(*name)
                    .map_or_else(|| "-".into(), |p| format!("{}/{}", p.passed, p.cases)),
            );
        }
        let mut path = e.path.display().to_string();
        if e.interrupted {
            path.push_str(" (interrupted)");
        }
        row.push(path);
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:w$}  ");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if trend.entries.is_empty() {
        out = "no reports\n".into();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(started: Option<&str>, suite: &str, parts: &[(&str, usize, usize)]) -> String {
        let started = started.map_or(String::new(), |s| format!(r#","started":"{s}""#));
        let implementations: Vec<String> = parts
            .iter()
            .map(|(n, ..)| format!(r#"{{"name":"{n}","capabilities":[]}}"#))
            .collect();
        let compliance: Vec<String> = parts
            .iter()
            .map(|(n, p, c)| {
                format!(
                    r#""{n}":{{"contract":{{"passed":{p},"cases":{c}}},"quirk":{{"passed":0,"cases":0}}}}"#
                )
            })
            .collect();
        format!(
            "{{\"type\":\"header\",\"harness\":\"poolspec\",\"harness_version\":\"0.1.0\",\
             \"protocol\":2,\"case_format\":1,\"suite_hash\":\"{suite}\",\"cases\":1,\
             \"oracle\":\"cpython-fork\",\"implementations\":[{}]{started}}}\n\
             {{\"type\":\"footer\",\"complete\":true,\"wall_ms\":5,\"counts\":{{\"cells\":0,\
             \"unexpected\":0,\"per_implementation\":{{}},\"compliance\":{{{}}}}}}}\n",
            implementations.join(","),
            compliance.join(",")
        )
    }

    #[test]
    fn reports_in_order_of_their_start_and_a_bad_file_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let write = |rel: &str, text: &str| {
            let path = d.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        let (a, b) = ("cpython-fork", "cpython-threadpool");
        write(
            "2026-12-05/report.jsonl",
            &report(
                Some("2026-12-05T09:00:00Z"),
                "5e1f00d5c0ffee00",
                &[(a, 112, 112), (b, 100, 112)],
            ),
        );
        write(
            "2026-11-30/report.jsonl",
            &report(
                Some("2026-11-30T23:59:59Z"),
                "0123456789abcdef",
                &[(a, 110, 110)],
            ),
        );
        write(
            "old.jsonl",
            &report(None, "00000000ffffffff", &[(b, 90, 100)]),
        );
        write("nested/deeper/cut.jsonl", "{\"type\":\"header\"}\n");
        write("notes.txt", "not a report, not read");
        let trend = collect(d).unwrap();
        assert_eq!(trend.skipped.len(), 1);
        let warning = trend.skipped[0].to_string();
        assert!(
            warning.contains("cut.jsonl") && !warning.contains('\n'),
            "{warning}"
        );
        insta::assert_snapshot!(render(&trend));
    }

    #[test]
    fn an_empty_folder_and_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(render(&collect(dir.path()).unwrap()), "no reports\n");
        let err = collect(&dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("missing: cannot list"), "{err}");
    }
}
