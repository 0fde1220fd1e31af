//! The implementations the runner knows how to start: the built-ins, the interpreter
//! matrix, and those named on the command line.

use std::path::{Path, PathBuf};

use crate::driver::DriverCommand;
// Re-exported so that callers keep finding interpreters where they find implementations.
pub use crate::interpreters::{
    Interpreter, NoPypy, NoPython, PYPY_ENV, PYTHON_ENV, Runtime, discover_in, discover_pythons,
    find_pypy, find_python, identify, identify_behind, probe_python, supported,
};

/// The implementation whose observations are the oracle.
pub const ORACLE: &str = "cpython-fork";

/// One implementation under test: a name and how to start its driver.
#[derive(Debug, Clone)]
pub struct Implementation {
    /// Short stable name, used in reports, snapshot folders and expectation file names.
    pub name: String,
    pub command: DriverCommand,
}

/// Why [`build_rust_ref`] has no driver to offer (cargo has printed why on stderr).
pub use crate::cargo_build::BuildError;

/// Builds the `rust-ref` driver (`pool-ref-driver`, debug profile) in the checkout `root`
/// with the cargo that is running us (or `cargo` on `PATH`) and returns the binary's path
/// (see `cargo_build.rs`).
pub fn build_rust_ref(root: &Path) -> Result<PathBuf, BuildError> {
    crate::cargo_build::build_bin(root, "pool-ref", "pool-ref-driver")
}

/// The interpreter flags of the built-in drivers of the standard library's pools.
/// `-u`: unbuffered. `-S`: the standard library's Pool needs no site-packages, and spawn and
/// forkserver workers inherit the flag (`_args_from_interpreter_flags`), so no worker pays for
/// `site` and the `.pth` files it runs (22 of a process's 28 ms start-up on a machine whose
/// site-packages holds a `.pth` importing certifi). Not `-I`: it would drop `PYTHONPATH`,
/// which the fork server's preload needs. `python:` implementations keep `site`, since a
/// third-party pool lives in site-packages.
pub const STDLIB_FLAGS: [&str; 2] = ["-u", "-S"];

/// The built-in implementations, in report order: CPython's four (`cpython-fork`,
/// `cpython-spawn`, `cpython-forkserver`, `cpython-threadpool`), then `rust-ref` when its
/// driver binary is given. Under a PyPy `python` the same four are named `pypy-fork`, ...
/// (the interpreter is asked which it is; one that does not answer counts as CPython).
pub fn builtin(root: &Path, python: &Path, rust_ref: Option<&Path>) -> Vec<Implementation> {
    // The binary behind a pyenv shim, so that no driver start pays for the shim's script.
    match identify_behind(python) {
        Some(interp) => builtin_on(root, &interp.path, interp.runtime, rust_ref),
        None => builtin_on(root, python, Runtime::CPython, rust_ref),
    }
}

/// [`builtin`] for an interpreter whose runtime is already known.
pub fn builtin_on(
    root: &Path,
    python: &Path,
    runtime: Runtime,
    rust_ref: Option<&Path>,
) -> Vec<Implementation> {
    let driver = root.join("fixtures/drivers/cpython_driver.py");
    let stdlib = |kind: &str, method: &str, class: &str| Implementation {
        name: format!("{}-{kind}", runtime.prefix()),
        command: DriverCommand {
            program: python.display().to_string(),
            args: STDLIB_FLAGS
                .iter()
                .map(|f| f.to_string())
                .chain([
                    driver.display().to_string(),
                    "--start-method".into(),
                    method.into(),
                    "--pool-class".into(),
                    class.into(),
                ])
                .collect(),
            env: vec![("PYTHONDONTWRITEBYTECODE".into(), "1".into())],
        },
    };
    let mut all = vec![
        stdlib("fork", "fork", "Pool"),
        stdlib("spawn", "spawn", "Pool"),
        stdlib("forkserver", "forkserver", "Pool"),
        stdlib("threadpool", "fork", "ThreadPool"),
    ];
    if let Some(driver) = rust_ref {
        all.push(Implementation {
            name: "rust-ref".to_owned(),
            command: DriverCommand {
                program: driver.display().to_string(),
                args: Vec::new(),
                env: Vec::new(),
            },
        });
    }
    all
}

/// Picks implementations from the command line (see [`parse_spec`]); an empty selection
/// means all of `all`.
pub fn select(
    all: Vec<Implementation>,
    specs: &[String],
    root: &Path,
    python: &Path,
) -> Result<Vec<Implementation>, SelectError> {
    if specs.is_empty() {
        return Ok(all);
    }
    specs
        .iter()
        .map(|spec| parse_spec(spec, root, python, &all))
        .collect()
}

/// The interpreter matrix: the standard library's `Pool` under each start method, for each
/// interpreter, named `<runtime>-<major.minor>-<method>` (`cpython-3.11-fork`,
/// `pypy-3.9-spawn`; see [`Interpreter::matrix_name`]).
pub fn interpreter_matrix(root: &Path, pythons: &[Interpreter]) -> Vec<Implementation> {
    let mut out = Vec::new();
    for interp in pythons {
        let prefix = format!("{}-", interp.runtime.prefix());
        for imp in builtin_on(root, &interp.path, interp.runtime, None) {
            let Some(method) = imp.name.strip_prefix(&prefix) else {
                continue;
            };
            if method == "threadpool" {
                continue;
            }
            out.push(Implementation {
                name: interp.matrix_name(method),
                command: imp.command,
            });
        }
    }
    out
}

/// The built-in an interpreter-matrix implementation runs, by name: `pypy-3.9-fork` →
/// `pypy-fork`. `None` for any other name.
pub fn matrix_builtin(name: &str) -> Option<String> {
    let runtime = Runtime::ALL
        .into_iter()
        .find(|r| name.starts_with(&format!("{}-", r.prefix())))?;
    let rest = &name[runtime.prefix().len() + 1..];
    let (version, method) = rest.split_once('-')?;
    let numeric = version.split('.').count() == 2
        && version
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    (numeric && ["fork", "spawn", "forkserver"].contains(&method))
        .then(|| format!("{}-{method}", runtime.prefix()))
}

/// Parses an implementation named on the command line:
///
/// - a built-in name (`cpython-fork`, `rust-ref`, ...), looked up in `builtin`; under a PyPy
///   interpreter `cpython-<kind>` names its `pypy-<kind>`;
/// - `python:MODULE:ATTR`: any Pool-compatible class or factory, called like
///   `multiprocessing.Pool(processes, initializer, initargs, maxtasksperchild)`, importable by
///   `python` (e.g. `python:billiard.pool:Pool`), driven by the CPython driver;
/// - `exec:COMMAND ARGS`: any executable speaking `spec/PROTOCOL.md` (split on whitespace;
///   quote nothing).
pub fn parse_spec(
    spec: &str,
    root: &Path,
    python: &Path,
    builtin: &[Implementation],
) -> Result<Implementation, SelectError> {
    if let Some(target) = spec.strip_prefix("python:") {
        let Some((module, attr)) = target
            .rsplit_once(':')
            .filter(|(module, attr)| !module.is_empty() && !attr.is_empty())
        else {
            return Err(SelectError::BadPython { spec: spec.into() });
        };
        let driver = root.join("fixtures/drivers/cpython_driver.py");
        return Ok(Implementation {
            name: format!("python:{module}:{attr}"),
            command: DriverCommand {
                program: python.display().to_string(),
                args: vec![
                    "-u".into(),
                    driver.display().to_string(),
                    "--factory".into(),
                    format!("{module}:{attr}"),
                ],
                env: vec![("PYTHONDONTWRITEBYTECODE".into(), "1".into())],
            },
        });
    }
    if let Some(command) = spec.strip_prefix("exec:") {
        let mut words = command.split_whitespace().map(str::to_owned);
        let Some(program) = words.next() else {
            return Err(SelectError::BadExec { spec: spec.into() });
        };
        return Ok(Implementation {
            name: spec.to_owned(),
            command: DriverCommand {
                program,
                args: words.collect(),
                env: Vec::new(),
            },
        });
    }
    if let Some(found) = builtin.iter().find(|i| i.name == spec) {
        return Ok(found.clone());
    }
    // `cpython-fork` under a PyPy `--python` is that interpreter's `pypy-fork`, so that
    // commands written for CPython run unchanged on PyPy (the reports say `pypy-fork`).
    if let Some(kind) = spec.strip_prefix("cpython-")
        && let Some(found) = builtin
            .iter()
            .find(|i| i.name == format!("{}-{kind}", Runtime::PyPy.prefix()))
    {
        return Ok(found.clone());
    }
    let known = builtin
        .iter()
        .map(|i| i.name.clone())
        // rust-ref is only in the list when it was asked for (it gets built).
        .chain(
            builtin
                .iter()
                .all(|i| i.name != "rust-ref")
                .then(|| "rust-ref".to_owned()),
        )
        .collect();
    let pypy_needs_python =
        spec.starts_with("pypy-") && builtin.iter().all(|i| !i.name.starts_with("pypy-"));
    Err(SelectError::Unknown {
        spec: spec.into(),
        known,
        pypy_needs_python,
    })
}

/// Why an implementation named on the command line (see [`parse_spec`]) names none.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// `python:` without both a module and an attribute.
    #[error("`{spec}`: expected python:MODULE:ATTR, e.g. python:billiard.pool:Pool")]
    BadPython { spec: String },
    /// `exec:` without a command.
    #[error("`{spec}`: expected exec:COMMAND [ARGS...]")]
    BadExec { spec: String },
    /// No built-in of that name; `known` lists those there are. `pypy_needs_python`: it
    /// names a `pypy-*` built-in, which exist only under a PyPy `--python`.
    #[error(
        "unknown implementation `{spec}` (known: {}; or python:MODULE:ATTR, exec:COMMAND){}",
        known.join(", "),
        if *pypy_needs_python { PYPY_HINT } else { "" }
    )]
    Unknown {
        spec: String,
        known: Vec<String>,
        pypy_needs_python: bool,
    },
}

const PYPY_HINT: &str = "; the pypy-* built-ins run when --python (or POOLSPEC_PYTHON) names a \
                         PyPy, e.g. --python pypy3";

/// Whose expectation file an implementation uses, in order of preference (the first that
/// exists wins): its own; for an interpreter-matrix implementation the built-in it runs
/// (`pypy-3.9-fork` → `pypy-fork`, see [`matrix_builtin`]); for a built-in on another runtime
/// than CPython the same built-in on CPython (`pypy-threadpool` → `cpython-threadpool`), since
/// what the standard library's pool does differently is the same on every runtime unless
/// that runtime's own file says more.
pub fn expectation_names(name: &str) -> Vec<String> {
    let mut names = vec![name.to_owned()];
    let builtin = matrix_builtin(name).unwrap_or_else(|| name.to_owned());
    if builtin != name {
        names.push(builtin.clone());
    }
    if let Some(kind) = builtin.strip_prefix(&format!("{}-", Runtime::PyPy.prefix())) {
        names.push(format!("{}-{kind}", Runtime::CPython.prefix()));
    }
    names
}

/// The file name stem for an implementation's expectations and snapshots: its name with
/// every character outside `[A-Za-z0-9._-]` replaced by `_`.
pub fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interpreter(path: &str, runtime: Runtime, version: &str, own: Option<&str>) -> Interpreter {
        Interpreter {
            path: path.into(),
            runtime,
            version: version.into(),
            runtime_version: own.map(str::to_owned),
        }
    }
    #[test]
    fn the_builtins_are_named_after_their_runtime() {
        let root = Path::new("/repo");
        let names = |runtime| -> Vec<String> {
            builtin_on(root, Path::new("/usr/bin/pypy3"), runtime, None)
                .into_iter()
                .map(|i| i.name)
                .collect()
        };
        assert_eq!(
            names(Runtime::CPython),
            [
                "cpython-fork",
                "cpython-spawn",
                "cpython-forkserver",
                "cpython-threadpool"
            ]
        );
        assert_eq!(
            names(Runtime::PyPy),
            [
                "pypy-fork",
                "pypy-spawn",
                "pypy-forkserver",
                "pypy-threadpool"
            ]
        );
        // Commands written for CPython select PyPy's built-ins under PyPy.
        let pypy = builtin_on(root, Path::new("/usr/bin/pypy3"), Runtime::PyPy, None);
        let python = Path::new("/usr/bin/pypy3");
        let imp = parse_spec("cpython-spawn", root, python, &pypy).unwrap();
        assert_eq!(imp.name, "pypy-spawn");
        assert!(imp.command.args.contains(&"spawn".to_owned()));
        // The reverse is not silently CPython.
        let cpython = builtin_on(root, Path::new("/usr/bin/python3"), Runtime::CPython, None);
        let err = parse_spec("pypy-fork", root, python, &cpython).unwrap_err();
        assert!(err.to_string().contains("--python pypy3"), "{err}");
    }

    #[test]
    fn a_bad_name_says_which_kind_of_mistake_it_is() {
        let (root, python) = (Path::new("/repo"), Path::new("/usr/bin/python3"));
        let cpython = builtin_on(root, python, Runtime::CPython, None);
        let err = |spec: &str| parse_spec(spec, root, python, &cpython).unwrap_err();
        assert_eq!(
            err("python:billiard"),
            SelectError::BadPython {
                spec: "python:billiard".into()
            }
        );
        assert_eq!(
            err("python::Pool").to_string(),
            "`python::Pool`: expected python:MODULE:ATTR, e.g. python:billiard.pool:Pool"
        );
        assert_eq!(
            err("exec: ").to_string(),
            "`exec: `: expected exec:COMMAND [ARGS...]"
        );
        assert_eq!(
            err("cpython-forc").to_string(),
            "unknown implementation `cpython-forc` (known: cpython-fork, cpython-spawn, \
             cpython-forkserver, cpython-threadpool, rust-ref; or python:MODULE:ATTR, exec:COMMAND)"
        );
    }

    #[test]
    fn the_interpreter_matrix_names_runtime_version_and_method() {
        let interps = [
            interpreter("/py/python3.11", Runtime::CPython, "3.11.7", None),
            interpreter("/py/pypy3", Runtime::PyPy, "3.9.16", Some("7.3.11")),
        ];
        let matrix = interpreter_matrix(Path::new("/repo"), &interps);
        let names: Vec<&str> = matrix.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "cpython-3.11-fork",
                "cpython-3.11-spawn",
                "cpython-3.11-forkserver",
                "pypy-3.9-fork",
                "pypy-3.9-spawn",
                "pypy-3.9-forkserver"
            ]
        );
        assert_eq!(matrix[3].command.program, "/py/pypy3");
        assert_eq!(
            matrix_builtin("pypy-3.9-fork").as_deref(),
            Some("pypy-fork")
        );
        assert_eq!(
            matrix_builtin("cpython-3.13-forkserver").as_deref(),
            Some("cpython-forkserver")
        );
        for other in [
            "pypy-fork",
            "cpython-threadpool",
            "pypy-3.9-threadpool",
            "rust-ref",
        ] {
            assert_eq!(matrix_builtin(other), None, "{other}");
        }
        assert_eq!(
            expectation_names("pypy-3.9-fork"),
            ["pypy-3.9-fork", "pypy-fork", "cpython-fork"]
        );
        assert_eq!(
            expectation_names("pypy-threadpool"),
            ["pypy-threadpool", "cpython-threadpool"]
        );
        assert_eq!(
            expectation_names("cpython-3.8-spawn"),
            ["cpython-3.8-spawn", "cpython-spawn"]
        );
        assert_eq!(expectation_names("rust-ref"), ["rust-ref"]);
        assert_eq!(
            expectation_names("python:billiard.pool:Pool"),
            ["python:billiard.pool:Pool"]
        );
    }
}
