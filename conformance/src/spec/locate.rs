//! Where a node of a spec file is: a [`YamlPath`] (`cases[2].steps[0].apply.task.wait[1]`)
//! resolved to the line and column of that key or value in the text.
//!
//! serde gives positions only with its errors, so the semantic checks name the node they
//! object to by path and [`locate`] finds it afterwards: it walks the same text with the same
//! parser and fails on purpose at the node, and the parser stamps that failure with the node's
//! position. Only errors pay for it; a file that loads is parsed once.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step down a YAML tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A node of a spec file: the keys and indices that lead to it, and whether the position
/// wanted is the last key itself (`expect.steps.s9`, the misspelt or dangling key) rather than
/// its value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct YamlPath {
    pub segs: Vec<Seg>,
    pub at_key: bool,
}

impl YamlPath {
    /// The path with `key` appended (pointing at its value).
    pub fn key(&self, key: &str) -> YamlPath {
        let mut p = self.clone();
        p.segs.push(Seg::Key(key.to_owned()));
        p.at_key = false;
        p
    }

    /// The path with `index` appended.
    pub fn index(&self, index: usize) -> YamlPath {
        let mut p = self.clone();
        p.segs.push(Seg::Index(index));
        p.at_key = false;
        p
    }

    /// The path of the key `key` itself, not its value.
    pub fn the_key(&self, key: &str) -> YamlPath {
        let mut p = self.key(key);
        p.at_key = true;
        p
    }

    /// `prefix` followed by this path.
    pub fn under(&self, prefix: &YamlPath) -> YamlPath {
        let mut segs = prefix.segs.clone();
        segs.extend(self.segs.iter().cloned());
        YamlPath {
            segs,
            at_key: self.at_key,
        }
    }
}

impl YamlPath {
    /// Reads a path as serde's errors write it (`cases[0].steps[1].apply`), the inverse of
    /// `Display` (`.` and `[` never occur in the keys of a path serde prints).
    pub fn parse(text: &str) -> YamlPath {
        let mut segs = Vec::new();
        for part in text.split('.') {
            let mut pieces = part.split('[');
            if let Some(key) = pieces.next().filter(|k| !k.is_empty()) {
                segs.push(Seg::Key(key.to_owned()));
            }
            for index in pieces {
                if let Ok(n) = index.trim_end_matches(']').parse() {
                    segs.push(Seg::Index(n));
                }
            }
        }
        YamlPath {
            segs,
            at_key: false,
        }
    }
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.segs.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// The 1-based line and column of the node `path` names in `text`, or of the deepest node on
/// the way to it that exists (so a path into a value that is absent still lands near it).
/// `None` when the text does not parse or not even the first step exists.
pub fn locate(text: &str, path: &YamlPath) -> Option<(usize, usize)> {
    (0..=path.segs.len()).rev().find_map(|n| {
        let at_key = path.at_key && n == path.segs.len();
        locate_exactly(text, &path.segs[..n], at_key)
    })
}

/// The message of the deliberate failure; no YAML node can produce it.
const FOUND: &str = "\u{0}poolspec: node found";

fn locate_exactly(text: &str, segs: &[Seg], at_key: bool) -> Option<(usize, usize)> {
    if segs.is_empty() && at_key {
        return None;
    }
    let de = serde_yaml::Deserializer::from_str(text);
    match (Seek { segs, at_key }).deserialize(de) {
        Err(e) if e.to_string().contains(FOUND) => e.location().map(|l| (l.line(), l.column())),
        _ => None,
    }
}

/// Walks towards `segs`, skipping every other node.
struct Seek<'p> {
    segs: &'p [Seg],
    at_key: bool,
}

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.segs.is_empty() {
            d.deserialize_any(Hit)
        } else {
            d.deserialize_any(self)
        }
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (Some(Seg::Key(want)), rest) = (self.segs.first(), &self.segs[1..]) else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        let stop_at_key = rest.is_empty() && self.at_key;
        while let Some(key) = map.next_key_seed(Key {
            want,
            stop: stop_at_key,
        })? {
            if key == *want {
                return map.next_value_seed(Seek {
                    segs: rest,
                    at_key: self.at_key,
                });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (Some(Seg::Index(want)), rest) = (self.segs.first(), &self.segs[1..]) else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        let mut i = 0;
        while i < *want {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            i += 1;
        }
        seq.next_element_seed(Seek {
            segs: rest,
            at_key: self.at_key,
        })?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    // Scalars have no children: the path does not exist below them.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Reads a map key as text; fails on the wanted one when the path ends at that key.
struct Key<'p> {
    want: &'p str,
    stop: bool,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = String;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        if self.stop && v == self.want {
            Err(E::custom(FOUND))
        } else {
            Ok(v.to_owned())
        }
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        self.visit_str("null")
    }
    // A complex key is never one a path names.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<String, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(String::new())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<String, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(String::new())
    }
}

/// Fails at whatever node it is asked to read: the node the path names.
struct Hit;

impl<'de> Visitor<'de> for Hit {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "format: 1
cases:
  - id: T-1
    steps:
      - apply: {task: {wait: [g, h], returns: 1}}
      - close:
    expect: {steps: {s9: {returned: 1}}}
";

    fn path(segs: &[Seg], at_key: bool) -> YamlPath {
        YamlPath {
            segs: segs.to_vec(),
            at_key,
        }
    }

    fn k(s: &str) -> Seg {
        Seg::Key(s.to_owned())
    }

    #[test]
    fn values_keys_and_list_items_are_found() {
        let wait = path(
            &[
                k("cases"),
                Seg::Index(0),
                k("steps"),
                Seg::Index(0),
                k("apply"),
                k("task"),
                k("wait"),
                Seg::Index(1),
            ],
            false,
        );
        assert_eq!(locate(TEXT, &wait), Some((5, 34)));
        let s9 = path(
            &[k("cases"), Seg::Index(0), k("expect"), k("steps"), k("s9")],
            true,
        );
        assert_eq!(locate(TEXT, &s9), Some((7, 22)));
        let id = path(&[k("cases"), Seg::Index(0), k("id")], false);
        assert_eq!(locate(TEXT, &id), Some((3, 9)));
        assert_eq!(id.to_string(), "cases[0].id");
        assert_eq!(YamlPath::parse("cases[0].id"), id);
    }

    #[test]
    fn a_missing_node_lands_on_its_nearest_ancestor() {
        let gone = path(&[k("cases"), Seg::Index(0), k("gates"), k("g")], true);
        assert_eq!(locate(TEXT, &gone), Some((3, 5)));
        assert_eq!(locate(TEXT, &YamlPath::default()), Some((1, 1)));
    }
}
