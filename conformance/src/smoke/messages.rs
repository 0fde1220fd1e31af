//! Explanations of a stdout line the runner could not take as a driver message: not JSON,
//! not an object, or a message with a missing, unknown or mistyped field.
//!
//! The field table ([`MESSAGES`], [`IMPLEMENTATION_FIELDS`]) spells out what the serde types
//! of `protocol.rs` accept, in the order they declare it, so that an explanation can name
//! each field. A test below checks the table against those types field by field; a change
//! to [`FromDriver`] or [`ImplementationInfo`] that the table does not follow fails it.
//!
//! [`ImplementationInfo`]: crate::protocol::ImplementationInfo

use serde_json::Value;

use super::finding::{Finding, Mistake};
use super::text::{edit_distance, join_ticked};
use crate::protocol::FromDriver;

/// The fields of each driver message: (type, required, optional).
const MESSAGES: &[(&str, &[&str], &[&str])] = &[
    ("hello", &["protocol", "implementation"], &["capabilities"]),
    ("done", &["seq"], &[]),
    ("error", &["message"], &["seq", "traceback"]),
];
/// The fields of `implementation`: (required, optional). All are strings but
/// [`IMPLEMENTATION_INTEGERS`].
const IMPLEMENTATION_FIELDS: (&[&str], &[&str]) = (
    &["name", "version", "language"],
    &[
        "start_method",
        "interpreter",
        "pool_class",
        "language_version",
        "default_processes",
    ],
);
/// The fields of `implementation` that are integers.
const IMPLEMENTATION_INTEGERS: &[&str] = &["default_processes"];

/// Explains a stdout line the runner could not take as a driver message.
pub(super) fn line_finding(line: &str, case: Option<&str>, handshake: bool) -> Finding {
    let when = if handshake {
        "in answer to the runner's hello"
    } else {
        "while running the case"
    };
    let shown: String = line.chars().take(200).collect();
    let stdout_rule = "Stdout carries protocol messages only, one JSON object per line: send \
                       logs, prints and warnings to stderr, and keep pool workers from writing \
                       to the stdout pipe (PROTOCOL.md §2.1 and §8).";
    if line.trim().is_empty() {
        return Finding::new(
            Mistake::StdoutGarbage,
            case,
            format!("the driver printed an empty line on stdout {when}. {stdout_rule}"),
        );
    }
    let value: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(_) => {
            return Finding::new(
                Mistake::StdoutGarbage,
                case,
                format!(
                    "the driver printed a line on stdout that is not JSON {when}: {shown:?}. \
                     {stdout_rule}"
                ),
            );
        }
    };
    let Some(object) = value.as_object() else {
        return Finding::new(
            Mistake::StdoutGarbage,
            case,
            format!(
                "the driver printed JSON that is not an object {when}: {shown}. Every driver \
                 message is an object with a `type`. {stdout_rule}"
            ),
        );
    };
    let kind = object.get("type").and_then(Value::as_str);
    let problems = message_problems(object);
    let mistake = if handshake && (kind == Some("hello") || kind.is_none()) {
        Mistake::MalformedHello
    } else {
        Mistake::StdoutGarbage
    };
    let what = match kind {
        Some(k) => format!("a `{k}` message"),
        None => "a message".to_owned(),
    };
    Finding::new(
        mistake,
        case,
        format!(
            "the driver printed {what} {when} that the runner cannot accept: {}. Driver \
             messages are closed: a missing required field, an unknown field or a value of \
             the wrong type makes the whole line garbage (PROTOCOL.md §3.2).",
            problems.join("; ")
        ),
    )
    .with_details([format!("the line: {shown}")])
}

/// Every problem with the fields of one driver message, in words.
fn message_problems(object: &serde_json::Map<String, Value>) -> Vec<String> {
    let types: Vec<&str> = MESSAGES.iter().map(|(t, _, _)| *t).collect();
    let Some(kind) = object.get("type") else {
        let mut p = vec![format!(
            "it has no `type` field (one of {})",
            join_ticked(&types)
        )];
        if object.contains_key("protocol") || object.contains_key("implementation") {
            p.push("it looks like a hello: add \"type\": \"hello\"".to_owned());
        }
        return p;
    };
    let Some((name, required, optional)) =
        MESSAGES.iter().find(|(t, _, _)| Some(*t) == kind.as_str())
    else {
        return vec![format!(
            "its type {kind} is not a driver message (one of {})",
            join_ticked(&types)
        )];
    };
    let mut problems = Vec::new();
    fields_problems(
        &format!("the {name}"),
        object,
        required,
        optional,
        &["type"],
        &mut problems,
    );
    let check_type =
        |field: &str, ok: fn(&Value) -> bool, want: &str, problems: &mut Vec<String>| {
            if let Some(v) = object.get(field)
                && !ok(v)
            {
                problems.push(format!("`{field}` must be {want}, not {v}"));
            }
        };
    match *name {
        "hello" => {
            check_type("protocol", |v| v.is_u64(), "an integer", &mut problems);
            check_type(
                "capabilities",
                |v| v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
                "a list of strings",
                &mut problems,
            );
            match object.get("implementation") {
                Some(Value::Object(imp)) => {
                    let (req, opt) = IMPLEMENTATION_FIELDS;
                    fields_problems("`implementation`", imp, req, opt, &[], &mut problems);
                    for (k, v) in imp {
                        let optional = opt.contains(&k.as_str());
                        let integer = IMPLEMENTATION_INTEGERS.contains(&k.as_str());
                        let typed = if integer { v.is_u64() } else { v.is_string() };
                        if (req.contains(&k.as_str()) || optional)
                            && !(typed || (optional && v.is_null()))
                        {
                            let want = if integer { "an integer" } else { "a string" };
                            problems.push(format!("`implementation.{k}` must be {want}, not {v}"));
                        }
                    }
                }
                Some(other) => problems.push(format!(
                    "`implementation` must be an object with `name`, `version` and `language`, \
                     not {other}"
                )),
                None => {}
            }
        }
        "done" => check_type(
            "seq",
            |v| v.is_u64(),
            "the run's seq (an integer)",
            &mut problems,
        ),
        "error" => {
            check_type("message", |v| v.is_string(), "a string", &mut problems);
            check_type(
                "seq",
                |v| v.is_u64() || v.is_null(),
                "the run's seq or null",
                &mut problems,
            );
            check_type(
                "traceback",
                |v| v.is_string() || v.is_null(),
                "a string or null",
                &mut problems,
            );
        }
        _ => {}
    }
    if problems.is_empty() {
        // Something the field checks above do not cover: fall back on the parser's words.
        if let Err(e) = serde_json::from_value::<FromDriver>(Value::Object(object.clone())) {
            problems.push(e.to_string());
        }
    }
    problems
}

/// Missing required fields and unknown fields of `object`.
fn fields_problems(
    what: &str,
    object: &serde_json::Map<String, Value>,
    required: &[&str],
    optional: &[&str],
    also: &[&str],
    problems: &mut Vec<String>,
) {
    let known: Vec<&str> = required
        .iter()
        .chain(optional)
        .chain(also)
        .copied()
        .collect();
    for field in required {
        if !object.contains_key(*field) {
            problems.push(format!("{what} lacks the required field `{field}`"));
        }
    }
    for field in object.keys() {
        if !known.contains(&field.as_str()) {
            let hint = known
                .iter()
                .filter(|k| !object.contains_key(**k))
                .map(|k| (edit_distance(field, k), *k))
                .filter(|(d, k)| *d <= 2.max(k.len() / 4))
                .min()
                .map(|(_, k)| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            problems.push(format!(
                "{what} has the unknown field `{field}`{hint}; its fields are {}",
                join_ticked(&required.iter().chain(optional).copied().collect::<Vec<_>>())
            ));
        }
    }
}

/// Explains a message over one of the protocol's size limits (§2.3): a stdout line
/// (`stdout: true`) or something sent to the coordinator; `what` is the fault's summary.
pub(super) fn over_limit_finding(case: Option<&str>, stdout: bool, what: &str) -> Finding {
    let (mistake, advice) = if stdout {
        (
            Mistake::StdoutGarbage,
            "A driver's stdout carries only its short protocol messages, each on one line \
             ending with a newline; send bulk output to stderr.",
        )
    } else {
        (
            Mistake::ProtocolViolation,
            "Each report is one short JSON line, and each process or thread keeps one \
             connection open while it reports.",
        )
    };
    Finding::new(
        mistake,
        case,
        format!("{what}. {advice} spec/PROTOCOL.md §2.3 lists the limits."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ImplementationInfo, PROTOCOL_VERSION};
    use serde_json::json;

    fn problems(v: Value) -> Vec<String> {
        message_problems(v.as_object().unwrap())
    }

    #[test]
    fn a_hello_without_implementation_says_so() {
        let p = problems(json!({"type": "hello", "protocol": 1, "capabilities": []}));
        assert_eq!(p, ["the hello lacks the required field `implementation`"]);
    }

    #[test]
    fn a_misspelt_field_gets_a_suggestion() {
        let p = problems(json!({"type": "hello", "protocol": 1, "capabilites": [],
            "implementation": {"name": "x", "version": "1", "language": "c"}}));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with(
                "the hello has the unknown field `capabilites` (did you mean `capabilities`?)"
            ),
            "{p:?}"
        );
    }

    #[test]
    fn implementation_fields_are_checked() {
        let p = problems(json!({"type": "hello", "protocol": "1",
            "implementation": {"name": "x", "lang": "c", "version": 3}}));
        assert!(
            p.contains(&"`protocol` must be an integer, not \"1\"".to_owned()),
            "{p:?}"
        );
        assert!(
            p.contains(&"`implementation` lacks the required field `language`".to_owned()),
            "{p:?}"
        );
        assert!(
            p.iter().any(|s| s.contains("unknown field `lang`")),
            "{p:?}"
        );
        assert!(
            p.contains(&"`implementation.version` must be a string, not 3".to_owned()),
            "{p:?}"
        );
    }

    #[test]
    fn a_done_with_an_extra_field_is_explained() {
        let p = problems(json!({"type": "done", "seq": 1, "ok": true}));
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("unknown field `ok`"), "{p:?}");
    }

    #[test]
    fn non_json_is_garbage() {
        let f = line_finding("Starting pool...", Some("BLK-001"), false);
        assert_eq!(f.mistake, Mistake::StdoutGarbage);
        assert!(f.explanation.contains("not JSON"), "{}", f.explanation);
    }

    /// A full sample of each driver message: every field set, so serde shows them all.
    fn samples() -> Vec<FromDriver> {
        vec![
            FromDriver::Hello {
                protocol: PROTOCOL_VERSION,
                implementation: full_info(),
                capabilities: vec!["apply".into()],
            },
            FromDriver::Done { seq: 1 },
            FromDriver::Error {
                seq: Some(1),
                message: "no pool".into(),
                traceback: Some("Traceback ...".into()),
            },
        ]
    }

    /// The `type` of each message. A new variant of [`FromDriver`] stops this from
    /// compiling: add it here, to [`samples`], and to [`MESSAGES`].
    fn tag(message: &FromDriver) -> &'static str {
        match message {
            FromDriver::Hello { .. } => "hello",
            FromDriver::Done { .. } => "done",
            FromDriver::Error { .. } => "error",
        }
    }

    fn full_info() -> ImplementationInfo {
        ImplementationInfo {
            name: "billiard".into(),
            version: "4.2.0".into(),
            language: "python".into(),
            start_method: Some("fork".into()),
            interpreter: Some("/usr/bin/python3".into()),
            pool_class: Some("Pool".into()),
            language_version: Some("3.12.1".into()),
            default_processes: Some(4),
        }
    }

    /// Checks one object against its row of the table: serde emits exactly the table's
    /// fields, refuses the object without a required field or with an
    /// unknown one, and accepts it without an optional one.
    fn check_row<T: serde::de::DeserializeOwned>(
        what: &str,
        object: &serde_json::Map<String, Value>,
        skip: &[&str],
        required: &[&str],
        optional: &[&str],
    ) {
        let mut emitted: Vec<&str> = object
            .keys()
            .map(String::as_str)
            .filter(|k| !skip.contains(k))
            .collect();
        let mut table: Vec<&str> = required.iter().chain(optional).copied().collect();
        emitted.sort_unstable();
        table.sort_unstable();
        assert_eq!(
            emitted, table,
            "{what}: the table's fields are not the type's"
        );
        let parses = |o: serde_json::Map<String, Value>| {
            serde_json::from_value::<T>(Value::Object(o)).is_ok()
        };
        assert!(
            parses(object.clone()),
            "{what}: the full sample does not parse"
        );
        for field in required {
            let mut o = object.clone();
            o.remove(*field);
            assert!(
                !parses(o),
                "{what}: `{field}` is in the table as required, but is not"
            );
        }
        for field in optional {
            let mut o = object.clone();
            o.remove(*field);
            assert!(
                parses(o),
                "{what}: `{field}` is in the table as optional, but is required"
            );
        }
        let mut o = object.clone();
        o.insert("surplus".into(), Value::Null);
        assert!(
            !parses(o),
            "{what}: unknown fields are accepted, the explanations say not"
        );
    }

    #[test]
    fn the_field_table_matches_the_protocol_types() {
        let samples = samples();
        let tags: Vec<&str> = samples.iter().map(tag).collect();
        let rows: Vec<&str> = MESSAGES.iter().map(|(t, _, _)| *t).collect();
        assert_eq!(
            tags, rows,
            "every driver message has a row, in declaration order"
        );
        for sample in &samples {
            let value = serde_json::to_value(sample).unwrap();
            let object = value.as_object().unwrap();
            assert_eq!(object["type"], tag(sample));
            let (_, required, optional) =
                MESSAGES.iter().find(|(t, _, _)| *t == tag(sample)).unwrap();
            check_row::<FromDriver>(tag(sample), object, &["type"], required, optional);
            // The value checks accept every value the types emit.
            assert_eq!(message_problems(object), Vec::<String>::new(), "{value}");
        }
        let info = serde_json::to_value(full_info()).unwrap();
        let (required, optional) = IMPLEMENTATION_FIELDS;
        check_row::<ImplementationInfo>(
            "implementation",
            info.as_object().unwrap(),
            &[],
            required,
            optional,
        );
    }
}
