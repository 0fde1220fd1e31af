//! Tearing a pool down after a program (spec/PROTOCOL.md §5 rules 5 and 6): release this
//! process's threads blocked on the coordinator, terminate and join the pool within a time
//! limit, and make sure no child process outlives it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::coord::abort_connections;
use crate::types::{Failure, panic_message};

/// How long terminating and joining a pool may take before the run is answered `error`.
pub const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(15);

/// Tears `pool` down: wakes every thread of this process blocked on the coordinator
/// ([`abort_connections`]: a callback held on a gate that will never open would otherwise
/// keep `join` waiting), runs `terminate` (your `pool.terminate(); pool.join()`, which also
/// drops the pool) on a helper thread for at most [`TEARDOWN_TIMEOUT`], then kills every
/// child process of this process still alive ([`kill_children`]). Each problem (`terminate`
/// returned an error, panicked or timed out; a child outlived the pool) is printed on stderr
/// and returned, joined with `; `, as the failure to answer with.
///
/// Reports from tasks and callbacks of this process stay refused until
/// [`close_connections`](crate::close_connections) (which `serve` calls
/// before answering).
///
/// `terminate`'s error is your pool's, as the message shown after `pool teardown raised: `.
/// It stays a plain `String`, not an error type of this crate: the error is yours, any pool's
/// converts with `to_string()`, and a closure that only returns `Ok(())` needs no annotation.
pub fn teardown<P: Send + 'static>(
    pool: P,
    terminate: impl FnOnce(P) -> Result<(), String> + Send + 'static,
) -> Result<(), Failure> {
    abort_connections();
    let mut problems = Vec::new();
    let (tx, rx) = mpsc::channel();
    let work = move || {
        let r = catch_unwind(AssertUnwindSafe(|| terminate(pool)));
        let _ = tx.send(r);
    };
    let spawned = thread::Builder::new()
        .name("poolspec-teardown".into())
        .spawn(work);
    if let Err(e) = spawned {
        problems.push(format!("cannot start the teardown thread: {e}"));
    } else {
        let deadline = Instant::now() + TEARDOWN_TIMEOUT;
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(Ok(Ok(()))) => break,
                Ok(Ok(Err(e))) => {
                    problems.push(format!("pool teardown raised: {e}"));
                    break;
                }
                Ok(Err(p)) => {
                    problems.push(format!(
                        "pool teardown panicked: {}",
                        panic_message(p.as_ref())
                    ));
                    break;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    problems.push("the teardown thread vanished".into());
                    break;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if Instant::now() >= deadline {
                        problems.push(format!(
                            "pool.terminate()/join() did not finish within {} s",
                            TEARDOWN_TIMEOUT.as_secs()
                        ));
                        break;
                    }
                    // A thread that was connecting while the first abort ran may be
                    // blocked by now.
                    abort_connections();
                }
            }
        }
    }
    problems.extend(kill_children());
    let name = program_name();
    for p in &problems {
        eprintln!("{name}: {p}");
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(problems.join("; ")))
    }
}

/// Kills (SIGKILL) every child process of this process, alive or not yet reaped, and says
/// so for each: `worker pid N outlived the pool; killed`. After a pool is joined there
/// should be none.
pub fn kill_children() -> Vec<String> {
    let mut problems = Vec::new();
    for pid in children() {
        problems.push(format!("worker pid {pid} outlived the pool; killed"));
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    problems
}

/// Pids of this process's children (alive or not yet reaped), from
/// `/proc/self/task/*/children` (Linux).
pub fn children() -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The file name this process was started as, for messages on stderr.
pub(crate) fn program_name() -> String {
    std::env::args_os()
        .next()
        .as_deref()
        .map(std::path::Path::new)
        .and_then(std::path::Path::file_name)
        .map_or_else(
            || "poolspec-driver".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_teardown() {
        let _lock = crate::connections_lock();
        assert_eq!(teardown(7u8, |_| Ok(())), Ok(()));
        crate::close_connections();
    }

    #[test]
    fn teardown_problems_are_failures() {
        let _lock = crate::connections_lock();
        let err = teardown((), |()| Err("Pool not running".into())).unwrap_err();
        assert_eq!(err.message, "pool teardown raised: Pool not running");
        let err = teardown((), |()| panic!("no")).unwrap_err();
        assert_eq!(err.message, "pool teardown panicked: no");
        crate::close_connections();
    }
}
