//! The Rust driver SDK (`poolspec-driver`) keeps its own model of programs, since it never
//! depends on the runner: here every program the runner can send (the suite's cases, a
//! thousand fuzzed programs, and one case using every field of protocol 2) is serialized as
//! the runner sends it, read by the SDK, and written back by the SDK unchanged. A field the
//! runner adds and the SDK does not know fails here, not silently in a driver.

use std::collections::BTreeSet;
use std::path::Path;

use conformance::fuzz::program_case;
use conformance::spec::program::compile;
use conformance::spec::{Program, Suite, load::load_str, load_dir};
use conformance::workspace_root;

/// Every field of PoolParams, Submit, MapCall and Task that protocol 2 added.
const EVERY_FIELD: &str = r#"
format: 1
area: arguments
cases:
  - id: SDK-001
    claim: Every field of protocol 2.
    cite: [{source: pool.py:Pool}]
    tags: [contract]
    pool:
      processes: default
      maxtasksperchild: 0.5
      initializer: {id: init, wait: [g]}
      initargs: [1, "two", null, [3], {k: v}]
      context: spawn
      with_block: true
    gates: {g: manual}
    steps:
      - apply: {task: {id: a, echo_all: true}, args: [1], kwargs: {z: 1, a: [2]}, blob_arg: {size: 10, seed: 3}, unserializable_func: true, unserializable_arg: true}
      - apply_async: {id: h, task: {id: b, blob: {size: 70000}}, callback: {wait: [g]}, error_callback: {raises: {type: KeyError, message: k}}}
      - map: {tasks: [{id: c, echo_initargs: true}, {id: d, unserializable_item: true}, 3], chunksize: 2, then_raise: {type: KeyError, message: k}, unserializable_func: true}
      - starmap_async: {id: m, tasks: [{echo: true}], args: [[1, 2]], then_raise: {type: ValueError}, callback: {}}
      - imap: {id: it, tasks: [], then_raise: {type: TypeError, message: t}}
      - next: {of: it, timeout: 0.5}
      - enter: {}
      - exit_with: {}
    expect: {}
  - id: SDK-002
    claim: Counts a pool must refuse.
    cite: [{source: pool.py:Pool}]
    tags: [contract]
    pool: {processes: -1, maxtasksperchild: "12", uncallable_initializer: true}
    steps:
      - apply: {task: 1}
    expect: {}
"#;

fn round_trip(program: &Program) -> Result<(), String> {
    // As the runner sends it in `run` (protocol.rs: ToDriver::Run).
    let sent = serde_json::to_value(program).map_err(|e| e.to_string())?;
    let typed = poolspec_driver::Program::from_json(&sent)
        .map_err(|e| format!("{}: the SDK refused it: {e}", program.id))?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    if back == sent {
        Ok(())
    } else {
        Err(format!(
            "{}: the SDK changed the program:\n  sent {sent}\n  back {back}",
            program.id
        ))
    }
}

#[test]
fn the_sdk_reads_and_writes_back_every_program_the_runner_sends() {
    let root = workspace_root();
    let mut suite = load_dir(&root.join("spec"));
    assert!(suite.errors.is_empty(), "spec errors: {:#?}", suite.errors);
    let mut extra = Suite::default();
    load_str(Path::new("<every field>"), EVERY_FIELD, &mut extra);
    assert!(extra.errors.is_empty(), "{:#?}", extra.errors);
    assert_eq!(extra.cases.len(), 2);
    suite.cases.extend(extra.cases);
    // The worked example of a maintainer's own cases: extension steps and arguments.
    let own = conformance::spec::load_folders(None, &[root.join("fixtures/own-cases/spec")])
        .expect("fixtures/own-cases/spec");
    assert!(own.errors.is_empty(), "{:#?}", own.errors);
    suite.cases.extend(own.cases);

    let mut failures = Vec::new();
    for case in &suite.cases {
        if let Err(e) = round_trip(&case.program) {
            failures.push(e);
        }
    }
    for index in 0..1000 {
        let case = program_case(0x5d6, index, 10, &BTreeSet::new());
        let program = compile(&case).expect("legalized programs compile");
        if let Err(e) = round_trip(&program) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
