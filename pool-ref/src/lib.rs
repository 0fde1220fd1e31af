//! A process pool with the semantics of Python's `multiprocessing.Pool`: tasks run in real
//! worker processes, results come back in the documented orders, and callbacks run on one
//! result-handler thread in the parent, one at a time, before the result becomes ready.
//!
//! Workers are fresh executions of the current binary, so there is no `fork` in a threaded
//! parent. Call [`init`] first thing in `main`: in a worker it runs the worker loop and never
//! returns; in the parent it returns at once. Tasks are functions registered by name in a
//! [`Registry`], and [`TaskRef`]s give those names types.
//!
//! ```
//! use pool_ref::{Pool, Registry, TaskRef, TaskError};
//!
//! const SQUARE: TaskRef<u64, u64> = TaskRef::new("square");
//!
//! fn registry() -> Registry {
//!     Registry::new().register(SQUARE, |x: u64| Ok::<_, TaskError>(x * x))
//! }
//!
//! fn main() -> Result<(), pool_ref::PoolError> {
//!     pool_ref::init(&registry()); // in a worker process, this never returns
//!
//!     let pool = Pool::builder().processes(2).build()?;
//!     assert_eq!(pool.apply(SQUARE, 7)?, 49);
//!     assert_eq!(pool.map(SQUARE, 1..=4, None)?, vec![1, 4, 9, 16]);
//!
//!     let handle = pool.apply_async(SQUARE, 9, Some(Box::new(|v: &u64| println!("got {v}"))), None)?;
//!     assert_eq!(handle.get(None)?, 81); // the callback has already run
//!
//!     let mut unordered: Vec<u64> = pool
//!         .imap_unordered(SQUARE, [3, 1, 2], None)?
//!         .collect::<Result<_, _>>()?;
//!     unordered.sort();
//!     assert_eq!(unordered, vec![1, 4, 9]);
//!
//!     pool.close();
//!     pool.join()
//! }
//! ```
//!
//! | Python | here |
//! |---|---|
//! | `Pool(processes, initializer, initargs, maxtasksperchild)` | [`Pool::builder`] |
//! | `apply`, `apply_async(callback, error_callback)` | [`Pool::apply`], [`Pool::apply_async`] |
//! | `map`, `map_async`, `starmap`, `starmap_async` | [`Pool::map`], [`Pool::map_async`], ... |
//! | `imap`, `imap_unordered`, `next(timeout)` | [`Pool::imap`], [`IMapIter::next_timeout`] |
//! | `AsyncResult.get/wait/ready/successful` | [`AsyncResult`] |
//! | `close`, `join`, `terminate`, leaving `with` | [`Pool::close`], [`Pool::join`], [`Pool::terminate`], `Drop` |
//!
//! Where CPython hangs, this pool reports an error instead: a worker that dies while running
//! a task fails that task's result with [`PoolError::WorkerLost`] and is replaced, and a
//! panicking callback does not stop the result-handler thread.
//!
//! Values cross processes as MessagePack (serde, with `rmp-serde`), where CPython pickles
//! them, and fail as CPython's do: arguments that do not serialize fail the submitted
//! result, not the submitting call, with [`PoolError::Serialization`], the error callback
//! running on the pool's feeder thread (CPython's task handler); a task value that does not
//! serialize fails the result with a [`TaskError`] of kind `MaybeEncodingError`, and the
//! worker carries on.
//!
//! Values have no size limit: an argument or a result of many megabytes crosses whole (one
//! of 16 MiB each way in a few tens of milliseconds). Byte strings should be [`ByteBuf`]s
//! (or fields with `#[serde(with = "serde_bytes")]`): they cross as raw bytes, copied as few
//! times as the channels allow. A plain `Vec<u8>` is, to serde, a sequence of integers:
//! correct at any size, but encoded and decoded one byte at a time.
//!
//! ```
//! use pool_ref::{ByteBuf, Pool, Registry, TaskRef, TaskError};
//!
//! const CHECKSUM: TaskRef<ByteBuf, u64> = TaskRef::new("checksum");
//!
//! fn main() -> Result<(), pool_ref::PoolError> {
//!     pool_ref::init(&Registry::new().register(CHECKSUM, |b: ByteBuf| {
//!         Ok::<_, TaskError>(b.iter().map(|&x| u64::from(x)).sum())
//!     }));
//!     let pool = Pool::new(1)?;
//!     let data = ByteBuf::from(vec![1u8; 16 << 20]);
//!     assert_eq!(pool.apply(CHECKSUM, data)?, 16 << 20);
//!     Ok(())
//! }
//! ```

// The modules form a line, each using only those before it (no import cycle):
// lock, error, memfile → codec → pyrepr → wire → registry → worker → result → queue →
// reports → inner → handler → start → submit → pool.
mod codec;
mod error;
mod handler;
mod inner;
mod lock;
mod memfile;
mod pool;
mod pyrepr;
mod queue;
mod registry;
mod reports;
mod result;
mod start;
mod submit;
mod wire;
mod worker;

pub use error::{PoolError, TaskError};
pub use pool::{Pool, PoolBuilder};
pub use registry::{Registry, TaskRef};
pub use result::{AsyncResult, Callback, ErrorCallback, IMapIter};
pub use serde_bytes::ByteBuf;

/// Call first thing in `main`. In a worker process started by a [`Pool`], runs the worker
/// loop with `registry` and exits; in any other process, returns at once.
pub fn init(registry: &Registry) {
    worker::run_if_worker(registry);
}
