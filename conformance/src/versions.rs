//! Version ranges of a case's `versions` metadata (`python: ">=3.10"`).
//!
//! A claim about the reference sometimes holds only from (or until) a given version of it:
//! CPython validates `maxtasksperchild` only from 3.10. The case says so, and an
//! implementation whose language version falls outside the range gets `not-applicable`
//! (shown in every report) instead of a failure. Deliberately small: comma-separated
//! comparisons (`>=3.10`, `<3.13`, `==3.11`) on dotted numbers, compared numerically.

use std::cmp::Ordering;
use std::fmt;

/// A parsed range: every comparison must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    bounds: Vec<(Op, Vec<u64>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

/// Why a range or a version did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct VersionError(String);

impl Range {
    pub fn parse(text: &str) -> Result<Range, VersionError> {
        let mut bounds = Vec::new();
        for part in text.split(',').map(str::trim) {
            let (op, rest) = [
                (">=", Op::Ge),
                ("<=", Op::Le),
                ("==", Op::Eq),
                (">", Op::Gt),
                ("<", Op::Lt),
            ]
            .iter()
            .find_map(|(p, op)| part.strip_prefix(p).map(|r| (*op, r)))
            .ok_or_else(|| {
                VersionError(format!(
                    "`{part}`: expected a comparison such as `>=3.10` (operators >=, >, <=, <, ==)"
                ))
            })?;
            bounds.push((op, parse_version(rest.trim())?));
        }
        Ok(Range { bounds })
    }

    /// Whether `version` (dotted numbers; a suffix such as `rc1` or `+` is ignored) is in
    /// the range. Missing components compare as 0, so `3.10` is `>=3.10` and `3.10.2 == 3.10`
    /// does not hold.
    pub fn contains(&self, version: &str) -> Result<bool, VersionError> {
        let v = parse_version(version)?;
        Ok(self.bounds.iter().all(|(op, b)| {
            let ord = compare(&v, b);
            match op {
                Op::Ge => ord != Ordering::Less,
                Op::Gt => ord == Ordering::Greater,
                Op::Le => ord != Ordering::Greater,
                Op::Lt => ord == Ordering::Less,
                Op::Eq => ord == Ordering::Equal,
            }
        }))
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .bounds
            .iter()
            .map(|(op, v)| {
                let op = match op {
                    Op::Ge => ">=",
                    Op::Gt => ">",
                    Op::Le => "<=",
                    Op::Lt => "<",
                    Op::Eq => "==",
                };
                let v: Vec<String> = v.iter().map(u64::to_string).collect();
                format!("{op}{}", v.join("."))
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

fn parse_version(text: &str) -> Result<Vec<u64>, VersionError> {
    let mut out = Vec::new();
    for part in text.split('.') {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            if out.is_empty() {
                return Err(VersionError(format!("`{text}` is not a version")));
            }
            break;
        }
        out.push(
            digits
                .parse()
                .map_err(|_| VersionError(format!("`{text}`: component too large")))?,
        );
        if digits.len() != part.len() {
            break; // `11rc1`: the number, then a suffix that ends the version
        }
    }
    Ok(out)
}

fn compare(a: &[u64], b: &[u64]) -> Ordering {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            a.get(i)
                .copied()
                .unwrap_or(0)
                .cmp(&b.get(i).copied().unwrap_or(0))
        })
        .find(|o| *o != Ordering::Equal)
        .unwrap_or(Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_compare_numerically() {
        let r = Range::parse(">=3.10").unwrap();
        assert!(r.contains("3.10.0").unwrap());
        assert!(r.contains("3.11.7").unwrap());
        assert!(!r.contains("3.9.18").unwrap());
        assert!(!r.contains("3.8").unwrap());
        let r = Range::parse(">=3.8, <3.13").unwrap();
        assert!(r.contains("3.12.1").unwrap());
        assert!(!r.contains("3.13.0").unwrap());
        assert!(r.contains("3.13.0rc1").is_ok());
        assert_eq!(r.to_string(), ">=3.8,<3.13");
    }

    #[test]
    fn bad_ranges_are_errors() {
        assert!(Range::parse("3.10").is_err());
        assert!(Range::parse(">=x").is_err());
        assert!(Range::parse("~3.1").is_err());
    }
}
