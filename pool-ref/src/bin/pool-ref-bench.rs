//! Benchmarks of `pool-ref`, shaped like `fixtures/bench/cpython_pool_bench.py` so the two
//! can be compared side by side (`cargo xtask bench-pool` does that).
//!
//! Prints one JSON object per measurement on stdout:
//! `{"impl":"rust-ref","bench":NAME,"method":"reexec","unit":UNIT,"value":MEDIAN,...}`.
//! Latencies are medians of single calls; throughputs are medians over repetitions of a
//! whole batch (for the 16 MiB round trips, over single calls). Progress goes to stderr.
//!
//! Usage: `pool-ref-bench [--quick] [--only NAME[,NAME...]]`.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use nix::fcntl::{FcntlArg, fcntl};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use pool_ref::{ByteBuf, Pool, PoolError, Registry, TaskError, TaskRef};
use serde_json::{Value, json};

const IDENT: TaskRef<u64, u64> = TaskRef::new("ident");
const IDENT_BYTES: TaskRef<ByteBuf, ByteBuf> = TaskRef::new("ident_bytes");

fn registry() -> Registry {
    Registry::new()
        .register(IDENT, Ok::<u64, TaskError>)
        .register(IDENT_BYTES, Ok::<ByteBuf, TaskError>)
}

/// The echo child of the raw round-trip benchmarks (its first argument).
const ECHO_FLAG: &str = "--bench-echo";

/// The size of the large values of `bytes_16m_rtt` and `pipe_16m_rtt`.
const LARGE: usize = 16 << 20;

/// Sizes of one run; `--quick` shrinks all of them.
#[derive(Debug, Clone, Copy)]
struct Params {
    start_iters: usize,
    apply_warmup: usize,
    apply_iters: usize,
    map_tasks: usize,
    map_reps: usize,
    map_default_reps: usize,
    async_tasks: usize,
    async_reps: usize,
    warmup_tasks: usize,
    raw_iters: usize,
    large_warmup: usize,
    large_iters: usize,
}

const FULL: Params = Params {
    start_iters: 10,
    apply_warmup: 200,
    apply_iters: 2000,
    map_tasks: 100_000,
    map_reps: 3,
    map_default_reps: 5,
    async_tasks: 20_000,
    async_reps: 3,
    warmup_tasks: 2000,
    raw_iters: 20_000,
    large_warmup: 2,
    large_iters: 10,
};

const QUICK: Params = Params {
    start_iters: 3,
    apply_warmup: 50,
    apply_iters: 300,
    map_tasks: 10_000,
    map_reps: 1,
    map_default_reps: 2,
    async_tasks: 2000,
    async_reps: 1,
    warmup_tasks: 200,
    raw_iters: 2000,
    large_warmup: 1,
    large_iters: 3,
};

const ALL: &[&str] = &[
    "start_shutdown",
    "start_apply_shutdown",
    "apply_rtt",
    "map_cs1",
    "map_default",
    "imap_unordered_cs1",
    "apply_async_cb",
    "bytes_16m_rtt",
    "pipe_rtt",
    "seqpacket_rtt",
    "pipe_16m_rtt",
];

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    // Workers are re-executions of this binary: in a worker this never returns.
    pool_ref::init(&registry());

    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(ECHO_FLAG) {
        let echoed = match args.get(1).map(String::as_str) {
            Some("bulk") => echo_bulk(),
            how => echo(how == Some("sock")),
        };
        return match echoed {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(1),
        };
    }
    let mut params = FULL;
    let mut only: Option<Vec<String>> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => params = QUICK,
            "--only" => {
                only = it.next().map(|s| s.split(',').map(str::to_owned).collect());
            }
            "-h" | "--help" => {
                println!(
                    "usage: pool-ref-bench [--quick] [--only NAME[,NAME...]]\nbenchmarks: {}",
                    ALL.join(", ")
                );
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("pool-ref-bench: unknown argument {other:?} (try --help)");
                return ExitCode::from(2);
            }
        }
    }
    let wanted = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == name));
    let mut failed = false;
    for &name in ALL {
        if !wanted(name) {
            continue;
        }
        eprintln!("pool-ref-bench: {name}");
        let outcome = match name {
            "start_shutdown" => start_shutdown(&params, false),
            "start_apply_shutdown" => start_shutdown(&params, true),
            "apply_rtt" => apply_rtt(&params),
            "map_cs1" => map(&params, Some(1)),
            "map_default" => map(&params, None),
            "imap_unordered_cs1" => imap_unordered(&params),
            "apply_async_cb" => apply_async_cb(&params),
            "bytes_16m_rtt" => bytes_rtt(&params),
            "pipe_rtt" => raw_rtt(&params, false),
            "seqpacket_rtt" => raw_rtt(&params, true),
            "pipe_16m_rtt" => raw_bulk_rtt(&params, None).and_then(|()| {
                // Also through pipes enlarged as pool-ref enlarges its report pipes.
                raw_bulk_rtt(&params, Some(1 << 20))
            }),
            _ => Ok(()),
        };
        if let Err(e) = outcome {
            eprintln!("pool-ref-bench: {name} failed: {e}");
            failed = true;
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

// ---------------------------------------------------------------------------------------
// Statistics and output

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Prints one measurement: the median of `samples`, with spread.
fn emit(bench: &str, unit: &str, mut samples: Vec<f64>, extra: Value) {
    samples.sort_by(f64::total_cmp);
    let mut line = json!({
        "impl": "rust-ref",
        "bench": bench,
        "method": "reexec",
        "unit": unit,
        "value": quantile(&samples, 0.5),
        "min": samples.first().copied().unwrap_or(f64::NAN),
        "max": samples.last().copied().unwrap_or(f64::NAN),
        "p10": quantile(&samples, 0.1),
        "p90": quantile(&samples, 0.9),
        "n": samples.len(),
    });
    if let (Some(obj), Value::Object(extra)) = (line.as_object_mut(), extra) {
        obj.extend(extra);
    }
    println!("{line}");
}

fn warm(pool: &Pool, p: &Params) -> Result<(), PoolError> {
    let out = pool.map(IDENT, 0..p.warmup_tasks as u64, Some(1))?;
    assert_eq!(out.len(), p.warmup_tasks);
    Ok(())
}

fn check_sum(values: impl IntoIterator<Item = u64>, n: usize) -> BenchResult<()> {
    let n = n as u64;
    let sum: u64 = values.into_iter().sum();
    if sum != n * n.saturating_sub(1) / 2 {
        return Err(format!("wrong results: sum {sum} for 0..{n}").into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Pool benchmarks

/// Create a pool, (optionally one `apply`), close, join. One untimed warm-up iteration.
fn start_shutdown(p: &Params, with_apply: bool) -> BenchResult<()> {
    let sizes: &[usize] = if with_apply { &[2] } else { &[2, 4] };
    for &n in sizes {
        let mut samples = Vec::new();
        for i in 0..=p.start_iters {
            let t = Instant::now();
            let pool = Pool::new(n)?;
            if with_apply {
                assert_eq!(pool.apply(IDENT, 7)?, 7);
            }
            pool.close();
            pool.join()?;
            let dt = t.elapsed();
            drop(pool);
            if i > 0 {
                samples.push(dt.as_secs_f64() * 1e3);
            }
        }
        let bench = if with_apply {
            "start_apply_shutdown"
        } else {
            "start_shutdown"
        };
        emit(bench, "ms", samples, json!({ "procs": n }));
    }
    Ok(())
}

/// `apply(ident, i)` round trips on a warm Pool(2), one sample per call.
fn apply_rtt(p: &Params) -> BenchResult<()> {
    let pool = Pool::new(2)?;
    warm(&pool, p)?;
    let mut samples = Vec::with_capacity(p.apply_iters);
    for i in 0..(p.apply_warmup + p.apply_iters) as u64 {
        let t = Instant::now();
        let v = pool.apply(IDENT, i)?;
        let dt = t.elapsed();
        if v != i {
            return Err(format!("apply returned {v} for {i}").into());
        }
        if i as usize >= p.apply_warmup {
            samples.push(dt.as_secs_f64() * 1e6);
        }
    }
    pool.close();
    pool.join()?;
    emit("apply_rtt", "us", samples, json!({ "procs": 2 }));
    Ok(())
}

/// `map(ident, 0..n, chunksize)` on a warm Pool(2): tasks/s per repetition.
fn map(p: &Params, chunksize: Option<usize>) -> BenchResult<()> {
    let pool = Pool::new(2)?;
    warm(&pool, p)?;
    let reps = if chunksize.is_some() {
        p.map_reps
    } else {
        p.map_default_reps
    };
    let mut samples = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let out = pool.map(IDENT, 0..p.map_tasks as u64, chunksize)?;
        let dt = t.elapsed().as_secs_f64();
        check_sum(out, p.map_tasks)?;
        samples.push(p.map_tasks as f64 / dt);
    }
    pool.close();
    pool.join()?;
    let (bench, cs) = match chunksize {
        Some(c) => ("map_cs1", json!(c)),
        None => ("map_default", Value::Null),
    };
    emit(
        bench,
        "tasks/s",
        samples,
        json!({ "procs": 2, "tasks": p.map_tasks, "chunksize": cs }),
    );
    Ok(())
}

/// `imap_unordered(ident, 0..n, 1)`, consumed to the end: tasks/s.
fn imap_unordered(p: &Params) -> BenchResult<()> {
    let pool = Pool::new(2)?;
    warm(&pool, p)?;
    let mut samples = Vec::new();
    for _ in 0..p.map_reps {
        let t = Instant::now();
        let out: Vec<u64> = pool
            .imap_unordered(IDENT, 0..p.map_tasks as u64, Some(1))?
            .collect::<Result<_, _>>()?;
        let dt = t.elapsed().as_secs_f64();
        check_sum(out, p.map_tasks)?;
        samples.push(p.map_tasks as f64 / dt);
    }
    pool.close();
    pool.join()?;
    emit(
        "imap_unordered_cs1",
        "tasks/s",
        samples,
        json!({ "procs": 2, "tasks": p.map_tasks, "chunksize": 1 }),
    );
    Ok(())
}

/// Submit n `apply_async(ident, i, callback)`, then `get` every handle; the clock stops when
/// the last `get` returns (every callback has run by then).
fn apply_async_cb(p: &Params) -> BenchResult<()> {
    let pool = Pool::new(2)?;
    warm(&pool, p)?;
    let mut samples = Vec::new();
    for _ in 0..p.async_reps {
        let calls = Arc::new(AtomicU64::new(0));
        let sum = Arc::new(AtomicU64::new(0));
        let t = Instant::now();
        let mut handles = Vec::with_capacity(p.async_tasks);
        for i in 0..p.async_tasks as u64 {
            let (calls, sum) = (Arc::clone(&calls), Arc::clone(&sum));
            handles.push(pool.apply_async(
                IDENT,
                i,
                Some(Box::new(move |v: &u64| {
                    calls.fetch_add(1, Ordering::Relaxed);
                    sum.fetch_add(*v, Ordering::Relaxed);
                })),
                None,
            )?);
        }
        for h in &handles {
            h.get(None)?;
        }
        let dt = t.elapsed().as_secs_f64();
        if calls.load(Ordering::Relaxed) != p.async_tasks as u64 {
            return Err("not every callback ran".into());
        }
        check_sum([sum.load(Ordering::Relaxed)], p.async_tasks)?;
        samples.push(p.async_tasks as f64 / dt);
    }
    pool.close();
    pool.join()?;
    emit(
        "apply_async_cb",
        "tasks/s",
        samples,
        json!({ "procs": 2, "tasks": p.async_tasks }),
    );
    Ok(())
}

/// The bytes of the large round trips: every position differs from its neighbours.
fn large_value() -> Vec<u8> {
    (0..LARGE).map(|i| (i % 251) as u8).collect()
}

/// Throughput of a round trip of `LARGE` bytes each way taking `secs`: bytes carried (both
/// ways) per second, in MiB/s.
fn round_trip_mib_s(secs: f64) -> f64 {
    2.0 * LARGE as f64 / (1 << 20) as f64 / secs
}

/// `apply(ident_bytes, 16 MiB)` on a warm Pool(2): the argument goes to a worker and comes
/// back as the result. MiB/s, both directions counted (32 MiB per round trip), one sample per
/// call; each result is compared with the argument outside the clock.
fn bytes_rtt(p: &Params) -> BenchResult<()> {
    let pool = Pool::new(2)?;
    warm(&pool, p)?;
    let value = ByteBuf::from(large_value());
    let mut samples = Vec::with_capacity(p.large_iters);
    for i in 0..p.large_warmup + p.large_iters {
        // The copy is the caller's: the pool takes its argument by value.
        let arg = value.clone();
        let t = Instant::now();
        let got = pool.apply(IDENT_BYTES, arg)?;
        let dt = t.elapsed().as_secs_f64();
        if got != value {
            return Err(format!("16 MiB came back as {} different bytes", got.len()).into());
        }
        drop(got);
        if i >= p.large_warmup {
            samples.push(round_trip_mib_s(dt));
        }
    }
    pool.close();
    pool.join()?;
    emit(
        "bytes_16m_rtt",
        "MiB/s",
        samples,
        json!({ "procs": 2, "bytes": LARGE }),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Raw round trips between two processes, for context

/// The echo child: reads a byte from stdin, writes it back (to stdout, or to stdin itself
/// when it is a socket), until end of file.
fn echo(socket: bool) -> std::io::Result<()> {
    let mut input = std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let mut output = if socket {
        input.try_clone()?
    } else {
        std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?)
    };
    let mut b = [0u8; 1];
    loop {
        if input.read(&mut b)? == 0 {
            return Ok(());
        }
        output.write_all(&b)?;
    }
}

/// The bulk echo child: reads `LARGE` bytes from stdin, then writes them back to stdout;
/// until end of file. Pipes enlarged to the size its first argument gives, if any.
fn echo_bulk() -> std::io::Result<()> {
    let mut input = std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let mut output = std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    let mut buf = vec![0u8; LARGE];
    loop {
        match input.read_exact(&mut buf) {
            Ok(()) => output.write_all(&buf)?,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Round trips of `LARGE` bytes with a re-executed child over two pipes (of the system's
/// default capacity, or of `pipe_size`): all of it written to the child, which reads it all
/// and only then writes it all back. MiB/s, both directions counted, as `bytes_16m_rtt`.
fn raw_bulk_rtt(p: &Params, pipe_size: Option<usize>) -> BenchResult<()> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args([ECHO_FLAG, "bulk"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdin = child.stdin.take().ok_or("no stdin pipe")?;
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let mut tx = std::fs::File::from(OwnedFd::from(stdin));
    let mut rx = std::fs::File::from(OwnedFd::from(stdout));
    if let Some(size) = pipe_size {
        for f in [&tx, &rx] {
            fcntl(f, FcntlArg::F_SETPIPE_SZ(size as i32))?;
        }
    }
    let value = large_value();
    let mut back = vec![0u8; LARGE];
    let mut samples = Vec::with_capacity(p.large_iters);
    for i in 0..p.large_warmup + p.large_iters {
        back.fill(0);
        let t = Instant::now();
        tx.write_all(&value)?;
        rx.read_exact(&mut back)?;
        let dt = t.elapsed().as_secs_f64();
        if back != value {
            return Err("the echo returned different bytes".into());
        }
        if i >= p.large_warmup {
            samples.push(round_trip_mib_s(dt));
        }
    }
    drop(tx);
    drop(rx);
    child.wait()?;
    let pipe = pipe_size.map_or(Value::Null, |s| json!(s));
    let bench = if pipe_size.is_some() {
        "pipe_16m_rtt_1m"
    } else {
        "pipe_16m_rtt"
    };
    emit(
        bench,
        "MiB/s",
        samples,
        json!({ "bytes": LARGE, "pipe_size": pipe }),
    );
    Ok(())
}

/// Ping-pong of one byte with a re-executed child: over two pipes, or over one
/// `SOCK_SEQPACKET` socket pair (what pool-ref's queues are).
fn raw_rtt(p: &Params, seqpacket: bool) -> BenchResult<()> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg(ECHO_FLAG).stderr(Stdio::inherit());
    let (mut tx, mut rx, mut child): (std::fs::File, std::fs::File, Child);
    if seqpacket {
        let (mine, theirs): (OwnedFd, OwnedFd) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        child = cmd
            .arg("sock")
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .spawn()?;
        tx = std::fs::File::from(mine);
        rx = tx.try_clone()?;
    } else {
        child = cmd
            .arg("pipe")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().ok_or("no stdin pipe")?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        tx = std::fs::File::from(OwnedFd::from(stdin));
        rx = std::fs::File::from(OwnedFd::from(stdout));
    }
    let warmup = p.raw_iters / 10;
    let mut samples = Vec::with_capacity(p.raw_iters);
    let mut b = [0u8; 1];
    for i in 0..warmup + p.raw_iters {
        b[0] = i as u8;
        let t = Instant::now();
        tx.write_all(&b)?;
        rx.read_exact(&mut b)?;
        let dt = t.elapsed();
        if b[0] != i as u8 {
            return Err("echo returned a different byte".into());
        }
        if i >= warmup {
            samples.push(dt.as_secs_f64() * 1e6);
        }
    }
    if seqpacket {
        // The child holds the other end; shut ours down so its read sees end of file.
        nix::sys::socket::shutdown(
            std::os::fd::AsRawFd::as_raw_fd(&tx),
            nix::sys::socket::Shutdown::Both,
        )?;
    }
    drop(tx);
    drop(rx);
    child.wait()?;
    let name = if seqpacket {
        "seqpacket_rtt"
    } else {
        "pipe_rtt"
    };
    emit(name, "us", samples, json!({ "bytes": 1 }));
    Ok(())
}
