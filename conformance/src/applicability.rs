//! Which implementations a maintainer's own case concerns (`applies_to`) and which `ext:`
//! capabilities its extensions need: read off the case alone, before any driver runs.

use crate::protocol::EXTENSION_CAPABILITY;
use crate::spec::LoadedCase;
use crate::spec::own::extension_names;

/// The capabilities the case's extensions need, `ext:NAME` each (constructor arguments and
/// `extension` steps alike).
pub fn extension_capabilities(lc: &LoadedCase) -> Vec<String> {
    extension_names(&lc.case)
        .into_iter()
        .map(|n| format!("{EXTENSION_CAPABILITY}{n}"))
        .collect()
}

/// Why the case does not concern the implementation called `name`: its `applies_to` names
/// neither it nor a prefix of it. `None` when it applies (or names no implementation).
pub fn outside_applies_to(lc: &LoadedCase, name: &str) -> Option<String> {
    let list = &lc.case.applies_to;
    if list.is_empty() || list.iter().any(|a| name.starts_with(a.as_str())) {
        return None;
    }
    Some(format!(
        "the case applies to {} only (applies_to)",
        list.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Source, Suite, load::load_str_in};
    use std::path::Path;

    fn case(extra: &str) -> LoadedCase {
        let text = format!(
            "format: 1\narea: counting\ncases:\n  - id: CNT-1\n    claim: c.\n    cite: [{{source: pool.py:Pool}}]\n    tags: [contract]\n{extra}    steps:\n      - extension: {{name: tasks_submitted}}\n    expect: {{}}\n"
        );
        let mut suite = Suite::default();
        let source = Source::Added("own".into());
        load_str_in(Path::new("own/x.yaml"), &text, &source, &mut suite);
        assert!(suite.errors.is_empty(), "{:?}", suite.errors);
        suite.cases.remove(0)
    }

    #[test]
    fn applies_to_matches_names_and_prefixes() {
        let lc = case("    applies_to: [\"python:counting_pool\", rust-ref]\n");
        assert_eq!(
            outside_applies_to(&lc, "python:counting_pool:CountingPool"),
            None
        );
        assert_eq!(outside_applies_to(&lc, "rust-ref"), None);
        let why = outside_applies_to(&lc, "cpython-fork").unwrap_or_default();
        assert!(why.contains("python:counting_pool, rust-ref"), "{why}");
        assert_eq!(outside_applies_to(&case(""), "cpython-fork"), None);
    }

    #[test]
    fn extensions_need_their_capabilities() {
        let lc = case("    pool: {extension: {count_tasks: true}}\n");
        assert_eq!(
            extension_capabilities(&lc),
            ["ext:count_tasks", "ext:tasks_submitted"]
        );
    }
}
