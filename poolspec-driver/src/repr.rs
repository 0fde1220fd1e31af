//! JSON values as Python sees them: shown in Python notation, for the messages that CPython
//! builds with `repr()`, and Python's truthiness.
//!
//! Drivers need it for their own messages, and a Rust pool that reproduces CPython's error
//! messages needs it too (pool-ref does). Programs are read with Python's truthiness, as the
//! Python driver reads them.

use serde_json::Value;

/// Python's `repr()` of the value a JSON document decodes to (`json.loads`): `None`, `True`,
/// `'text'`, `[1, 2]`, `{'k': 1.5}`.
pub fn py_value_repr(v: &Value) -> String {
    let mut out = String::new();
    push_repr(&mut out, v);
    out
}

fn push_repr(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() => out.push_str(&py_float_repr(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => out.push_str(&py_repr_str(s)),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_repr(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&py_repr_str(k));
                out.push_str(": ");
                push_repr(out, item);
            }
            out.push('}');
        }
    }
}

/// Python's `repr()` of a float: the shortest round-tripping digits, in positional notation
/// for exponents -5 < e < 16 (with `.0` when integral), else `1e+16`, `1.5e-07`.
pub fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    // `{:e}` gives the shortest round-tripping digits: "1.5e-7", "1e16", "-2.5e0".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-5 < exp) && (exp < 16) {
        let s = format!("{f}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    }
}

/// Python's `repr()` of a str: single quotes unless the text has `'` and no `"`; control
/// characters escaped.
pub fn py_repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..=0xa0).contains(&(c as u32)) || c == '\u{ad}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `repr()` of a bytes object: `b'...'` (double quotes when the bytes hold `'`
/// and no `"`), printable ASCII as itself, `\\`, `\t`, `\n`, `\r`, the quote escaped,
/// every other byte as `\xNN`.
pub fn py_bytes_repr(bytes: &[u8]) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = String::with_capacity(bytes.len() * 2 + 3);
    out.push('b');
    out.push(char::from(quote));
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b if b == quote => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..0x7f => out.push(char::from(b)),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(char::from(quote));
    out
}

/// Python's `repr()` of an optional JSON value, for messages about a program's fields:
/// absent and `null` are `None`.
pub fn py_repr(v: Option<&Value>) -> String {
    v.map_or_else(|| "None".to_owned(), py_value_repr)
}

/// Python's truthiness of a JSON value: `null`, `false`, `0`, `""`, `[]` and `{}` are false.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bytes_like_python() {
        assert_eq!(py_bytes_repr(b""), "b''");
        assert_eq!(py_bytes_repr(b"it's"), r#"b"it's""#);
        assert_eq!(py_bytes_repr(b"'\""), r#"b'\'"'"#);
        assert_eq!(
            py_bytes_repr(b"a\\b\t\n\r\x00\x7f\xff"),
            r"b'a\\b\t\n\r\x00\x7f\xff'"
        );
        // sha256(repr(bytes(range(256))).encode()), from CPython 3.11.
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(
            crate::bytes_summary(py_bytes_repr(&all).as_bytes())["sha256"],
            "896463bd16ea9ebc4e4e16d25aafd2a680d5b19a03a37a2f088161d8b0f1c2e7"
        );
    }

    #[test]
    fn like_python() {
        let v = json!([null, true, false, 1, -2, 1.5, 1e16, 1.5e-7, 0.0001, 100.0, "it's", "a\"b'c", {"k": [1, "x"]}]);
        assert_eq!(
            py_value_repr(&v),
            r#"[None, True, False, 1, -2, 1.5, 1e+16, 1.5e-07, 0.0001, 100.0, "it's", 'a"b\'c', {'k': [1, 'x']}]"#
        );
        assert_eq!(py_float_repr(1e15), "1000000000000000.0");
        assert_eq!(py_float_repr(1e-5), "1e-05");
        assert_eq!(py_float_repr(-2.5e300), "-2.5e+300");
    }

    #[test]
    fn repr_of_strings_is_pythons() {
        assert_eq!(py_repr_str("k"), "'k'");
        assert_eq!(py_repr_str("it's"), "\"it's\"");
        assert_eq!(py_repr_str("'\""), "'\\'\"'");
        assert_eq!(py_repr_str("a\nb\t\\"), "'a\\nb\\t\\\\'");
        assert_eq!(py_repr_str("\u{1}\u{7f}é"), "'\\x01\\x7fé'");
        assert_eq!(py_repr(None), "None");
        assert_eq!(py_repr(Some(&json!(null))), "None");
        assert_eq!(py_repr(Some(&json!("s1"))), "'s1'");
        assert_eq!(py_repr(Some(&json!(3))), "3");
    }

    #[test]
    fn truthiness_is_pythons() {
        for v in [
            json!(null),
            json!(false),
            json!(0),
            json!(0.0),
            json!(""),
            json!([]),
            json!({}),
        ] {
            assert!(!truthy(&v), "{v}");
        }
        for v in [
            json!(true),
            json!(-1),
            json!(0.5),
            json!("x"),
            json!([0]),
            json!({"a": 0}),
        ] {
            assert!(truthy(&v), "{v}");
        }
    }
}
