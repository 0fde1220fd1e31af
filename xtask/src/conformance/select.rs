//! Which cases and implementations a run covers: the selection flags of `conformance` and
//! `bench`, and the loading of cases, drivers and expectation files they name.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Args;
use conformance::exec_names;
use conformance::expectations::ExpectationFile;
use conformance::implementations::{self, Implementation};
use conformance::spec::{LoadedCase, load_folders};

use crate::flags::CaseFilter;

#[derive(Args, Debug)]
pub struct Select {
    /// Also load the cases of this folder, beside spec/ (repeatable): your own cases, with
    /// their own ids and areas, `applies_to`, `oracle: snapshots` and extensions.
    #[arg(long, value_name = "DIR")]
    pub spec: Vec<PathBuf>,
    /// Run only the cases of the --spec folders, not the built-in spec/ (their ids need no
    /// entries in the built-in expectation files).
    #[arg(long, requires = "spec")]
    pub spec_only: bool,
    #[command(flatten)]
    pub cases: CaseFilter,
    /// Only cases of this area (repeatable).
    #[arg(long = "area")]
    pub areas: Vec<String>,
    /// Only this implementation (repeatable): a built-in one (cpython-fork, cpython-spawn,
    /// cpython-forkserver, cpython-threadpool, rust-ref; pypy-fork, ... when --python is a
    /// PyPy), `python:MODULE:ATTR` (any Pool-compatible class or factory, e.g.
    /// python:billiard.pool:Pool), or `exec:COMMAND ARGS` (any driver speaking
    /// spec/PROTOCOL.md).
    #[arg(long = "impl", value_name = "NAME")]
    pub impls: Vec<String>,
    /// The name of an `exec:` implementation, for its reports, expectation file and
    /// snapshots (repeatable: one per `exec:`, in order; default: the name its driver gives
    /// in its hello). Letters, digits, `.`, `_` and `-`.
    #[arg(long = "name", value_name = "NAME")]
    pub names: Vec<String>,
    /// The Python interpreter for the built-in Python drivers (default: $POOLSPEC_PYTHON,
    /// else python3 on PATH). A PyPy (`--python pypy3`) runs its standard-library Pool as
    /// pypy-fork, pypy-spawn, pypy-forkserver and pypy-threadpool.
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Also run the standard library's Pool under fork, spawn and forkserver on every CPython
    /// and PyPy implementing Python 3.8+ found on this machine (PATH and pyenv), as
    /// `cpython-<version>-<method>` and `pypy-<version>-<method>`.
    #[arg(long)]
    pub interpreters: bool,
    /// Run the interpreter matrix on exactly these interpreters instead (repeatable).
    #[arg(long = "interpreter", value_name = "PATH")]
    pub interpreter_paths: Vec<PathBuf>,
    /// The expectation file of the (single) selected implementation, instead of
    /// fixtures/expectations/<implementation>.yaml.
    #[arg(long, value_name = "FILE")]
    pub expectations: Option<PathBuf>,
}

/// How long an `exec:` driver may take to answer the hello that names it.
const HELLO_GUARD: std::time::Duration = std::time::Duration::from_secs(20);

/// Cases and implementations picked by the command line, with their expectation files.
pub struct Prepared {
    pub cases: Vec<LoadedCase>,
    pub impls: Vec<(Implementation, ExpectationFile)>,
    /// Spec files or cases that did not load (already printed).
    pub spec_errors: usize,
}

/// Loads what `select` names, printing every spec error.
pub fn prepare(root: &Path, select: &Select) -> Result<Prepared> {
    let builtin = root.join("spec");
    let builtin = (!select.spec_only).then_some(builtin.as_path());
    let suite = load_folders(builtin, &select.spec)?;
    if !select.spec.is_empty() {
        let folders: Vec<String> = select
            .spec
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        eprintln!(
            "poolspec: cases of {}{}",
            if select.spec_only { "" } else { "spec/, " },
            folders.join(", ")
        );
    }
    for e in &suite.errors {
        eprintln!("spec error: {e}");
    }
    let all_ids: Vec<&str> = suite.cases.iter().map(|c| c.id()).collect();
    let python = match &select.python {
        Some(p) => p.clone(),
        None => implementations::find_python()?,
    };
    let available = available(root, select, &python)?;
    // Names an exec: must not take: those it could be taken for in reports.
    let mut builtin: Vec<String> = available.iter().map(|i| i.name.clone()).collect();
    builtin.extend([implementations::ORACLE.to_owned(), "rust-ref".to_owned()]);
    let impls = implementations::select(available, &select.impls, root, &python)?;
    let impls =
        exec_names::name_selected(impls, &select.impls, &select.names, &builtin, &|command| {
            exec_names::hello_name(command, HELLO_GUARD)
        })?;
    if let Some(file) = &select.expectations {
        if impls.len() != 1 {
            bail!(
                "--expectations names the file of one implementation; select exactly one with --impl"
            );
        }
        if !file.is_file() {
            bail!("--expectations {}: no such file", file.display());
        }
    }
    let mut with_expectations = Vec::new();
    for imp in impls {
        let file = match (&select.expectations, select.spec_only) {
            (Some(path), _) => ExpectationFile::load(path, &imp.name, &all_ids)?,
            // Only own cases: the committed expectation files name the suite's cases.
            (None, true) => ExpectationFile {
                implementation: imp.name.clone(),
                ..ExpectationFile::default()
            },
            (None, false) => {
                ExpectationFile::load_for(&root.join("fixtures/expectations"), &imp.name, &all_ids)?
            }
        };
        with_expectations.push((imp, file));
    }
    let cases: Vec<LoadedCase> = suite
        .cases
        .into_iter()
        .filter(|c| select.cases.matches(c.id()))
        .filter(|c| select.areas.is_empty() || select.areas.iter().any(|a| a == c.area.as_str()))
        .collect();
    if cases.is_empty() && suite.errors.is_empty() {
        bail!("no case matches the selection");
    }
    Ok(Prepared {
        cases,
        impls: with_expectations,
        spec_errors: suite.errors.len(),
    })
}

/// The implementations `--impl` chooses from: the built-in ones (rust-ref built only when
/// it may be chosen), plus the interpreter matrix when asked for.
fn available(root: &Path, select: &Select, python: &Path) -> Result<Vec<Implementation>> {
    let wants_rust_ref = select.impls.is_empty() || select.impls.iter().any(|i| i == "rust-ref");
    let rust_ref = if wants_rust_ref {
        Some(implementations::build_rust_ref(root)?)
    } else {
        None
    };
    let mut all = implementations::builtin(root, python, rust_ref.as_deref());
    if select.interpreters || !select.interpreter_paths.is_empty() {
        let pythons = if select.interpreter_paths.is_empty() {
            implementations::discover_pythons()
        } else {
            let mut chosen = Vec::new();
            for p in &select.interpreter_paths {
                match implementations::probe_python(p) {
                    Some(i) => chosen.push(i),
                    None => bail!(
                        "{} is not a runnable CPython or PyPy implementing Python 3.8 or newer",
                        p.display()
                    ),
                }
            }
            chosen
        };
        eprintln!(
            "interpreter matrix: {}",
            pythons
                .iter()
                .map(|i| format!("{} at {}", i.describe(), i.path.display()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        all.extend(implementations::interpreter_matrix(root, &pythons));
    }
    Ok(all)
}
