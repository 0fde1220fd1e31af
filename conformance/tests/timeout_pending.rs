//! A TIMEOUT names what was pending when the liveness guard expired: a case that hangs
//! CPython's real Pool (a `get` without timeout on a task held by a gate no step opens) runs
//! on `cpython-fork` with the guard scaled down to 2 s, and its reason names the step that
//! never returned and the task still waiting on its gate.

use std::path::Path;

use conformance::expectations::ExpectationFile;
use conformance::implementations::{builtin, find_python};
use conformance::runner::{RunOptions, run_matrix};
use conformance::spec::load::{Suite, load_str};
use conformance::verdict::Status;
use conformance::workspace_root;

const HANGING: &str = "format: 1
area: blocking
cases:
  - id: HANG-1
    claim: get without a timeout waits for a task that a closed gate holds.
    cite: [{source: pool.py:ApplyResult.get}]
    tags: [contract]
    gates: {never: manual}
    steps:
      - apply_async: {id: h, task: {id: held, wait: [never], returns: 1}}
      - get: {of: h}
    expect: {steps: {s2: {returned: 1}}}
";

#[test]
fn a_timeout_names_the_step_that_never_returned_and_the_task_on_its_gate() {
    let mut suite = Suite::default();
    load_str(Path::new("hang.yaml"), HANGING, &mut suite);
    assert!(suite.errors.is_empty(), "{:?}", suite.errors);
    let python = find_python().expect("the CPython driver needs python3");
    let fork = builtin(&workspace_root(), &python, None)
        .into_iter()
        .find(|i| i.name.ends_with("-fork"))
        .expect("a fork implementation");
    let expectations = ExpectationFile {
        implementation: fork.name.clone(),
        ..ExpectationFile::default()
    };
    let options = RunOptions {
        timeout_multiplier: 0.1,
        jobs: 1,
        repeat: 1,
        history_dir: None,
        cells: None,
        costs: None,
    };
    let run = run_matrix(&suite.cases, &[(fork, expectations)], &options, &|_| {});
    let result = &run.results[0];
    assert_eq!(result.status, Status::Timeout, "{result:#?}");
    let reason = result.reason.as_deref().unwrap_or("");
    assert!(
        reason.contains("liveness guard (2.0 s)")
            && reason
                .contains("; pending: s2 (get on h, started), task held (waiting on gate never)"),
        "{reason}"
    );
}
