//! Property tests of pool-ref: ordering, exactly-once execution, callbacks, worker counts.
//!
//! `harness = false`: pools re-execute this binary as their workers, so `main` must call
//! `pool_ref::init` before anything else (see `common`). Each property runs a few random
//! cases through proptest's `TestRunner`; pools are built once and reused across cases
//! where the property allows it, because starting worker processes costs milliseconds.
//! Set `PROPTEST_RNG_SEED` to replay a run; the number of cases is fixed here.

#[macro_use]
mod common;

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use common::{Outcome, TempDir, process_identity};
use pool_ref::{Pool, PoolError, Registry, TaskError, TaskRef};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// A worker identity: pid and process start time, so a reused pid is not mistaken for the
/// same worker.
type Ident = (u32, u64);

/// A cheap bijective scramble, so results differ from inputs.
fn scramble(x: u64) -> u64 {
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555
}

const SCRAMBLE: TaskRef<u64, u64> = TaskRef::new("scramble");
/// Returns its input with the identity of the worker that ran it.
const WHO: TaskRef<u64, (u64, Ident)> = TaskRef::new("who");
/// Creates `dir/x` (failing with kind `RanTwice` if it exists) and returns `x`.
const ONCE: TaskRef<(String, u64), u64> = TaskRef::new("once");
/// `x`, or a `ValueError` when `x % m == 0`.
const MAYBE_FAIL: TaskRef<(u64, u64), u64> = TaskRef::new("maybe_fail");

fn registry() -> Registry {
    Registry::new()
        .register(SCRAMBLE, |x: u64| Ok::<_, TaskError>(scramble(x)))
        .register(WHO, |x: u64| Ok::<_, TaskError>((x, process_identity())))
        .register(ONCE, |(dir, x): (String, u64)| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(std::path::Path::new(&dir).join(x.to_string()))
                .map_err(|e| TaskError::new("RanTwice", format!("{x}: {e}")))?;
            Ok(x)
        })
        .register(MAYBE_FAIL, |(x, m): (u64, u64)| {
            if x % m == 0 {
                Err(TaskError::new(
                    "ValueError",
                    format!("{x} is divisible by {m}"),
                ))
            } else {
                Ok(x)
            }
        })
}

fn main() {
    pool_ref::init(&registry()); // in a worker process, this never returns
    common::run_checks(checks![
        map_preserves_input_order,
        imap_unordered_yields_a_permutation,
        every_task_runs_exactly_once,
        every_callback_fires_exactly_once,
        distinct_workers_at_most_processes,
        maxtasksperchild_bounds_tasks_per_worker,
    ]);
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 32,
        ..Config::default()
    })
}

/// Runs a property; a failure reports the (shrunk) input.
fn check<S: Strategy>(
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> Outcome {
    runner(cases)
        .run(&strategy, test)
        .map_err(|e| e.to_string())
}

fn fail(e: PoolError) -> TestCaseError {
    TestCaseError::fail(format!("pool error: {e:?}"))
}

/// Pools of 1 to 4 workers, shared by the properties that allow reuse.
fn pools() -> Result<Vec<Pool>, String> {
    (1..=4)
        .map(|n| Pool::new(n).map_err(|e| format!("Pool::new({n}): {e}")))
        .collect()
}

fn chunksize() -> impl Strategy<Value = Option<usize>> {
    proptest::option::of(1usize..20)
}

// ---- properties ----

/// `map` (and `imap`, and `map_async`) return the values in input order, whatever the sizes.
fn map_preserves_input_order() -> Outcome {
    let pools = pools()?;
    check(
        16,
        (0..pools.len(), vec(any::<u64>(), 0..300), chunksize()),
        |(p, xs, cs)| {
            let pool = &pools[p];
            let expected: Vec<u64> = xs.iter().copied().map(scramble).collect();
            let got = pool.map(SCRAMBLE, xs.clone(), cs).map_err(fail)?;
            prop_assert_eq!(&got, &expected, "map");
            let got: Vec<u64> = pool
                .imap(SCRAMBLE, xs.clone(), cs)
                .map_err(fail)?
                .collect::<Result<_, _>>()
                .map_err(fail)?;
            prop_assert_eq!(&got, &expected, "imap");
            let got = pool
                .map_async(SCRAMBLE, xs, cs, None, None)
                .map_err(fail)?
                .get(None)
                .map_err(fail)?;
            prop_assert_eq!(&got, &expected, "map_async");
            Ok(())
        },
    )
}

/// `imap_unordered` yields every input's value exactly once, in some order.
fn imap_unordered_yields_a_permutation() -> Outcome {
    let pools = pools()?;
    check(
        16,
        (0..pools.len(), vec(0u64..50, 0..300), chunksize()),
        |(p, xs, cs)| {
            let mut expected: Vec<u64> = xs.iter().copied().map(scramble).collect();
            expected.sort_unstable();
            let mut got: Vec<u64> = pools[p]
                .imap_unordered(SCRAMBLE, xs, cs)
                .map_err(fail)?
                .collect::<Result<_, _>>()
                .map_err(fail)?;
            got.sort_unstable();
            prop_assert_eq!(got, expected);
            Ok(())
        },
    )
}

#[derive(Debug, Clone, Copy)]
enum Api {
    Map,
    Imap,
    ImapUnordered,
    ApplyAsync,
}

/// Every task runs exactly once: each task creates a file named after its input with
/// `create_new`, so a second run of the same input fails that task (kind `RanTwice`), and a
/// task that never ran leaves its file missing. No timing is involved. The pools include
/// ones with `maxtasksperchild`, where tasks cross worker replacements.
fn every_task_runs_exactly_once() -> Outcome {
    let mut pools = pools()?;
    for (n, k) in [(2, 1), (3, 2)] {
        pools.push(
            Pool::builder()
                .processes(n)
                .maxtasksperchild(k)
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    let api = prop_oneof![
        Just(Api::Map),
        Just(Api::Imap),
        Just(Api::ImapUnordered),
        Just(Api::ApplyAsync)
    ];
    check(
        16,
        (0..pools.len(), 0u64..100, chunksize(), api),
        |(p, n, cs, api)| {
            let pool = &pools[p];
            let dir = TempDir::new("once");
            let path = dir.path().to_string_lossy().into_owned();
            let items: Vec<(String, u64)> = (0..n).map(|x| (path.clone(), x)).collect();
            let mut got: Vec<u64> = match api {
                Api::Map => pool.map(ONCE, items, cs).map_err(fail)?,
                Api::Imap => pool
                    .imap(ONCE, items, cs)
                    .map_err(fail)?
                    .collect::<Result<_, _>>()
                    .map_err(fail)?,
                Api::ImapUnordered => pool
                    .imap_unordered(ONCE, items, cs)
                    .map_err(fail)?
                    .collect::<Result<_, _>>()
                    .map_err(fail)?,
                Api::ApplyAsync => {
                    let handles = items
                        .into_iter()
                        .map(|item| pool.apply_async(ONCE, item, None, None))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(fail)?;
                    handles
                        .iter()
                        .map(|h| h.get(None))
                        .collect::<Result<_, _>>()
                        .map_err(fail)?
                }
            };
            got.sort_unstable();
            prop_assert_eq!(got, (0..n).collect::<Vec<_>>(), "results");
            let mut ran: Vec<u64> = dir
                .names()
                .iter()
                .map(|s| s.parse().unwrap_or(u64::MAX))
                .collect();
            ran.sort_unstable();
            prop_assert_eq!(ran, (0..n).collect::<Vec<_>>(), "files the tasks created");
            Ok(())
        },
    )
}

/// Every `apply_async` fires exactly one of its callback (on success) and error callback (on
/// failure), exactly once, and before `get` returns; `map_async` fires its callback once
/// with the whole list, or its error callback once if any item failed, and neither for an
/// empty input (as CPython).
fn every_callback_fires_exactly_once() -> Outcome {
    let pools = pools()?;
    check(
        16,
        (0..pools.len(), 0u64..80, 2u64..8, chunksize()),
        |(p, n, m, cs)| {
            let pool = &pools[p];
            let events: Arc<Mutex<Vec<(u64, bool)>>> = Arc::default();
            let mut handles = Vec::new();
            for x in 0..n {
                let (ok, err) = (Arc::clone(&events), Arc::clone(&events));
                let h = pool
                    .apply_async(
                        MAYBE_FAIL,
                        (x, m),
                        Some(Box::new(move |v: &u64| {
                            ok.lock().expect("events").push((*v, true));
                        })),
                        Some(Box::new(move |e: &PoolError| {
                            let failed = match e {
                                PoolError::Task(t) if t.kind == "ValueError" => x,
                                _ => u64::MAX,
                            };
                            err.lock().expect("events").push((failed, false));
                        })),
                    )
                    .map_err(fail)?;
                handles.push((x, h));
            }
            for (x, h) in &handles {
                let r = h.get(None);
                let fails = x % m == 0;
                prop_assert_eq!(r.is_err(), fails, "result of {}", x);
                // The callback has run before `get` returned.
                let seen: Vec<(u64, bool)> = events
                    .lock()
                    .expect("events")
                    .iter()
                    .copied()
                    .filter(|(v, _)| v == x)
                    .collect();
                prop_assert_eq!(seen, vec![(*x, !fails)], "callbacks seen for {}", x);
            }
            prop_assert_eq!(events.lock().expect("events").len() as u64, n);

            // map_async: one callback with the whole list.
            let calls: Arc<Mutex<Vec<Vec<u64>>>> = Arc::default();
            let errors: Arc<Mutex<u32>> = Arc::default();
            let (c, e) = (Arc::clone(&calls), Arc::clone(&errors));
            let xs: Vec<u64> = (0..n).collect();
            let got = pool
                .map_async(
                    SCRAMBLE,
                    xs.clone(),
                    cs,
                    Some(Box::new(move |v: &Vec<u64>| {
                        c.lock().expect("calls").push(v.clone());
                    })),
                    Some(Box::new(move |_: &PoolError| {
                        *e.lock().expect("errors") += 1
                    })),
                )
                .map_err(fail)?
                .get(None)
                .map_err(fail)?;
            let expected: Vec<u64> = xs.iter().copied().map(scramble).collect();
            prop_assert_eq!(&got, &expected);
            let want_calls = if n == 0 { vec![] } else { vec![expected] };
            prop_assert_eq!(
                &*calls.lock().expect("calls"),
                &want_calls,
                "map_async callbacks"
            );
            prop_assert_eq!(
                *errors.lock().expect("errors"),
                0,
                "map_async error callbacks"
            );

            // map_async with failing items: one error callback, no callback.
            if n > 0 {
                let calls: Arc<Mutex<u32>> = Arc::default();
                let errors: Arc<Mutex<Vec<String>>> = Arc::default();
                let (c, e) = (Arc::clone(&calls), Arc::clone(&errors));
                let r = pool
                    .map_async(
                        MAYBE_FAIL,
                        (0..n).map(|x| (x, m)),
                        cs,
                        Some(Box::new(move |_: &Vec<u64>| *c.lock().expect("calls") += 1)),
                        Some(Box::new(move |err: &PoolError| {
                            e.lock().expect("errors").push(err.python_type().to_owned());
                        })),
                    )
                    .map_err(fail)?;
                let got = r.get(None);
                prop_assert!(
                    matches!(&got, Err(PoolError::Task(t)) if t.kind == "ValueError"),
                    "got {:?}",
                    got
                );
                prop_assert_eq!(*calls.lock().expect("calls"), 0);
                prop_assert_eq!(
                    &*errors.lock().expect("errors"),
                    &vec!["ValueError".to_owned()]
                );
            }
            Ok(())
        },
    )
}

/// Without `maxtasksperchild`, a pool of N never uses more than N worker processes: over
/// all cases on the same pool, the identities that ran tasks are at most N, and all of them
/// are live workers of that pool.
fn distinct_workers_at_most_processes() -> Outcome {
    let pools = pools()?;
    let seen: Mutex<Vec<HashSet<Ident>>> = Mutex::new(vec![HashSet::new(); pools.len()]);
    check(
        16,
        (0..pools.len(), 0u64..300, chunksize()),
        |(p, n, cs)| {
            let pool = &pools[p];
            let out = pool.map(WHO, 0..n, cs).map_err(fail)?;
            prop_assert_eq!(
                out.iter().map(|(x, _)| *x).collect::<Vec<_>>(),
                (0..n).collect::<Vec<_>>()
            );
            let live: HashSet<u32> = pool.worker_pids().into_iter().collect();
            prop_assert_eq!(live.len(), pool.processes(), "live workers");
            let mut seen = seen.lock().expect("seen");
            for (_, who) in &out {
                prop_assert!(live.contains(&who.0), "pid {} is not a live worker", who.0);
                seen[p].insert(*who);
            }
            prop_assert!(
                seen[p].len() <= pool.processes(),
                "{} distinct workers in a pool of {}",
                seen[p].len(),
                pool.processes()
            );
            Ok(())
        },
    )
}

/// With `maxtasksperchild = k` and chunksize 1, no worker runs more than k tasks, counted
/// over every case run on the same pool; and enough workers were started to run them all.
fn maxtasksperchild_bounds_tasks_per_worker() -> Outcome {
    type PoolRun = (Pool, BTreeMap<Ident, u32>, u64);
    let pools: Mutex<HashMap<(usize, u32), PoolRun>> = Mutex::default();
    check(
        14,
        (1usize..=3, 1u32..=4, 0u64..50, any::<bool>()),
        |(n, k, items, unordered)| {
            let mut pools = pools.lock().expect("pools");
            let (pool, counts, total) = match pools.entry((n, k)) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    let pool = Pool::builder()
                        .processes(n)
                        .maxtasksperchild(k)
                        .build()
                        .map_err(fail)?;
                    e.insert((pool, BTreeMap::new(), 0))
                }
            };
            let out: Vec<(u64, Ident)> = if unordered {
                let mut v: Vec<(u64, Ident)> = pool
                    .imap_unordered(WHO, 0..items, Some(1))
                    .map_err(fail)?
                    .collect::<Result<_, _>>()
                    .map_err(fail)?;
                v.sort_unstable();
                v
            } else {
                pool.map(WHO, 0..items, Some(1)).map_err(fail)?
            };
            prop_assert_eq!(
                out.iter().map(|(x, _)| *x).collect::<Vec<_>>(),
                (0..items).collect::<Vec<_>>()
            );
            for (_, who) in &out {
                *counts.entry(*who).or_default() += 1;
            }
            *total += items;
            for (who, c) in counts.iter() {
                prop_assert!(
                    *c <= k,
                    "worker {:?} ran {} tasks, maxtasksperchild {}",
                    who,
                    c,
                    k
                );
            }
            prop_assert!(
                counts.len() as u64 >= total.div_ceil(u64::from(k)),
                "{} tasks on {} workers with maxtasksperchild {}",
                total,
                counts.len(),
                k
            );
            Ok(())
        },
    )
}
