//! What a failed case shows its author: the expected values against the part of the
//! observation they talk about, as a unified diff of YAML.

use serde_json::Value;
use similar::TextDiff;

/// The part of `observed` that `expected` talks about: the same keys, recursively (lists and
/// scalars are taken whole, and so is a map that lacks an expected key, to show what it has
/// instead).
fn project(expected: &Value, observed: &Value) -> Value {
    match (expected, observed) {
        (Value::Object(want), Value::Object(have)) if want.keys().all(|k| have.contains_key(k)) => {
            Value::Object(
                want.iter()
                    .filter_map(|(k, w)| have.get(k).map(|h| (k.clone(), project(w, h))))
                    .collect(),
            )
        }
        (_, h) => h.clone(),
    }
}

/// A unified diff of the expected YAML against the matching part of the observation.
pub fn expectation_diff(expected: &Value, observed: &Value) -> String {
    let a = serde_yaml::to_string(expected).unwrap_or_default();
    let b = serde_yaml::to_string(&project(expected, observed)).unwrap_or_default();
    TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(3)
        .header("expected", "observed")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_diff_shows_only_what_the_case_checks() {
        let expected = json!({"steps": {"s1": {"returned": 7}}});
        let observed = json!({"steps": {"s1": {"returned": null}, "s2": {"returned": 1}},
            "tasks": {}});
        let d = expectation_diff(&expected, &observed);
        assert!(d.contains("-    returned: 7"), "{d}");
        assert!(d.contains("+    returned: null"), "{d}");
        assert!(!d.contains("s2"), "{d}");
    }
}
