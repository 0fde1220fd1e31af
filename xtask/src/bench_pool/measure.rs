//! Taking the measurements of `cargo xtask bench-pool`: building pool-ref's benchmark
//! program, and running it and CPython's side by side, round after round, each printing one
//! JSON line per measurement.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The measurement lines of one round, one list per side.
pub struct Round {
    pub rust: Vec<Value>,
    pub cpython: Vec<Value>,
}

/// The two benchmark programs and how to run them.
pub struct Programs {
    pub rust_bin: PathBuf,
    pub rust_args: Vec<String>,
    pub python: PathBuf,
    pub py_args: Vec<String>,
    /// Run under `taskset -c 0`.
    pub pinned: bool,
}

/// Fails unless `taskset` (util-linux) runs, which `--pinned` needs.
pub fn require_taskset() -> Result<()> {
    let found = Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        bail!("--pinned needs `taskset` (util-linux) on PATH");
    }
    Ok(())
}

/// The target directory cargo builds into (`$CARGO_TARGET_DIR`, else `target/`).
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| root.join(d))
        .unwrap_or_else(|| root.join("target"))
}

/// Builds `pool-ref-bench` in release mode and returns its path.
pub fn build_rust_bench(root: &Path) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("bench-pool: building pool-ref-bench (release)");
    let built = Command::new(&cargo)
        .current_dir(root)
        .args([
            "build",
            "--release",
            "-p",
            "pool-ref",
            "--bin",
            "pool-ref-bench",
        ])
        .status()
        .context("running cargo build")?;
    if !built.success() {
        bail!("cargo build of pool-ref-bench failed");
    }
    Ok(target_dir(root).join("release/pool-ref-bench"))
}

/// The arguments of CPython's benchmark script (fork, with spawn and forkserver rows too).
pub fn python_args(root: &Path, quick: bool) -> Vec<String> {
    let script = root.join("fixtures/bench/cpython_pool_bench.py");
    let mut args = vec![
        "-u".to_owned(),
        script.display().to_string(),
        "--start-method".into(),
        "fork".into(),
        "--context-methods".into(),
        "spawn,forkserver".into(),
    ];
    if quick {
        args.push("--quick".into());
    }
    args
}

/// Runs `rounds` rounds, alternating which side goes first. Returns them with the raw JSON
/// lines (each tagged with its round and pinning) for the `.jsonl` file.
pub fn run_rounds(programs: &Programs, rounds: u32, mode: &str) -> Result<(Vec<Round>, String)> {
    let mut results = Vec::new();
    let mut raw = String::new();
    for round in 0..rounds {
        eprintln!("bench-pool: round {}/{rounds}, {mode}", round + 1);
        let (rust, cpython) = if round % 2 == 0 {
            let r = run_json(&programs.rust_bin, &programs.rust_args, programs.pinned)?;
            (
                r,
                run_json(&programs.python, &programs.py_args, programs.pinned)?,
            )
        } else {
            let p = run_json(&programs.python, &programs.py_args, programs.pinned)?;
            (
                run_json(&programs.rust_bin, &programs.rust_args, programs.pinned)?,
                p,
            )
        };
        for line in rust.iter().chain(&cpython) {
            let mut line = line.clone();
            line["round"] = round.into();
            line["pinned"] = programs.pinned.into();
            raw.push_str(&line.to_string());
            raw.push('\n');
        }
        results.push(Round { rust, cpython });
    }
    Ok((results, raw))
}

/// Runs one benchmark program and parses the JSON lines of its stdout.
fn run_json(program: &Path, args: &[String], pinned: bool) -> Result<Vec<Value>> {
    let mut cmd = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args).stdin(Stdio::null()).stderr(Stdio::inherit());
    let out = cmd
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    if !out.status.success() {
        bail!("{} {:?} failed: {}", program.display(), args, out.status);
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| serde_json::from_str(l).with_context(|| format!("bad JSON line {l:?}")))
        .collect()
}

/// The 1-minute load average, or `?`.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}
