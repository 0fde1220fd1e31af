//! Messages that name what is wrong: a misspelt key, variant or id gets the closest valid
//! one ("did you mean `returns`?"), and serde's "unknown field" messages say what they were
//! read as ("in a task").

/// The candidate closest to `word` by edit distance (a transposition counts once), if it is
/// close enough to be a plausible misspelling: at most 2 edits, and fewer than the word has
/// characters.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = 2.min(word.chars().count().saturating_sub(1)).max(1);
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Up to `n` candidates nearest to `word` (ignoring case), best first: those within a few
/// edits, or containing the word; for "did you mean" lists where a plausible guess beats
/// none (`explain BLK-1` suggests `BLK-001`).
pub fn nearest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    n: usize,
) -> Vec<&'a str> {
    let word = word.to_uppercase();
    let limit = (word.chars().count() / 2).clamp(1, 3);
    let mut ranked: Vec<(usize, &str)> = candidates
        .into_iter()
        .filter_map(|c| {
            let upper = c.to_uppercase();
            let d = distance(&word, &upper);
            (d <= limit || upper.contains(&word)).then_some((d, c))
        })
        .collect();
    ranked.sort();
    ranked.into_iter().take(n).map(|(_, c)| c).collect()
}

/// `; did you mean `x`?` for a suggestion, nothing without one.
pub fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

/// Optimal string alignment distance between `a` and `b`, by characters.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// What the node at a serde path (`cases[0].steps[1].apply.task`) is, in words, from its last
/// keys; `None` when the path says nothing useful.
fn what_is(path: &str) -> Option<String> {
    let keys: Vec<&str> = path
        .split('.')
        .map(|k| k.split('[').next().unwrap_or(k))
        .collect();
    let last = *keys.last()?;
    let parent = keys.len().checked_sub(2).and_then(|i| keys.get(i)).copied();
    let what = match (parent, last) {
        (Some("steps"), op) if op.starts_with(['a', 'e', 'i', 'o', 'u']) => {
            format!("an `{op}` step")
        }
        (Some("steps"), op) => format!("a `{op}` step"),
        (_, "task" | "tasks") => "a task".to_owned(),
        (_, "initializer") => "the initializer (a task)".to_owned(),
        (_, "cases") => "a case".to_owned(),
        (_, "pool") => "`pool`".to_owned(),
        (Some("gates"), gate) => format!("the rule of gate `{gate}`"),
        (_, "raises" | "then_raise") => "an exception".to_owned(),
        (_, "callback" | "error_callback") => "a callback".to_owned(),
        (_, "blob" | "blob_arg") => "a blob".to_owned(),
        (_, "order") => "an `order` probe".to_owned(),
        (_, "observe") => "a probe".to_owned(),
        (_, "cite") => "a citation".to_owned(),
        (_, "steps") => "a step".to_owned(),
        _ => return None,
    };
    Some(what)
}

/// The words of serde's "unknown field" and "unknown variant" messages, and what to call the
/// unknown thing.
const UNKNOWN: &[(&str, &str)] = &[("unknown field `", "key"), ("unknown variant `", "variant")];

/// serde's message for a parse error, with an unknown key or variant named together with the
/// closest valid one and what it was read as:
/// `unknown field `retuns`, expected one of `id`, `wait`, ...` becomes
/// `unknown key `retuns` in a task; did you mean `returns`? (unknown field `retuns`, expected
/// one of ...)`. Other messages are returned as they are.
pub fn explain_parse_error(message: &str) -> String {
    let (path, rest) = match message.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => (Some(path), rest),
        _ => (None, message),
    };
    let Some((opening, noun)) = UNKNOWN.iter().find(|(w, _)| rest.starts_with(w)) else {
        return message.to_owned();
    };
    let Some((word, expected)) = rest[opening.len()..].split_once('`') else {
        return message.to_owned();
    };
    let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let noun = match (*noun, path.and_then(what_is)) {
        ("variant", Some(w)) if w == "a step" => "operation".to_owned(),
        ("variant", Some(w)) if w.starts_with("the rule") => "gate rule".to_owned(),
        ("variant", Some(w)) if w == "a probe" => "probe".to_owned(),
        ("variant", Some(w)) if w == "a citation" => "citation".to_owned(),
        (noun, _) => noun.to_owned(),
    };
    let within = match path.and_then(what_is) {
        Some(w) if noun == "key" => format!(" in {w}"),
        _ => String::new(),
    };
    let hint = did_you_mean(&closest(word, known.iter().copied()).map(str::to_owned));
    let at = path.map(|p| format!("{p}: ")).unwrap_or_default();
    format!("{at}unknown {noun} `{word}`{within}{hint} ({rest})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_words_are_suggested_and_far_ones_are_not() {
        let keys = ["id", "wait", "returns", "raises", "exit"];
        assert_eq!(closest("retuns", keys), Some("returns"));
        assert_eq!(closest("wiat", keys), Some("wait"));
        assert_eq!(closest("stpes", ["steps", "tasks"]), Some("steps"));
        assert_eq!(closest("zzz", keys), None);
        assert_eq!(closest("x", ["id"]), None);
    }

    #[test]
    fn unknown_fields_name_the_closest_key_and_the_node() {
        let m = "cases[0].steps[0].apply.task: unknown field `retuns`, expected one of `id`, `wait`, `returns`";
        assert_eq!(
            explain_parse_error(m),
            "cases[0].steps[0].apply.task: unknown key `retuns` in a task; did you mean \
             `returns`? (unknown field `retuns`, expected one of `id`, `wait`, `returns`)"
        );
        let v = "cases[0].steps[0]: unknown variant `aply`, expected `apply` or `map`";
        assert!(
            explain_parse_error(v).contains("unknown operation `aply`; did you mean `apply`?"),
            "{}",
            explain_parse_error(v)
        );
        assert_eq!(explain_parse_error("invalid type"), "invalid type");
    }
}
