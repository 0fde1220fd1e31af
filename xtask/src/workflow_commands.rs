//! Every `cargo xtask ...` command line of the CI template (`docs/poolspec-ci.yml`, its `run:`
//! scripts) and of the recipe (`docs/ci-recipe.md`, its `sh` blocks), parsed with this
//! binary's own `Cli`, so that the documents can never drift from the command line.
//!
//! A test module only (xtask is a binary crate: `Cli` is reachable from inside it). Scripts
//! are read the way a shell would, as far as the documents need: line continuations joined,
//! quotes removed, a command ending at a shell operator (`|`, `;`, `&`, `>`, `<`) or a comment,
//! and every GitHub expression `${{ ... }}` replaced by a sample value before that.

use clap::Parser;

use crate::Cli;

/// What a GitHub expression stands for while parsing: a number, so that `${{ matrix.shard }}/3`
/// reads as a shard, and as good as any text for a path or a name.
const EXPRESSION_SAMPLE: &str = "1";

/// One command found in a document.
#[derive(Debug, Clone, PartialEq)]
struct Command {
    /// Where it was found (file, and the step or block), for the failure message.
    place: String,
    /// The words after `cargo xtask`.
    args: Vec<String>,
}

/// `${{ ... }}` replaced by [`EXPRESSION_SAMPLE`].
fn without_expressions(script: &str) -> String {
    let mut out = String::new();
    let mut rest = script;
    while let Some(at) = rest.find("${{") {
        out.push_str(&rest[..at]);
        match rest[at..].find("}}") {
            Some(end) => {
                out.push_str(EXPRESSION_SAMPLE);
                rest = &rest[at + end + 2..];
            }
            None => {
                rest = &rest[at..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Shell line continuations (a backslash before the newline) joined.
fn joined_lines(script: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in script.lines() {
        match line.trim_end().strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

/// `line` without its comment: from an unquoted `#` that starts a word.
fn without_comment(line: &str) -> &str {
    let (mut quote, mut previous) = (None, ' ');
    for (at, c) in line.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '#') if previous.is_whitespace() => return &line[..at],
            _ => {}
        }
        previous = c;
    }
    line
}

/// The words of one command, up to the first unquoted shell operator or comment.
fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                w.extend(chars.by_ref().take_while(|&c| c != '\''));
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => w.extend(chars.next()),
                        c => w.push(c),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).extend(chars.next()),
            '>' | '<' => {
                // A redirection's file descriptor (`2>`) is not a word.
                word.take_if(|w| w.bytes().all(|b| b.is_ascii_digit()));
                break;
            }
            '|' | ';' | '&' => break,
            '#' if word.is_none() => break,
            c if c.is_whitespace() => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// Every `cargo xtask` command of a shell script.
fn commands_in_script(script: &str, place: &str) -> Vec<Command> {
    joined_lines(&without_expressions(script))
        .iter()
        .filter_map(|line| {
            let line = without_comment(line);
            let at = line.find("cargo xtask")?;
            let words = shell_words(&line[at..]);
            Some(Command {
                place: place.to_owned(),
                args: words.into_iter().skip(2).collect(),
            })
        })
        .collect()
}

/// Every `run:` script of a workflow, with the name of its step.
fn workflow_scripts(yaml: &str) -> Vec<(String, String)> {
    fn walk(value: &serde_yaml::Value, name: &str, out: &mut Vec<(String, String)>) {
        match value {
            serde_yaml::Value::Mapping(map) => {
                let name = map
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or(name)
                    .to_owned();
                for (key, child) in map {
                    match (key.as_str(), child.as_str()) {
                        (Some("run"), Some(script)) => out.push((name.clone(), script.to_owned())),
                        _ => walk(child, &name, out),
                    }
                }
            }
            serde_yaml::Value::Sequence(items) => {
                items.iter().for_each(|item| walk(item, name, out));
            }
            _ => {}
        }
    }
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).expect("the workflow is YAML");
    let mut out = Vec::new();
    walk(&value, "workflow", &mut out);
    out
}

/// Every ```` ```sh ```` block of a Markdown file, with its first line number.
fn markdown_sh_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (n, line) in markdown.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (None, Some(lang)) if matches!(lang.trim(), "sh" | "bash" | "shell") => {
                open = Some((n + 2, String::new()));
            }
            (Some(_), Some(_)) => blocks.extend(open.take()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

/// Parses `command` with the real `Cli`; `Err` says where it was found and what clap said.
fn check(command: &Command) -> Result<(), String> {
    Cli::try_parse_from(
        std::iter::once("cargo xtask").chain(command.args.iter().map(String::as_str)),
    )
    .map(drop)
    .map_err(|e| {
        format!(
            "{}: `cargo xtask {}`: {}",
            command.place,
            command.args.join(" "),
            e.render()
        )
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the workspace")
            .to_path_buf()
    }

    fn read(rel: &str) -> String {
        std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn workflow_commands() -> Vec<Command> {
        workflow_scripts(&read("docs/poolspec-ci.yml"))
            .iter()
            .flat_map(|(step, script)| {
                commands_in_script(script, &format!("docs/poolspec-ci.yml, step {step:?}"))
            })
            .collect()
    }

    fn recipe_commands() -> Vec<Command> {
        markdown_sh_blocks(&read("docs/ci-recipe.md"))
            .iter()
            .flat_map(|(line, block)| {
                commands_in_script(block, &format!("docs/ci-recipe.md, block at line {line}"))
            })
            .collect()
    }

    #[test]
    fn every_command_of_the_workflow_and_the_recipe_parses() {
        let workflow = workflow_commands();
        let recipe = recipe_commands();
        // The runs of both columns, merge, badge and diff; the recipe's own examples.
        assert!(workflow.len() >= 5, "{workflow:#?}");
        assert!(recipe.len() >= 5, "{recipe:#?}");
        let errors: Vec<String> = workflow
            .iter()
            .chain(&recipe)
            .filter_map(|c| check(c).err())
            .collect();
        assert!(errors.is_empty(), "{}", errors.join("\n"));
    }

    #[test]
    fn a_wrong_flag_or_subcommand_fails() {
        let command = |line: &str| commands_in_script(line, "test").remove(0);
        assert!(check(&command("cargo xtask conformance --impl cpython-fork -q")).is_ok());
        let err = check(&command("cargo xtask conformance --no-such-flag")).unwrap_err();
        assert!(err.contains("--no-such-flag"), "{err}");
        assert!(
            check(&command(
                "cargo xtask conformance --shard 1/3 --no-such-flag"
            ))
            .is_err()
        );
        assert!(check(&command("cargo xtask conformance --shard=1/3 --out x")).is_ok());
        assert!(check(&command("cargo xtask conformance merge a b --out m")).is_ok());
        assert!(check(&command("cargo xtask conformanse --out x")).is_err());
    }

    #[test]
    fn scripts_are_read_as_a_shell_would() {
        let script = "for d in x; do\n  cargo xtask conformance --impl \"$IMPL\" \\\n    \
                      --shard ${{ matrix.shard }}/3 --out 'a b' >> out.md || s=$?\ndone\n\
                      echo cargo # cargo xtask in a comment is not a command\n";
        assert_eq!(
            commands_in_script(script, "p"),
            vec![Command {
                place: "p".into(),
                args: [
                    "conformance",
                    "--impl",
                    "$IMPL",
                    "--shard",
                    "1/3",
                    "--out",
                    "a b"
                ]
                .map(String::from)
                .to_vec(),
            }]
        );
        assert_eq!(shell_words(r#"a\ b "c\"d" # e"#), ["a b", "c\"d"]);
        assert_eq!(shell_words("a b 2>/dev/null"), ["a", "b"]);
    }

    #[test]
    fn runs_and_sh_blocks_are_found() {
        let yaml = "jobs:\n  j:\n    steps:\n      - name: one\n        run: >-\n          \
                    cargo xtask conformance\n          --out x\n";
        let scripts = workflow_scripts(yaml);
        assert_eq!(
            scripts,
            [(
                "one".to_owned(),
                "cargo xtask conformance --out x".to_owned()
            )]
        );
        let md = "text\n```sh\ncargo xtask a\n```\n```yaml\nb: c\n```\n";
        assert_eq!(markdown_sh_blocks(md), [(3, "cargo xtask a\n".to_owned())]);
    }
}
