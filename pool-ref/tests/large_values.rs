//! Large values: arguments and results of any size cross intact, through every submission
//! call, at every size where the way they travel changes (a payload in the task message or
//! attached as a file; a result within a pipe's default capacity or beyond it), and a pool
//! with large tasks queued still terminates at once.
//!
//! `harness = false`: pools re-execute this binary as their workers, so `main` must call
//! `pool_ref::init` before anything else (see `common`).

#[macro_use]
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Outcome;
use pool_ref::{ByteBuf, Pool, PoolError, Registry, TaskError, TaskRef};

const MIB: usize = 1 << 20;

/// Its argument, unchanged.
const ECHO: TaskRef<ByteBuf, ByteBuf> = TaskRef::new("echo");
/// Every byte plus one (a plain `Vec<u8>`: a sequence of integers to serde).
const INCREMENT: TaskRef<Vec<u8>, Vec<u8>> = TaskRef::new("increment");
/// Length and digest of its argument.
const DIGEST: TaskRef<ByteBuf, (u64, u64)> = TaskRef::new("digest");
/// `pattern(n, seed)`, made in the worker.
const MAKE: TaskRef<(u64, u8), ByteBuf> = TaskRef::new("make");

/// FNV-1a: a digest that any changed, lost or reordered byte changes.
fn digest(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// `n` bytes that differ from position to position and from seed to seed.
fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i % 251) as u8 ^ (i >> 12) as u8 ^ seed)
        .collect()
}

fn registry() -> Registry {
    Registry::new()
        .register(ECHO, Ok::<ByteBuf, TaskError>)
        .register(INCREMENT, |mut v: Vec<u8>| {
            v.iter_mut().for_each(|b| *b = b.wrapping_add(1));
            Ok::<_, TaskError>(v)
        })
        .register(DIGEST, |v: ByteBuf| {
            Ok::<_, TaskError>((v.len() as u64, digest(&v)))
        })
        .register(MAKE, |(n, seed): (u64, u8)| {
            Ok::<_, TaskError>(ByteBuf::from(pattern(n as usize, seed)))
        })
}

fn main() {
    pool_ref::init(&registry()); // in a worker process, this never returns
    common::run_checks(checks![
        sixteen_mib_vec_argument_and_result,
        sixteen_mib_bytes_through_every_call,
        sizes_around_every_boundary,
        many_large_tasks_in_flight,
        terminate_with_large_tasks_queued,
    ]);
}

fn pool(n: usize) -> Result<Pool, String> {
    Pool::new(n).map_err(|e| format!("Pool::new({n}): {e}"))
}

fn err<E: std::fmt::Debug>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what} failed: {e:?}")
}

/// A 16 MiB `Vec<u8>` goes to a worker and a different 16 MiB `Vec<u8>` comes back, whole.
fn sixteen_mib_vec_argument_and_result() -> Outcome {
    let pool = pool(1)?;
    let arg = pattern(16 * MIB, 7);
    let want: Vec<u8> = arg.iter().map(|b| b.wrapping_add(1)).collect();
    let got = pool.apply(INCREMENT, arg).map_err(err("apply"))?;
    ensure_eq!(got.len(), 16 * MIB);
    ensure_eq!(digest(&got), digest(&want));
    ensure!(got == want, "the content differs");
    pool.close();
    pool.join().map_err(err("join"))?;
    Ok(())
}

/// 16 MiB byte strings as arguments and results of `apply`, `apply_async` (its callback
/// sees the whole value), `map` (several in one chunk), `imap` and `imap_unordered`.
fn sixteen_mib_bytes_through_every_call() -> Outcome {
    let pool = pool(2)?;
    let arg = ByteBuf::from(pattern(16 * MIB, 1));
    let got = pool.apply(ECHO, arg.clone()).map_err(err("apply"))?;
    ensure_eq!(got.len(), arg.len());
    ensure_eq!(digest(&got), digest(&arg));

    let seen = Arc::new(Mutex::new(None));
    let h = {
        let seen = Arc::clone(&seen);
        pool.apply_async(
            ECHO,
            arg.clone(),
            Some(Box::new(move |v: &ByteBuf| {
                *seen.lock().expect("seen") = Some((v.len(), digest(v)));
            })),
            None,
        )
        .map_err(err("apply_async"))?
    };
    let got = h.get(Some(Duration::from_secs(30))).map_err(err("get"))?;
    ensure_eq!(digest(&got), digest(&arg));
    ensure_eq!(*seen.lock().expect("seen"), Some((arg.len(), digest(&arg))));

    // Made in the worker, digested in the worker: each direction on its own.
    let made = pool
        .apply(MAKE, (16 * MIB as u64, 9))
        .map_err(err("apply"))?;
    ensure_eq!(digest(&made), digest(&pattern(16 * MIB, 9)));
    ensure_eq!(
        pool.apply(DIGEST, arg.clone()),
        Ok((arg.len() as u64, digest(&arg)))
    );

    // Three 8 MiB values in one chunk of 24 MiB, and one per chunk.
    let items: Vec<ByteBuf> = (0..3).map(|s| ByteBuf::from(pattern(8 * MIB, s))).collect();
    let want: Vec<u64> = items.iter().map(|v| digest(v)).collect();
    for chunksize in [3, 1] {
        let got = pool
            .map(ECHO, items.clone(), Some(chunksize))
            .map_err(err("map"))?;
        ensure_eq!(got.iter().map(|v| digest(v)).collect::<Vec<_>>(), want);
    }
    let got: Vec<u64> = pool
        .imap(ECHO, items.clone(), Some(2))
        .map_err(err("imap"))?
        .map(|v| v.map(|v| digest(&v)))
        .collect::<Result<_, _>>()
        .map_err(err("imap item"))?;
    ensure_eq!(got, want);
    let mut got: Vec<u64> = pool
        .imap_unordered(ECHO, items, Some(1))
        .map_err(err("imap_unordered"))?
        .map(|v| v.map(|v| digest(&v)))
        .collect::<Result<_, _>>()
        .map_err(err("imap_unordered item"))?;
    let mut want = want;
    got.sort_unstable();
    want.sort_unstable();
    ensure_eq!(got, want);
    pool.close();
    pool.join().map_err(err("join"))?;
    Ok(())
}

/// Bytes around a byte string of `n` bytes in a task's payload or a result record: the
/// record header (21) or nothing, the value list's count (4), and MessagePack's bin header
/// (2, 3 or 5 bytes).
fn framed(n: usize, record: bool) -> usize {
    let bin = match n {
        0..=255 => 2,
        256..=65535 => 3,
        _ => 5,
    };
    n + bin + 4 + if record { 21 } else { 0 }
}

/// The byte string whose framed size is `size` (see [`framed`]).
fn fitting(size: usize, record: bool) -> usize {
    (size.saturating_sub(40)..=size)
        .rev()
        .find(|&n| framed(n, record) <= size)
        .unwrap_or(0)
}

/// Byte strings of exactly, one less than and one more than each size where the way a value
/// travels changes: a task's payload in its message up to 64 KiB, attached beyond; a result
/// record within a pipe's default capacity and the reader's buffer (64 KiB) or beyond (the
/// pipe is enlarged, the buffer grows); within the 1 MiB that pipe and buffers keep or
/// beyond; a byte string of 64 KiB copied into a buffer, one byte more written straight to
/// a file or the pipe; and MessagePack's own steps from 1- to 2- to 4-byte lengths.
fn sizes_around_every_boundary() -> Outcome {
    let pool = pool(2)?;
    let mut sizes = vec![0, 1, 255, 256, 65535, 65536, 65537, 4 * MIB];
    for (boundary, record) in [(64 * 1024, false), (64 * 1024, true), (MIB, true)] {
        let n = fitting(boundary, record);
        ensure_eq!(
            framed(n, record),
            boundary,
            "no byte string fits {boundary} exactly"
        );
        sizes.extend([n - 1, n, n + 1]);
    }
    for (i, &n) in sizes.iter().enumerate() {
        let arg = ByteBuf::from(pattern(n, i as u8));
        let got = pool.apply(ECHO, arg.clone()).map_err(err("apply"))?;
        ensure!(
            got == arg,
            "{n} bytes came back as {} different bytes",
            got.len()
        );
    }
    // The same sizes as a map, so that results of several sizes queue in the pipes.
    let items: Vec<ByteBuf> = sizes
        .iter()
        .map(|&n| ByteBuf::from(pattern(n, 3)))
        .collect();
    for chunksize in [1, 4] {
        let got = pool
            .map(ECHO, items.clone(), Some(chunksize))
            .map_err(err("map"))?;
        ensure!(
            got == items,
            "map (chunksize {chunksize}) returned other values"
        );
    }
    pool.close();
    pool.join().map_err(err("join"))?;
    Ok(())
}

/// A map of many tasks with attached payloads, more than the workers can take at once: all
/// arrive, in order, from a submission that did not block.
fn many_large_tasks_in_flight() -> Outcome {
    let pool = pool(2)?;
    let items: Vec<ByteBuf> = (0..200u8)
        .map(|s| ByteBuf::from(pattern(100 * 1024 + usize::from(s), s)))
        .collect();
    let want: Vec<(u64, u64)> = items.iter().map(|v| (v.len() as u64, digest(v))).collect();
    let h = pool
        .map_async(DIGEST, items, Some(1), None, None)
        .map_err(err("map_async"))?;
    ensure_eq!(h.get(Some(Duration::from_secs(30))), Ok(want));
    pool.close();
    pool.join().map_err(err("join"))?;
    Ok(())
}

/// Terminating a pool whose queue holds large tasks returns at once; each result is either
/// complete and whole or never completes.
fn terminate_with_large_tasks_queued() -> Outcome {
    let pool = pool(1)?;
    let handles: Vec<_> = (0..8usize)
        .map(|s| pool.apply_async(ECHO, ByteBuf::from(pattern(4 * MIB, s as u8)), None, None))
        .collect::<Result<_, _>>()
        .map_err(err("apply_async"))?;
    let t = Instant::now();
    pool.terminate();
    pool.join().map_err(err("join"))?;
    ensure!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    for (s, h) in handles.iter().enumerate() {
        match h.get(Some(Duration::ZERO)) {
            Ok(v) => ensure!(*v == pattern(4 * MIB, s as u8), "result {s} differs"),
            Err(e) => ensure_eq!(e, PoolError::Timeout),
        }
    }
    Ok(())
}
