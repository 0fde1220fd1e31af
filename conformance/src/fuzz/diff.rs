//! Where two observations differ, path by path.

use serde::Serialize;
use serde_json::Value;

/// One difference between the oracle's observation and the implementation's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// Dotted path into the observation, e.g. `steps.s3` or `tasks.s1-0.process`.
    pub path: String,
    /// The oracle's value there (`None`: absent).
    pub oracle: Option<Value>,
    /// The implementation's value there (`None`: absent).
    pub target: Option<Value>,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<Value>| v.as_ref().map_or("(absent)".to_owned(), Value::to_string);
        write!(
            f,
            "{}: oracle {}, implementation {}",
            self.path,
            show(&self.oracle),
            show(&self.target)
        )
    }
}

/// Every difference between `oracle` and `target`. Objects are compared key by key (the
/// observation's own key order is part of neither side's meaning); other values whole,
/// except arrays of equal length, which are compared item by item.
pub fn differences(oracle: &Value, target: &Value) -> Vec<Difference> {
    let mut out = Vec::new();
    walk("", Some(oracle), Some(target), &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<Difference>) {
    match (a, b) {
        // One-key objects are enum values (`{returned: 1}`, `{never_returned: true}`): when
        // the variants differ, the whole value is the difference.
        (Some(Value::Object(x)), Some(Value::Object(y)))
            if x.len() == 1 && y.len() == 1 && x.keys().ne(y.keys()) =>
        {
            out.push(Difference {
                path: path.to_owned(),
                oracle: a.cloned(),
                target: b.cloned(),
            });
        }
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            for (k, v) in x {
                walk(&join(path, k), Some(v), y.get(k), out);
            }
            for (k, v) in y {
                if !x.contains_key(k) {
                    walk(&join(path, k), None, Some(v), out);
                }
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                walk(&join(path, &i.to_string()), Some(v), Some(w), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(Difference {
            path: path.to_owned(),
            oracle: a.cloned(),
            target: b.cloned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_changed_missing_and_extra_paths() {
        let a = json!({"steps": {"s1": {"returned": [1, 2]}}, "tasks": {"t": {"runs": 1}}});
        let b = json!({"steps": {"s1": {"returned": [2, 1]}}, "callbacks": {"s1": []}});
        let d = differences(&a, &b);
        let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "steps.s1.returned.0",
                "steps.s1.returned.1",
                "tasks",
                "callbacks"
            ]
        );
        assert_eq!(d[2].target, None);
        assert_eq!(d[3].oracle, None);
    }

    #[test]
    fn a_different_variant_is_one_difference() {
        let a = json!({"steps": {"s2": {"returned": 0}}});
        let b = json!({"steps": {"s2": {"never_returned": true}}});
        let d = differences(&a, &b);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].path, "steps.s2");
    }

    #[test]
    fn equal_observations_have_no_differences() {
        let a = json!({"steps": {"s1": {"handle": "result"}}});
        assert!(differences(&a, &a.clone()).is_empty());
    }
}
