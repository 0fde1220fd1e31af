//! A case's citations with links a person can open: the CPython documentation for `doc`,
//! the line of `Lib/multiprocessing/pool.py` or `Lib/test/_test_multiprocessing.py` for
//! `source` and `test` (when the function or class is found in a copy of the file), the
//! issue tracker for `issue`.
//!
//! Line numbers come from a [`SourceIndex`]: the definitions of the CPython sources a caller
//! read (xtask reads the local interpreter's, and links to the tag of its version), so a link
//! points at the line of the same version of the code. Without one, a link names the file.

use std::collections::HashMap;

use crate::spec::Citation;

/// The CPython documentation the `doc` anchors are relative to.
pub const DOCS: &str = "https://docs.python.org/3/";
/// The CPython repository on GitHub.
pub const REPOSITORY: &str = "https://github.com/python/cpython";
/// `source:` citations are about this file.
pub const POOL_PY: &str = "Lib/multiprocessing/pool.py";
/// `test:` citations are about this file.
pub const TEST_PY: &str = "Lib/test/_test_multiprocessing.py";

/// One citation as shown: its kind, its text, the quoted words of a `doc`, and a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cited {
    /// `doc`, `source`, `test`, `issue` or `seed`.
    pub kind: &'static str,
    /// The citation without its quote.
    pub text: String,
    /// The quoted words of a `doc` citation.
    pub quote: Option<String>,
    pub link: Option<String>,
}

/// Where the definitions of CPython's `pool.py` and `_test_multiprocessing.py` are, in one
/// version of CPython (its git tag, `v3.12.3`; `main` when unknown).
#[derive(Debug, Clone, Default)]
pub struct SourceIndex {
    tag: String,
    pool: HashMap<String, usize>,
    tests: HashMap<String, usize>,
}

impl SourceIndex {
    /// No copy of the sources: links name the files on `main`.
    pub fn none() -> SourceIndex {
        SourceIndex {
            tag: "main".to_owned(),
            ..SourceIndex::default()
        }
    }

    /// The definitions of the given file texts, at CPython's git tag `tag`.
    pub fn new(tag: &str, pool_py: Option<&str>, test_py: Option<&str>) -> SourceIndex {
        SourceIndex {
            tag: tag.to_owned(),
            pool: pool_py.map(definitions).unwrap_or_default(),
            tests: test_py.map(definitions).unwrap_or_default(),
        }
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    fn link(&self, file: &str, lines: &HashMap<String, usize>, name: &str) -> String {
        let base = format!("{REPOSITORY}/blob/{}/{file}", self.tag);
        match lines.get(name) {
            Some(n) => format!("{base}#L{n}"),
            None => base,
        }
    }
}

/// Every `class` and `def` of a Python file by qualified name (`Pool.map`, `mapstar`), with
/// its 1-based line. Nesting is read from indentation; the first definition of a name wins.
pub fn definitions(text: &str) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    // (indent, name) of the enclosing definitions.
    let mut stack: Vec<(usize, String)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let body = line.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let indent = line.len() - body.len();
        let rest = ["class ", "def ", "async def "]
            .iter()
            .find_map(|k| body.strip_prefix(k));
        let Some(rest) = rest else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue;
        }
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        let mut qualified: Vec<&str> = stack.iter().map(|(_, s)| s.as_str()).collect();
        qualified.push(&name);
        out.entry(qualified.join(".")).or_insert(n + 1);
        stack.push((indent, name));
    }
    out
}

/// A citation with its link.
pub fn cite(citation: &Citation, index: &SourceIndex) -> Cited {
    match citation {
        Citation::Doc(text) => {
            let (anchor, quote) = match text.split_once(" \"") {
                Some((a, q)) => (a.trim(), Some(q.trim_end_matches('"').to_owned())),
                None => (text.trim(), None),
            };
            Cited {
                kind: "doc",
                text: anchor.to_owned(),
                quote,
                link: Some(format!("{DOCS}{anchor}")),
            }
        }
        Citation::Source(text) => {
            let name = text.strip_prefix("pool.py:").unwrap_or(text);
            Cited {
                kind: "source",
                text: text.clone(),
                quote: None,
                link: Some(index.link(POOL_PY, &index.pool, name)),
            }
        }
        Citation::Test(text) => Cited {
            kind: "test",
            text: text.clone(),
            quote: None,
            link: Some(index.link(TEST_PY, &index.tests, text)),
        },
        Citation::Issue(text) => Cited {
            kind: "issue",
            text: text.clone(),
            quote: None,
            link: issue_link(text),
        },
        Citation::Seed(text) => Cited {
            kind: "seed",
            text: text.clone(),
            quote: None,
            link: None,
        },
    }
}

/// `gh-83371` on GitHub, `bpo-10332` on the old tracker (which redirects to GitHub).
fn issue_link(issue: &str) -> Option<String> {
    let number = |s: &str| s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty();
    if let Some(n) = issue.strip_prefix("gh-").filter(|n| number(n)) {
        return Some(format!("{REPOSITORY}/issues/{n}"));
    }
    if let Some(n) = issue.strip_prefix("bpo-").filter(|n| number(n)) {
        return Some(format!("https://bugs.python.org/issue{n}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: &str = "import os\n\ndef mapstar(args):\n    return 1\n\nclass Pool(object):\n    \
                        '''doc'''\n    def __init__(self):\n        def inner():\n            pass\n\n    \
                        def map(self, func):\n        pass\n\nclass ApplyResult:\n    def get(self):\n        pass\n";

    #[test]
    fn definitions_are_found_by_qualified_name() {
        let d = definitions(POOL);
        assert_eq!(d.get("mapstar"), Some(&3));
        assert_eq!(d.get("Pool"), Some(&6));
        assert_eq!(d.get("Pool.__init__"), Some(&8));
        assert_eq!(d.get("Pool.__init__.inner"), Some(&9));
        assert_eq!(d.get("Pool.map"), Some(&12));
        assert_eq!(d.get("ApplyResult.get"), Some(&16));
    }

    #[test]
    fn every_kind_of_citation_gets_its_link() {
        let index = SourceIndex::new("v3.12.3", Some(POOL), None);
        let doc = cite(
            &Citation::Doc(
                "library/multiprocessing.html#multiprocessing.pool.Pool.apply \"It blocks.\""
                    .into(),
            ),
            &index,
        );
        assert_eq!(
            doc.link.as_deref(),
            Some(
                "https://docs.python.org/3/library/multiprocessing.html#multiprocessing.pool.Pool.apply"
            )
        );
        assert_eq!(doc.quote.as_deref(), Some("It blocks."));
        let source = cite(&Citation::Source("pool.py:Pool.map".into()), &index);
        assert_eq!(
            source.link.as_deref(),
            Some("https://github.com/python/cpython/blob/v3.12.3/Lib/multiprocessing/pool.py#L12")
        );
        let unknown = cite(&Citation::Source("pool.py:Gone.away".into()), &index);
        assert_eq!(
            unknown.link.as_deref(),
            Some("https://github.com/python/cpython/blob/v3.12.3/Lib/multiprocessing/pool.py")
        );
        let test = cite(
            &Citation::Test("_TestPool.test_map".into()),
            &SourceIndex::none(),
        );
        assert_eq!(
            test.link.as_deref(),
            Some("https://github.com/python/cpython/blob/main/Lib/test/_test_multiprocessing.py")
        );
        let gh = cite(&Citation::Issue("gh-83371".into()), &index);
        assert_eq!(
            gh.link.as_deref(),
            Some("https://github.com/python/cpython/issues/83371")
        );
        let bpo = cite(&Citation::Issue("bpo-10332".into()), &index);
        assert_eq!(
            bpo.link.as_deref(),
            Some("https://bugs.python.org/issue10332")
        );
        assert_eq!(cite(&Citation::Seed("SEED-01".into()), &index).link, None);
    }
}
