//! `cargo xtask conformance lint`: consistency checks over spec/ and fixtures/.
//!
//! Also run by `cargo test`, so a dangling reference cannot land.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::claims::ClaimsFile;
use crate::coverage::{CoverageFile, cpython_test_source};
use crate::expectations::ExpectationFile;
use crate::interpreters::find_python;
use crate::spec::{LoadedCase, Source, Suite, json_schema, load_folders};
use crate::yaml::YamlError;

/// The tags a case may carry (besides none), from `spec/tags.yaml`.
pub fn load_tags(root: &Path) -> Result<Vec<String>, YamlError> {
    let path = root.join("spec/tags.yaml");
    let map: indexmap::IndexMap<String, String> = crate::yaml::read_yaml(&path)?;
    Ok(map.into_keys().collect())
}

/// The tags an added folder registers in its own `tags.yaml` (none when it has none).
fn own_tags(dir: &Path) -> Vec<String> {
    let path = dir.join("tags.yaml");
    if !path.is_file() {
        return Vec::new();
    }
    crate::yaml::read_yaml::<indexmap::IndexMap<String, String>>(&path)
        .map(|m| m.into_keys().collect())
        .unwrap_or_default()
}

/// An error and its causes on one line, `a: b: c` (as anyhow's `{:#}` shows them): the
/// typed errors keep their causes as sources, not in their own message.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let _ = write!(line, ": {c}");
        cause = c.source();
    }
    line
}

/// Every problem found, one line each; empty means clean.
pub fn lint(root: &Path) -> (Suite, Vec<String>) {
    lint_folders(root, &[])
}

/// [`lint`] of the built-in suite together with added spec folders (`--spec DIR`): their
/// cases load with the built-in ones (an id used in two folders is an error), and their tags
/// may come from the folder's own `tags.yaml` too. The derived files (claims, coverage) are
/// the built-in suite's alone.
pub fn lint_folders(root: &Path, added: &[PathBuf]) -> (Suite, Vec<String>) {
    let suite = match load_folders(Some(&root.join("spec")), added) {
        Ok(suite) => suite,
        Err(e) => return (Suite::default(), vec![e.to_string()]),
    };
    let mut problems: Vec<String> = suite.errors.iter().map(ToString::to_string).collect();
    let ids: Vec<&str> = suite.cases.iter().map(|c| c.id()).collect();
    let builtin: Vec<LoadedCase> = suite
        .cases
        .iter()
        .filter(|c| c.source.is_builtin())
        .cloned()
        .collect();

    match load_tags(root) {
        Ok(tags) => {
            for c in &suite.cases {
                let own = match &c.source {
                    Source::Added(dir) => own_tags(dir),
                    Source::BuiltIn => Vec::new(),
                };
                for t in &c.case.tags {
                    if !tags.contains(t) && !own.contains(t) {
                        problems.push(format!(
                            "{}: case {}: tag `{t}` is not in spec/tags.yaml{}",
                            c.file.display(),
                            c.id(),
                            if c.source.is_builtin() {
                                ""
                            } else {
                                " nor in the folder's own tags.yaml"
                            }
                        ));
                    }
                }
            }
        }
        Err(e) => problems.push(with_causes(&e)),
    }
    for c in &builtin {
        let refused = crate::spec::own::builtin_refusals(&c.case);
        if !refused.is_empty() {
            problems.push(format!(
                "{}: case {}: {} only in an added spec folder (--spec DIR): CPython judges \
                 every case of spec/",
                c.file.display(),
                c.id(),
                refused.join(", ")
            ));
        }
    }
    for c in &suite.cases {
        let prefix = c.id().split('-').next().unwrap_or_default();
        if prefix.is_empty()
            || !c
                .id()
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
        {
            problems.push(format!("case id `{}` must look like AREA-NNN", c.id()));
        }
        if c.case.claim.contains(" should ") {
            problems.push(format!(
                "case {}: state the claim as a fact, without \"should\"",
                c.id()
            ));
        }
        let mut raised = Vec::new();
        expected_exceptions(&c.case.expect, "expect", &mut raised);
        for (path, exception) in raised {
            problems.extend(exception_problems(
                &path,
                exception,
                c.case.requires.iter().any(|r| r == "python"),
            ));
        }
    }

    let exp_dir = root.join("fixtures/expectations");
    if let Ok(rd) = std::fs::read_dir(&exp_dir) {
        for entry in rd.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let stem = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default();
                // The file names the implementation; its file name is that name's stem.
                let named = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| serde_yaml::from_str::<ExpectationFile>(&t).ok())
                    .map(|f| f.implementation)
                    .unwrap_or_else(|| stem.to_owned());
                if crate::implementations::file_stem(&named) != stem {
                    problems.push(format!(
                        "{}: written for `{named}`, whose expectation file is `{}.yaml`",
                        path.display(),
                        crate::implementations::file_stem(&named)
                    ));
                } else if let Err(e) = ExpectationFile::load(&path, &named, &ids) {
                    problems.push(with_causes(&e));
                }
            }
        }
    }

    let snap_dir = root.join("fixtures/snapshots");
    if let Ok(rd) = std::fs::read_dir(&snap_dir) {
        for imp in rd.flatten() {
            let Ok(files) = std::fs::read_dir(imp.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if let Some(id) = name.strip_suffix(".snap")
                    && !ids.contains(&id)
                {
                    problems.push(format!(
                        "{}: snapshot of a case that does not exist",
                        f.path().display()
                    ));
                }
            }
        }
    }

    match ClaimsFile::load(&root.join("spec/claims.yaml"), &builtin) {
        Ok(claims) => {
            for c in &builtin {
                let seeds: Vec<&str> = c
                    .case
                    .cite
                    .iter()
                    .filter_map(|cite| match cite {
                        crate::spec::Citation::Seed(id) => Some(id.as_str()),
                        _ => None,
                    })
                    .collect();
                let tagged = c.case.tags.iter().any(|t| t == "seed");
                if tagged == seeds.is_empty() {
                    problems.push(format!(
                        "case {}: the `seed` tag and `seed:` citations go together",
                        c.id()
                    ));
                }
                for id in seeds {
                    if !claims.claims.iter().any(|cl| cl.id == id) {
                        problems.push(format!(
                            "case {}: cites seed claim `{id}`, which spec/claims.yaml lacks",
                            c.id()
                        ));
                    }
                }
            }
            let want = claims.render(&builtin);
            let have = std::fs::read_to_string(root.join("spec/CLAIMS.md")).unwrap_or_default();
            if want != have {
                problems.push(
                    "spec/CLAIMS.md is stale: run `cargo xtask conformance claims`".to_owned(),
                );
            }
        }
        Err(e) => problems.push(with_causes(&e)),
    }

    match CoverageFile::load(&root.join("spec/coverage.yaml"), &builtin) {
        Ok(coverage) => {
            let want = coverage.render(&builtin);
            let have = std::fs::read_to_string(root.join("spec/COVERAGE.md")).unwrap_or_default();
            if want != have {
                problems.push(
                    "spec/COVERAGE.md is stale: run `cargo xtask conformance coverage`".to_owned(),
                );
            }
            // The installed CPython's own test file is the list to cover, when it is there.
            if let Some(source) = find_python().ok().and_then(|p| cpython_test_source(&p)) {
                for name in coverage.missing_tests(&source) {
                    problems.push(format!(
                        "spec/coverage.yaml: CPython test `{name}` has no entry (cases or a gap)"
                    ));
                }
            }
        }
        Err(e) => problems.push(with_causes(&e)),
    }

    let schema = serde_json::to_string_pretty(&json_schema()).unwrap_or_default() + "\n";
    let committed = std::fs::read_to_string(root.join("spec/case.schema.json")).unwrap_or_default();
    if schema != committed {
        problems.push(
            "spec/case.schema.json is stale: run `cargo xtask conformance schema`".to_owned(),
        );
    }
    (suite, problems)
}

/// Every `raised` map of an expectation, with its path.
fn expected_exceptions<'a>(
    value: &'a serde_json::Value,
    path: &str,
    out: &mut Vec<(String, &'a serde_json::Map<String, serde_json::Value>)>,
) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let here = format!("{path}.{k}");
                match (k.as_str(), v) {
                    ("raised", serde_json::Value::Object(e)) => out.push((here, e)),
                    _ => expected_exceptions(v, &here, out),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                expected_exceptions(v, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// An expected exception may only name a neutral kind the protocol defines, and may assert
/// what only a Python driver reports only in a case that requires `python`.
fn exception_problems(
    path: &str,
    exception: &serde_json::Map<String, serde_json::Value>,
    requires_python: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(kind) = exception.get("kind") {
        let known = kind
            .as_str()
            .is_some_and(|k| crate::protocol::ERROR_KINDS.iter().any(|(n, _)| *n == k));
        if !known {
            let names: Vec<&str> = crate::protocol::ERROR_KINDS
                .iter()
                .map(|(n, _)| *n)
                .collect();
            problems.push(format!(
                "{path}.kind: {kind} is not a neutral kind (one of: {})",
                names.join(", ")
            ));
        }
    }
    if exception.contains_key("python") && !requires_python {
        problems.push(format!(
            "{path}.python: only a Python driver reports it; the case must `requires: [python]`"
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(expect: serde_json::Value, requires_python: bool) -> Vec<String> {
        let mut raised = Vec::new();
        expected_exceptions(&expect, "expect", &mut raised);
        raised
            .into_iter()
            .flat_map(|(p, e)| exception_problems(&p, e, requires_python))
            .collect()
    }

    #[test]
    fn an_unknown_kind_is_named_with_its_path() {
        let found = problems(
            json!({"steps": {"s1": {"raised": {"kind": "timout"}}}}),
            false,
        );
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with("expect.steps.s1.raised.kind: \"timout\""),
            "{found:?}"
        );
        assert!(
            problems(
                json!({"steps": {"s1": {"raised": {"kind": "timeout"}}}}),
                false
            )
            .is_empty()
        );
    }

    #[test]
    fn python_details_need_the_python_capability() {
        let expect = json!({"construct": {"raised": {"python": {"class": "builtins.ValueError"}}}});
        assert_eq!(problems(expect.clone(), false).len(), 1);
        assert!(problems(expect, true).is_empty());
    }
}
