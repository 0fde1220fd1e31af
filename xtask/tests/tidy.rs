//! Tidy checks, in the style of rust-analyzer's `xtask/src/tidy.rs`: the shape of the code and
//! the documents that describe it, kept from drifting by `cargo test`.
//!
//! - The modules of every crate root form a line: no import cycle of any length.
//! - No source file grows past 700 lines (data tables excepted, each with its reason), and
//!   `xtask/src/main.rs` stays a dispatcher.
//! - ARCHITECTURE.md's code map names every source file; README.md names every `xtask`
//!   command.
//!
//! The import graph is read from the source text, not from the compiler: an edge from module
//! `a` to module `b` is any path in `a` that resolves to `b` (`crate::b::..`, `super::..`,
//! `self::..`, or a child of `a` by name), in `use` items and in expressions alike, with
//! comments, string literals and `#[cfg(test)]` items left out. A crate's root file only
//! declares and re-exports, so it is not a node.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// The crate roots of the workspace, each with its modules.
const CRATE_ROOTS: &[&str] = &[
    "conformance/src/lib.rs",
    "conformance/src/bin/poolspec-supervisor.rs",
    "pool-ref/src/lib.rs",
    "pool-ref/src/bin/pool-ref-driver/main.rs",
    "pool-ref/src/bin/pool-ref-bench.rs",
    "poolspec-driver/src/lib.rs",
    "xtask/src/main.rs",
];

/// The crates whose sources the size limit and the code map cover.
const CRATES: &[&str] = &["conformance", "pool-ref", "poolspec-driver", "xtask"];

/// Files allowed past the size limit: data, not logic. Each says why.
const DATA_TABLES: &[(&str, &str)] = &[];

const MAX_LINES: usize = 700;
const MAX_MAIN_LINES: usize = 150;

// ---------------------------------------------------------------------------------------------
// Reading Rust source text just well enough.

/// `text` with comments removed and the contents of string and character literals blanked,
/// so that braces and paths inside them are not mistaken for code.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == b'r' && matches!(b.get(i + 1), Some(b'"' | b'#')) && !ident_before(b, i) {
            // Raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == b'"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&b'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                if b[j] == b'\\' {
                    j += 1;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j + 1;
        } else if c == b'\'' {
            // A character literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let close = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..]
                    .iter()
                    .position(|&x| x == b'\'')
                    .map(|p| i + 2 + p)
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(i + 2)
            } else {
                // A multi-byte character, or a lifetime.
                let ch_len = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                (b.get(i + 1 + ch_len) == Some(&b'\'')).then_some(i + 1 + ch_len)
            };
            match close {
                Some(end) => {
                    out.push_str("' '");
                    i = end + 1;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let ch = text[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn ident_before(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// `code` without the items marked `#[cfg(test)]` (a test module, a test-only function).
fn without_test_items(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        // The item ends at its `;` or at the brace closing its first `{`.
        let mut depth = 0usize;
        let mut end = item.len();
        for (k, ch) in item.char_indices() {
            match ch {
                ';' if depth == 0 => {
                    end = k + 1;
                    break;
                }
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// The `mod name;` declarations of a file (not inline `mod name { .. }` blocks).
fn declared_modules(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = find_word(rest, "mod") {
        let after = rest[at + 3..].trim_start();
        let name: String = after
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let tail = after[name.len()..].trim_start();
        if !name.is_empty() && tail.starts_with(';') {
            out.push(name);
        }
        rest = &rest[at + 3..];
    }
    out
}

fn find_word(hay: &str, word: &str) -> Option<usize> {
    let b = hay.as_bytes();
    let mut from = 0;
    while let Some(p) = hay[from..].find(word) {
        let at = from + p;
        let before_ok = at == 0 || !(b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_');
        let end = at + word.len();
        let after_ok = end >= b.len() || !(b[end].is_ascii_alphanumeric() || b[end] == b'_');
        if before_ok && after_ok {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// Every path in `code`, with `use` trees (`a::{b, c::d}`) expanded, as segment lists.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    // `use` items first, because their braces group paths.
    let mut rest = code;
    while let Some(at) = find_word(rest, "use") {
        let item = &rest[at + 3..];
        let end = item.find(';').unwrap_or(item.len());
        // `a as b` keeps `a`: the rename is marked `@` before the spaces go.
        let tree: String = item[..end]
            .split_whitespace()
            .map(|t| if t == "as" { "@" } else { t })
            .collect();
        expand_use_tree("", &tree, &mut out);
        rest = &item[end..];
    }
    // Then every `a::b::c` in the code.
    let mut current = String::new();
    let chars: Vec<char> = code.chars().collect();
    let mut k = 0;
    while k <= chars.len() {
        let c = chars.get(k).copied().unwrap_or(' ');
        if c.is_alphanumeric() || c == '_' {
            current.push(c);
            k += 1;
        } else if c == ':' && chars.get(k + 1) == Some(&':') && !current.is_empty() {
            current.push_str("::");
            k += 2;
        } else {
            // `a::{..}` ends in `::`: its tree was read with the `use` items above.
            if current.contains("::") && !current.ends_with("::") {
                out.push(current.split("::").map(str::to_owned).collect());
            }
            current.clear();
            k += 1;
        }
    }
    out
}

fn expand_use_tree(prefix: &str, tree: &str, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim_start_matches("::");
    match tree.find('{') {
        None => {
            let full = format!("{prefix}{tree}");
            let path = full.split('@').next().unwrap_or(&full);
            out.push(
                path.split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            );
        }
        Some(open) => {
            let head = format!("{prefix}{}", &tree[..open]);
            let close = tree.rfind('}').unwrap_or(tree.len());
            let body = &tree[open + 1..close];
            let mut depth = 0;
            let mut start = 0;
            for (k, ch) in body.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand_use_tree(&head, &body[start..k], out);
                        start = k + 1;
                    }
                    _ => {}
                }
            }
            if start < body.len() {
                expand_use_tree(&head, &body[start..], out);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The module graph of one crate root.

/// Modules by path (`["fuzz", "legalize"]`, the root being `[]`), each with its code
/// without comments, literals and test items.
type Modules = BTreeMap<Vec<String>, String>;

fn crate_modules(root_file: &Path) -> Modules {
    let mut out = BTreeMap::new();
    let mut todo = vec![(Vec::<String>::new(), root_file.to_path_buf())];
    while let Some((path, file)) = todo.pop() {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let code = without_test_items(&code_only(&text));
        let dir = child_dir(&file, path.is_empty());
        for name in declared_modules(&code) {
            let mut child = path.clone();
            child.push(name.clone());
            let flat = dir.join(format!("{name}.rs"));
            let nested = dir.join(&name).join("mod.rs");
            let child_file = if flat.exists() { flat } else { nested };
            assert!(
                child_file.exists(),
                "{}: module {name} has no file",
                file.display()
            );
            todo.push((child, child_file));
        }
        out.insert(path, code);
    }
    out
}

/// Where a module's children live: beside `lib.rs`, `main.rs` and `mod.rs`, else in the
/// folder named after the file.
fn child_dir(file: &Path, is_root: bool) -> PathBuf {
    let parent = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if is_root || stem == "mod" {
        parent
    } else {
        parent.join(stem)
    }
}

/// The module a path names, as the longest known module prefix, resolved from `from`.
fn resolve(modules: &Modules, from: &[String], segs: &[String]) -> Option<Vec<String>> {
    let absolute: Vec<String> = match segs.first().map(String::as_str) {
        Some("crate") => segs[1..].to_vec(),
        Some("self") => from.iter().chain(&segs[1..]).cloned().collect(),
        Some("super") => {
            let ups = segs.iter().take_while(|s| *s == "super").count();
            let base = &from[..from.len().saturating_sub(ups)];
            base.iter().chain(&segs[ups..]).cloned().collect()
        }
        Some(first) => {
            let mut child = from.to_vec();
            child.push(first.to_owned());
            if !modules.contains_key(&child) {
                return None;
            }
            from.iter().chain(segs).cloned().collect()
        }
        None => return None,
    };
    (1..=absolute.len())
        .rev()
        .map(|k| absolute[..k].to_vec())
        .find(|p| modules.contains_key(p))
}

fn import_graph(root_file: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules = crate_modules(root_file);
    let name = |p: &[String]| p.join("::");
    let mut graph = BTreeMap::new();
    for (path, code) in &modules {
        if path.is_empty() {
            continue;
        }
        let edges: BTreeSet<String> = paths(code)
            .iter()
            .filter_map(|segs| resolve(&modules, path, segs))
            .filter(|to| !to.is_empty() && to != path)
            .map(|to| name(&to))
            .collect();
        graph.insert(name(path), edges);
    }
    graph
}

/// The import cycles of `graph`: its strongly connected components of more than one module
/// (Tarjan's algorithm), each sorted, so a failure names every module of every cycle.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Tarjan<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        out: Vec<Vec<String>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, v: &'g str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.stack.contains(&w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.out.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out
}

#[test]
fn modules_form_a_line() {
    let mut problems = Vec::new();
    for root_file in CRATE_ROOTS {
        let graph = import_graph(&root().join(root_file));
        for cycle in cycles(&graph) {
            let edges: Vec<String> = cycle
                .iter()
                .map(|m| {
                    let to: Vec<&str> = graph[m]
                        .iter()
                        .filter(|t| cycle.contains(t))
                        .map(String::as_str)
                        .collect();
                    format!("{m} → {}", to.join(", "))
                })
                .collect();
            problems.push(format!("{root_file}:\n  {}", edges.join("\n  ")));
        }
    }
    assert!(
        problems.is_empty(),
        "import cycles (move the shared items to a leaf module):\n{}",
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Sizes.

fn files_under(dir: &Path, ext: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "snapshots") {
                continue;
            }
            files_under(&path, ext, out);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ext.contains(&e))
        {
            out.push(path);
        }
    }
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

#[test]
fn files_stay_small() {
    let mut too_long = Vec::new();
    for krate in CRATES {
        let mut files = Vec::new();
        files_under(&root().join(krate).join("src"), &["rs"], &mut files);
        for file in files {
            let rel = relative(&file);
            let lines = std::fs::read_to_string(&file)
                .map(|t| t.lines().count())
                .unwrap_or(0);
            let limit = if rel == "xtask/src/main.rs" {
                MAX_MAIN_LINES
            } else {
                MAX_LINES
            };
            if lines > limit && !DATA_TABLES.iter().any(|(f, _)| *f == rel) {
                too_long.push(format!("{rel}: {lines} lines (limit {limit})"));
            }
        }
    }
    assert!(
        too_long.is_empty(),
        "split these by what their parts mean:\n{}",
        too_long.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Documents.

/// ARCHITECTURE.md's sections (`### ...` headings), keyed by heading.
fn architecture_sections() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            out.push((h.to_owned(), String::new()));
        } else if line.starts_with("## ") {
            out.push((line.to_owned(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// Whether `section` names `file` (a path relative to its crate): by a path in backticks that
/// ends its path (`spec/load.rs`, `common/mod.rs`), or by its bare name in backticks when its
/// folder is named too (`fuzz/` ... `generate.rs`), or sits directly in `src/` or `tests/`.
fn names_file(section: &str, rel_in_crate: &str) -> bool {
    let parts: Vec<&str> = rel_in_crate.split('/').collect();
    let n = parts.len();
    if (0..n.saturating_sub(1)).any(|k| section.contains(&format!("`{}`", parts[k..].join("/")))) {
        return true;
    }
    if !section.contains(&format!("`{}`", parts[n - 1])) {
        return false;
    }
    let dir = &parts[..n - 1];
    dir.is_empty()
        || matches!(dir, ["src"] | ["tests"])
        || (0..dir.len()).any(|k| section.contains(&format!("`{}/`", dir[k..].join("/"))))
}

#[test]
fn code_map_names_every_source_file() {
    let sections = architecture_sections();
    let mut missing = Vec::new();
    for krate in CRATES {
        let Some((_, section)) = sections
            .iter()
            .find(|(h, _)| h.contains(&format!("`{krate}/`")))
        else {
            missing.push(format!("no `### \\`{krate}/\\`` section"));
            continue;
        };
        let mut files = Vec::new();
        for sub in ["src", "tests", "benches"] {
            files_under(
                &root().join(krate).join(sub),
                &["rs", "js", "css"],
                &mut files,
            );
        }
        for file in files {
            let in_crate = relative(&file)
                .strip_prefix(&format!("{krate}/"))
                .unwrap_or_default()
                .to_owned();
            let rel_src = in_crate
                .strip_prefix("src/")
                .map(str::to_owned)
                .unwrap_or_else(|| in_crate.clone());
            if !names_file(section, &rel_src) && !names_file(section, &in_crate) {
                missing.push(format!("{krate}/{in_crate}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map does not name these files (say in a sentence what each is \
         for):\n{}",
        missing.join("\n")
    );
}

/// The subcommands `--help` lists under "Commands:".
fn subcommands(args: &[&str]) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .arg("--help")
        .output()
        .expect("running xtask --help");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn readme_names_every_xtask_command() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let commands = subcommands(&[]);
    assert!(commands.contains(&"conformance".to_owned()), "{commands:?}");
    let mut missing = Vec::new();
    for c in &commands {
        if !readme.contains(&format!("cargo xtask {c}")) {
            missing.push(format!("cargo xtask {c}"));
        }
        for sub in subcommands(&[c]) {
            if !readme.contains(&format!("cargo xtask {c} {sub}")) {
                missing.push(format!("cargo xtask {c} {sub}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "README.md does not mention:\n{}",
        missing.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The checks' own reading of source text.

#[test]
fn reading_source_text() {
    let code = code_only(
        "use super::{x, y}; use crate::a; // crate::b\n/* crate::c */ let s = \"crate::d\"; let r = r#\"crate::e\"#; \
         let c = '{'; fn f<'a>(x: &'a str) {}",
    );
    let found: Vec<String> = paths(&code).iter().map(|p| p.join("::")).collect();
    assert!(found.contains(&"crate::a".to_owned()));
    assert!(found.contains(&"super::x".to_owned()));
    assert!(
        !found.iter().any(|p| p.ends_with("::") || p == "super"),
        "{found:?}"
    );
    for hidden in ["crate::b", "crate::c", "crate::d", "crate::e"] {
        assert!(!found.contains(&hidden.to_owned()), "{hidden} in {found:?}");
    }
    assert!(!code.contains("'{'"));

    let mut trees = Vec::new();
    expand_use_tree("", "crate::{a::{b,c},d::E@F}", &mut trees);
    let trees: Vec<String> = trees.iter().map(|p| p.join("::")).collect();
    assert_eq!(trees, ["crate::a::b", "crate::a::c", "crate::d::E"]);

    let stripped =
        without_test_items("fn a() {}\n#[cfg(test)]\nmod tests { fn b() { {} } }\nfn c() {}");
    assert!(stripped.contains("fn a()") && stripped.contains("fn c()"));
    assert!(!stripped.contains("fn b()"));

    assert_eq!(
        declared_modules("pub mod a;\nmod b { }\nmod c;"),
        ["a", "c"]
    );
}

#[test]
fn finding_cycles() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry((*a).to_owned())
                .or_default()
                .insert((*b).to_owned());
            g.entry((*b).to_owned()).or_default();
        }
        g
    };
    assert!(cycles(&graph(&[("a", "b"), ("b", "c")])).is_empty());
    assert_eq!(
        cycles(&graph(&[
            ("a", "b"),
            ("b", "c"),
            ("c", "a"),
            ("c", "d"),
            ("d", "e"),
            ("e", "d")
        ])),
        [vec!["d", "e"], vec!["a", "b", "c"]]
    );
}
