//! The legalizer on hand-written raw programs (each rule of the module docs), and on drawn
//! ones (every legalized program compiles and keeps the rules).

use proptest::prelude::*;

use super::*;
use crate::fuzz::generate::raw_program;
use crate::fuzz::raw::RawProgram;
use crate::spec::{
    ErrorSpec, MapCall, OnHandle, PoolParams, Processes, Scalar, Submit, Task, TaskSpec,
    program::compile,
};
use indexmap::IndexMap;

fn held(gate: &str, value: i64) -> TaskSpec {
    TaskSpec::Full(Task {
        wait: vec![gate.to_owned()],
        returns: Some(serde_json::json!(value)),
        ..Task::default()
    })
}

fn free(value: i64) -> TaskSpec {
    TaskSpec::Full(Task {
        returns: Some(serde_json::json!(value)),
        ..Task::default()
    })
}

fn raising() -> TaskSpec {
    TaskSpec::Full(Task {
        raises: Some(ErrorSpec {
            kind: "ValueError".into(),
            message: "boom".into(),
        }),
        ..Task::default()
    })
}

fn submit(task: TaskSpec) -> Submit {
    Submit {
        id: None,
        task,
        args: Vec::new(),
        unserializable_arg: false,
        unserializable_func: false,
        kwargs: IndexMap::new(),
        blob_arg: None,
        callback: None,
        error_callback: None,
    }
}

fn map_call(tasks: Vec<TaskSpec>) -> MapCall {
    MapCall {
        id: None,
        tasks,
        args: Vec::new(),
        chunksize: None,
        then_raise: None,
        unserializable_func: false,
        callback: None,
        error_callback: None,
    }
}

fn on(n: usize, timeout: Option<f64>) -> OnHandle {
    OnHandle {
        id: None,
        of: format!("h{n}"),
        timeout,
    }
}

fn legal(processes: u32, steps: Vec<Step>) -> Vec<Step> {
    let raw = RawProgram {
        pool: PoolParams {
            processes: Processes::Count(processes.into()),
            ..PoolParams::default()
        },
        steps,
    };
    let case = legalize(&raw, "T", &BTreeSet::new());
    compile(&case).expect("legalized programs compile");
    case.steps
}

fn ops(steps: &[Step]) -> Vec<&'static str> {
    steps.iter().map(Step::op).collect()
}

#[test]
fn get_of_a_held_task_times_out_and_get_of_a_free_one_waits() {
    let steps = legal(
        2,
        vec![
            Step::ApplyAsync(submit(held("g1", 1))),
            Step::ApplyAsync(submit(free(2))),
            Step::Get(on(0, None)),
            Step::Get(on(1, Some(SHORT_TIMEOUT))),
        ],
    );
    assert!(matches!(&steps[2], Step::Get(h) if h.of == "s1" && h.timeout == Some(SHORT_TIMEOUT)));
    assert!(matches!(&steps[3], Step::Get(h) if h.of == "s2" && h.timeout.is_none()));
    // The epilogue opens the gate, closes, joins, and shows s1's value.
    assert_eq!(ops(&steps[4..]), ["open", "close", "join", "get"]);
}

#[test]
fn a_task_queued_behind_held_workers_cannot_be_waited_for() {
    // One worker, held by s1: s2's task never starts, so blocking `apply` becomes async
    // and its `get` times out.
    let steps = legal(
        1,
        vec![
            Step::ApplyAsync(submit(held("g1", 1))),
            Step::Apply(submit(free(2))),
            Step::Get(on(1, None)),
        ],
    );
    assert_eq!(ops(&steps[..3]), ["apply_async", "apply_async", "get"]);
    assert!(matches!(&steps[2], Step::Get(h) if h.of == "s2" && h.timeout.is_some()));
}

#[test]
fn terminate_waits_for_quiescence_first() {
    let steps = legal(
        2,
        vec![
            Step::ApplyAsync(submit(held("g1", 1))),
            Step::ApplyAsync(submit(free(2))),
            Step::ApplyAsync(submit(held("g1", 3))),
            Step::Terminate(Plain::default()),
        ],
    );
    // s2's result is waited for (it must not be in flight when workers are killed),
    // then both held tasks must be waiting on g1.
    assert_eq!(
        ops(&steps),
        [
            "apply_async",
            "apply_async",
            "apply_async",
            "wait",
            "await",
            "terminate"
        ]
    );
    assert!(matches!(&steps[3], Step::Wait(h) if h.of == "s2" && h.timeout.is_none()));
    assert!(
        matches!(&steps[4], Step::Await(a) if a.gate.as_deref() == Some("g1") && a.waiting == Some(2))
    );
}

#[test]
fn terminate_is_dropped_while_a_finished_result_may_be_in_flight() {
    // s1-1 finishes, but its MapResult is still held by s1-0: its value may be on its
    // way when the workers would be killed.
    let steps = legal(
        2,
        vec![
            Step::MapAsync(map_call(vec![held("g1", 1), free(2)])),
            Step::Terminate(Plain::default()),
        ],
    );
    assert!(!ops(&steps).contains(&"terminate"), "{:?}", ops(&steps));
}

#[test]
fn imap_unordered_next_is_kept_only_when_one_result_can_come() {
    let racy = legal(
        2,
        vec![
            Step::ImapUnordered(map_call(vec![free(1), free(2)])),
            Step::Next(on(0, None)),
        ],
    );
    assert_eq!(ops(&racy[..2]), ["imap_unordered", "close"]);
    let forced = legal(
        2,
        vec![
            Step::ImapUnordered(map_call(vec![held("g1", 1), free(2)])),
            Step::Next(on(0, Some(SHORT_TIMEOUT))),
            Step::Next(on(0, None)),
        ],
    );
    // The first `next` can only return s1-1's value (without a timeout); the second
    // can only time out.
    assert!(matches!(&forced[1], Step::Next(h) if h.timeout.is_none()));
    assert!(matches!(&forced[2], Step::Next(h) if h.timeout == Some(SHORT_TIMEOUT)));
}

#[test]
fn a_map_reports_one_failure_at_most() {
    let steps = legal(
        2,
        vec![Step::MapAsync(map_call(vec![raising(), raising()]))],
    );
    let Step::MapAsync(m) = &steps[0] else {
        panic!("map_async expected, got {:?}", steps[0]);
    };
    let tasks: Vec<Task> = m.tasks.iter().map(TaskSpec::to_task).collect();
    assert!(tasks[0].raises.is_some());
    assert!(tasks[1].raises.is_none());
}

#[test]
fn replaced_workers_get_an_explicit_chunksize() {
    let raw = RawProgram {
        pool: PoolParams {
            processes: Processes::Count(2),
            maxtasksperchild: Some(Scalar::Int(1)),
            ..PoolParams::default()
        },
        steps: vec![Step::MapAsync(map_call((0..9).map(free).collect()))],
    };
    let case = legalize(&raw, "T", &BTreeSet::new());
    assert!(matches!(&case.steps[0], Step::MapAsync(m) if m.chunksize == Some(2)));
}

fn raising_iterable(mut m: MapCall, chunksize: Option<u32>) -> MapCall {
    m.chunksize = chunksize;
    m.then_raise = Some(ErrorSpec {
        kind: "KeyError".into(),
        message: "k".into(),
    });
    m
}

#[test]
fn a_raising_iterable_raises_at_the_call_in_map_and_in_position_in_imap() {
    // map: the call raises at once (no handle, no task), so a later `get` has nothing
    // to refer to, and nothing is held.
    let steps = legal(
        1,
        vec![
            Step::Map(raising_iterable(map_call(vec![held("g1", 1)]), None)),
            Step::MapAsync(raising_iterable(map_call(vec![free(1)]), None)),
            Step::Get(on(0, None)),
        ],
    );
    assert_eq!(ops(&steps), ["map", "map_async", "close", "join"]);
    // imap, chunksize 2, 5 items: 4 run, the 5th is lost; `collect` is certain (4
    // values, then the exception), and so is the `next` after it (StopIteration).
    let steps = legal(
        2,
        vec![
            Step::Imap(raising_iterable(
                map_call((0..5).map(free).collect()),
                Some(2),
            )),
            Step::Collect(on(0, None)),
            Step::Next(on(0, None)),
        ],
    );
    // (The epilogue collects what is left: nothing.)
    assert_eq!(
        ops(&steps),
        ["imap", "collect", "next", "close", "join", "collect"]
    );
    // With both workers held, the exception's task is queued behind them: a `next`
    // after the first free item can only time out.
    let steps = legal(
        2,
        vec![
            Step::Imap(raising_iterable(
                map_call(vec![free(0), held("g1", 1), held("g2", 2)]),
                None,
            )),
            Step::Next(on(0, None)),
            Step::Next(on(0, None)),
        ],
    );
    assert!(matches!(&steps[1], Step::Next(h) if h.timeout.is_none()));
    assert!(matches!(&steps[2], Step::Next(h) if h.timeout == Some(SHORT_TIMEOUT)));
    // imap_unordered: the exception arrives whenever its task ran, so a `next` is kept
    // only where it is the one result that can come.
    let steps = legal(
        1,
        vec![
            Step::ImapUnordered(raising_iterable(map_call(vec![]), Some(3))),
            Step::Next(on(0, None)),
            Step::Next(on(0, None)),
        ],
    );
    assert_eq!(ops(&steps[..3]), ["imap_unordered", "next", "next"]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Excluded features never appear, whatever is drawn.
    #[test]
    fn excluded_features_never_appear(raw in raw_program(10)) {
        let all: BTreeSet<Feature> = Feature::ALL.into_iter().collect();
        let case = legalize(&raw, "X", &all);
        prop_assert!(compile(&case).is_ok());
        prop_assert!(case.pool.maxtasksperchild.is_none() && case.pool.initializer.is_none());
        prop_assert!(case.pool.initargs.is_empty());
        prop_assert!(!case.pool.with_block);
        for step in &case.steps {
            prop_assert!(!matches!(step, Step::Terminate(_) | Step::ExitWith(_)));
            match step {
                Step::Get(h) | Step::Wait(h) | Step::Next(h) => prop_assert!(h.timeout.is_none()),
                Step::Apply(s) | Step::ApplyAsync(s) => {
                    prop_assert!(!s.unserializable_arg);
                    prop_assert!(s.callback.is_none() && s.error_callback.is_none());
                    prop_assert!(s.kwargs.is_empty() && s.blob_arg.is_none());
                }
                Step::MapAsync(m) | Step::StarmapAsync(m) => {
                    prop_assert!(m.callback.is_none() && m.error_callback.is_none());
                    prop_assert!(m.then_raise.is_none());
                }
                Step::Map(m) | Step::Starmap(m) | Step::Imap(m) | Step::ImapUnordered(m) => {
                    prop_assert!(m.then_raise.is_none());
                }
                _ => {}
            }
            for t in step_tasks(step) {
                prop_assert!(t.raises.is_none() && !t.unserializable && !t.echo);
                prop_assert!(!t.echo_all && !t.echo_initargs && t.blob.is_none());
            }
        }
    }

    /// Whatever is drawn, the legalized program is a valid case that ends with nothing
    /// in flight, and every timeout is the short one on a call that cannot be ready.
    #[test]
    fn every_legalized_program_is_a_valid_case(raw in raw_program(10)) {
        let case = legalize(&raw, "P", &BTreeSet::new());
        prop_assert!(compile(&case).is_ok(), "{:?}", compile(&case).err());
        // Every pool is joined or terminated; later steps are rejected or read results.
        let end = case.steps.iter().rposition(|s| matches!(s.op(), "join" | "terminate" | "exit_with"));
        prop_assert!(end.is_some(), "neither joined nor terminated");
        for step in &case.steps[end.unwrap_or_default()..] {
            prop_assert!(!matches!(step.op(), "open" | "await"), "{} after the end", step.op());
        }
        for step in &case.steps {
            match step {
                Step::Get(h) | Step::Wait(h) | Step::Next(h) => {
                    prop_assert!(h.timeout.is_none() || h.timeout == Some(SHORT_TIMEOUT));
                }
                Step::Ready(h) | Step::Successful(h) | Step::Collect(h) => {
                    prop_assert!(h.timeout.is_none());
                }
                _ => {}
            }
        }
    }
}
