//! Reading `spec/*.yaml`: parsing with locations, then semantic checks on each case.
//!
//! All YAML parsing of cases happens here. Every problem is reported with its file, line and
//! column, a parse error where the parser stopped, a semantic one at the key or value it is
//! about (found by [`locate`]). A file that fails to parse is skipped and a case that fails a
//! check is left out; every other file and case still loads, so one typo never hides the
//! rest of the suite.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::check::{CaseError, check_case};
use super::expected::{ExpectError, check_expect};
use super::liveness::{LivenessError, check_liveness};
use super::locate::{YamlPath, locate};
use super::model::{Case, FORMAT_VERSION, SpecFile};
use super::own::{OwnError, check_own};
use super::program::{Located, Program, ProgramError, compile_located};
use super::suggest::explain_parse_error;

/// A spec file larger than this is refused unread: the largest real one is a few tens of
/// KiB, and the loader keeps a file whole in memory (a few times over while parsing).
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// Which spec folder a case came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// The built-in suite, `spec/`.
    BuiltIn,
    /// A folder added with `--spec DIR`, as given on the command line.
    Added(PathBuf),
}

impl Source {
    /// `spec/`, or the added folder as given.
    pub fn describe(&self) -> String {
        match self {
            Source::BuiltIn => "spec/".to_owned(),
            Source::Added(dir) => dir.display().to_string(),
        }
    }

    pub fn is_builtin(&self) -> bool {
        *self == Source::BuiltIn
    }
}

/// A case together with where it came from and its compiled program.
#[derive(Debug, Clone)]
pub struct LoadedCase {
    pub file: PathBuf,
    /// The spec folder of `file`.
    pub source: Source,
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
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("the file has {size} bytes; a spec file may have at most {MAX_FILE_BYTES}")]
    TooLarge { size: u64 },
    /// The file is not UTF-8 (the position is the first byte that is not).
    #[error("not UTF-8: {0}")]
    NotUtf8(#[source] std::str::Utf8Error),
    /// The file holds no YAML document at all.
    #[error("the file is empty: a spec file starts with `format: {FORMAT_VERSION}`")]
    Empty,
    /// The YAML does not parse as a spec file (the error's location is in [`SpecError`]).
    #[error("{0}")]
    Parse(#[source] serde_yaml::Error),
    /// A case format this runner does not read.
    #[error("case format {found} is not supported (this runner reads format {FORMAT_VERSION})")]
    Format { found: u32 },
    /// Two cases share an id.
    #[error("duplicate case id: ids are permanent and unique across spec/")]
    DuplicateId,
    /// A case of one spec folder has the id of a case of another.
    #[error(
        "case id collides with a case of {first}: ids are unique across spec/ and every \
         added folder (--spec), so give this case an id of its own"
    )]
    IdCollision { first: String },
    /// The built-in `spec/` names an area that is not one of its own.
    #[error(
        "unknown area `{area}` (the built-in areas: {}); only an added folder (--spec) names its own",
        super::area::BUILTIN_AREAS.map(super::area::Area::as_str).join(", ")
    )]
    OwnArea { area: String },
    /// A malformed extension or `applies_to`.
    #[error(transparent)]
    Own(#[from] OwnError),
    /// A case that parsed but is not valid.
    #[error(transparent)]
    Case(#[from] CaseError),
    /// A case whose ids do not refer to each other properly.
    #[error(transparent)]
    Program(#[from] ProgramError),
    /// A case whose `expect` names what the case does not have.
    #[error(transparent)]
    Expect(#[from] ExpectError),
    /// A case with a gate that can never open or an `await` that can never return.
    #[error(transparent)]
    Liveness(#[from] LivenessError),
}

/// A problem with one spec file or case, with its position whenever the file could be read.
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

    /// The same error at a position.
    fn at(mut self, position: Option<(usize, usize)>) -> SpecError {
        if let Some((line, column)) = position {
            self.line = Some(line);
            self.column = Some(column);
        }
        self
    }

    /// `file:line:col`, or the file alone.
    fn place(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", self.file.display()),
            _ => self.file.display().to_string(),
        }
    }
}

/// Everything `spec/` holds: the cases that loaded and the errors of those that did not.
#[derive(Debug, Default)]
pub struct Suite {
    pub cases: Vec<LoadedCase>,
    pub errors: Vec<SpecError>,
    /// Where each loaded case's id is written (`file:line:col`) and in which folder, to say
    /// where a duplicate's first use is.
    id_places: HashMap<String, (String, Source)>,
}

/// Loads every `*.yaml` file directly in `dir` except `claims.yaml`, `tags.yaml` and
/// `coverage.yaml`, in file name order.
pub fn load_dir(dir: &Path) -> Suite {
    let mut suite = Suite::default();
    load_dir_into(dir, &Source::BuiltIn, &mut suite);
    suite
}

/// [`load_dir`] into `suite`, the cases being of `source`.
pub fn load_dir_into(dir: &Path, source: &Source, suite: &mut Suite) {
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
            return;
        }
    };
    files.sort();
    for file in files {
        match read_file(&file) {
            Ok(text) => load_str_in(&file, &text, source, suite),
            Err(e) => suite.errors.push(*e),
        }
    }
}

/// Reads one spec file: at most [`MAX_FILE_BYTES`], and UTF-8.
fn read_file(file: &Path) -> Result<String, Box<SpecError>> {
    let io = |source| {
        Box::new(SpecError::new(
            file,
            None,
            SpecErrorKind::Io {
                what: "cannot read",
                source,
            },
        ))
    };
    let size = std::fs::metadata(file).map_err(io)?.len();
    if size > MAX_FILE_BYTES {
        let err = SpecError::new(file, None, SpecErrorKind::TooLarge { size });
        return Err(Box::new(err.at(Some((1, 1)))));
    }
    let bytes = std::fs::read(file).map_err(io)?;
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let valid = e.utf8_error().valid_up_to();
        let before = String::from_utf8_lossy(&bytes[..valid]);
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        let err = SpecError::new(file, None, SpecErrorKind::NotUtf8(e.utf8_error()));
        Box::new(err.at(Some((line, column))))
    })
}

/// Parses one file's text of the built-in suite, adding its cases or its errors to `suite`.
pub fn load_str(file: &Path, text: &str, suite: &mut Suite) {
    load_str_in(file, text, &Source::BuiltIn, suite);
}

/// [`load_str`] for a file of `source`.
pub fn load_str_in(file: &Path, text: &str, source: &Source, suite: &mut Suite) {
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        suite
            .errors
            .push(SpecError::new(file, None, SpecErrorKind::Empty).at(Some((1, 1))));
        return;
    }
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
            // A key written twice: say where its first use is.
            if let Some(first) = first_use(text, &message) {
                message = format!("{message} (first used at {}:{first})", file.display());
            }
            suite.errors.push(SpecError {
                file: file.to_path_buf(),
                // Errors the parser cannot place (the end of the input) are the file's.
                line: Some(loc.as_ref().map_or(1, |l| l.line())),
                column: Some(loc.as_ref().map_or(1, |l| l.column())),
                case: None,
                message: explain_parse_error(&message),
                kind: SpecErrorKind::Parse(e),
            });
            return;
        }
    };
    let root = YamlPath::default();
    if spec.format != FORMAT_VERSION {
        let at = locate(text, &root.key("format"));
        suite
            .errors
            .push(SpecError::new(file, None, SpecErrorKind::Format { found: spec.format }).at(at));
        return;
    }
    if source.is_builtin() && !spec.area.is_builtin() {
        let area = spec.area.as_str().to_owned();
        let at = locate(text, &root.key("area"));
        suite
            .errors
            .push(SpecError::new(file, None, SpecErrorKind::OwnArea { area }).at(at));
        return;
    }
    for (index, case) in spec.cases.into_iter().enumerate() {
        let case_at = root.key("cases").index(index);
        let place = |path: &YamlPath| locate(text, &path.under(&case_at));
        let error = |kind: SpecErrorKind, at: &YamlPath| {
            SpecError::new(file, Some(&case.id), kind).at(place(at))
        };
        match check(&case) {
            Ok(program) => {
                let id_at = SpecError::new(file, None, SpecErrorKind::DuplicateId)
                    .at(place(&root.key("id")));
                if let Some((first, first_source)) = suite.id_places.get(&case.id) {
                    let kind = if first_source == source {
                        SpecErrorKind::DuplicateId
                    } else {
                        SpecErrorKind::IdCollision {
                            first: first_source.describe(),
                        }
                    };
                    let mut dup = error(kind, &root.key("id"));
                    dup.message = format!("{} (first used at {first})", dup.message);
                    suite.errors.push(dup);
                    continue;
                }
                suite
                    .id_places
                    .insert(case.id.clone(), (id_at.place(), source.clone()));
                suite.cases.push(LoadedCase {
                    file: file.to_path_buf(),
                    source: source.clone(),
                    area: spec.area,
                    case,
                    program,
                });
            }
            Err(located) => {
                let Located {
                    error: kind,
                    at,
                    first,
                } = *located;
                let mut err = error(kind, &at);
                if let Some(first) = first {
                    let first =
                        SpecError::new(file, None, SpecErrorKind::DuplicateId).at(place(&first));
                    err.message = format!("{} (first used at {})", err.message, first.place());
                }
                suite.errors.push(err);
            }
        }
    }
}

/// For serde's "duplicate field `k`" (a struct's key) or our "duplicate key `k`" (a map of
/// names) at `path`, the `line:col` of the key's first use.
fn first_use(text: &str, message: &str) -> Option<String> {
    let (path, rest) = message.split_once(": ")?;
    let key = ["duplicate field `", "duplicate key `"]
        .iter()
        .find_map(|w| rest.strip_prefix(w))?
        .split('`')
        .next()?;
    let (line, column) = locate(text, &YamlPath::parse(path).the_key(key))?;
    Some(format!("{line}:{column}"))
}

/// Every check of one case, in order: content, references between ids, `expect`, and gates
/// that can open.
fn check(case: &Case) -> Result<Program, Box<Located<SpecErrorKind>>> {
    fn kind<E: Into<SpecErrorKind>>(e: Located<E>) -> Box<Located<SpecErrorKind>> {
        let Located { error, at, first } = e;
        Box::new(Located {
            error: error.into(),
            at,
            first,
        })
    }
    check_case(case).map_err(|e| kind(*e))?;
    check_own(case).map_err(|e| kind(*e))?;
    let program = compile_located(case).map_err(|e| kind(*e))?;
    check_expect(case, &program).map_err(|e| kind(*e))?;
    check_liveness(&program).map_err(|e| kind(*e))?;
    Ok(program)
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
