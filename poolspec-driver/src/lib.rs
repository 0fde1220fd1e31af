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
//!     Descriptor, Driver, Exception, Failure, Implementation, Outcome, Run, Step,
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
//!         ops.iter().chain(&["processes", "task_exit"]).map(|s| s.to_string()).collect()
//!     }
//!
//!     fn run_program(&mut self, run: &Run) -> Result<(), Failure> {
//!         run_program(
//!             run,
//!             |params| mypool::Pool::new(params.processes).map_err(|e| Failure::new(e.0)),
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
//! - **Steps.** [`run_program`] makes the pool, runs each step (reporting `call` and
//!   `return`; `open` and `await` need no pool and are done for you) and tears the pool down.
//!   [`Handles`] keeps the AsyncResults and iterators later steps use. An exception of an
//!   operation is an [`Outcome::Raised`], never a [`Failure`]: failures are for what the
//!   driver cannot do.
//! - **Tasks and callbacks.** Give your pool one task function taking a [`Descriptor`] and the
//!   extra arguments, and call [`run_task`] in it; in each callback, call [`run_callback`].
//!   They report to the coordinator from whichever process and thread they run in, and stop
//!   quietly when the case is over. [`Exception::from_spec`] builds the exceptions a case
//!   asks for, as Python shows them.
//! - **The coordinator.** [`Coord`] sends [`Event`]s, one connection per (process, thread),
//!   and reads each acknowledgement before going on.
//!
//! The crate depends on serde, serde_json and nix only (it is Linux-only, like poolspec), and
//! not on the poolspec runner: the protocol is the contract.
//!
//! [poolspec]: https://github.com/poolspec/poolspec

mod coord;
mod program;
mod repr;
mod serve;
mod steps;
mod tasks;
mod teardown;

pub use coord::{Ack, Coord, CoordError, Event, abort_connections, close_connections, thread_id};
pub use program::{
    AwaitCond, Callback, Ending, ErrorSpec, MapCall, OPS, OnHandle, OpenGate, Plain, PoolParams,
    Program, Step, Submit, Task,
};
pub use repr::{py_float_repr, py_repr, py_repr_str, py_value_repr};
pub use serve::{Driver, Failure, Implementation, PROTOCOL, Run, claim_stdout, serve, serve_io};
pub use steps::{
    Handle, HandleKind, Handles, Outcome, catch_panic, panic_message, run_program, run_steps,
};
pub use tasks::{
    CallbackKind, Descriptor, ERROR_TYPES, Exception, NEUTRAL_KINDS, TaskResult, run_callback,
    run_task, truthy,
};
pub use teardown::{TEARDOWN_TIMEOUT, children, kill_children, teardown};

/// Serializes the tests that use this process's coordinator connections (global state).
#[cfg(test)]
pub(crate) static CONNECTIONS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
pub(crate) fn connections_lock() -> std::sync::MutexGuard<'static, ()> {
    CONNECTIONS.lock().unwrap_or_else(|e| e.into_inner())
}
