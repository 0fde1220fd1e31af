//! The smoke check's explanations, pinned: every text a driver author can read, produced by
//! each check from made-up faults, lines and histories.

use std::time::Duration;

use super::handshake::handshake_finding;
use super::run::run_fault_finding;
use super::*;
use crate::coordinator::{History, Origin};
use crate::driver::DriverFault;
use crate::protocol::ReportKind;

/// Pins every explanation the smoke check can give (the text a driver author reads), so
/// that reshaping the module cannot change a word of it.
#[test]
fn explanations_are_pinned() {
    use crate::coordinator::Event;
    use crate::driver::DriverCommand;
    use crate::protocol::Outcome;

    let imp = Implementation {
        name: "my driver".to_owned(),
        command: DriverCommand {
            program: "./my-driver".to_owned(),
            args: vec!["--flag".to_owned()],
            env: Vec::new(),
        },
    };
    let guard = Duration::from_secs(20);
    let stderr = "Traceback:\n  line 1\n\nValueError: boom\n".to_owned();
    let faults = [
        DriverFault::Crashed {
            status: "cannot start: No such file or directory".into(),
            stderr: String::new(),
        },
        DriverFault::Crashed {
            status: "cannot start: Permission denied".into(),
            stderr: "denied".into(),
        },
        DriverFault::Crashed {
            status: "exit status 1".into(),
            stderr: stderr.clone(),
        },
        DriverFault::Crashed {
            status: "signal 9".into(),
            stderr: String::new(),
        },
        DriverFault::ExitedEarly {
            stderr: stderr.clone(),
        },
        DriverFault::Timeout {
            after_ms: 20_000,
            stderr: String::new(),
        },
        DriverFault::Garbage {
            line: "Starting pool...".into(),
        },
        DriverFault::Garbage { line: "  ".into() },
        DriverFault::Garbage {
            line: "[1, 2]".into(),
        },
        DriverFault::Garbage {
            line: r#"{"type":"hello","protocol":2,"capabilites":[],"implementation":{"name":"x","version":"1","language":"c"}}"#.into(),
        },
        DriverFault::Garbage {
            line: r#"{"protocol":"2","implementation":{"name":"x","lang":"c","version":3}}"#.into(),
        },
        DriverFault::Garbage {
            line: r#"{"type":"done","seq":1,"ok":true}"#.into(),
        },
        DriverFault::Garbage {
            line: r#"{"type":"error","message":1,"seq":"x","traceback":2}"#.into(),
        },
        DriverFault::Garbage {
            line: r#"{"type":"bye"}"#.into(),
        },
        DriverFault::Garbage {
            line: r#"{"type":"hello","protocol":2,"capabilities":"apply","implementation":[1]}"#.into(),
        },
        DriverFault::Garbage {
            line: r#"{"type":"hello","protocol":2,"implementation":{"name":"x","version":"1","language":"c","start_method":null,"default_processes":4}}"#.into(),
        },
        DriverFault::Handshake {
            message: "driver speaks protocol 1, runner speaks 2".into(),
        },
        DriverFault::Handshake {
            message: "driver speaks protocol 7, runner speaks 2".into(),
        },
        DriverFault::Handshake {
            message: "expected a hello, got a `done`".into(),
        },
        DriverFault::Handshake {
            message: "no start method spawn here".into(),
        },
    ];
    let mut entries: Vec<Entry> = faults
        .iter()
        .map(|f| Entry::Problem(handshake_finding(f, &imp, guard)))
        .collect();

    for declared in [
        &["apply", "imap_unorderd", "ext:soft_timeout"][..],
        &["mapp", "teleport", "start_method.fork"][..],
    ] {
        let declared: Vec<String> = declared.iter().map(|s| (*s).to_owned()).collect();
        entries.extend(super::handshake::unknown_capabilities(&declared).map(Entry::Problem));
    }
    assert!(super::handshake::unknown_capabilities(&["ext:x".to_owned()]).is_none());

    let process = Origin::Process {
        pid: 42,
        thread: "main".into(),
    };
    let event = |seq: u64, kind: ReportKind| Event {
        seq,
        origin: process.clone(),
        kind,
    };
    let silent = History::default();
    let busy = History {
        events: vec![
            event(
                1,
                ReportKind::Call {
                    step: "s1".into(),
                    op: "map".into(),
                },
            ),
            event(2, ReportKind::Start { task: "t".into() }),
            event(
                3,
                ReportKind::Callback {
                    step: "s1".into(),
                    kind: "callback".into(),
                    arg: serde_json::json!(7),
                },
            ),
        ],
        violations: vec!["malformed report: {".into(), "unknown gate `h`".into()],
        processes: None,
    };
    let runner_last = History {
        events: vec![Event {
            seq: 1,
            origin: Origin::Runner,
            kind: ReportKind::Open { gate: "g".into() },
        }],
        violations: Vec::new(),
        processes: None,
    };
    for history in [&silent, &busy, &runner_last] {
        for f in &faults {
            entries.push(Entry::Problem(run_fault_finding(
                f, "BLK-001", guard, history,
            )));
        }
    }

    let suite = crate::spec::load_dir(&crate::workspace_root().join("spec"));
    let cases = smoke_cases(&suite.cases).unwrap();
    let blk1 = &cases[0];
    let wrong = History {
        events: vec![
            event(
                1,
                ReportKind::Call {
                    step: "s1".into(),
                    op: "apply".into(),
                },
            ),
            event(2, ReportKind::Start { task: "t".into() }),
            event(
                3,
                ReportKind::End {
                    task: "t".into(),
                    outcome: Outcome::Returned(serde_json::json!(8)),
                },
            ),
            event(
                4,
                ReportKind::Return {
                    step: "s1".into(),
                    outcome: Outcome::Returned(serde_json::json!(8)),
                },
            ),
        ],
        violations: Vec::new(),
        processes: Some(1),
    };
    for history in [&silent, &busy, &wrong] {
        entries.extend(
            diagnose_run(blk1, history, "/tmp/poolspec.sock")
                .into_iter()
                .map(Entry::Problem),
        );
    }
    entries.push(Entry::Ok {
        check: "BLK-002".into(),
        note: "pass".into(),
    });
    entries.push(Entry::Skipped {
        check: "ORD-009".into(),
        note: "not run: fix the problem above first".into(),
    });
    let report = SmokeReport {
        implementation: imp.name.clone(),
        info: None,
        capabilities: Vec::new(),
        entries,
        guard_ms: 2000,
    };
    let passed = SmokeReport {
        implementation: "rust-ref".into(),
        info: None,
        capabilities: Vec::new(),
        entries: vec![Entry::Ok {
            check: "handshake".into(),
            note: "fine".into(),
        }],
        guard_ms: 20000,
    };
    let text = format!(
        "{}\n{}\n{}",
        report.render(),
        passed.render(),
        serde_json::to_string_pretty(&report).unwrap()
    );
    insta::with_settings!({prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("smoke_explanations", text);
    });
}
