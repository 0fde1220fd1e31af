//! Checking a case's `expect` against an observation: matching by inclusion.
//!
//! Every key of an expected map must be present in the observed map and match; lists and
//! scalars must be equal (numbers compare by value, so `1` matches `1.0`). A key the
//! observation lacks is a mismatch that names the keys it does have, which catches typos in
//! expectations as soon as the case runs against CPython.
//!
//! [`first_mismatch_in`] names each step the path goes through with its operation
//! (`expect.steps.s5 (next on h).raised`), so the reason reads without the case's YAML.

use serde_json::Value;

use crate::spec::describe::step_label;
use crate::spec::{LoadedCase, Program};

/// Names a key met on the way down (`parent` path, `key`), or `None` to keep it as it is.
type Labeler<'a> = &'a dyn Fn(&str, &str) -> Option<String>;

/// The first place where `expected` is not included in `observed`.
pub fn first_mismatch(expected: &Value, observed: &Value) -> Option<String> {
    walk(expected, observed, "expect", &|_, _| None)
}

/// [`first_mismatch`], with every step id of `program` on the path (under `steps` and
/// `callbacks`) followed by its operation: `expect.steps.s5 (next on h).raised: ...`; steps
/// named by event references in the values (an `order` probe's) are named at the end: `...
/// observed "s2.return" (s2: wait on m)`.
pub fn first_mismatch_in(program: &Program, expected: &Value, observed: &Value) -> Option<String> {
    let label = |parent: &str, key: &str| match parent {
        "expect.steps" | "expect.callbacks" => step_label(program, key),
        _ => None,
    };
    let reason = walk(expected, observed, "expect", &label)?;
    Some(with_referenced_steps(program, reason))
}

/// `reason` followed by the operation of every step a quoted event reference after its path
/// names (`"s2.return"`), once each, in order.
fn with_referenced_steps(program: &Program, reason: String) -> String {
    let Some((_, values)) = reason.split_once(": ") else {
        return reason;
    };
    let mut named: Vec<String> = Vec::new();
    // Between quotes: the odd pieces.
    for quoted in values.split('"').skip(1).step_by(2) {
        let Some((id, _)) = quoted.rsplit_once('.') else {
            continue;
        };
        if let Some(step) = crate::spec::describe::step(program, id) {
            let text = format!("{id}: {}", crate::spec::describe::operation(step));
            if !named.contains(&text) {
                named.push(text);
            }
        }
    }
    if named.is_empty() {
        reason
    } else {
        format!("{reason} ({})", named.join("; "))
    }
}

/// [`first_mismatch_in`] of a loaded case's own expectations and program.
pub fn first_mismatch_of(case: &LoadedCase, observed: &Value) -> Option<String> {
    first_mismatch_in(&case.program, &case.case.expect, observed)
}

fn walk(expected: &Value, observed: &Value, path: &str, label: Labeler<'_>) -> Option<String> {
    match (expected, observed) {
        (Value::Object(want), Value::Object(have)) => want.iter().find_map(|(k, w)| {
            let here = format!("{path}.{}", label(path, k).unwrap_or_else(|| k.clone()));
            match have.get(k) {
                Some(h) => walk(w, h, &here, label),
                None => Some(format!(
                    "{here}: not in the observation (it has: {})",
                    have.keys().cloned().collect::<Vec<_>>().join(", ")
                )),
            }
        }),
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => None,
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            a.iter().zip(b).enumerate().find_map(|(i, (x, y))| {
                (!equal(x, y))
                    .then(|| format!("{path}[{i}]: expected {}, observed {}", short(x), short(y)))
            })
        }
        (a, b) if equal(a, b) => None,
        (a, b) => Some(format!(
            "{path}: expected {}, observed {}",
            short(a),
            short(b)
        )),
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inclusion_ignores_unmentioned_keys() {
        let obs = json!({"steps": {"s1": {"returned": [1, 2]}, "s2": {"handle": "result"}}});
        assert_eq!(
            first_mismatch(&json!({"steps": {"s1": {"returned": [1, 2]}}}), &obs),
            None
        );
    }

    #[test]
    fn a_different_list_is_a_mismatch_with_its_path() {
        let obs = json!({"steps": {"s1": {"returned": [2, 1]}}});
        let m = first_mismatch(&json!({"steps": {"s1": {"returned": [1, 2]}}}), &obs).unwrap();
        assert!(m.starts_with("expect.steps.s1.returned[0]"), "{m}");
    }

    #[test]
    fn a_missing_key_names_what_is_there() {
        let m = first_mismatch(&json!({"stpes": {}}), &json!({"steps": {}})).unwrap();
        assert_eq!(m, "expect.stpes: not in the observation (it has: steps)");
    }

    #[test]
    fn numbers_compare_by_value() {
        assert_eq!(first_mismatch(&json!({"a": 1}), &json!({"a": 1.0})), None);
    }

    #[test]
    fn steps_on_the_path_are_named_with_their_operation() {
        let mut suite = crate::spec::load::Suite::default();
        let yaml = "format: 1\narea: iteration\ncases:\n  - id: X-1\n    claim: c.\n    \
                    cite: [{test: t}]\n    tags: [contract]\n    steps:\n      - \
                    imap_unordered: {id: h, tasks: [1]}\n      - next: {of: h}\n      - \
                    map_async: {id: m, tasks: [2], callback: {}}\n    \
                    expect: {steps: {s2: {raised: {type: ValueError}}}}\n";
        crate::spec::load::load_str(std::path::Path::new("t.yaml"), yaml, &mut suite);
        assert!(suite.errors.is_empty(), "{:?}", suite.errors);
        let program = &suite.cases[0].program;
        let obs = json!({"steps": {"h": {"handle": "iterator"}, "s2": {"returned": 1}}});
        let m = first_mismatch_in(program, &suite.cases[0].case.expect, &obs).unwrap();
        assert_eq!(
            m,
            "expect.steps.s2 (next on h).raised: not in the observation (it has: returned)"
        );
        let m = first_mismatch_in(
            program,
            &json!({"callbacks": {"m": []}}),
            &json!({"callbacks": {"m": [1]}}),
        );
        assert_eq!(
            m.as_deref(),
            Some("expect.callbacks.m (map_async of m-0): expected [], observed [1]")
        );
        let m = first_mismatch_in(
            program,
            &json!({"order": {"o": ["s2.return", "m.callback"]}}),
            &json!({"order": {"o": ["m.callback", "s2.return"]}}),
        );
        assert_eq!(
            m.as_deref(),
            Some(
                "expect.order.o[0]: expected \"s2.return\", observed \"m.callback\" (s2: next \
                 on h; m: map_async of m-0)"
            )
        );
    }
}
