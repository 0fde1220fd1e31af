//! The capability names poolspec knows (PROTOCOL.md §3.2): the one list that what a case
//! needs (`runner::needed_capabilities`), `smoke`'s check of a driver's hello, and the
//! protocol's table are held to (the tests below check the other two against it).
//!
//! The protocol allows other names, but a name no case can ever need is nearly always a
//! misspelling (`imap_unorderd`), and a misspelt capability silently turns every case that
//! needs the real one into `unsupported`. Names of the form `ext:NAME` are a pool's own
//! extensions and are always known.

/// The operations, one per step (`Step::op`).
pub const OPS: [&str; 22] = [
    "apply",
    "apply_async",
    "map",
    "map_async",
    "imap",
    "imap_unordered",
    "starmap",
    "starmap_async",
    "get",
    "wait",
    "ready",
    "successful",
    "next",
    "collect",
    "close",
    "join",
    "terminate",
    "exit_with",
    "enter",
    "drop",
    "open",
    "await",
];

/// The features a program or a case's `requires` can need beyond its operations.
pub const FEATURES: [&str; 14] = [
    "initializer",
    "initargs",
    "maxtasksperchild",
    "default_processes",
    "context",
    "task_exit",
    "kwargs",
    "blob",
    "iterable_raises",
    "unserializable_func",
    "unserializable_item",
    "inherited",
    "python",
    "processes",
];

/// The start methods of `start_method.<m>`.
pub const START_METHODS: [&str; 3] = ["fork", "spawn", "forkserver"];

/// The prefix of a capability naming a pool's own extension (`ext:soft_timeout`).
pub const EXTENSION_PREFIX: &str = "ext:";

/// Every known name but the extensions, in the order of PROTOCOL.md's table.
pub fn known() -> Vec<String> {
    OPS.iter()
        .chain(&FEATURES)
        .map(|s| (*s).to_owned())
        .chain(START_METHODS.iter().map(|m| format!("start_method.{m}")))
        .collect()
}

/// Whether `name` is a capability poolspec knows: listed, or an extension (`ext:` and a
/// non-empty name).
pub fn is_known(name: &str) -> bool {
    name.strip_prefix(EXTENSION_PREFIX)
        .map_or_else(|| known().iter().any(|k| k == name), |ext| !ext.is_empty())
}

/// The known name closest to an unknown one, if it is a plausible misspelling.
pub fn closest(name: &str) -> Option<String> {
    let known = known();
    crate::spec::suggest::closest(name, known.iter().map(String::as_str)).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_known_and_misspellings_get_the_closest_name() {
        for name in [
            "apply",
            "start_method.forkserver",
            "ext:soft_timeout",
            "python",
        ] {
            assert!(is_known(name), "{name}");
        }
        for name in ["imap_unorderd", "ext:", "start_method.thread", "Apply", ""] {
            assert!(!is_known(name), "{name}");
        }
        assert_eq!(closest("imap_unorderd").as_deref(), Some("imap_unordered"));
        assert_eq!(
            closest("maxtaskperchild").as_deref(),
            Some("maxtasksperchild")
        );
        assert_eq!(closest("teleport"), None);
        // The Rust SDK's own lists are the same names.
        assert_eq!(poolspec_driver::OPS, OPS);
        for (feature, _) in poolspec_driver::FEATURES {
            assert!(is_known(feature), "{feature}");
        }
    }

    /// What any case of the suite needs is a known name, so the list cannot fall behind
    /// the runner.
    #[test]
    fn every_capability_a_case_needs_is_known() {
        let suite = crate::spec::load_dir(&crate::workspace_root().join("spec"));
        assert!(suite.errors.is_empty(), "{:?}", suite.errors);
        for lc in &suite.cases {
            for need in crate::runner::needed_capabilities(lc) {
                assert!(is_known(&need), "{} needs unknown `{need}`", lc.id());
            }
        }
    }

    /// PROTOCOL.md §3.2's table names exactly the known capabilities.
    #[test]
    fn the_protocols_table_names_the_known_capabilities() {
        let text = std::fs::read_to_string(crate::workspace_root().join("spec/PROTOCOL.md"))
            .expect("spec/PROTOCOL.md");
        let table = text
            .split("| capability | declare it when the driver |")
            .nth(1)
            .and_then(|rest| rest.split("\n\n").next())
            .expect("PROTOCOL.md has the capability table");
        let mut named: Vec<String> = Vec::new();
        for row in table.lines().filter(|l| l.starts_with("| `")) {
            let first = row.split(" | ").next().unwrap_or_default();
            for name in first.split('`').skip(1).step_by(2) {
                // `ext:<name>` stands for every extension, all of them known.
                if name == format!("{}<name>", crate::protocol::EXTENSION_CAPABILITY) {
                    continue;
                }
                match name.strip_suffix("<m>") {
                    Some(prefix) => {
                        named.extend(START_METHODS.iter().map(|m| format!("{prefix}{m}")))
                    }
                    None => named.push(name.to_owned()),
                }
            }
        }
        let mut known = known();
        known.sort();
        named.sort();
        assert_eq!(named, known);
    }
}
