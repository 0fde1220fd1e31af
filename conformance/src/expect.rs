//! Checking a case's `expect` against an observation: matching by inclusion.
//!
//! Every key of an expected map must be present in the observed map and match; lists and
//! scalars must be equal (numbers compare by value, so `1` matches `1.0`). A key the
//! observation lacks is a mismatch that names the keys it does have, which catches typos in
//! expectations as soon as the case runs against CPython.

use serde_json::Value;

/// The first place where `expected` is not included in `observed`.
pub fn first_mismatch(expected: &Value, observed: &Value) -> Option<String> {
    walk(expected, observed, "expect")
}

fn walk(expected: &Value, observed: &Value, path: &str) -> Option<String> {
    match (expected, observed) {
        (Value::Object(want), Value::Object(have)) => want.iter().find_map(|(k, w)| {
            let here = format!("{path}.{k}");
            match have.get(k) {
                Some(h) => walk(w, h, &here),
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
}
