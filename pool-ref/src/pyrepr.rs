//! Any encoded value in Python notation, for messages that quote a value as CPython would
//! (a task's `MaybeEncodingError`): decoded without knowing its type.

use poolspec_driver::{py_bytes_repr, py_float_repr, py_repr_str};
use serde::Deserialize;

/// Any encoded value, in Python notation: how `repr()` shows the value Python would decode
/// it as (a map as a dict, a sequence as a list, a byte string as `b'...'`); for showing
/// values that are no concern of this crate's types.
#[derive(Debug)]
pub(crate) struct PyRepr(pub String);

impl<'de> Deserialize<'de> for PyRepr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PyRepr, D::Error> {
        d.deserialize_any(PyReprVisitor)
    }
}

struct PyReprVisitor;

impl<'de> serde::de::Visitor<'de> for PyReprVisitor {
    type Value = PyRepr;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<PyRepr, E> {
        Ok(PyRepr(if v { "True" } else { "False" }.to_owned()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<PyRepr, E> {
        Ok(PyRepr(v.to_string()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<PyRepr, E> {
        Ok(PyRepr(v.to_string()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<PyRepr, E> {
        Ok(PyRepr(py_float_repr(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<PyRepr, E> {
        Ok(PyRepr(py_repr_str(v)))
    }

    fn visit_bytes<E>(self, v: &[u8]) -> Result<PyRepr, E> {
        Ok(PyRepr(py_bytes_repr(v)))
    }

    fn visit_unit<E>(self) -> Result<PyRepr, E> {
        Ok(PyRepr("None".to_owned()))
    }

    fn visit_none<E>(self) -> Result<PyRepr, E> {
        Ok(PyRepr("None".to_owned()))
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<PyRepr, D::Error> {
        PyRepr::deserialize(d)
    }

    fn visit_newtype_struct<D: serde::Deserializer<'de>>(self, d: D) -> Result<PyRepr, D::Error> {
        PyRepr::deserialize(d)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<PyRepr, A::Error> {
        let mut items = Vec::new();
        while let Some(PyRepr(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(PyRepr(format!("[{}]", items.join(", "))))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<PyRepr, A::Error> {
        let mut entries = Vec::new();
        while let Some((PyRepr(k), PyRepr(v))) = map.next_entry()? {
            entries.push(format!("{k}: {v}"));
        }
        Ok(PyRepr(format!("{{{}}}", entries.join(", "))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, encode};
    use serde_bytes::ByteBuf;

    /// Shown in Python notation, as `repr()` shows what Python would decode.
    #[test]
    fn values_are_shown_as_python_shows_them() {
        let mut out = Vec::new();
        let shown = (
            ByteBuf::from(b"a'\x00".to_vec()),
            "x",
            serde_json::json!({"k": [1, -2, 3.5, null, true]}),
        );
        encode(&mut out, &shown).unwrap();
        assert_eq!(
            decode::<PyRepr>(&out).unwrap().0,
            r#"[b"a'\x00", 'x', {'k': [1, -2, 3.5, None, True]}]"#
        );
    }
}
