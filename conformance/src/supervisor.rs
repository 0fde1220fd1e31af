//! The runner's side of `poolspec-supervisor`, the process every driver runs under.
//!
//! Killing a driver's process group cannot reach what left it (a `setsid` grandchild, a
//! double-forked daemon, a child in a group of its own). So each driver runs under a small
//! supervisor (`src/bin/poolspec-supervisor.rs`) that makes itself a child subreaper: whatever
//! detaches from the driver is re-parented to it, and at the end of the session it kills the
//! driver's group and then every descendant it still has. This module owns what both sides
//! share: the supervisor's command line, the report file it writes for the runner (one
//! record a line), finding its children in `/proc`, and locating its binary.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A prebuilt supervisor binary to use instead of building it with cargo (for a runner used
/// outside this workspace).
pub const SUPERVISOR_ENV: &str = "POOLSPEC_SUPERVISOR";

/// The binary's name (a `[[bin]]` of this crate).
pub const SUPERVISOR_BIN: &str = "poolspec-supervisor";

/// One line of the report file, written by the supervisor as things happen, so that a
/// supervisor killed half-way still leaves what it knew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The driver started with this pid, leading its own process group.
    Driver { pid: i32 },
    /// The driver could not be started; the text says why (`cannot start ...`).
    SpawnError { message: String },
    /// A process outside the driver's group that had to be killed at the session's end.
    Killed { pid: i32, pgid: i32 },
    /// Cleanup finished: the supervisor has no child left.
    Done,
}

impl Record {
    /// The record as one line, newline included.
    pub fn line(&self) -> String {
        match self {
            Record::Driver { pid } => format!("driver {pid}\n"),
            Record::SpawnError { message } => {
                format!("spawn-error {}\n", message.replace('\n', " "))
            }
            Record::Killed { pid, pgid } => format!("killed {pid} {pgid}\n"),
            Record::Done => "done\n".to_owned(),
        }
    }

    /// Parses one line; `None` for anything else (a line cut short by a kill).
    pub fn parse(line: &str) -> Option<Record> {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let mut numbers = rest.split(' ').map(|n| n.parse::<i32>().ok());
        match word {
            "driver" => Some(Record::Driver {
                pid: numbers.next()??,
            }),
            "spawn-error" => Some(Record::SpawnError {
                message: rest.to_owned(),
            }),
            "killed" => Some(Record::Killed {
                pid: numbers.next()??,
                pgid: numbers.next()??,
            }),
            "done" => Some(Record::Done),
            _ => None,
        }
    }

    /// Appends the record to the report file (one `write` call per line).
    pub fn append(&self, file: &mut std::fs::File) -> std::io::Result<()> {
        file.write_all(self.line().as_bytes())
    }
}

/// What a supervisor reported, read back by the runner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub driver: Option<i32>,
    pub spawn_error: Option<String>,
    /// Processes killed outside the driver's group, with their groups.
    pub killed: Vec<(i32, i32)>,
    pub done: bool,
}

impl Report {
    pub fn parse(text: &str) -> Report {
        let mut report = Report::default();
        for record in text.lines().filter_map(Record::parse) {
            match record {
                Record::Driver { pid } => report.driver = Some(pid),
                Record::SpawnError { message } => report.spawn_error = Some(message),
                Record::Killed { pid, pgid } => {
                    if !report.killed.iter().any(|(p, _)| *p == pid) {
                        report.killed.push((pid, pgid));
                    }
                }
                Record::Done => report.done = true,
            }
        }
        report
    }

    /// The process groups the supervisor knew of: the driver's and those of the processes it
    /// killed outside it (the runner's last resort when the supervisor itself hangs).
    pub fn groups(&self) -> Vec<i32> {
        let mut groups: Vec<i32> = self.driver.into_iter().collect();
        for (_, pgid) in &self.killed {
            if !groups.contains(pgid) {
                groups.push(*pgid);
            }
        }
        groups.retain(|g| *g > 1);
        groups
    }
}

/// The note a cell's reason gets when its driver left processes outside its group.
pub fn left_behind_note(count: usize) -> Option<String> {
    match count {
        0 => None,
        1 => Some("left 1 process outside its group; killed".to_owned()),
        n => Some(format!("left {n} processes outside its group; killed")),
    }
}

/// The report file of one supervised driver: created by the runner, written by the
/// supervisor, deleted with this value.
#[derive(Debug)]
pub struct ReportFile {
    path: tempfile::TempPath,
}

impl ReportFile {
    pub fn new() -> Result<ReportFile, SupervisorError> {
        let file = tempfile::Builder::new()
            .prefix("poolspec-supervisor-")
            .tempfile()
            .map_err(SupervisorError::ReportFile)?;
        Ok(ReportFile {
            path: file.into_temp_path(),
        })
    }

    /// The supervisor's arguments that run `program args` under it, reporting to this file.
    pub fn command(&self, program: &str, args: &[String]) -> Vec<OsString> {
        let mut all: Vec<OsString> = vec![
            "--report".into(),
            self.path.as_os_str().to_owned(),
            "--parent".into(),
            std::process::id().to_string().into(),
            "--".into(),
            program.into(),
        ];
        all.extend(args.iter().map(OsString::from));
        all
    }

    /// What the supervisor has written so far.
    pub fn read(&self) -> Report {
        Report::parse(&std::fs::read_to_string(&self.path).unwrap_or_default())
    }
}

/// Why no driver can be supervised.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("creating the supervisor's report file")]
    ReportFile(#[source] std::io::Error),
    /// No checkout to build the supervisor in (and no `$POOLSPEC_SUPERVISOR`).
    #[error(transparent)]
    Checkout(#[from] crate::checkout::CheckoutError),
    #[error(transparent)]
    Build(#[from] crate::cargo_build::BuildError),
}

/// The supervisor binary: `$POOLSPEC_SUPERVISOR`, or built with cargo in the checkout found
/// at run time (`checkout.rs`), once per process (a no-op build when it is up to date), as
/// the `rust-ref` driver is.
pub fn binary() -> Result<&'static Path, &'static SupervisorError> {
    static BINARY: OnceLock<Result<PathBuf, SupervisorError>> = OnceLock::new();
    BINARY
        .get_or_init(|| match std::env::var_os(SUPERVISOR_ENV) {
            Some(path) => Ok(PathBuf::from(path)),
            None => build(),
        })
        .as_deref()
}

fn build() -> Result<PathBuf, SupervisorError> {
    let root = crate::checkout::find()?;
    Ok(crate::cargo_build::build_bin(
        &root,
        "conformance",
        SUPERVISOR_BIN,
    )?)
}

/// A child of some process, as `/proc` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Child {
    pub pid: i32,
    pub pgid: i32,
    /// Already dead, waiting to be reaped: nothing to kill.
    pub zombie: bool,
}

/// The children of process `parent`, found through `/proc` by parent pid (never by name).
/// A process that vanishes while being read is skipped.
pub fn children_of(parent: i32) -> std::io::Result<Vec<Child>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // After the parenthesised command name: state ppid pgrp ...
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let (Some(state), Some(ppid), Some(pgid)) = (
            fields.first(),
            fields.get(1).and_then(|p| p.parse::<i32>().ok()),
            fields.get(2).and_then(|p| p.parse::<i32>().ok()),
        ) else {
            continue;
        };
        if ppid == parent {
            found.push(Child {
                pid,
                pgid,
                zombie: *state == "Z" || *state == "X",
            });
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_a_cut_line_is_skipped() {
        let records = [
            Record::Driver { pid: 12 },
            Record::Killed { pid: 40, pgid: 40 },
            Record::Killed { pid: 41, pgid: 40 },
            Record::Killed { pid: 40, pgid: 40 },
            Record::Done,
        ];
        let mut text: String = records.iter().map(Record::line).collect();
        text.push_str("kil");
        let report = Report::parse(&text);
        assert_eq!(report.driver, Some(12));
        assert_eq!(report.killed, [(40, 40), (41, 40)]);
        assert!(report.done);
        assert_eq!(report.groups(), [12, 40]);
        let error = Record::SpawnError {
            message: "cannot start `x`: No such file or directory (os error 2)".into(),
        };
        assert_eq!(Record::parse(error.line().trim_end()), Some(error));
    }

    #[test]
    fn the_note_counts_in_words() {
        assert_eq!(left_behind_note(0), None);
        assert_eq!(
            left_behind_note(1).as_deref(),
            Some("left 1 process outside its group; killed")
        );
        assert_eq!(
            left_behind_note(3).as_deref(),
            Some("left 3 processes outside its group; killed")
        );
    }

    #[test]
    fn this_process_is_a_child_of_its_parent() {
        let me = std::process::id() as i32;
        let parent = nix::unistd::getppid().as_raw();
        let children = children_of(parent).expect("reading /proc");
        assert!(children.iter().any(|c| c.pid == me), "{children:?}");
    }
}
