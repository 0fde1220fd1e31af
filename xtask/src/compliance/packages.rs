//! The pinned versions: `fixtures/thirdparty/requirements.txt`, which pip reads (as
//! constraints) and which this module parses, so the versions COMPLIANCE.md names are the
//! ones pip installed; and the versions a venv actually holds, to compare with them.

use std::path::Path;

use anyhow::{Context, Result, bail};

/// The requirements file, relative to the workspace root.
pub const REQUIREMENTS: &str = "fixtures/thirdparty/requirements.txt";

/// One `name==version` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub name: String,
    pub version: String,
}

impl Pin {
    /// The requirement as pip spells it.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.name, self.version)
    }
}

/// Every pin of the requirements file, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pins(pub Vec<Pin>);

impl Pins {
    pub fn load(root: &Path) -> Result<Pins> {
        let path = root.join(REQUIREMENTS);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Pins::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parses a requirements file holding only comments, blank lines and `name==version`
    /// lines (anything pip would read differently, such as ranges, options or markers, is
    /// refused, so what is parsed here is exactly what pip pins).
    pub fn parse(text: &str) -> Result<Pins> {
        let mut pins: Vec<Pin> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = strip_comment(line).trim();
            if line.is_empty() {
                continue;
            }
            let Some((name, version)) = line.split_once("==") else {
                bail!("line {}: `{line}` is not `name==version`", i + 1);
            };
            let (name, version) = (name.trim(), version.trim());
            let plain = |s: &str| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            };
            if !plain(name) || !plain(version) {
                bail!("line {}: `{line}` is not `name==version`", i + 1);
            }
            if pins.iter().any(|p| normalize(&p.name) == normalize(name)) {
                bail!("line {}: {name} is pinned twice", i + 1);
            }
            pins.push(Pin {
                name: name.to_owned(),
                version: version.to_owned(),
            });
        }
        Ok(Pins(pins))
    }

    /// The pin of `package` (names compared as pip compares them).
    pub fn get(&self, package: &str) -> Option<&Pin> {
        let key = normalize(package);
        self.0.iter().find(|p| normalize(&p.name) == key)
    }
}

/// pip's comments: a whole line from `#`, or from a `#` after whitespace.
fn strip_comment(line: &str) -> &str {
    if line.trim_start().starts_with('#') {
        return "";
    }
    match line.find(" #").or_else(|| line.find("\t#")) {
        Some(i) => &line[..i],
        None => line,
    }
}

/// A distribution's name as pip compares it: lower case, `-` for `_` and `.`.
pub fn normalize(name: &str) -> String {
    name.to_ascii_lowercase().replace(['_', '.'], "-")
}

/// The distributions a venv holds: `(normalized name, version)`, sorted.
#[derive(Debug, Clone, Default)]
pub struct Installed(pub Vec<(String, String)>);

impl Installed {
    /// From `NAME VERSION` lines (what `importlib.metadata` lists).
    pub fn from_listing(text: &str) -> Installed {
        let mut list: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(n, v)| (normalize(n), v.trim().to_owned()))
            .collect();
        list.sort();
        Installed(list)
    }

    pub fn version(&self, package: &str) -> Option<&str> {
        let key = normalize(package);
        self.0
            .iter()
            .find(|(n, _)| *n == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the venv holds `pin`'s version.
    pub fn has(&self, pin: &Pin) -> bool {
        self.version(&pin.name) == Some(pin.version.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(name: &str, version: &str) -> Pin {
        Pin {
            name: name.to_owned(),
            version: version.to_owned(),
        }
    }

    #[test]
    fn pins_are_read_in_order_past_comments_and_blank_lines() {
        let pins = Pins::parse(
            "# header\n\nbilliard==4.3.2\n  ray == 2.60.0  # trailing comment\nPyYAML==6.0.3\n",
        )
        .unwrap();
        assert_eq!(
            pins.0,
            [
                pin("billiard", "4.3.2"),
                pin("ray", "2.60.0"),
                pin("PyYAML", "6.0.3")
            ]
        );
        assert_eq!(pins.get("pyyaml"), Some(&pin("PyYAML", "6.0.3")));
        assert_eq!(pins.get("typing-extensions"), None);
        assert_eq!(pins.0[0].requirement(), "billiard==4.3.2");
    }

    #[test]
    fn anything_but_an_exact_pin_is_refused_with_its_line() {
        for (text, message) in [
            ("ray>=2.60\n", "line 1: `ray>=2.60` is not `name==version`"),
            ("# x\nray\n", "line 2: `ray` is not `name==version`"),
            (
                "-c other.txt\n",
                "line 1: `-c other.txt` is not `name==version`",
            ),
            (
                "ray==2.60.0; python_version<'3.13'\n",
                "line 1: `ray==2.60.0; python_version<'3.13'` is not `name==version`",
            ),
            ("ray==\n", "line 1: `ray==` is not `name==version`"),
            ("a_b==1\nA-B==2\n", "line 2: A-B is pinned twice"),
        ] {
            let err = Pins::parse(text).unwrap_err();
            assert_eq!(err.to_string(), message, "{text:?}");
        }
    }

    #[test]
    fn the_committed_file_pins_every_package_under_test_and_dill() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let pins = Pins::load(&root).unwrap();
        for package in super::super::subjects::packages_under_test()
            .into_iter()
            .chain(["dill"])
        {
            assert!(pins.get(package).is_some(), "{package} is not pinned");
        }
    }

    #[test]
    fn installed_versions_compare_under_pips_name_rules() {
        let installed = Installed::from_listing("typing_extensions 4.16.0\nPyYAML 6.0.3\nbad\n");
        assert_eq!(installed.version("typing-extensions"), Some("4.16.0"));
        assert!(installed.has(&pin("pyyaml", "6.0.3")));
        assert!(!installed.has(&pin("PyYAML", "6.0.2")));
        assert_eq!(installed.version("ray"), None);
    }
}
