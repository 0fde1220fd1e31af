//! The area of a spec file: one of the built-in suite's areas, or (in an added spec folder,
//! `--spec DIR`) a name of the maintainer's own (`soft-timeout`).
//!
//! An own area is interned (leaked once per distinct name), so that `Area` stays `Copy` like
//! the built-in names it sits beside: a run names a handful of areas.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The areas of Pool behaviour. One file of `spec/` per built-in area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Area {
    Blocking,
    Ordering,
    Concurrency,
    CallbackProcess,
    Errors,
    Timeouts,
    Lifecycle,
    Workers,
    Chunking,
    Iteration,
    Faults,
    Arguments,
    Construction,
    /// An area an added spec folder names itself (lower case, digits and `-`); the built-in
    /// `spec/` may not use one (the loader says so).
    Own(&'static str),
}

/// The built-in areas, in order.
pub const BUILTIN_AREAS: [Area; 13] = [
    Area::Blocking,
    Area::Ordering,
    Area::Concurrency,
    Area::CallbackProcess,
    Area::Errors,
    Area::Timeouts,
    Area::Lifecycle,
    Area::Workers,
    Area::Chunking,
    Area::Iteration,
    Area::Faults,
    Area::Arguments,
    Area::Construction,
];

impl Area {
    pub fn as_str(self) -> &'static str {
        match self {
            Area::Blocking => "blocking",
            Area::Ordering => "ordering",
            Area::Concurrency => "concurrency",
            Area::CallbackProcess => "callback-process",
            Area::Errors => "errors",
            Area::Timeouts => "timeouts",
            Area::Lifecycle => "lifecycle",
            Area::Workers => "workers",
            Area::Chunking => "chunking",
            Area::Iteration => "iteration",
            Area::Faults => "faults",
            Area::Arguments => "arguments",
            Area::Construction => "construction",
            Area::Own(name) => name,
        }
    }

    /// The area called `name`: a built-in one, else an own one when `name` is well formed.
    pub fn named(name: &str) -> Option<Area> {
        if let Some(a) = BUILTIN_AREAS.iter().find(|a| a.as_str() == name) {
            return Some(*a);
        }
        let well_formed = name.len() <= 40
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        well_formed.then(|| Area::Own(intern(name)))
    }

    pub fn is_builtin(self) -> bool {
        !matches!(self, Area::Own(_))
    }
}

fn intern(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<BTreeSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

impl Serialize for Area {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Area {
    // A visitor, so that a malformed name is an error at its own line and column.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Area;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an area (lower-case letters, digits and `-`, e.g. `blocking`)")
            }
            fn visit_str<E: serde::de::Error>(self, w: &str) -> Result<Area, E> {
                Area::named(w).ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(w), &self))
            }
        }
        d.deserialize_str(V)
    }
}

impl JsonSchema for Area {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Area".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = BUILTIN_AREAS.iter().map(|a| a.as_str()).collect();
        schemars::json_schema!({
            "description": "The area every case of the file belongs to: a built-in one, or in an added spec folder (`--spec DIR`) a name of its own.",
            "anyOf": [
                {"enum": names},
                {"type": "string", "pattern": "^[a-z][a-z0-9-]{0,39}$"}
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_and_own_areas() {
        assert_eq!(Area::named("blocking"), Some(Area::Blocking));
        let own = Area::named("soft-timeout");
        assert_eq!(own, Some(Area::Own("soft-timeout")));
        assert!(!own.is_some_and(Area::is_builtin));
        assert_eq!(Area::named("Soft Timeout"), None);
        assert_eq!(Area::named(""), None);
    }
}
