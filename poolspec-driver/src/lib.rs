//! Write a [poolspec] conformance driver for a Rust process pool: you write the glue to your
//! pool, this crate does the rest.
//!
//! A *driver* is the small program the poolspec runner starts to run case programs on one
//! pool implementation (spec/PROTOCOL.md). This crate speaks the protocol: the
//! `hello`/`run`/`stop` loop on stdin and stdout ([`serve`]), the coordinator client every
//! process and thread reports through ([`Coord`]), the task vocabulary and callbacks
//! ([`run_task`], [`run_callback`]), programs as typed values ([`Program`], [`Step`]), the
//! step loop ([`run_steps`], [`run_program`]) and the teardown ([`teardown`]). What is left
//! is what only you know: how to make your pool, how to submit a task to it, and what its
//! results and errors look like.
//!
//! # A complete driver
//!
//! Here for a made-up `mypool` whose pools run a named function in worker processes and whose
//! workers, like pool-ref's, are re-executions of the driver binary (so the task function is
//! registered before anything else happens in `main`):
//!
//! ```no_run
//! use poolspec_driver::{
//!     Descriptor, Driver, Exception, Failure, Implementation, MakeError, Outcome, Run, Step,
//!     TaskResult, run_program, run_task, serve,
//! };
//! # mod mypool {
//! #     pub struct Pool;
//! #     pub struct Error(pub String);
//! #     impl Pool {
//! #         pub fn new(_processes: usize) -> Result<Pool, Error> { Ok(Pool) }
//! #         pub fn apply<A, R>(&self, _f: fn(A) -> Result<R, Error>, _args: A) -> Result<R, Error> { todo!() }
//! #         pub fn map<A, R>(&self, _f: fn(A) -> Result<R, Error>, _items: Vec<A>) -> Result<Vec<R>, Error> { todo!() }
//! #         pub fn close(&self) {}
//! #         pub fn join(&self) -> Result<(), Error> { Ok(()) }
//! #         pub fn terminate(&self) {}
//! #     }
//! #     pub fn init_worker() {}
//! # }
//!
//! /// The one task function the pool runs: the task vocabulary of spec/README.md §4.
//! fn task((desc, extra): (Descriptor, Vec<serde_json::Value>)) -> Result<serde_json::Value, mypool::Error> {
//!     match run_task(&desc, extra) {
//!         TaskResult::Returned(v) => Ok(v),
//!         TaskResult::Raised(e) => Err(mypool::Error(e.to_string())),
//!         // (A pool with native byte strings returns them; this one has only JSON.)
//!         TaskResult::Bytes(b) => Ok(poolspec_driver::bytes_summary(&b)),
//!         TaskResult::Unserializable | TaskResult::Stopped => Ok(serde_json::Value::Null),
//!     }
//! }
//!
//! /// How the pool's errors show in Python terms (`{type, message}`).
//! fn exception(e: mypool::Error) -> Exception {
//!     let (kind, message) = e.0.split_once(": ").unwrap_or(("RuntimeError", &e.0));
//!     Exception::new(kind, message)
//! }
//!
//! struct MyDriver;
//!
//! impl Driver for MyDriver {
//!     fn implementation(&self) -> Implementation {
//!         Implementation::new("mypool", "0.1.0")
//!     }
//!
//!     fn capabilities(&self) -> Vec<String> {
//!         // Declare only what you implement: cases needing anything else are `unsupported`.
//!         let ops = ["apply", "map", "close", "join", "terminate", "open", "await"];
//!         // (`processes` only: `default_processes` would need a default to report.)
//!         ops.iter().chain(&["processes", "task_exit"]).map(|s| s.to_string()).collect()
//!     }
//!
//!     fn run_program(&mut self, run: &Run) -> Result<(), Failure> {
//!         run_program(
//!             run,
//!             |params| {
//!                 // A count this pool cannot take is refused as Python's Pool refuses it:
//!                 // an outcome of the case (`construct`), not a driver failure.
//!                 let n = params.processes.unwrap_or(2);
//!                 if n < 1 {
//!                     let e = Exception::new("ValueError", "Number of processes must be at least 1");
//!                     return Err(MakeError::Refused(e));
//!                 }
//!                 mypool::Pool::new(n as usize).map_err(|e| Failure::new(e.0).into())
//!             },
//!             |pool, step| {
//!                 let coord = &run.coord;
//!                 Ok(match step {
//!                     Step::Apply(s) => {
//!                         let call = (Descriptor::new(&s.task, coord), s.args.clone());
//!                         pool.apply(task, call).map_err(exception).into()
//!                     }
//!                     Step::Map(m) => {
//!                         let items = m.tasks.iter().map(|t| (Descriptor::new(t, coord), vec![]));
//!                         let all = pool.map(task, items.collect());
//!                         all.map(serde_json::Value::from).map_err(exception).into()
//!                     }
//!                     Step::Close(_) => { pool.close(); Outcome::none() }
//!                     Step::Join(_) => pool.join().map(|()| serde_json::Value::Null).map_err(exception).into(),
//!                     Step::Terminate(_) => { pool.terminate(); Outcome::none() }
//!                     other => return Err(Failure::new(format!("op {} is not implemented", other.op()))),
//!                 })
//!             },
//!             |pool| { pool.terminate(); pool.join().map_err(|e| e.0) },
//!         )
//!     }
//! }
//!
//! fn main() {
//!     mypool::init_worker(); // in a worker process this runs the worker loop and exits
//!     std::process::exit(serve(MyDriver));
//! }
//! ```
//!
//! Then, from a poolspec checkout, the smoke check (handshake and five trivial cases, each
//! mistake explained) and the suite:
//!
//! ```sh
//! cargo xtask conformance smoke --impl 'exec:/path/to/target/debug/my-driver'
//! cargo xtask conformance --impl 'exec:/path/to/target/debug/my-driver'
//! ```
//!
//! `pool-ref-driver` (pool-ref/src/bin/pool-ref-driver/ in the poolspec repository) is a
//! driver for every op built this way, `rust-ref` in the conformance matrix.
//!
//! # The pieces
//!
//! - **The loop.** [`serve`] claims stdout ([`claim_stdout`]: a stray print anywhere, in the
//!   driver, the pool or a worker that inherits fd 1, lands on stderr), answers `hello` from
//!   [`Driver::implementation`] and [`Driver::capabilities`] (refusing another protocol
//!   version), reads each `run` into a [`Run`] and answers `done` or `error` (a panic is an
//!   `error` too), and exits on `stop` or end of input. [`serve_io`] is the same loop on any
//!   reader and writer.
//! - **Steps.** [`run_program`] makes the pool (reporting `construct`: a pool that refuses
//!   its arguments is an outcome, [`MakeError::Refused`]), runs each step (reporting `call`
//!   and `return`; `open` and `await` need no pool and are done for you) and tears the pool
//!   down.
//!   [`Handles`] keeps the AsyncResults and iterators later steps use. An exception of an
//!   operation is an [`Outcome::Raised`], never a [`Failure`]: failures are for what the
//!   driver cannot do.
//! - **Tasks and callbacks.** Give your pool one task function taking a [`Descriptor`] and the
//!   extra arguments, and call [`run_task`] in it; in each callback, call [`run_callback`].
//!   They report to the coordinator from whichever process and thread they run in, and stop
//!   quietly when the case is over. [`Exception::from_spec`] builds the exceptions a case
//!   asks for, as Python shows them. [`run_task_with`] takes keyword arguments too; the
//!   initializer is a task too ([`Descriptor::initializer`], with the `initargs` as its
//!   arguments); [`blob`] and [`bytes_summary`] make and show the byte strings of `blob` and
//!   `blob_arg` exactly as the Python SDK does.
//! - **The coordinator.** [`Coord`] sends [`Event`]s, one connection per (process, thread),
//!   and reads each acknowledgement before going on.
//!
//! The crate depends on serde, serde_json, nix and thiserror only (it is Linux-only, like
//! poolspec), and not on the poolspec runner: the protocol is the contract.
//!
//! [poolspec]: https://github.com/poolspec/poolspec

// The modules form a line, each using only those before it (no import cycle):
// blob, repr → exception → types → program → coord → tasks → teardown → steps → serve.
mod blob;
mod coord;
mod exception;
mod program;
mod repr;
mod serve;
mod steps;
mod tasks;
mod teardown;
mod types;

pub use blob::{blob, bytes_summary};
pub use coord::{Ack, Coord, CoordError, Event, abort_connections, close_connections, thread_id};
pub use exception::{ERROR_TYPES, ErrorSpec, Exception, NEUTRAL_KINDS};
pub use program::{
    AwaitCond, Blob, Callback, EXTENSION_OP, Ending, ExtensionCall, FEATURES, MapCall, OPS,
    OnHandle, OpenGate, Plain, PoolParams, Program, ProgramError, Step, Submit, Task,
};
pub use repr::{py_bytes_repr, py_float_repr, py_repr, py_repr_str, py_value_repr, truthy};
pub use serve::{Driver, Implementation, PROTOCOL, claim_stdout, serve, serve_io};
pub use steps::{Handle, Handles, MakeError, Run, report_construct, run_program, run_steps};
pub use tasks::{
    Descriptor, TaskResult, reset_process_state, run_callback, run_task, run_task_with,
};
pub use teardown::{TEARDOWN_TIMEOUT, children, kill_children, teardown};
pub use types::{CallbackKind, Failure, HandleKind, Outcome, catch_panic, panic_message};

/// Serializes the tests that use this process's coordinator connections (global state).
#[cfg(test)]
pub(crate) static CONNECTIONS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
pub(crate) fn connections_lock() -> std::sync::MutexGuard<'static, ()> {
    CONNECTIONS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A coordinator for tests: acknowledges every report with `ok` and records it.
#[cfg(test)]
pub(crate) mod fake {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;
    use std::sync::{Arc, Mutex};

    use serde_json::Value;

    use crate::Coord;

    pub(crate) struct FakeCoordinator {
        pub coord: Coord,
        reports: Arc<Mutex<Vec<Value>>>,
        dir: std::path::PathBuf,
    }

    impl FakeCoordinator {
        pub fn start(name: &str) -> FakeCoordinator {
            let dir =
                std::env::temp_dir().join(format!("poolspec-driver-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("coord.sock");
            let _ = std::fs::remove_file(&path);
            let listener = UnixListener::bind(&path).unwrap();
            let reports = Arc::new(Mutex::new(Vec::new()));
            let sink = Arc::clone(&reports);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { return };
                    let sink = Arc::clone(&sink);
                    std::thread::spawn(move || {
                        let mut reader = BufReader::new(stream.try_clone().unwrap());
                        let mut line = String::new();
                        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                            sink.lock()
                                .unwrap()
                                .push(serde_json::from_str(&line).unwrap());
                            if (&stream).write_all(b"{\"ok\":true}\n").is_err() {
                                return;
                            }
                            line.clear();
                        }
                    });
                }
            });
            FakeCoordinator {
                coord: Coord {
                    path: path.to_str().unwrap().to_owned(),
                    token: "T".into(),
                },
                reports,
                dir,
            }
        }

        /// The reports so far, without token, pid and thread.
        pub fn reports(&self) -> Vec<Value> {
            let mut all = self.reports.lock().unwrap().clone();
            for r in &mut all {
                if let Value::Object(m) = r {
                    for k in ["token", "pid", "thread"] {
                        m.remove(k);
                    }
                }
            }
            all
        }
    }

    impl Drop for FakeCoordinator {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
