//! Reading `spec/*.yaml`: parsing with locations, then semantic checks on each case.
//!
//! All YAML parsing of cases happens here. A file that fails to parse is reported with its
//! path, line and column and skipped; every other file is still loaded, so one typo never
//! hides the rest of the suite.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use super::model::{
    Case, Count, FORMAT_VERSION, GateRule, PoolParams, Probe, START_METHODS, SpecFile,
};
use super::program::{Program, ProgramError, compile};
use super::step::Step;
use super::task::{ERROR_TYPES, ErrorSpec, Scalar, TaskSpec};
use crate::versions::VersionError;

/// A case together with where it came from and its compiled program.
#[derive(Debug, Clone)]
pub struct LoadedCase {
    pub file: PathBuf,
    pub area: super::model::Area,
    pub case: Case,
    pub program: Program,
}

impl LoadedCase {
    pub fn id(&self) -> &str {
        &self.case.id
    }

    /// `contract` unless the case is tagged `quirk`.
    pub fn is_quirk(&self) -> bool {
        self.case.tags.iter().any(|t| t == "quirk")
    }
}

/// What serde cannot check in a case: required content, registered names, well-formed
/// tasks (the messages are pinned by `tests/spec_errors.rs` and the lint tests).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaseError {
    #[error("`id` is empty")]
    EmptyId,
    #[error("`claim` is empty")]
    EmptyClaim,
    #[error("`cite` needs at least one citation: every claim has evidence")]
    NoCitation,
    #[error("`tags` must contain exactly one of `contract` and `quirk`")]
    KindTag,
    #[error("`steps` is empty")]
    NoSteps,
    #[error("`pool.initargs` needs `pool.initializer`")]
    InitargsWithoutInitializer,
    #[error("`pool.uncallable_initializer` replaces `pool.initializer`; give one")]
    TwoInitializers,
    #[error("`pool.maxtasksperchild`: leave it out for unlimited; give a number or string")]
    MaxtasksperchildType,
    #[error("`pool.context`: unknown start method `{method}` (known: {})", START_METHODS.join(", "))]
    UnknownStartMethod { method: String },
    #[error("`versions.{language}`: {source}")]
    Versions {
        language: String,
        #[source]
        source: VersionError,
    },
    #[error("`expect` must be a map (a partial observation)")]
    ExpectNotAMap,
    #[error("gate `{gate}`: `when_waiting` must be at least 1")]
    EmptyBarrier { gate: String },
    #[error("an `order` probe needs at least two events")]
    ShortOrder,
    #[error("`args` is only for starmap, not {op}")]
    ArgsNotStarmap { op: &'static str },
    #[error("starmap `args` must have one entry per task")]
    StarmapArgs,
    #[error("unknown exception type `{kind}` (registered: {})", ERROR_TYPES.join(", "))]
    UnknownErrorType { kind: String },
    #[error("`apply` takes no callbacks")]
    ApplyCallbacks,
    #[error("`unserializable_item` is for the map family; apply takes `unserializable_arg`")]
    UnserializableItemInApply,
    #[error("`kwargs`: `{name}` is not an identifier")]
    NotAnIdentifier { name: String },
    #[error(
        "task {task}: give at most one of returns, echo, echo_all, echo_initargs, blob, \
         inherited, raises, exit, unserializable"
    )]
    Endings { task: String },
}

/// What kind of problem a [`SpecError`] is, with its cause: a caller can tell a file it
/// could not read from one that does not parse, and both from a case that is wrong.
#[derive(Debug, thiserror::Error)]
pub enum SpecErrorKind {
    /// The spec directory or a file could not be read.
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The YAML does not parse as a spec file (the error's location is in [`SpecError`]).
    #[error("{0}")]
    Parse(#[source] serde_yaml::Error),
    /// A case format this runner does not read.
    #[error("case format {found} is not supported (this runner reads format {FORMAT_VERSION})")]
    Format { found: u32 },
    /// Two cases share an id.
    #[error("duplicate case id: ids are permanent and unique across spec/")]
    DuplicateId,
    /// A case that parsed but is not valid.
    #[error(transparent)]
    Case(#[from] CaseError),
    /// A case whose ids do not refer to each other properly.
    #[error(transparent)]
    Program(#[from] ProgramError),
}

/// A problem with one spec file or case. Parse errors carry a line and column.
#[derive(Debug)]
pub struct SpecError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub case: Option<String>,
    /// The problem in words, as shown after the location.
    pub message: String,
    /// The problem by kind, with its cause.
    pub kind: SpecErrorKind,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, ":{l}:{c}")?;
        }
        if let Some(case) = &self.case {
            write!(f, ": case {case}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for SpecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

impl SpecError {
    /// An error of `file` (and `case`) without a location: the message is the kind's.
    fn new(file: &Path, case: Option<&str>, kind: impl Into<SpecErrorKind>) -> SpecError {
        let kind = kind.into();
        SpecError {
            file: file.to_path_buf(),
            line: None,
            column: None,
            case: case.map(str::to_owned),
            message: kind.to_string(),
            kind,
        }
    }
}

/// Everything `spec/` holds: the cases that loaded and the errors of those that did not.
#[derive(Debug, Default)]
pub struct Suite {
    pub cases: Vec<LoadedCase>,
    pub errors: Vec<SpecError>,
}

/// Loads every `*.yaml` file directly in `dir` except `claims.yaml`, `tags.yaml` and
/// `coverage.yaml`, in file name order.
pub fn load_dir(dir: &Path) -> Suite {
    let mut suite = Suite::default();
    let mut files = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .filter(|p| {
                !matches!(
                    p.file_name().and_then(|n| n.to_str()),
                    Some("claims.yaml" | "tags.yaml" | "coverage.yaml")
                )
            })
            .collect::<Vec<_>>(),
        Err(e) => {
            suite.errors.push(SpecError::new(
                dir,
                None,
                SpecErrorKind::Io {
                    what: "cannot read the spec directory",
                    source: e,
                },
            ));
            return suite;
        }
    };
    files.sort();
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => load_str(&file, &text, &mut suite),
            Err(e) => suite.errors.push(SpecError::new(
                &file,
                None,
                SpecErrorKind::Io {
                    what: "cannot read",
                    source: e,
                },
            )),
        }
    }
    let mut seen = HashSet::new();
    let mut dups = Vec::new();
    suite.cases.retain(|c| {
        if seen.insert(c.case.id.clone()) {
            true
        } else {
            dups.push(SpecError::new(
                &c.file,
                Some(&c.case.id),
                SpecErrorKind::DuplicateId,
            ));
            false
        }
    });
    suite.errors.extend(dups);
    suite
}

/// Parses one file's text, adding its cases or its errors to `suite`.
pub fn load_str(file: &Path, text: &str, suite: &mut Suite) {
    let parsed: Result<SpecFile, serde_yaml::Error> =
        serde_yaml::with::singleton_map_recursive::deserialize(serde_yaml::Deserializer::from_str(
            text,
        ));
    let spec = match parsed {
        Ok(spec) => spec,
        Err(e) => {
            let loc = e.location();
            let mut message = e.to_string();
            // The location leads the rendered error already; don't repeat it at the end.
            if let Some(l) = &loc {
                let suffix = format!(" at line {} column {}", l.line(), l.column());
                if let Some(stripped) = message.strip_suffix(&suffix) {
                    message = stripped.to_owned();
                }
            }
            suite.errors.push(SpecError {
                file: file.to_path_buf(),
                line: loc.as_ref().map(|l| l.line()),
                column: loc.as_ref().map(|l| l.column()),
                case: None,
                message,
                kind: SpecErrorKind::Parse(e),
            });
            return;
        }
    };
    if spec.format != FORMAT_VERSION {
        suite.errors.push(SpecError::new(
            file,
            None,
            SpecErrorKind::Format { found: spec.format },
        ));
        return;
    }
    for case in spec.cases {
        let compiled = check_case(&case)
            .map_err(SpecErrorKind::from)
            .and_then(|()| compile(&case).map_err(SpecErrorKind::from));
        match compiled {
            Ok(program) => suite.cases.push(LoadedCase {
                file: file.to_path_buf(),
                area: spec.area,
                case,
                program,
            }),
            Err(kind) => suite
                .errors
                .push(SpecError::new(file, Some(&case.id), kind)),
        }
    }
}

/// Checks what serde cannot: required content, registered names, and well-formed tasks.
/// References between ids are checked by [`compile`].
fn check_case(case: &Case) -> Result<(), CaseError> {
    if case.id.trim().is_empty() {
        return Err(CaseError::EmptyId);
    }
    if case.claim.trim().is_empty() {
        return Err(CaseError::EmptyClaim);
    }
    if case.cite.is_empty() {
        return Err(CaseError::NoCitation);
    }
    let kinds = case
        .tags
        .iter()
        .filter(|t| *t == "contract" || *t == "quirk")
        .count();
    if kinds != 1 {
        return Err(CaseError::KindTag);
    }
    if case.steps.is_empty() {
        return Err(CaseError::NoSteps);
    }
    check_pool(&case.pool)?;
    for (language, range) in &case.versions {
        crate::versions::Range::parse(range).map_err(|source| CaseError::Versions {
            language: language.clone(),
            source,
        })?;
    }
    if !case.expect.is_object() {
        return Err(CaseError::ExpectNotAMap);
    }
    for (name, rule) in &case.gates {
        if let GateRule::WhenWaiting(Count::N(0)) = rule {
            return Err(CaseError::EmptyBarrier { gate: name.clone() });
        }
    }
    for probe in &case.observe {
        if let Probe::Order { events, .. } = probe
            && events.len() < 2
        {
            return Err(CaseError::ShortOrder);
        }
    }
    let mut tasks: Vec<&TaskSpec> = Vec::new();
    for step in &case.steps {
        match step {
            Step::Apply(s) | Step::ApplyAsync(s) => tasks.push(&s.task),
            Step::Map(m)
            | Step::MapAsync(m)
            | Step::Imap(m)
            | Step::ImapUnordered(m)
            | Step::Starmap(m)
            | Step::StarmapAsync(m) => {
                let star = matches!(step, Step::Starmap(_) | Step::StarmapAsync(_));
                if !star && !m.args.is_empty() {
                    return Err(CaseError::ArgsNotStarmap { op: step.op() });
                }
                if star && !m.args.is_empty() && m.args.len() != m.tasks.len() {
                    return Err(CaseError::StarmapArgs);
                }
                if let Some(err) = &m.then_raise {
                    check_error_type(err)?;
                }
                tasks.extend(m.tasks.iter());
            }
            _ => {}
        }
        if let Step::Apply(s) = step
            && (s.callback.is_some() || s.error_callback.is_some())
        {
            return Err(CaseError::ApplyCallbacks);
        }
        if let Step::Apply(s) | Step::ApplyAsync(s) = step {
            if let TaskSpec::Full(t) = &s.task
                && t.unserializable_item
            {
                return Err(CaseError::UnserializableItemInApply);
            }
            for name in s.kwargs.keys() {
                let ident = name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_alphanumeric() || c == '_');
                if !ident {
                    return Err(CaseError::NotAnIdentifier { name: name.clone() });
                }
            }
        }
    }
    let initializer = case.pool.initializer.clone().map(TaskSpec::Full);
    for spec in tasks.into_iter().chain(initializer.as_ref()) {
        let TaskSpec::Full(task) = spec else { continue };
        if task.endings() > 1 {
            return Err(CaseError::Endings {
                task: task.id.clone().unwrap_or_else(|| "(unnamed)".to_owned()),
            });
        }
        if let Some(err) = &task.raises {
            check_error_type(err)?;
        }
    }
    Ok(())
}

/// The construction parameters a case may pass. Values a pool must refuse are allowed (their
/// refusal is the observation); combinations that mean nothing are not.
fn check_pool(pool: &PoolParams) -> Result<(), CaseError> {
    if !pool.initargs.is_empty() && pool.initializer.is_none() {
        return Err(CaseError::InitargsWithoutInitializer);
    }
    if pool.uncallable_initializer && pool.initializer.is_some() {
        return Err(CaseError::TwoInitializers);
    }
    if let Some(Scalar::Null | Scalar::Bool(_)) = &pool.maxtasksperchild {
        return Err(CaseError::MaxtasksperchildType);
    }
    if let Some(m) = &pool.context
        && !START_METHODS.contains(&m.as_str())
    {
        return Err(CaseError::UnknownStartMethod { method: m.clone() });
    }
    Ok(())
}

fn check_error_type(err: &ErrorSpec) -> Result<(), CaseError> {
    if ERROR_TYPES.contains(&err.kind.as_str()) {
        Ok(())
    } else {
        Err(CaseError::UnknownErrorType {
            kind: err.kind.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Suite {
        let mut suite = Suite::default();
        load_str(Path::new("spec/x.yaml"), text, &mut suite);
        suite
    }

    const GOOD: &str = "format: 1
area: blocking
cases:
  - id: T-1
    claim: apply returns the task's value.
    cite: [{doc: 'library/multiprocessing.html#multiprocessing.pool.Pool.apply'}]
    tags: [contract]
    steps:
      - apply: {task: 5}
    expect: {steps: {s1: {returned: 5}}}
";

    #[test]
    fn a_good_case_loads() {
        let suite = load(GOOD);
        assert!(suite.errors.is_empty(), "{:?}", suite.errors);
        assert_eq!(suite.cases.len(), 1);
    }

    #[test]
    fn a_typo_names_file_line_and_column() {
        let suite = load(&GOOD.replace("apply: {task: 5}", "apply: {tsak: 5}"));
        let err = &suite.errors[0];
        assert_eq!((err.line, err.column), (Some(9), Some(17)), "{err}");
        assert!(err.to_string().starts_with("spec/x.yaml:9:17: "), "{err}");
        assert!(err.message.contains("unknown field `tsak`"), "{err}");
    }

    #[test]
    fn an_unknown_operation_is_an_error() {
        let suite = load(&GOOD.replace("- apply:", "- aply:"));
        assert!(suite.errors[0].message.contains("unknown variant `aply`"));
    }

    #[test]
    fn a_case_without_citation_is_rejected() {
        let suite = load(&GOOD.replace(
            "cite: [{doc: 'library/multiprocessing.html#multiprocessing.pool.Pool.apply'}]",
            "cite: []",
        ));
        assert_eq!(suite.errors[0].case.as_deref(), Some("T-1"));
        assert!(suite.errors[0].message.contains("citation"));
    }

    #[test]
    fn an_unregistered_exception_type_is_rejected() {
        let suite = load(&GOOD.replace(
            "{task: 5}",
            "{task: {raises: {type: OopsError, message: x}}}",
        ));
        assert!(suite.errors[0].message.contains("OopsError"));
    }

    #[test]
    fn a_wrong_format_version_is_rejected() {
        let suite = load(&GOOD.replace("format: 1", "format: 9"));
        assert!(suite.errors[0].message.contains("format 9"));
    }

    #[test]
    fn only_open_and_await_may_follow_drop() {
        let dropped = GOOD.replace(
            "      - apply: {task: 5}\n",
            "      - apply: {task: 5}\n      - drop: {}\n      - await: {event: s1.return}\n",
        );
        assert!(
            load(&dropped).errors.is_empty(),
            "{:?}",
            load(&dropped).errors
        );
        let suite = load(&dropped.replace("- await: {event: s1.return}", "- close: {}"));
        assert!(
            suite.errors[0]
                .message
                .contains("only `open` and `await` steps may follow `drop`"),
            "{:?}",
            suite.errors
        );
    }

    #[test]
    fn values_a_pool_must_refuse_are_valid_case_input() {
        for pool in [
            "{processes: 0}",
            "{processes: -1}",
            "{processes: default}",
            "{maxtasksperchild: 0.5}",
            "{maxtasksperchild: \"12\"}",
            "{uncallable_initializer: true}",
        ] {
            let text = GOOD.replace("    steps:", &format!("    pool: {pool}\n    steps:"));
            let suite = load(&text);
            assert!(suite.errors.is_empty(), "{pool}: {:?}", suite.errors);
        }
    }

    #[test]
    fn a_task_gives_at_most_one_ending() {
        let suite = load(&GOOD.replace("{task: 5}", "{task: {inherited: true, echo_all: true}}"));
        assert!(
            suite.errors[0].message.contains("at most one of"),
            "{:?}",
            suite.errors
        );
    }
}
