//! Names of `exec:` implementations, so that their expectation files and snapshot folders
//! are the same wherever the driver lives: `--name NAME` (one per `exec:`, in order), else
//! the `name` the driver gives in its hello, asked once by starting it before the run (the
//! probe's session is not kept: the run starts its own drivers). A name must be usable as a
//! file name, and no two implementations of a run may share one.

use std::time::Duration;

use crate::driver::{DriverCommand, DriverSession};
use crate::implementations::Implementation;

/// Why the implementations of a run cannot be named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// A name that cannot be a file or folder name; `from` says where it came from.
    #[error(
        "`{spec}` is named `{name}` by {from}, which cannot name its expectation file and \
         snapshot folder: {why}{}",
        if from == "--name" { "" } else {
            "; name it with --name NAME (or change the name in the driver's hello)"
        }
    )]
    Unsafe {
        spec: String,
        name: String,
        from: String,
        why: &'static str,
    },
    /// `--name` given another number of times than there are `exec:` implementations.
    #[error(
        "--name names the exec: implementations in order, one each: given {names} time{} for \
         {execs} exec: implementation{}",
        if *names == 1 { "" } else { "s" },
        if *execs == 1 { "" } else { "s" }
    )]
    Count { names: usize, execs: usize },
    /// Two implementations of the run with one name.
    #[error(
        "two implementations are named `{name}`: `{first}` and `{second}` (their reports, \
         expectation files and snapshots would mix); give one another name with --name"
    )]
    Duplicate {
        name: String,
        first: String,
        second: String,
    },
    /// An `exec:` named like a built-in (reports would take it for that one, or the oracle).
    #[error("`{spec}` is named `{name}`, the name of a built-in implementation; choose another")]
    Builtin { spec: String, name: String },
}

/// Whether `name` can be a file name on every system a report travels to; the reason if not.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > 100 {
        return Err("it is longer than 100 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err("use only letters, digits, `.`, `_` and `-`");
    }
    if name.starts_with(['.', '-']) {
        return Err("it must not start with `.` or `-`");
    }
    Ok(())
}

/// The name a driver gives in its hello: it is started, shakes hands and is stopped. `None`
/// when it does not get that far (the run then reports why, once).
pub fn hello_name(command: &DriverCommand, guard: Duration) -> Option<String> {
    let session = DriverSession::start(command, guard).ok()?;
    let name = session.info.name.clone();
    session.stop();
    Some(name)
}

/// Names the `exec:` implementations of `selected` (picked by `specs`, in order; all the
/// built-ins when `specs` is empty) and checks every name of the run. `probe` asks a
/// driver's hello ([`hello_name`]); a driver whose probe fails keeps its command line as
/// its name. `builtin` are the names an `exec:` must not take.
pub fn name_selected(
    selected: Vec<Implementation>,
    specs: &[String],
    names: &[String],
    builtin: &[String],
    probe: &dyn Fn(&DriverCommand) -> Option<String>,
) -> Result<Vec<Implementation>, NameError> {
    let spec_of = |i: usize, imp: &Implementation| specs.get(i).unwrap_or(&imp.name).clone();
    let execs = specs.iter().filter(|s| s.starts_with("exec:")).count();
    if !names.is_empty() && names.len() != execs {
        return Err(NameError::Count {
            names: names.len(),
            execs,
        });
    }
    let mut given = names.iter();
    let mut named = Vec::with_capacity(selected.len());
    for (i, mut imp) in selected.into_iter().enumerate() {
        let spec = spec_of(i, &imp);
        if spec.starts_with("exec:") {
            let (name, from) = match given.next() {
                Some(name) => (Some(name.clone()), "--name".to_owned()),
                None => (probe(&imp.command), "the driver's hello".to_owned()),
            };
            if let Some(name) = name {
                check_name(&name).map_err(|why| NameError::Unsafe {
                    spec: spec.clone(),
                    name: name.clone(),
                    from,
                    why,
                })?;
                if builtin.contains(&name) {
                    return Err(NameError::Builtin { spec, name });
                }
                imp.name = name;
            }
        }
        named.push((spec, imp));
    }
    for (i, (spec, imp)) in named.iter().enumerate() {
        if let Some((first, _)) = named[..i].iter().find(|(_, o)| o.name == imp.name) {
            return Err(NameError::Duplicate {
                name: imp.name.clone(),
                first: first.clone(),
                second: spec.clone(),
            });
        }
    }
    Ok(named.into_iter().map(|(_, imp)| imp).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(spec: &str) -> Implementation {
        Implementation {
            name: spec.to_owned(),
            command: DriverCommand {
                program: spec.trim_start_matches("exec:").to_owned(),
                args: Vec::new(),
                env: Vec::new(),
            },
        }
    }

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    /// A probe answering with the program's file name, `None` for `./broken`.
    fn probe(cmd: &DriverCommand) -> Option<String> {
        (cmd.program != "./broken").then(|| cmd.program.trim_start_matches("./").to_owned())
    }

    fn name(specs: &[&str], names: &[&str]) -> Result<Vec<String>, NameError> {
        let specs = strings(specs);
        let selected = specs.iter().map(|s| exec(s)).collect();
        let builtin = strings(&["cpython-fork", "rust-ref"]);
        name_selected(selected, &specs, &strings(names), &builtin, &probe)
            .map(|v| v.into_iter().map(|i| i.name).collect())
    }

    #[test]
    fn names_come_from_the_flag_in_order_else_from_the_hello() {
        assert_eq!(
            name(&["exec:./a", "cpython-fork", "exec:./b"], &["one", "two"]).unwrap(),
            ["one", "cpython-fork", "two"]
        );
        assert_eq!(
            name(&["exec:./mypool", "cpython-fork"], &[]).unwrap(),
            ["mypool", "cpython-fork"]
        );
        // A driver whose handshake fails keeps its command line; the run says why.
        assert_eq!(name(&["exec:./broken"], &[]).unwrap(), ["exec:./broken"]);
    }

    #[test]
    fn each_naming_mistake_is_its_own_error() {
        assert_eq!(
            name(&["exec:./a", "exec:./b"], &["one"])
                .unwrap_err()
                .to_string(),
            "--name names the exec: implementations in order, one each: given 1 time for 2 \
             exec: implementations"
        );
        assert_eq!(
            name(&["cpython-fork"], &["x"]).unwrap_err(),
            NameError::Count { names: 1, execs: 0 }
        );
        assert_eq!(
            name(&["exec:./a", "exec:./b"], &["same", "same"])
                .unwrap_err()
                .to_string(),
            "two implementations are named `same`: `exec:./a` and `exec:./b` (their reports, \
             expectation files and snapshots would mix); give one another name with --name"
        );
        assert_eq!(
            name(&["exec:./mypool", "exec:./other/../mypool"], &[]).unwrap_err(),
            NameError::Unsafe {
                spec: "exec:./other/../mypool".into(),
                name: "other/../mypool".into(),
                from: "the driver's hello".into(),
                why: "use only letters, digits, `.`, `_` and `-`",
            }
        );
        assert_eq!(
            name(&["exec:./pool:Pool"], &[]).unwrap_err().to_string(),
            "`exec:./pool:Pool` is named `pool:Pool` by the driver's hello, which cannot name \
             its expectation file and snapshot folder: use only letters, digits, `.`, `_` and \
             `-`; name it with --name NAME (or change the name in the driver's hello)"
        );
        assert_eq!(
            name(&["exec:./a"], &[".."]).unwrap_err().to_string(),
            "`exec:./a` is named `..` by --name, which cannot name its expectation file and \
             snapshot folder: it must not start with `.` or `-`"
        );
        assert_eq!(
            name(&["exec:./a"], &["rust-ref"]).unwrap_err().to_string(),
            "`exec:./a` is named `rust-ref`, the name of a built-in implementation; choose another"
        );
        assert_eq!(
            name(&["exec:./cpython-fork"], &[]).unwrap_err(),
            NameError::Builtin {
                spec: "exec:./cpython-fork".into(),
                name: "cpython-fork".into()
            }
        );
    }

    #[test]
    fn safe_names() {
        for ok in ["mypool", "billiard-4.2", "my_pool.v2", "A1"] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "a/b",
            "a:b",
            ".hidden",
            "-x",
            "é",
            &"x".repeat(101),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
