//! poolspec driver for pool-ref, the Rust reference pool (implementation `rust-ref`).
//!
//! Built on the poolspec-driver crate, which speaks the protocol (spec/PROTOCOL.md): this
//! binary only says how to make a pool_ref::Pool, how to run each step on it, and how
//! pool-ref's values and errors look in Python terms. It mirrors the reference driver,
//! fixtures/drivers/cpython_driver.py, with pool_ref::Pool in place of multiprocessing.Pool.
//!
//! Pool workers are re-executions of this binary: `pool_ref::init` runs the worker loop in
//! them and never returns. (Workers get their stdout from the pool, which points it at
//! stderr; the driver's own stdout is claimed by `serve`.)

mod base64;
mod steps;
mod tasks;

use pool_ref::Pool;
use poolspec_driver::{Driver, Failure, Handles, Implementation, OPS, Run, run_program, serve};

struct PoolRefDriver;

impl Driver for PoolRefDriver {
    fn implementation(&self) -> Implementation {
        Implementation {
            // `processes: null` gets pool-ref's own default.
            default_processes: u32::try_from(Pool::default_processes()).ok(),
            // No `language_version`: pool-ref's semantics are its own, not the compiler's
            // (cases give version ranges for Python), so every case applies.
            ..Implementation::new("pool-ref", env!("CARGO_PKG_VERSION"))
        }
    }

    fn capabilities(&self) -> Vec<String> {
        // Every op but `drop` (what it observes is CPython's garbage collection; dropping a
        // Pool here terminates it, nothing is collected later), and every feature but a start
        // method or `context` (workers are re-executions of this binary, there is no other
        // way to start them) and `python` (exceptions are not Python objects). `inherited`:
        // a re-executed worker never inherits the driver's memory, and says so.
        let features = [
            "initializer",
            "processes",
            "maxtasksperchild",
            "task_exit",
            "kwargs",
            "initargs",
            "blob",
            "iterable_raises",
            "unserializable_func",
            "unserializable_item",
            "inherited",
            "default_processes",
        ];
        OPS.iter()
            .filter(|op| **op != "drop")
            .chain(&features)
            .map(|s| (*s).to_owned())
            .collect()
    }

    fn run_program(&mut self, run: &Run) -> Result<(), Failure> {
        let coord = &run.coord;
        let mut handles = Handles::new();
        run_program(
            run,
            |params| steps::make_pool(params, coord),
            move |pool, step| steps::execute(pool, coord, step, &mut handles),
            |pool| {
                pool.terminate();
                pool.join().map_err(|e| e.to_string())
            },
        )
    }
}

fn main() {
    // In a pool worker (a re-execution of this binary) this runs the worker loop and exits.
    pool_ref::init(&tasks::registry());
    // Callbacks that "raise" do so by panicking, on purpose. The default hook would capture
    // and print a backtrace for each (RUST_BACKTRACE is often set), which takes long enough
    // to delay the result a case observes; one line on stderr is all a reader needs.
    std::panic::set_hook(Box::new(|info| eprintln!("pool-ref-driver: {info}")));
    std::process::exit(serve(PoolRefDriver));
}
