//! Finding and identifying the Python interpreters on this machine: the one the CPython
//! drivers run on, a PyPy for the PyPy column, and every CPython and PyPy for the interpreter
//! matrix. Kept apart from `implementations.rs`, which turns them into drivers to run.

use std::path::{Path, PathBuf};

/// Environment variable naming the Python interpreter for the CPython drivers.
pub const PYTHON_ENV: &str = "POOLSPEC_PYTHON";

/// Finds the Python interpreter: `$POOLSPEC_PYTHON` if set, else `python3` on `PATH`.
pub fn find_python() -> Result<PathBuf, NoPython> {
    if let Some(p) = std::env::var_os(PYTHON_ENV) {
        let p = PathBuf::from(p);
        return which::which(&p).map_err(|source| NoPython::NotExecutable { path: p, source });
    }
    which::which("python3").map_err(NoPython::NotOnPath)
}

/// Why [`find_python`] found no interpreter: the one `$POOLSPEC_PYTHON` names is not an
/// executable, or nothing is chosen and there is no `python3` (the cause is `which`'s).
#[derive(Debug, thiserror::Error)]
pub enum NoPython {
    #[error("{PYTHON_ENV}={} is not an executable", path.display())]
    NotExecutable {
        path: PathBuf,
        #[source]
        source: which::Error,
    },
    #[error("no `python3` on PATH (set POOLSPEC_PYTHON to choose one)")]
    NotOnPath(#[source] which::Error),
}

/// Environment variable naming the PyPy for the PyPy tests and COMPLIANCE.md's PyPy column
/// (default: `pypy3` on `PATH`).
pub const PYPY_ENV: &str = "POOLSPEC_PYPY";

/// Finds a PyPy: `chosen`, else `$POOLSPEC_PYPY`, else `pypy3` on `PATH`. `Err` says in one
/// line why there is none (no `pypy3`, or it is not a PyPy implementing Python 3.8+): callers
/// that run PyPy only when it is there print it and skip.
pub fn find_pypy(chosen: Option<&Path>) -> Result<Interpreter, NoPypy> {
    let path = match chosen
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(PYPY_ENV).map(PathBuf::from))
    {
        Some(p) => which::which(&p).map_err(|_| NoPypy::NotExecutable { path: p })?,
        None => which::which("pypy3").map_err(|_| NoPypy::NotOnPath)?,
    };
    match identify(&path) {
        Some(i) if i.runtime == Runtime::PyPy && supported(&i) => Ok(i),
        Some(i) => Err(NoPypy::NotPypy {
            path,
            is: i.describe(),
        }),
        None => Err(NoPypy::DoesNotRun { path }),
    }
}

/// Why [`find_pypy`] found no PyPy to run, in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoPypy {
    /// The chosen path (argument or `$POOLSPEC_PYPY`) is not an executable.
    #[error("{} is not an executable", path.display())]
    NotExecutable { path: PathBuf },
    /// Nothing chosen, and no `pypy3` on `PATH`.
    #[error("no `pypy3` on PATH (Debian: `apt-get install pypy3`)")]
    NotOnPath,
    /// The interpreter found is another Python, or a PyPy older than Python 3.8.
    #[error("{} is {is}, not a PyPy implementing Python 3.8 or newer", path.display())]
    NotPypy { path: PathBuf, is: String },
    /// The interpreter found does not answer when asked what it is.
    #[error("{} does not run", path.display())]
    DoesNotRun { path: PathBuf },
}

/// The Python runtimes the built-in implementations run on: the same standard-library
/// `multiprocessing` on two independent interpreters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Runtime {
    CPython,
    PyPy,
}

impl Runtime {
    /// Every runtime, in report order.
    pub const ALL: [Runtime; 2] = [Runtime::CPython, Runtime::PyPy];

    /// The prefix of the built-ins' names on this runtime: `cpython-fork`, `pypy-fork`.
    pub fn prefix(self) -> &'static str {
        match self {
            Runtime::CPython => "cpython",
            Runtime::PyPy => "pypy",
        }
    }

    /// As `platform.python_implementation()` spells it.
    pub fn label(self) -> &'static str {
        match self {
            Runtime::CPython => "CPython",
            Runtime::PyPy => "PyPy",
        }
    }

    fn from_label(label: &str) -> Option<Runtime> {
        Runtime::ALL.into_iter().find(|r| r.label() == label)
    }
}

/// A Python interpreter found on this machine: a CPython or a PyPy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    pub path: PathBuf,
    pub runtime: Runtime,
    /// The Python language version, `major.minor.micro`: what a case's `versions` are about
    /// (for PyPy the language it implements, `3.9.16`, not PyPy's own version).
    pub version: String,
    /// The runtime's own version where it has one apart from the language's (PyPy: `7.3.11`).
    pub runtime_version: Option<String>,
}

impl Interpreter {
    /// `major.minor` of the language version.
    pub fn short_version(&self) -> &str {
        match self.version.match_indices('.').nth(1) {
            Some((i, _)) => &self.version[..i],
            None => &self.version,
        }
    }

    /// `CPython 3.11.7`, or `PyPy 7.3.11 (Python 3.9.16)`.
    pub fn describe(&self) -> String {
        match &self.runtime_version {
            Some(own) => format!("{} {own} (Python {})", self.runtime.label(), self.version),
            None => format!("{} {}", self.runtime.label(), self.version),
        }
    }

    /// The interpreter matrix's name for the standard-library Pool under `method` on this
    /// interpreter: `cpython-3.11-fork`, `pypy-3.9-spawn`.
    pub fn matrix_name(&self, method: &str) -> String {
        format!(
            "{}-{}-{method}",
            self.runtime.prefix(),
            self.short_version()
        )
    }
}

/// What the interpreter prints about itself: `platform.python_implementation()`, the language
/// version and, on PyPy, PyPy's own version (else `-`); then, on a line of its own, the
/// binary that runs (`sys.executable`: through a pyenv shim, the interpreter behind it).
const PROBE: &str = "import sys, platform\n\
    v = getattr(sys, 'pypy_version_info', None)\n\
    print(platform.python_implementation(), '%d.%d.%d' % sys.version_info[:3], \
    '%d.%d.%d' % tuple(v[:3]) if v else '-')\n\
    print(sys.executable)";

/// Asks `path` what it is: CPython or PyPy, which language version. `None` when it does not
/// run or is another implementation (any version; see [`probe_python`] for the supported
/// ones).
pub fn identify(path: &Path) -> Option<Interpreter> {
    parse_probe(path, &run_probe(path)?)
}

/// What `path` prints when it runs [`PROBE`].
fn run_probe(path: &Path) -> Option<String> {
    let out = std::process::Command::new(path)
        .args(["-c", PROBE])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    String::from_utf8(out.stdout).ok()
}

/// The binary behind `path` as the probe's second line names it (`sys.executable`), when it
/// is a file: a pyenv shim is a shell script that costs a few hundred milliseconds at every
/// start, paid by every driver of the interpreter matrix otherwise.
fn executable_behind(path: &Path, text: &str) -> PathBuf {
    text.lines()
        .nth(1)
        .map(|l| PathBuf::from(l.trim()))
        .filter(|p| p.is_absolute() && p.is_file())
        .unwrap_or_else(|| path.to_path_buf())
}

/// Parses [`PROBE`]'s first line (`CPython 3.11.7 -`, `PyPy 3.9.16 7.3.11`).
fn parse_probe(path: &Path, text: &str) -> Option<Interpreter> {
    let mut words = text.lines().next()?.split_whitespace();
    let runtime = Runtime::from_label(words.next()?)?;
    let version = words.next()?;
    version_key(version).get(1)?;
    let own = words.next().filter(|w| *w != "-");
    Some(Interpreter {
        path: path.to_path_buf(),
        runtime,
        version: version.to_owned(),
        runtime_version: own.map(str::to_owned),
    })
}

/// Whether the interpreter matrix and `--python` support `interp`: Python 3.8 or newer.
pub fn supported(interp: &Interpreter) -> bool {
    let v = version_key(&interp.version);
    v.first() == Some(&3) && v.get(1).is_some_and(|minor| *minor >= 8)
}

/// Asks `path` for its version; `None` unless it is a CPython or PyPy implementing Python
/// 3.8 or newer that runs.
pub fn probe_python(path: &Path) -> Option<Interpreter> {
    identify(path).filter(supported)
}

/// Every CPython and PyPy implementing Python 3.8+ on this machine: `python3.8` …
/// `python3.14`, `pypy3` and `pypy3.8` … `pypy3.11` on `PATH`, and pyenv's versions
/// (`$PYENV_ROOT`, else `~/.pyenv`; each version's `bin/python3` or `bin/pypy3`). One per
/// runtime and language version; CPythons first, each runtime sorted by version. Each is
/// named by the binary that runs (behind a pyenv shim, the version's own), all probed at once.
pub fn discover_pythons() -> Vec<Interpreter> {
    let pyenv = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")));
    discover_in(std::env::var_os("PATH"), pyenv.as_deref())
}

/// [`discover_pythons`] on a given `PATH` and pyenv root.
pub fn discover_in(path: Option<std::ffi::OsString>, pyenv: Option<&Path>) -> Vec<Interpreter> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let names = (8..=14)
        .map(|minor| format!("python3.{minor}"))
        .chain(std::iter::once("pypy3".to_owned()))
        .chain((8..=11).map(|minor| format!("pypy3.{minor}")));
    let mut candidates: Vec<PathBuf> = names
        .filter_map(|name| which::which_in(name, path.as_ref(), &cwd).ok())
        .collect();
    if let Some(root) = pyenv
        && let Ok(entries) = std::fs::read_dir(root.join("versions"))
    {
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                ["bin/python3", "bin/pypy3"]
                    .iter()
                    .map(|bin| e.path().join(bin))
                    .find(|p| p.exists())
            })
            .collect();
        found.sort();
        candidates.extend(found);
    }
    // Probed side by side: a candidate that is a pyenv shim of a version not selected still
    // takes its few hundred milliseconds to say so.
    let probed: Vec<Option<Interpreter>> = std::thread::scope(|s| {
        let probes: Vec<_> = candidates
            .iter()
            .map(|path| s.spawn(move || probe_behind(path)))
            .collect();
        probes
            .into_iter()
            .map(|p| p.join().ok().flatten())
            .collect()
    });
    let mut seen = std::collections::BTreeMap::new();
    for interp in probed.into_iter().flatten() {
        seen.entry((interp.runtime, version_key(&interp.version)))
            .or_insert(interp);
    }
    seen.into_values().collect()
}

/// [`probe_python`], naming the binary behind `path` (see [`executable_behind`]).
fn probe_behind(path: &Path) -> Option<Interpreter> {
    identify_behind(path).filter(supported)
}

/// [`identify`], naming the binary behind `path` (see [`executable_behind`]): what to start
/// drivers with.
pub fn identify_behind(path: &Path) -> Option<Interpreter> {
    let text = run_probe(path)?;
    let mut interp = parse_probe(path, &text)?;
    interp.path = executable_behind(path, &text);
    Some(interp)
}

fn version_key(version: &str) -> Vec<u32> {
    version.split('.').filter_map(|p| p.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A fake interpreter: a shell script that answers the probe with `answer`.
    fn fake(dir: &Path, name: &str, answer: &str) -> PathBuf {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, format!("#!/bin/sh\necho '{answer}'\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn probes_name_the_runtime_and_the_language_version() {
        let p = Path::new("/x/pypy3");
        let pypy = parse_probe(p, "PyPy 3.9.16 7.3.11\n").unwrap();
        assert_eq!(pypy.runtime, Runtime::PyPy);
        assert_eq!(pypy.version, "3.9.16");
        assert_eq!(pypy.short_version(), "3.9");
        assert_eq!(pypy.runtime_version.as_deref(), Some("7.3.11"));
        assert_eq!(pypy.describe(), "PyPy 7.3.11 (Python 3.9.16)");
        assert_eq!(pypy.matrix_name("spawn"), "pypy-3.9-spawn");
        let cpython = parse_probe(p, "CPython 3.11.7 -\n").unwrap();
        assert_eq!(cpython.runtime, Runtime::CPython);
        assert_eq!(cpython.runtime_version, None);
        assert_eq!(cpython.describe(), "CPython 3.11.7");
        assert_eq!(cpython.matrix_name("fork"), "cpython-3.11-fork");
        assert!(supported(&cpython) && supported(&pypy));
        assert!(!supported(&parse_probe(p, "CPython 3.7.16 -").unwrap()));
        assert!(!supported(&parse_probe(p, "PyPy 2.7.18 7.3.11").unwrap()));
        assert_eq!(parse_probe(p, "IronPython 3.4.0 -"), None);
        assert_eq!(parse_probe(p, "garbage"), None);
        assert_eq!(parse_probe(p, ""), None);
    }

    #[test]
    fn discovery_finds_cpythons_and_pypys_on_path_and_in_pyenv() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        fake(&bin, "python3.11", "CPython 3.11.7 -");
        // A shim: the interpreter behind it is what the matrix runs.
        let real = fake(dir.path(), "real/python3.12", "CPython 3.12.1 -");
        let shim = format!("CPython 3.12.1 -\n{}", real.display());
        fake(&bin, "python3.12", &shim);
        fake(&bin, "pypy3", "PyPy 3.9.16 7.3.11");
        // Same runtime and version as PATH's pypy3: found once.
        fake(&bin, "pypy3.9", "PyPy 3.9.16 7.3.11");
        // Too old, and not an interpreter at all: skipped.
        fake(&bin, "python3.8", "CPython 3.7.1 -");
        fake(&bin, "python3.9", "something else");
        let pyenv = dir.path().join("pyenv");
        fake(&pyenv, "versions/3.10.13/bin/python3", "CPython 3.10.13 -");
        fake(
            &pyenv,
            "versions/pypy3.10-7.3.17/bin/pypy3",
            "PyPy 3.10.14 7.3.17",
        );
        let found = discover_in(Some(bin.into_os_string()), Some(&pyenv));
        let described: Vec<String> = found.iter().map(Interpreter::describe).collect();
        assert_eq!(
            described,
            [
                "CPython 3.10.13",
                "CPython 3.11.7",
                "CPython 3.12.1",
                "PyPy 7.3.11 (Python 3.9.16)",
                "PyPy 7.3.17 (Python 3.10.14)"
            ]
        );
        assert!(found[3].path.ends_with("bin/pypy3"), "{:?}", found[3].path);
        assert_eq!(found[2].path, real);
        assert!(discover_in(Some("/nonexistent".into()), None).is_empty());
    }
}
