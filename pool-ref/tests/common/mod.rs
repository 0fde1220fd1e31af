//! A tiny test harness for the `harness = false` integration tests of pool-ref.
//!
//! Pools re-execute the current binary as their workers, so these test binaries cannot use
//! libtest: `main` must call `pool_ref::init` first. This module runs named checks one after
//! another, prints a libtest-style line per check and a closing `test result:` line, and exits
//! non-zero if any check failed. A watchdog ends the process if one check hangs, so a
//! deadlock in the pool fails the run instead of stalling CI.
//!
//! Arguments that do not start with `-` filter the checks by substring, as with libtest.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The outcome of one check: `Err` carries the reason it failed.
pub type Outcome = Result<(), String>;

/// A named check.
pub type Check = (&'static str, fn() -> Outcome);

/// How long one check may run before the watchdog fails the whole run.
const WATCHDOG: Duration = Duration::from_secs(60);

/// Fails the enclosing check (returns `Err`) unless `cond` holds.
#[allow(unused_macros)]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!("{} (at line {}): {}", stringify!($cond), line!(), format!($($fmt)+)));
        }
    };
}

/// Fails the enclosing check unless `left == right`.
#[allow(unused_macros)]
macro_rules! ensure_eq {
    ($left:expr, $right:expr $(,)?) => {
        ensure_eq!($left, $right, "")
    };
    ($left:expr, $right:expr, $($fmt:tt)+) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            return Err(format!(
                "{} == {} failed (at line {}): left {:?}, right {:?} {}",
                stringify!($left), stringify!($right), line!(), l, r, format!($($fmt)+)
            ));
        }
    }};
}

/// The list of checks for [`run_checks`], each named after its function.
#[allow(unused_macros)]
macro_rules! checks {
    ($($check:ident),* $(,)?) => {
        &[$((stringify!($check), $check as fn() -> $crate::common::Outcome)),*]
    };
}

/// Runs the checks whose names match the command-line filters and exits: 0 if all passed,
/// 101 (as libtest does) otherwise.
pub fn run_checks(checks: &[Check]) -> ! {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected: Vec<&Check> = checks
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    let filtered_out = checks.len() - selected.len();

    let current: Arc<Mutex<Option<(&'static str, Instant)>>> = Arc::new(Mutex::new(None));
    {
        let current = Arc::clone(&current);
        std::thread::Builder::new()
            .name("test-watchdog".into())
            .spawn(move || {
                loop {
                    // The watchdog's tick: a liveness guard against a hung check.
                    std::thread::sleep(Duration::from_millis(200));
                    let hung = current
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .filter(|(_, t)| t.elapsed() > WATCHDOG);
                    if let Some((name, _)) = hung {
                        println!("test {name} ... FAILED (hung for more than {WATCHDOG:?})");
                        println!();
                        println!("test result: FAILED. watchdog fired in {name}");
                        let _ = std::io::stdout().flush();
                        std::process::exit(101);
                    }
                }
            })
            .expect("spawn the watchdog thread");
    }

    let started = Instant::now();
    println!();
    println!("running {} tests", selected.len());
    let mut failures: Vec<(&str, String)> = Vec::new();
    for (name, check) in &selected {
        *current.lock().unwrap_or_else(|e| e.into_inner()) = Some((name, Instant::now()));
        let t = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(check)).unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panicked".to_owned());
            Err(format!("panicked: {msg}"))
        });
        let ms = t.elapsed().as_millis();
        match outcome {
            Ok(()) => println!("test {name} ... ok ({ms} ms)"),
            Err(why) => {
                println!("test {name} ... FAILED ({ms} ms)");
                failures.push((name, why));
            }
        }
        let _ = std::io::stdout().flush();
    }
    *current.lock().unwrap_or_else(|e| e.into_inner()) = None;

    if !failures.is_empty() {
        println!();
        println!("failures:");
        for (name, why) in &failures {
            println!();
            println!("---- {name} ----");
            println!("{why}");
        }
        println!();
        println!("failures:");
        for (name, _) in &failures {
            println!("    {name}");
        }
    }
    let passed = selected.len() - failures.len();
    println!();
    println!(
        "test result: {}. {passed} passed; {} failed; 0 ignored; 0 measured; {filtered_out} filtered out; finished in {:.2}s",
        if failures.is_empty() { "ok" } else { "FAILED" },
        failures.len(),
        started.elapsed().as_secs_f64(),
    );
    println!();
    let _ = std::io::stdout().flush();
    std::process::exit(if failures.is_empty() { 0 } else { 101 });
}

/// Polls `cond` every few milliseconds until it holds (true) or `limit` passes (false).
/// For waiting on another process's progress, which has no notification to wait on.
pub fn poll_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        // Polling interval of a bounded wait on a condition.
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A fresh, empty directory under cargo's per-target temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("pool-ref-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `name` inside the directory, as a string (to send to a task).
    pub fn file(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }

    /// The names of the entries in the directory.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The state letter of process `pid` from `/proc/<pid>/stat` (`R`, `S`, `Z`, ...), or `None`
/// if there is no such process.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().next()?.chars().next()
}

/// The parent pid of process `pid`, if it exists.
pub fn proc_ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// Whether process `pid` is running (exists and is not a zombie).
pub fn proc_alive(pid: u32) -> bool {
    matches!(proc_state(pid), Some(s) if s != 'Z' && s != 'X')
}

/// This process's identity across pid reuse: its pid and its start time (in clock ticks
/// since boot, field 22 of `/proc/self/stat`). Cached, so it is cheap to call in a task.
pub fn process_identity() -> (u32, u64) {
    static ID: std::sync::OnceLock<(u32, u64)> = std::sync::OnceLock::new();
    *ID.get_or_init(|| {
        let pid = std::process::id();
        let start = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| {
                let after = s[s.rfind(')')? + 1..].to_owned();
                // Fields after the command: state is field 3, so starttime (22) is index 19.
                after.split_whitespace().nth(19)?.parse().ok()
            })
            .unwrap_or(0);
        (pid, start)
    })
}
