//! Lifecycle and failure tests of pool-ref: typed errors (never panics) for misuse, close,
//! join and terminate in every order, Drop, task errors and panics, arguments and values that
//! do not serialize, workers that die mid-task, timeouts, initializers, and no orphan workers
//! when the pool's process is killed.
//!
//! `harness = false`: pools re-execute this binary as their workers, so `main` must call
//! `pool_ref::init` before anything else (see `common`). The same binary run with
//! `--orphan-child DIR` is the helper process of `no_orphan_workers_after_parent_killed`.
//!
//! Nothing here waits a fixed time for something to happen: waits for another process are
//! bounded polling loops (`common::poll_until`), and tasks that must block wait for a file
//! the test creates when it wants them to finish.

#[macro_use]
mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Outcome, TempDir, poll_until, proc_alive, proc_ppid, proc_state};
use nix::sys::signal::{Signal, kill, raise};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use pool_ref::{AsyncResult, Pool, PoolError, Registry, TaskError, TaskRef};

/// How long a bounded wait for another process may take before the check fails.
const PATIENCE: Duration = Duration::from_secs(10);

const PID: TaskRef<(), u32> = TaskRef::new("pid");
/// Fails with the given exception kind and message.
const FAIL: TaskRef<(String, String), u32> = TaskRef::new("fail");
const PANIC_STR: TaskRef<(), u32> = TaskRef::new("panic_str");
const PANIC_FMT: TaskRef<u32, u32> = TaskRef::new("panic_fmt");
/// Exits the worker process with the given code, mid-task.
const EXIT: TaskRef<i32, u32> = TaskRef::new("exit");
/// Kills its own worker process with SIGKILL, mid-task.
const SIGKILL_SELF: TaskRef<(), u32> = TaskRef::new("sigkill_self");
/// `x`, except that the worker exits with code 7 when `x == die`.
const DIE_AT: TaskRef<(u32, u32), u32> = TaskRef::new("die_at");
/// Creates the file `marker` (unless empty), waits until the file `gate` exists, returns `v`.
const WAIT_GATE: TaskRef<(String, String, u32), u32> = TaskRef::new("wait_gate");
/// Initializer: records one line in `dir/<pid>` and counts its runs in this process.
const INIT_RECORD: TaskRef<String, ()> = TaskRef::new("init_record");
/// The worker's pid and how many times the initializer ran in it so far.
const INIT_PID: TaskRef<(), (u32, u32)> = TaskRef::new("init_pid");

/// `Fine(x)` serializes as `x`; `Refuse` does not serialize at all.
#[derive(Debug, Clone, PartialEq)]
enum Refusable {
    Fine(u32),
    Refuse,
}

const REFUSAL: &str = "refused to serialize";

impl serde::Serialize for Refusable {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Refusable::Fine(x) => s.serialize_u32(*x),
            Refusable::Refuse => Err(serde::ser::Error::custom(REFUSAL)),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Refusable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Refusable, D::Error> {
        u32::deserialize(d).map(Refusable::Fine)
    }
}

/// Its argument's number (it never sees `Refuse`: that cannot be sent).
const TAKE_REFUSABLE: TaskRef<Refusable, u32> = TaskRef::new("take_refusable");
/// `Refuse` for 0, raises `ValueError` for 99, else `Fine(x)`.
const GIVE_REFUSABLE: TaskRef<u32, Refusable> = TaskRef::new("give_refusable");

/// Initializer runs in this process (meaningful in workers only).
static INIT_RUNS: AtomicU32 = AtomicU32::new(0);

fn registry() -> Registry {
    Registry::new()
        .register(PID, |()| Ok::<_, TaskError>(std::process::id()))
        .register(
            FAIL,
            |(kind, message): (String, String)| -> Result<u32, TaskError> {
                Err(TaskError::new(kind, message))
            },
        )
        .register(PANIC_STR, |()| -> Result<u32, TaskError> {
            quiet_panics();
            panic!("boom")
        })
        .register(PANIC_FMT, |x: u32| -> Result<u32, TaskError> {
            quiet_panics();
            panic!("boom {x}")
        })
        .register(EXIT, |code: i32| -> Result<u32, TaskError> {
            std::process::exit(code)
        })
        .register(SIGKILL_SELF, |()| -> Result<u32, TaskError> {
            let _ = raise(Signal::SIGKILL);
            Err(TaskError::new(
                "Unreachable",
                "SIGKILL did not kill the worker",
            ))
        })
        .register(DIE_AT, |(x, die): (u32, u32)| {
            if x == die {
                std::process::exit(7);
            }
            Ok::<_, TaskError>(x)
        })
        .register(WAIT_GATE, |(marker, gate, v): (String, String, u32)| {
            if !marker.is_empty() {
                std::fs::write(&marker, std::process::id().to_string())
                    .map_err(|e| TaskError::new("OSError", format!("{marker}: {e}")))?;
            }
            // A liveness wait: the test creates `gate` when it wants this task to finish; the
            // short sleep only paces the polling. The deadline keeps a forgotten gate from
            // leaving a worker behind forever (the watchdog fails the run long before).
            if poll_until(Duration::from_secs(120), || Path::new(&gate).exists()) {
                Ok(v)
            } else {
                Err(TaskError::new(
                    "TimeoutError",
                    format!("{gate} never appeared"),
                ))
            }
        })
        .register(INIT_RECORD, |dir: String| {
            use std::io::Write;
            INIT_RUNS.fetch_add(1, Ordering::SeqCst);
            let path = Path::new(&dir).join(std::process::id().to_string());
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| TaskError::new("OSError", e.to_string()))?;
            writeln!(f, "init").map_err(|e| TaskError::new("OSError", e.to_string()))?;
            Ok(())
        })
        .register(TAKE_REFUSABLE, |r: Refusable| match r {
            Refusable::Fine(x) => Ok(x),
            Refusable::Refuse => Err(TaskError::new("Unreachable", "got Refuse")),
        })
        .register(GIVE_REFUSABLE, |x: u32| match x {
            0 => Ok(Refusable::Refuse),
            99 => Err(TaskError::new("ValueError", "99")),
            x => Ok(Refusable::Fine(x)),
        })
        .register(INIT_PID, |()| {
            Ok::<_, TaskError>((std::process::id(), INIT_RUNS.load(Ordering::SeqCst)))
        })
}

/// In a worker about to panic on purpose: report panics in one line, without a backtrace.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            eprintln!("worker {}: expected panic: {info}", std::process::id());
        }));
    });
}

fn main() {
    pool_ref::init(&registry()); // in a worker process, this never returns
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--orphan-child") {
        orphan_child(args.get(2).map(String::as_str).unwrap_or("/nonexistent"));
    }
    common::run_checks(checks![
        submit_after_close_is_not_running,
        join_before_close_is_still_running,
        close_twice_then_join_twice,
        close_then_join_finishes_outstanding_work,
        terminate_during_work,
        terminate_after_close_with_work_blocked,
        join_after_terminate,
        terminate_unblocks_a_concurrent_join,
        drop_terminates_workers,
        invalid_arguments_are_errors,
        enter_checks_the_pool_is_running,
        task_error_carries_kind_and_message,
        panicking_task_is_a_panic_task_error,
        unserializable_arguments_fail_the_result_not_the_call,
        unserializable_values_are_maybe_encoding_errors,
        worker_exit_mid_task_is_worker_lost,
        worker_sigkill_mid_task_is_worker_lost,
        worker_lost_in_map_and_imap,
        worker_lost_after_close_is_replaced,
        panicking_callback_does_not_stop_results,
        get_timeout_then_value,
        imap_next_timeout_then_values,
        huge_timeouts_do_not_panic,
        idle_worker_killed_is_replaced,
        initializer_runs_once_per_worker_first,
        no_orphan_workers_after_parent_killed,
    ]);
}

// ---- helpers ----

fn pool(n: usize) -> Result<Pool, String> {
    Pool::new(n).map_err(|e| format!("Pool::new({n}): {e}"))
}

fn err<E: std::fmt::Debug>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e:?}")
}

/// Waits (bounded) until every one of `pids` is gone: no `/proc` entry at all, not even a
/// zombie, as the pool reaps its own workers.
fn wait_reaped(pids: &[u32]) -> Outcome {
    let gone = poll_until(PATIENCE, || pids.iter().all(|p| proc_state(*p).is_none()));
    ensure!(
        gone,
        "workers still present after {PATIENCE:?}: {:?}",
        pids.iter().map(|p| (p, proc_state(*p))).collect::<Vec<_>>()
    );
    Ok(())
}

/// Starts a WAIT_GATE task and waits (bounded) until a worker is running it.
fn start_blocked(
    pool: &Pool,
    dir: &TempDir,
    name: &str,
    v: u32,
) -> Result<AsyncResult<u32>, String> {
    let marker = dir.file(&format!("{name}.started"));
    let gate = dir.file(&format!("{name}.gate"));
    let r = pool
        .apply_async(WAIT_GATE, (marker.clone(), gate, v), None, None)
        .map_err(err("apply_async"))?;
    ensure!(
        poll_until(PATIENCE, || Path::new(&marker).exists()),
        "task {name} never started"
    );
    Ok(r)
}

fn open_gate(dir: &TempDir, name: &str) -> Outcome {
    std::fs::write(dir.file(&format!("{name}.gate")), b"").map_err(err("open gate"))
}

fn is_worker_lost(r: &Result<u32, PoolError>, pid: u32, status_has: &[&str]) -> bool {
    matches!(r, Err(PoolError::WorkerLost { pid: p, status })
        if *p == pid && status_has.iter().any(|s| status.contains(s)))
}

// ---- close / join / terminate ----

/// Every way to submit work to a closed or terminated pool is `NotRunning`.
fn submit_after_close_is_not_running() -> Outcome {
    for terminate in [false, true] {
        let pool = pool(1)?;
        if terminate {
            pool.terminate();
        } else {
            pool.close();
        }
        let cb_runs = Arc::new(AtomicU32::new(0));
        let c = Arc::clone(&cb_runs);
        ensure_eq!(pool.apply(PID, ()), Err(PoolError::NotRunning));
        ensure_eq!(
            pool.apply_async(
                PID,
                (),
                Some(Box::new(move |_| {
                    c.fetch_add(1, Ordering::SeqCst);
                })),
                None
            )
            .err(),
            Some(PoolError::NotRunning)
        );
        ensure_eq!(pool.map(PID, [(), ()], None), Err(PoolError::NotRunning));
        ensure_eq!(
            pool.map_async(PID, [()], Some(1), None, None).err(),
            Some(PoolError::NotRunning)
        );
        ensure_eq!(pool.starmap(PID, [()], None), Err(PoolError::NotRunning));
        ensure_eq!(
            pool.starmap_async(PID, [()], None, None, None).err(),
            Some(PoolError::NotRunning)
        );
        ensure_eq!(
            pool.imap(PID, [()], None).err(),
            Some(PoolError::NotRunning)
        );
        ensure_eq!(
            pool.imap_unordered(PID, [()], None).err(),
            Some(PoolError::NotRunning)
        );
        // Empty inputs too (CPython checks the state before looking at the input).
        ensure_eq!(pool.map(PID, [], None), Err(PoolError::NotRunning));
        ensure_eq!(pool.imap(PID, [], None).err(), Some(PoolError::NotRunning));
        ensure_eq!(PoolError::NotRunning.python_type(), "ValueError");
        pool.join().map_err(err("join"))?;
        ensure_eq!(cb_runs.load(Ordering::SeqCst), 0);
    }
    Ok(())
}

/// `join` on a running pool is `StillRunning`, and the pool goes on working.
fn join_before_close_is_still_running() -> Outcome {
    let pool = pool(1)?;
    ensure_eq!(pool.join(), Err(PoolError::StillRunning));
    ensure_eq!(PoolError::StillRunning.python_type(), "ValueError");
    let pid = pool.apply(PID, ()).map_err(err("apply after join"))?;
    ensure_eq!(pool.worker_pids(), vec![pid]);
    ensure_eq!(pool.join(), Err(PoolError::StillRunning));
    pool.close();
    pool.join().map_err(err("join"))?;
    wait_reaped(&[pid])
}

/// `close` twice is fine, and so is `join` twice; `close` after `terminate` changes nothing.
fn close_twice_then_join_twice() -> Outcome {
    let pool = pool(2)?;
    let pids = pool.worker_pids();
    pool.close();
    pool.close();
    pool.join().map_err(err("first join"))?;
    pool.join().map_err(err("second join"))?;
    pool.close();
    ensure_eq!(pool.apply(PID, ()), Err(PoolError::NotRunning));
    wait_reaped(&pids)?;

    let pool = self::pool(1)?;
    pool.terminate();
    pool.close();
    pool.join().map_err(err("join after terminate and close"))?;
    Ok(())
}

/// After `close`, `join` waits for every outstanding task and callback.
fn close_then_join_finishes_outstanding_work() -> Outcome {
    let pool = pool(2)?;
    let pids = pool.worker_pids();
    let fired = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<AsyncResult<u32>> = (0..20)
        .map(|i| {
            let f = Arc::clone(&fired);
            pool.apply_async(
                DIE_AT,
                (i, u32::MAX),
                Some(Box::new(move |v: &u32| f.lock().expect("fired").push(*v))),
                None,
            )
        })
        .collect::<Result<_, _>>()
        .map_err(err("apply_async"))?;
    let map = pool
        .map_async(DIE_AT, (0..50).map(|i| (i, u32::MAX)), Some(3), None, None)
        .map_err(err("map_async"))?;
    pool.close();
    pool.join().map_err(err("join"))?;
    for (i, h) in handles.iter().enumerate() {
        ensure!(h.ready(), "result {i} not ready after join");
        ensure_eq!(h.get(Some(Duration::ZERO)), Ok(i as u32));
    }
    ensure_eq!(
        map.get(Some(Duration::ZERO)),
        Ok((0..50).collect::<Vec<u32>>())
    );
    let mut fired = fired.lock().expect("fired").clone();
    fired.sort_unstable();
    ensure_eq!(fired, (0..20).collect::<Vec<u32>>());
    wait_reaped(&pids)
}

/// `terminate` while every worker is busy returns promptly, kills the workers, and leaves
/// the outstanding results (running and queued) incomplete with no callback run.
fn terminate_during_work() -> Outcome {
    let dir = TempDir::new("terminate");
    let pool = pool(2)?;
    let pids = pool.worker_pids();
    let a = start_blocked(&pool, &dir, "a", 1)?;
    let b = start_blocked(&pool, &dir, "b", 2)?;
    let fired = Arc::new(AtomicU32::new(0));
    let queued: Vec<AsyncResult<u32>> = (0..5)
        .map(|_| {
            let (f, g) = (Arc::clone(&fired), Arc::clone(&fired));
            pool.apply_async(
                PID,
                (),
                Some(Box::new(move |_| {
                    f.fetch_add(1, Ordering::SeqCst);
                })),
                Some(Box::new(move |_| {
                    g.fetch_add(1, Ordering::SeqCst);
                })),
            )
        })
        .collect::<Result<_, _>>()
        .map_err(err("apply_async"))?;
    let imap = pool.imap(PID, [(), ()], None).map_err(err("imap"))?;
    let t = Instant::now();
    pool.terminate();
    ensure!(t.elapsed() < PATIENCE, "terminate took {:?}", t.elapsed());
    wait_reaped(&pids)?;
    for r in [&a, &b].into_iter().chain(&queued) {
        ensure!(!r.ready(), "a result completed after terminate");
        ensure_eq!(
            r.get(Some(Duration::from_millis(5))),
            Err(PoolError::Timeout)
        );
        ensure_eq!(r.successful(), Err(PoolError::NotReady));
    }
    let mut imap = imap;
    ensure_eq!(
        imap.next_timeout(Some(Duration::from_millis(5))),
        Err(PoolError::Timeout)
    );
    ensure_eq!(
        fired.load(Ordering::SeqCst),
        0,
        "callbacks ran after terminate"
    );
    ensure_eq!(pool.apply(PID, ()), Err(PoolError::NotRunning));
    pool.terminate();
    pool.join().map_err(err("join after terminate"))?;
    Ok(())
}

/// `terminate` after `close` with a task still blocked: returns, and `join` then returns.
fn terminate_after_close_with_work_blocked() -> Outcome {
    let dir = TempDir::new("close-terminate");
    let pool = pool(1)?;
    let pids = pool.worker_pids();
    let a = start_blocked(&pool, &dir, "a", 1)?;
    pool.close();
    pool.terminate();
    pool.join().map_err(err("join"))?;
    wait_reaped(&pids)?;
    ensure!(!a.ready(), "the blocked task completed");
    Ok(())
}

/// `join` after `terminate`, once and twice, returns Ok with the workers gone.
fn join_after_terminate() -> Outcome {
    let pool = pool(3)?;
    let pids = pool.worker_pids();
    ensure_eq!(pids.len(), 3);
    ensure!(
        pids.iter().all(|p| proc_alive(*p)),
        "workers not alive: {pids:?}"
    );
    pool.terminate();
    pool.join().map_err(err("join"))?;
    pool.join().map_err(err("second join"))?;
    wait_reaped(&pids)
}

/// A `join` blocked (after `close`) on a task that will never finish returns once another
/// thread calls `terminate`, as in CPython, where terminate ends the workers join waits on.
fn terminate_unblocks_a_concurrent_join() -> Outcome {
    let dir = TempDir::new("join-terminate");
    let pool = Arc::new(pool(1)?);
    let pids = pool.worker_pids();
    let _a = start_blocked(&pool, &dir, "a", 1)?;
    pool.close();
    let (tx, rx) = std::sync::mpsc::channel();
    let joiner = {
        let pool = Arc::clone(&pool);
        std::thread::Builder::new()
            .name("lc-joiner".into())
            .spawn(move || {
                let _ = tx.send(pool.join());
            })
            .map_err(err("spawn joiner"))?
    };
    // Wait until the joiner sleeps inside `join` (its thread is in state S), so terminate
    // really arrives while join waits; if it never gets there, terminate comes first, which
    // the check below also accepts.
    let joiner_tid = poll_until(PATIENCE, || thread_state("lc-joiner") == Some('S'));
    pool.terminate();
    let joined = rx.recv_timeout(PATIENCE);
    ensure!(
        joined.is_ok(),
        "join (blocked: {joiner_tid}) did not return within {PATIENCE:?} of terminate"
    );
    ensure_eq!(joined.ok(), Some(Ok(())));
    let _ = joiner.join();
    wait_reaped(&pids)
}

/// The state letter of this process's thread named `name`.
fn thread_state(name: &str) -> Option<char> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    for t in tasks.filter_map(|e| e.ok()) {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == name {
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            let after = &stat[stat.rfind(')')? + 1..];
            return after.split_whitespace().next()?.chars().next();
        }
    }
    None
}

/// Dropping a pool terminates it: even with a task blocked, drop returns and every worker
/// process is gone (reaped) afterwards.
fn drop_terminates_workers() -> Outcome {
    let dir = TempDir::new("drop");
    let pool = pool(2)?;
    let pids = pool.worker_pids();
    ensure_eq!(pids.len(), 2);
    let me = std::process::id();
    ensure!(
        pids.iter()
            .all(|p| proc_alive(*p) && proc_ppid(*p) == Some(me)),
        "workers are not live children of this process: {pids:?}"
    );
    let a = start_blocked(&pool, &dir, "a", 1)?;
    drop(pool);
    wait_reaped(&pids)?;
    ensure!(!a.ready(), "the blocked task completed");
    Ok(())
}

/// `enter` (Python's `__enter__`) hands the pool back while it runs, and refuses after
/// `close` or `terminate`; a pool left to its default gets `Pool::default_processes` workers.
fn enter_checks_the_pool_is_running() -> Outcome {
    let pool = pool(1)?;
    ensure!(
        pool.enter().is_ok_and(|p| std::ptr::eq(p, &pool)),
        "enter on a running pool"
    );
    pool.close();
    ensure!(
        matches!(pool.enter(), Err(PoolError::NotRunning)),
        "enter on a closed pool"
    );
    pool.terminate();
    ensure!(
        matches!(pool.enter(), Err(PoolError::NotRunning)),
        "enter on a terminated pool"
    );
    let default = Pool::builder().build().map_err(err("default pool"))?;
    ensure!(
        default.processes() == Pool::default_processes() && Pool::default_processes() >= 1,
        "default processes"
    );
    default.terminate();
    Ok(())
}

/// Out-of-range parameters are `InvalidArgument`, not panics.
fn invalid_arguments_are_errors() -> Outcome {
    let invalid = |r: Result<Pool, PoolError>| matches!(r, Err(PoolError::InvalidArgument(_)));
    ensure!(invalid(Pool::new(0)), "processes 0");
    ensure!(
        invalid(Pool::builder().processes(1).maxtasksperchild(0).build()),
        "maxtasksperchild 0"
    );
    // CPython's messages, and its order: processes first.
    let message = |r: Result<Pool, PoolError>| match r {
        Err(PoolError::InvalidArgument(m)) => m,
        other => format!("{other:?}"),
    };
    ensure!(
        message(Pool::builder().processes(0).maxtasksperchild(0).build())
            == "Number of processes must be at least 1",
        "processes 0 message"
    );
    ensure!(
        message(Pool::builder().processes(1).maxtasksperchild(0).build())
            == "maxtasksperchild must be a positive int or None",
        "maxtasksperchild 0 message"
    );
    let pool = pool(1)?;
    let bad = |e: Option<PoolError>| matches!(e, Some(PoolError::InvalidArgument(_)));
    ensure!(bad(pool.map(PID, [()], Some(0)).err()), "map chunksize 0");
    ensure!(
        bad(pool.map_async(PID, [()], Some(0), None, None).err()),
        "map_async chunksize 0"
    );
    ensure!(bad(pool.imap(PID, [()], Some(0)).err()), "imap chunksize 0");
    ensure!(
        bad(pool.imap_unordered(PID, [()], Some(0)).err()),
        "imap_unordered chunksize 0"
    );
    ensure!(pool.apply(PID, ()).is_ok(), "the pool still works");
    Ok(())
}

// ---- task failures ----

/// A task's error reaches the caller with its kind and message, and the worker survives it:
/// in a pool of one, the same process runs the next task.
fn task_error_carries_kind_and_message() -> Outcome {
    let pool = pool(1)?;
    let before = pool.apply(PID, ()).map_err(err("apply"))?;
    let r = pool.apply(FAIL, ("KeyError".into(), "no such key: 'x'".into()));
    ensure_eq!(
        r,
        Err(PoolError::Task(
            TaskError::new("KeyError", "no such key: 'x'").raised_in(before)
        ))
    );
    if let Err(e) = &r {
        ensure_eq!(e.python_type(), "KeyError");
    }
    let h = pool
        .apply_async(FAIL, ("ValueError".into(), "bad".into()), None, None)
        .map_err(err("apply_async"))?;
    ensure_eq!(
        h.get(None),
        Err(PoolError::Task(
            TaskError::new("ValueError", "bad").raised_in(before)
        ))
    );
    ensure_eq!(h.successful(), Ok(false));
    ensure_eq!(
        pool.apply(PID, ()),
        Ok(before),
        "a different worker after a task error"
    );
    ensure_eq!(pool.worker_pids(), vec![before]);
    Ok(())
}

/// A panicking task fails with kind `Panic` and the panic message; the worker survives.
fn panicking_task_is_a_panic_task_error() -> Outcome {
    let pool = pool(1)?;
    let before = pool.apply(PID, ()).map_err(err("apply"))?;
    ensure_eq!(
        pool.apply(PANIC_STR, ()),
        Err(PoolError::Task(
            TaskError::new("Panic", "boom").raised_in(before)
        ))
    );
    ensure_eq!(
        pool.apply(PANIC_FMT, 42),
        Err(PoolError::Task(
            TaskError::new("Panic", "boom 42").raised_in(before)
        ))
    );
    ensure_eq!(
        pool.apply(PID, ()),
        Ok(before),
        "a different worker after a panic"
    );
    // In a map, the panicking item fails the whole map.
    let r = pool.map(PANIC_FMT, [1, 2, 3], Some(1));
    ensure!(
        matches!(&r, Err(PoolError::Task(t)) if t.kind == "Panic" && t.message.starts_with("boom ")),
        "map: {r:?}"
    );
    ensure_eq!(
        pool.apply(PID, ()),
        Ok(before),
        "a different worker after a panic in map"
    );
    Ok(())
}

/// Arguments that do not serialize are no error of the submitting call (CPython pickles them
/// in its task handler): the result fails with `Serialization`, the error callback runs on the
/// feeder thread, the task never runs, and the other chunks of a map do.
fn unserializable_arguments_fail_the_result_not_the_call() -> Outcome {
    let pool = pool(1)?;
    let before = pool.apply(PID, ()).map_err(err("apply"))?;
    let refused = PoolError::Serialization(REFUSAL.into());
    // (thread name, error) of each error callback.
    type Seen = Arc<Mutex<Vec<(Option<String>, PoolError)>>>;
    let seen: Seen = Arc::default();
    let record = |seen: &Seen| {
        let seen = Arc::clone(seen);
        Box::new(move |e: &PoolError| {
            let name = std::thread::current().name().map(str::to_owned);
            seen.lock().expect("seen").push((name, e.clone()));
        }) as pool_ref::ErrorCallback
    };
    let h = pool
        .apply_async(TAKE_REFUSABLE, Refusable::Refuse, None, Some(record(&seen)))
        .map_err(err("apply_async"))?;
    ensure_eq!(h.get(Some(PATIENCE)), Err(refused.clone()));
    ensure_eq!(h.successful(), Ok(false));
    ensure_eq!(
        seen.lock().expect("seen").clone(),
        vec![(Some("pool-ref-feeder".to_owned()), refused.clone())]
    );
    // apply is apply_async + get.
    ensure_eq!(
        pool.apply(TAKE_REFUSABLE, Refusable::Refuse),
        Err(refused.clone())
    );
    // The other chunks still run; map fails once all are in.
    let items = [Refusable::Fine(1), Refusable::Refuse, Refusable::Fine(3)];
    let m = pool
        .map_async(
            TAKE_REFUSABLE,
            items.clone(),
            Some(1),
            None,
            Some(record(&seen)),
        )
        .map_err(err("map_async"))?;
    ensure_eq!(m.get(Some(PATIENCE)), Err(refused.clone()));
    ensure_eq!(seen.lock().expect("seen").len(), 2);
    let got: Vec<Result<u32, PoolError>> = pool
        .imap(TAKE_REFUSABLE, items, Some(1))
        .map_err(err("imap"))?
        .collect();
    ensure_eq!(got, vec![Ok(1), Err(refused), Ok(3)]);
    ensure_eq!(pool.apply(PID, ()), Ok(before), "a different worker");
    pool.close();
    pool.join().map_err(err("join"))?;
    Ok(())
}

/// A value that does not serialize fails its task with CPython's `MaybeEncodingError`,
/// showing the value (a list for a map chunk) and the reason; the worker survives it. In a
/// chunk, every item runs first, and an item that raises wins.
fn unserializable_values_are_maybe_encoding_errors() -> Outcome {
    let pool = pool(1)?;
    let before = pool.apply(PID, ()).map_err(err("apply"))?;
    let unsendable = |shown: &str| {
        Err::<Refusable, _>(PoolError::Task(
            TaskError::new(
                "MaybeEncodingError",
                format!("Error sending result: '{shown}'. Reason: '{REFUSAL}'"),
            )
            .raised_in(before),
        ))
    };
    ensure_eq!(
        pool.apply(GIVE_REFUSABLE, 0),
        unsendable("<unserializable>")
    );
    ensure_eq!(pool.apply(GIVE_REFUSABLE, 5), Ok(Refusable::Fine(5)));
    ensure_eq!(
        pool.map(GIVE_REFUSABLE, [1, 0, 2], Some(3))
            .map(|_| Refusable::Refuse),
        unsendable("[1, <unserializable>, 2]")
    );
    ensure_eq!(
        pool.map(GIVE_REFUSABLE, [1, 0], Some(1))
            .map(|_| Refusable::Refuse),
        unsendable("[<unserializable>]")
    );
    ensure_eq!(
        pool.map(GIVE_REFUSABLE, [0, 99], Some(2)),
        Err(PoolError::Task(
            TaskError::new("ValueError", "99").raised_in(before)
        ))
    );
    let got: Vec<Result<Refusable, PoolError>> = pool
        .imap(GIVE_REFUSABLE, [1, 0, 2], Some(1))
        .map_err(err("imap"))?
        .collect();
    ensure_eq!(
        got,
        vec![
            Ok(Refusable::Fine(1)),
            unsendable("<unserializable>"),
            Ok(Refusable::Fine(2))
        ]
    );
    ensure_eq!(pool.apply(PID, ()), Ok(before), "a different worker");
    Ok(())
}

/// A task that exits its worker process fails with `WorkerLost` (naming the worker and its
/// exit status), the error callback runs once, and a replacement worker runs later tasks.
fn worker_exit_mid_task_is_worker_lost() -> Outcome {
    let pool = pool(1)?;
    let first = pool.apply(PID, ()).map_err(err("apply"))?;
    let errors = Arc::new(Mutex::new(Vec::new()));
    let e = Arc::clone(&errors);
    let h = pool
        .apply_async(
            EXIT,
            7,
            None,
            Some(Box::new(move |err: &PoolError| {
                e.lock().expect("errors").push(err.clone());
            })),
        )
        .map_err(err("apply_async"))?;
    let r = h.get(Some(PATIENCE));
    ensure!(is_worker_lost(&r, first, &["7"]), "got {r:?}");
    if let Err(e) = &r {
        ensure_eq!(e.python_type(), "WorkerLostError");
    }
    ensure_eq!(h.successful(), Ok(false));
    ensure_eq!(errors.lock().expect("errors").len(), 1);
    let second = pool.apply(PID, ()).map_err(err("apply after WorkerLost"))?;
    ensure!(second != first, "the dead worker {first} ran a task");
    ensure!(
        poll_until(PATIENCE, || pool.worker_pids() == vec![second]),
        "worker_pids {:?}, expected [{second}]",
        pool.worker_pids()
    );
    ensure!(
        proc_state(first).is_none(),
        "the dead worker {first} was not reaped"
    );
    // The replacement serves further tasks, the pool closes and joins normally.
    ensure_eq!(
        pool.map(DIE_AT, (0..10).map(|i| (i, u32::MAX)), None),
        Ok((0..10).collect())
    );
    pool.close();
    pool.join().map_err(err("join"))?;
    wait_reaped(&[second])
}

/// A task that SIGKILLs its own worker fails with `WorkerLost` (status names the signal);
/// the pool keeps working with a replacement.
fn worker_sigkill_mid_task_is_worker_lost() -> Outcome {
    let pool = pool(1)?;
    let first = pool.apply(PID, ()).map_err(err("apply"))?;
    let r = pool.apply(SIGKILL_SELF, ());
    ensure!(is_worker_lost(&r, first, &["SIGKILL", "9"]), "got {r:?}");
    let second = pool.apply(PID, ()).map_err(err("apply after WorkerLost"))?;
    ensure!(second != first, "the dead worker {first} ran a task");
    // Twice in a row, to see the replacement replaced too.
    let r = pool.apply(SIGKILL_SELF, ());
    ensure!(is_worker_lost(&r, second, &["SIGKILL", "9"]), "got {r:?}");
    let third = pool
        .apply(PID, ())
        .map_err(err("apply after second WorkerLost"))?;
    ensure!(
        third != second && third != first,
        "a dead worker ran a task"
    );
    Ok(())
}

/// A worker lost in the middle of `map` fails the map (and only calls its error callback);
/// in `imap` with chunksize 1 only that item fails and iteration goes on; the pool works on.
fn worker_lost_in_map_and_imap() -> Outcome {
    let pool = pool(2)?;
    let calls = Arc::new(AtomicU32::new(0));
    let errors = Arc::new(AtomicU32::new(0));
    let (c, e) = (Arc::clone(&calls), Arc::clone(&errors));
    let r = pool
        .map_async(
            DIE_AT,
            (0..30).map(|i| (i, 13)),
            Some(1),
            Some(Box::new(move |_| {
                c.fetch_add(1, Ordering::SeqCst);
            })),
            Some(Box::new(move |err: &PoolError| {
                if matches!(err, PoolError::WorkerLost { .. }) {
                    e.fetch_add(1, Ordering::SeqCst);
                }
            })),
        )
        .map_err(err("map_async"))?
        .get(Some(PATIENCE));
    ensure!(
        matches!(r, Err(PoolError::WorkerLost { .. })),
        "map_async: {r:?}"
    );
    ensure_eq!(
        (calls.load(Ordering::SeqCst), errors.load(Ordering::SeqCst)),
        (0, 1)
    );

    let items: Vec<Result<u32, PoolError>> = pool
        .imap(DIE_AT, (0..20).map(|i| (i, 5)), Some(1))
        .map_err(err("imap"))?
        .collect();
    ensure_eq!(items.len(), 20, "imap items: {items:?}");
    for (i, item) in items.iter().enumerate() {
        if i == 5 {
            ensure!(
                matches!(item, Err(PoolError::WorkerLost { .. })),
                "item 5: {item:?}"
            );
        } else {
            ensure_eq!(item, &Ok(i as u32));
        }
    }
    ensure_eq!(
        pool.map(DIE_AT, (0..40).map(|i| (i, u32::MAX)), None),
        Ok((0..40).collect())
    );
    ensure!(
        poll_until(PATIENCE, || pool.worker_pids().len() == 2),
        "worker_pids {:?}",
        pool.worker_pids()
    );
    Ok(())
}

/// After `close`, a worker lost mid-task is still replaced while work is pending, so `join`
/// completes every queued task instead of hanging.
fn worker_lost_after_close_is_replaced() -> Outcome {
    let pool = pool(1)?;
    let first = pool.worker_pids();
    let dying = pool
        .apply_async(EXIT, 7, None, None)
        .map_err(err("apply_async"))?;
    let rest: Vec<AsyncResult<u32>> = (0..5)
        .map(|_| pool.apply_async(PID, (), None, None))
        .collect::<Result<_, _>>()
        .map_err(err("apply_async"))?;
    pool.close();
    pool.join().map_err(err("join"))?;
    let r = dying.get(Some(Duration::ZERO));
    ensure!(is_worker_lost(&r, first[0], &["7"]), "got {r:?}");
    for h in &rest {
        let pid = h.get(Some(Duration::ZERO)).map_err(err("queued task"))?;
        ensure!(pid != first[0], "the dead worker ran a task");
    }
    ensure!(
        pool.worker_pids().is_empty(),
        "workers left after join: {:?}",
        pool.worker_pids()
    );
    Ok(())
}

/// A callback that panics does not take the result-handler thread with it: its result is
/// still delivered, and later results and callbacks are too.
fn panicking_callback_does_not_stop_results() -> Outcome {
    let pool = pool(1)?;
    let fired = Arc::new(AtomicU32::new(0));
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| eprintln!("(an expected callback panic)")));
    let outcome = (|| -> Outcome {
        let h = pool
            .apply_async(PID, (), Some(Box::new(|_| panic!("callback boom"))), None)
            .map_err(err("apply_async"))?;
        let pid = h.get(Some(PATIENCE)).map_err(err("get"))?;
        let e = pool
            .apply_async(
                FAIL,
                ("ValueError".into(), "x".into()),
                None,
                Some(Box::new(|_| panic!("error callback boom"))),
            )
            .map_err(err("apply_async"))?;
        ensure!(
            matches!(e.get(Some(PATIENCE)), Err(PoolError::Task(_))),
            "error result"
        );
        let f = Arc::clone(&fired);
        let m = pool
            .map_async(
                PID,
                [(), ()],
                None,
                Some(Box::new(move |_| {
                    f.fetch_add(1, Ordering::SeqCst);
                })),
                None,
            )
            .map_err(err("map_async"))?;
        ensure_eq!(m.get(Some(PATIENCE)), Ok(vec![pid, pid]));
        Ok(())
    })();
    std::panic::set_hook(previous);
    outcome?;
    ensure_eq!(fired.load(Ordering::SeqCst), 1);
    Ok(())
}

// ---- timeouts ----

/// `get(timeout)` on a task that cannot finish yet is `Timeout` (and `successful` is
/// `NotReady`, `wait(timeout)` returns); once the test lets the task finish, `get` returns
/// the value, repeatably.
fn get_timeout_then_value() -> Outcome {
    let dir = TempDir::new("timeout");
    let pool = pool(1)?;
    let h = start_blocked(&pool, &dir, "a", 42)?;
    let t = Instant::now();
    ensure_eq!(
        h.get(Some(Duration::from_millis(50))),
        Err(PoolError::Timeout)
    );
    ensure!(
        t.elapsed() >= Duration::from_millis(50),
        "get returned early: {:?}",
        t.elapsed()
    );
    ensure_eq!(PoolError::Timeout.python_type(), "TimeoutError");
    ensure_eq!(h.get(Some(Duration::ZERO)), Err(PoolError::Timeout));
    ensure!(!h.ready(), "ready before the gate opened");
    ensure_eq!(h.successful(), Err(PoolError::NotReady));
    h.wait(Some(Duration::from_millis(10)));
    ensure!(!h.ready(), "ready after wait, before the gate opened");
    open_gate(&dir, "a")?;
    ensure_eq!(h.get(None), Ok(42));
    ensure!(h.ready(), "not ready after get");
    ensure_eq!(h.successful(), Ok(true));
    ensure_eq!(h.get(Some(Duration::ZERO)), Ok(42), "get is repeatable");
    Ok(())
}

/// `next_timeout` on `imap` times out while the first item is blocked, then yields every
/// value in order.
fn imap_next_timeout_then_values() -> Outcome {
    let dir = TempDir::new("imap-timeout");
    let pool = pool(2)?;
    let gate = dir.file("gate");
    let mut it = pool
        .imap(
            WAIT_GATE,
            (0..4).map(|v| (String::new(), gate.clone(), v)),
            None,
        )
        .map_err(err("imap"))?;
    ensure_eq!(
        it.next_timeout(Some(Duration::from_millis(30))),
        Err(PoolError::Timeout)
    );
    std::fs::write(&gate, b"").map_err(err("open gate"))?;
    for v in 0..4 {
        ensure_eq!(it.next_timeout(Some(PATIENCE)), Ok(Some(v)));
    }
    ensure_eq!(it.next_timeout(Some(Duration::ZERO)), Ok(None));
    Ok(())
}

/// A timeout too large to add to the clock means "no limit", not a panic (Python accepts
/// any float timeout).
fn huge_timeouts_do_not_panic() -> Outcome {
    let pool = pool(1)?;
    let h = pool
        .apply_async(PID, (), None, None)
        .map_err(err("apply_async"))?;
    let pid = h.get(None).map_err(err("get"))?;
    ensure_eq!(h.get(Some(Duration::MAX)), Ok(pid));
    h.wait(Some(Duration::MAX));
    let mut it = pool.imap(PID, [()], None).map_err(err("imap"))?;
    ensure_eq!(it.next_timeout(Some(Duration::MAX)), Ok(Some(pid)));
    ensure_eq!(it.next_timeout(Some(Duration::MAX)), Ok(None));
    Ok(())
}

/// A worker killed from outside while idle is replaced, and the pool keeps its size.
fn idle_worker_killed_is_replaced() -> Outcome {
    let pool = pool(2)?;
    let pids = pool.worker_pids();
    ensure_eq!(pids.len(), 2);
    let victim = pids[0];
    kill(Pid::from_raw(victim as i32), Signal::SIGKILL).map_err(err("kill"))?;
    ensure!(
        poll_until(PATIENCE, || {
            let now = pool.worker_pids();
            now.len() == 2 && !now.contains(&victim)
        }),
        "worker_pids {:?} after killing {victim}",
        pool.worker_pids()
    );
    ensure!(
        proc_state(victim).is_none(),
        "the killed worker was not reaped"
    );
    let ran: HashSet<u32> = pool
        .map(PID, vec![(); 50], Some(1))
        .map_err(err("map"))?
        .into_iter()
        .collect();
    ensure!(!ran.contains(&victim), "the killed worker ran a task");
    Ok(())
}

// ---- initializer ----

/// The initializer runs exactly once in every worker, before that worker's first task,
/// including in the replacements `maxtasksperchild` starts.
fn initializer_runs_once_per_worker_first() -> Outcome {
    let dir = TempDir::new("init");
    let pool = Pool::builder()
        .processes(2)
        .maxtasksperchild(3)
        .initializer(INIT_RECORD, dir.path().to_string_lossy().into_owned())
        .build()
        .map_err(err("build"))?;
    let out = pool
        .map(INIT_PID, vec![(); 20], Some(1))
        .map_err(err("map"))?;
    let mut per_pid: HashMap<u32, u32> = HashMap::new();
    for (pid, runs) in &out {
        ensure_eq!(*runs, 1, "initializer runs seen by a task in worker {pid}");
        *per_pid.entry(*pid).or_default() += 1;
    }
    ensure!(
        per_pid.len() >= 7,
        "20 tasks, at most 3 per worker, on {} workers",
        per_pid.len()
    );
    let recorded: HashSet<String> = dir.names().into_iter().collect();
    for pid in per_pid.keys() {
        ensure!(
            recorded.contains(&pid.to_string()),
            "no initializer record for worker {pid}"
        );
        let lines = std::fs::read_to_string(dir.file(&pid.to_string())).map_err(err("read"))?;
        ensure_eq!(
            lines.lines().count(),
            1,
            "initializer runs recorded for worker {pid}"
        );
    }
    pool.close();
    pool.join().map_err(err("join"))
}

// ---- orphans ----

/// The helper process: builds a pool of 2, keeps one worker busy, prints the worker pids,
/// then waits until its stdin closes (the test kills it first).
fn orphan_child(dir: &str) -> ! {
    let Ok(pool) = Pool::new(2) else {
        println!("ERROR cannot build the pool");
        std::process::exit(1);
    };
    let gate = Path::new(dir).join("never").to_string_lossy().into_owned();
    let marker = Path::new(dir).join("busy").to_string_lossy().into_owned();
    let _busy = pool.apply_async(WAIT_GATE, (marker, gate, 0), None, None);
    let pids: Vec<String> = pool.worker_pids().iter().map(u32::to_string).collect();
    println!("PIDS {}", pids.join(" "));
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let mut sink = String::new();
    while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
    std::process::exit(0);
}

/// When the process that owns a pool is SIGKILLed, its workers die too (parent-death
/// signal) instead of lingering as orphans. This process becomes a child subreaper first,
/// so the orphans are reparented here and can be reaped; a zombie counts as dead.
fn no_orphan_workers_after_parent_killed() -> Outcome {
    let dir = TempDir::new("orphans");
    nix::sys::prctl::set_child_subreaper(true).map_err(err("PR_SET_CHILD_SUBREAPER"))?;
    let exe = std::env::current_exe().map_err(err("current_exe"))?;
    let mut child = Command::new(exe)
        .arg("--orphan-child")
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(err("spawn the helper"))?;
    let child_pid = child.id();
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    let pids: Vec<u32> = line
        .strip_prefix("PIDS ")
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    let outcome = (|| -> Outcome {
        ensure_eq!(pids.len(), 2, "helper said {line:?}");
        ensure!(
            pids.iter()
                .all(|p| proc_alive(*p) && proc_ppid(*p) == Some(child_pid)),
            "workers {pids:?} are not live children of the helper {child_pid}"
        );
        ensure!(
            poll_until(PATIENCE, || dir.path().join("busy").exists()),
            "the helper's task never started"
        );
        kill(Pid::from_raw(child_pid as i32), Signal::SIGKILL).map_err(err("kill the helper"))?;
        let status = child.wait().map_err(err("wait for the helper"))?;
        ensure!(!status.success(), "helper exited: {status}");
        let dead = poll_until(PATIENCE, || {
            pids.iter().all(|p| {
                // Reap it if it was reparented to this process; ECHILD otherwise.
                let _ = waitpid(Pid::from_raw(*p as i32), Some(WaitPidFlag::WNOHANG));
                !proc_alive(*p)
            })
        });
        ensure!(
            dead,
            "orphan workers still alive {PATIENCE:?} after their parent was killed: {:?}",
            pids.iter()
                .map(|p| (p, proc_state(*p), proc_ppid(*p)))
                .collect::<Vec<_>>()
        );
        Ok(())
    })();
    // Whatever happened, leave nothing behind.
    let _ = child.kill();
    let _ = child.wait();
    for p in &pids {
        if proc_alive(*p) && proc_ppid(*p) == Some(std::process::id()) {
            let _ = kill(Pid::from_raw(*p as i32), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(*p as i32), None);
        }
    }
    let _ = nix::sys::prctl::set_child_subreaper(false);
    outcome
}
