//! Making text safe in the page: HTML escaping, JSON inside `<script>`, URL fragments.

use std::fmt::Write as _;

use serde::Serialize;

/// Escapes text for HTML element content and quoted attribute values. Control characters
/// other than tab, newline and carriage return become U+FFFD.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// JSON text made safe inside a `<script>` element: `<` only occurs inside JSON strings, where
/// `\u003c` means the same, so neither `</script>` nor `<!--` can appear.
pub fn script_safe_json(json_text: &str) -> String {
    json_text.replace('<', "\\u003c")
}

/// [`script_safe_json`] of a value (`null` should it not serialize).
pub fn script_json<T: Serialize + ?Sized>(v: &T) -> String {
    script_safe_json(&serde_json::to_string(v).unwrap_or_else(|_| "null".into()))
}

/// Percent-encodes everything but unreserved characters (the inverse of JavaScript's
/// `decodeURIComponent`).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The fragment that opens a cell's details: `#cell=CASE/IMPLEMENTATION`, each part
/// percent-encoded.
pub fn cell_fragment(case: &str, implementation: &str) -> String {
    format!(
        "#cell={}/{}",
        percent_encode(case),
        percent_encode(implementation)
    )
}

/// The beginning of `s`, at most `max` bytes cut at a character boundary, and whether it was
/// cut.
pub fn truncate(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    (&s[..cut], true)
}
