//! Writing a shrunk divergence as a case file, ready for review and for `spec/`.
//!
//! The file is an ordinary spec file (format 1, one area, one case) that the loader reads
//! like any other: its `expect` is the oracle's whole observation, its claim and citation
//! are derived from the first difference, and a comment block above it records the seed,
//! the command that reproduces it and both observations. A reviewer rewrites the claim,
//! checks the citation, gives it a permanent id and moves it into `spec/` or the fuzz
//! corpus (`fixtures/fuzz-corpus/`).

use serde_json::Value;

use super::diff::Difference;
use crate::spec::{Area, Case, Citation, FORMAT_VERSION, SpecFile, Step};

/// What the comment block says about how the case was found.
#[derive(Debug, Clone)]
pub struct Provenance {
    pub implementation: String,
    pub oracle: String,
    /// The command that regenerates the original program.
    pub reproduce: String,
    pub original_steps: usize,
    pub shrink_runs: u32,
}

/// The op of step `id` in `case`, if any.
fn op_of<'a>(case: &'a Case, id: &str) -> Option<&'a Step> {
    case.steps
        .iter()
        .enumerate()
        .find(|(i, s)| {
            s.explicit_id()
                .map_or_else(|| format!("s{}", i + 1), str::to_owned)
                == id
        })
        .map(|(_, s)| s)
}

/// The step a difference's path is about: `steps.s3…`, `callbacks.s3…`, or the step of
/// task `s3-1`.
fn step_of<'a>(case: &'a Case, path: &str) -> Option<&'a Step> {
    let mut parts = path.split('.');
    let section = parts.next()?;
    let key = parts.next()?;
    let id = match section {
        "tasks" => key.rsplit_once('-').map_or(key, |(s, _)| s),
        _ => key,
    };
    op_of(case, id)
}

/// The area a reviewer would most likely file the case under.
pub fn area_for(case: &Case, first: &Difference) -> Area {
    let path = first.path.as_str();
    if path.starts_with("callbacks") {
        return Area::CallbackProcess;
    }
    if path.ends_with(".process") {
        return Area::Workers;
    }
    let raised = |v: &Option<Value>| v.as_ref().is_some_and(|v| v.get("raised").is_some());
    if raised(&first.oracle) || raised(&first.target) {
        return Area::Errors;
    }
    match step_of(case, path) {
        Some(Step::Next(_) | Step::Collect(_) | Step::Imap(_) | Step::ImapUnordered(_)) => {
            Area::Iteration
        }
        Some(Step::Get(h) | Step::Wait(h)) if h.timeout.is_some() => Area::Timeouts,
        Some(Step::Close(_) | Step::Join(_) | Step::Terminate(_) | Step::ExitWith(_)) => {
            Area::Lifecycle
        }
        Some(Step::Apply(_) | Step::Map(_) | Step::Starmap(_)) => Area::Blocking,
        _ if path.starts_with("tasks") => Area::Lifecycle,
        _ => Area::Ordering,
    }
}

/// The documentation anchor of the API the difference is about.
pub fn citation_for(case: &Case, first: &Difference) -> Citation {
    const DOC: &str = "library/multiprocessing.html#multiprocessing.pool";
    let anchor = match step_of(case, &first.path) {
        Some(Step::Get(_) | Step::Wait(_) | Step::Ready(_) | Step::Successful(_)) => {
            let op = step_of(case, &first.path).map_or("get", Step::op);
            format!("{DOC}.AsyncResult.{op}")
        }
        Some(Step::Next(h) | Step::Collect(h)) => {
            let op = op_of(case, &h.of).map_or("imap", Step::op);
            format!("{DOC}.Pool.{op}")
        }
        Some(Step::ExitWith(_)) | None => format!("{DOC}.Pool"),
        Some(step) => format!("{DOC}.Pool.{}", step.op()),
    };
    Citation::Doc(anchor)
}

fn flow(v: &Option<Value>) -> String {
    v.as_ref().map_or("absent".to_owned(), Value::to_string)
}

/// The one-sentence claim: the first difference, stated as what CPython does.
pub fn claim_for(first: &Difference, implementation: &str) -> String {
    format!(
        "In this generated program, `{}` is {} on CPython ({implementation} observed {}).",
        first.path,
        flow(&first.oracle),
        flow(&first.target)
    )
}

/// The case file's text.
pub fn case_file(
    case: &Case,
    oracle_observation: &Value,
    target_observation: &Value,
    differences: &[Difference],
    provenance: &Provenance,
) -> Result<String, serde_yaml::Error> {
    let Some(first) = differences.first() else {
        return Ok(String::new());
    };
    let mut case = case.clone();
    case.claim = claim_for(first, &provenance.implementation);
    case.cite = vec![citation_for(&case, first)];
    case.expect = oracle_observation.clone();
    let area = area_for(&case, first);
    let file = SpecFile {
        format: FORMAT_VERSION,
        area,
        cases: vec![case],
    };
    let mut text = String::new();
    text.push_str(&format!(
        "# Found by the differential fuzzer: {} against {} (the oracle).\n",
        provenance.implementation, provenance.oracle
    ));
    text.push_str(&format!(
        "# Reproduce the original program: {}\n",
        provenance.reproduce
    ));
    text.push_str(&format!(
        "# Shrunk from {} to {} steps in {} runs.\n",
        provenance.original_steps,
        file.cases[0].steps.len(),
        provenance.shrink_runs
    ));
    text.push_str(
        "# `expect` is the oracle's whole observation. Where the implementation differs:\n",
    );
    for d in differences {
        text.push_str(&format!(
            "#   {}: {} {}, {} {}\n",
            d.path,
            provenance.oracle,
            flow(&d.oracle),
            provenance.implementation,
            flow(&d.target)
        ));
    }
    text.push_str(&format!(
        "# The whole observation of {}:\n",
        provenance.implementation
    ));
    for line in serde_yaml::to_string(target_observation)?.lines() {
        text.push_str(&format!("#   {line}\n"));
    }
    text.push_str(
        "# Before moving it into spec/: give it a permanent id, restate the claim, check the citation.\n",
    );
    text.push_str(&to_yaml(&file)?);
    Ok(text)
}

/// A spec file as YAML in the hand-written style: steps as `- op: {...}` maps rather than
/// YAML tags, and without the fields that only restate a default (`id: null`, `observe: []`).
pub fn to_yaml(file: &SpecFile) -> Result<String, serde_yaml::Error> {
    let mut value =
        serde_json::to_value(file).map_err(<serde_yaml::Error as serde::ser::Error>::custom)?;
    tidy(&mut value);
    serde_yaml::to_string(&value)
}

/// Drops defaults, recursively. `returns: null` is meaningful and kept.
fn tidy(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, v| {
                let default = match (k.as_str(), &*v) {
                    ("id", Value::Null) => true,
                    ("maxtasksperchild" | "initializer", Value::Null) => true,
                    ("with_block", Value::Bool(false)) => true,
                    ("requires" | "observe", Value::Array(a)) => a.is_empty(),
                    ("gates", Value::Object(g)) => g.is_empty(),
                    ("timeout", Value::String(t)) => t == "normal",
                    _ => false,
                };
                !default
            });
            for v in map.values_mut() {
                tidy(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(tidy),
        _ => {}
    }
}

/// A legalized program alone, as a loadable spec file (for `--print` and oracle faults).
pub fn program_file(case: &Case) -> Result<String, serde_yaml::Error> {
    to_yaml(&SpecFile {
        format: FORMAT_VERSION,
        area: Area::Ordering,
        cases: vec![case.clone()],
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::fuzz::program_case;
    use crate::spec::{Suite, load::load_str};

    fn load(text: &str) -> Suite {
        let mut suite = Suite::default();
        load_str(Path::new("t.yaml"), text, &mut suite);
        suite
    }

    #[test]
    fn generated_programs_round_trip_through_the_loader() {
        for index in 0..40 {
            let case = program_case(0xE417, index, 10, &BTreeSet::new());
            let text = program_file(&case).expect("serializes");
            let suite = load(&text);
            assert!(suite.errors.is_empty(), "{:#?}\n{text}", suite.errors);
            assert_eq!(suite.cases[0].case.steps, case.steps, "{text}");
            assert_eq!(suite.cases[0].case.pool, case.pool, "{text}");
            assert!(!text.contains("id: null") && !text.contains('!'), "{text}");
        }
    }

    #[test]
    fn a_found_case_states_the_first_difference_and_expects_the_oracle() {
        let case = program_case(0xE417, 1, 10, &BTreeSet::new());
        let oracle = json!({"tasks": {"s2-0": {"runs": 1, "process": "worker"}}});
        let differences = vec![Difference {
            path: "tasks.s2-0.process".into(),
            oracle: Some(json!("worker")),
            target: Some(json!("parent")),
        }];
        let provenance = Provenance {
            implementation: "x".into(),
            oracle: "cpython-fork".into(),
            reproduce: "cargo xtask fuzz --impl x --seed 0x1 --start 1 --cases 1".into(),
            original_steps: 9,
            shrink_runs: 3,
        };
        let target = json!({"tasks": {"s2-0": {"runs": 1, "process": "parent"}}});
        let text =
            case_file(&case, &oracle, &target, &differences, &provenance).expect("serializes");
        assert!(
            text.contains("# The whole observation of x:\n#   tasks:\n"),
            "{text}"
        );
        assert!(text.contains("# Reproduce the original program: cargo xtask fuzz"));
        assert!(text.contains("#   tasks.s2-0.process: cpython-fork \"worker\", x \"parent\""));
        let suite = load(&text);
        assert!(suite.errors.is_empty(), "{:#?}", suite.errors);
        let found = &suite.cases[0];
        assert_eq!(found.area, Area::Workers);
        assert!(
            found
                .case
                .claim
                .contains("`tasks.s2-0.process` is \"worker\" on CPython")
        );
        assert_eq!(found.case.expect, oracle);
    }
}
