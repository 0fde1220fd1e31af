//! What a maintainer's own cases may use and the built-in suite may not: `extension` steps,
//! `pool.extension` constructor arguments, `applies_to` and `oracle: snapshots`.
//!
//! The loader checks their form in any folder ([`check_own`]); `lint` refuses them in the
//! built-in `spec/` ([`builtin_refusals`]), where CPython judges every case and has none of
//! them.

use super::locate::YamlPath;
use super::model::{Case, Oracle};
use super::program::{Located, step_path};
use super::step::Step;

/// A malformed extension name or `applies_to` entry (the loader places it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnError {
    #[error("extension `{name}`: not an identifier (the capability would be `ext:{name}`)")]
    ExtensionName { name: String },
    #[error("`applies_to` entry {index} is empty: give an implementation name or its prefix")]
    EmptyAppliesTo { index: usize },
}

/// Whether `name` is an identifier (`[A-Za-z_][A-Za-z0-9_]*`): what a method or keyword
/// argument of any driver language can be called.
pub fn is_identifier(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The extension names a case uses, in order of first use: its `pool.extension` keys and its
/// `extension` steps' names. Each needs the capability `ext:NAME`.
pub fn extension_names(case: &Case) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let steps = case.steps.iter().filter_map(|s| match s {
        Step::Extension(e) => Some(&e.name),
        _ => None,
    });
    for name in case.pool.extension.keys().chain(steps) {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// The form of what only own cases use: identifiers for extension names and their keyword
/// arguments, no empty `applies_to` entry.
pub fn check_own(case: &Case) -> Result<(), Box<Located<OwnError>>> {
    let root = YamlPath::default();
    let bad = |name: &str| OwnError::ExtensionName {
        name: name.to_owned(),
    };
    for name in case.pool.extension.keys() {
        if !is_identifier(name) {
            let at = root.key("pool").key("extension").the_key(name);
            return Err(Located::new(bad(name), at));
        }
    }
    for (index, step) in case.steps.iter().enumerate() {
        if let Step::Extension(e) = step {
            let at = step_path(index, step.op());
            if !is_identifier(&e.name) {
                return Err(Located::new(bad(&e.name), at.key("name")));
            }
            if let Some(key) = e.kwargs.keys().find(|k| !is_identifier(k)) {
                return Err(Located::new(bad(key), at.key("kwargs").the_key(key)));
            }
        }
    }
    if let Some(index) = case.applies_to.iter().position(|a| a.trim().is_empty()) {
        let at = root.key("applies_to").index(index);
        return Err(Located::new(OwnError::EmptyAppliesTo { index }, at));
    }
    Ok(())
}

/// Why a case cannot be part of the built-in suite: each thing it uses that only an added
/// spec folder may, in words.
pub fn builtin_refusals(case: &Case) -> Vec<String> {
    let mut found = Vec::new();
    if case.oracle != Oracle::Cpython {
        found.push("`oracle: snapshots`".to_owned());
    }
    if !case.applies_to.is_empty() {
        found.push("`applies_to`".to_owned());
    }
    if !case.pool.extension.is_empty() {
        found.push("`pool.extension`".to_owned());
    }
    if case.steps.iter().any(|s| matches!(s, Step::Extension(_))) {
        found.push("an `extension` step".to_owned());
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_suite_refuses_what_only_own_cases_use() {
        let text = "id: X-1\nclaim: c.\ncite: [{source: pool.py:Pool}]\ntags: [contract]\n\
                    oracle: snapshots\napplies_to: [mine]\npool: {extension: {a: 1}}\n\
                    steps: [{extension: {name: b}}]\nexpect: {}\n";
        let case: Case = serde_yaml::with::singleton_map_recursive::deserialize(
            serde_yaml::Deserializer::from_str(text),
        )
        .expect("a case");
        assert_eq!(
            builtin_refusals(&case),
            [
                "`oracle: snapshots`",
                "`applies_to`",
                "`pool.extension`",
                "an `extension` step"
            ]
        );
        assert_eq!(extension_names(&case), ["a", "b"]);
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("soft_timeout"));
        assert!(is_identifier("_x1"));
        assert!(!is_identifier("1x"));
        assert!(!is_identifier("soft-timeout"));
        assert!(!is_identifier(""));
    }
}
