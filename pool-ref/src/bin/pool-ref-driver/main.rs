//! poolspec driver for pool-ref, the Rust reference pool (implementation `rust-ref`).
//!
//! Speaks protocol 1 of spec/PROTOCOL.md: JSON lines from the runner on stdin, JSON lines back
//! on stdout, events to the coordinator socket named in each `run`. It mirrors the reference
//! driver, fixtures/drivers/cpython_driver.py (on poolspec_driver.py), with pool_ref::Pool in place of
//! multiprocessing.Pool.
//!
//! Pool workers are re-executions of this binary: `pool_ref::init` runs the worker loop in
//! them and never returns. Nothing but protocol messages ever reaches the runner's stdout: at
//! start-up the driver keeps a private (close-on-exec) duplicate of fd 1 for itself and points
//! fd 1 at stderr, so a stray print anywhere lands on stderr. (Workers get their stdout from
//! the pool, which points it at stderr too.)

mod coord;
mod steps;
mod tasks;

use std::fs::File;
use std::io::{BufRead, Write};
use std::os::fd::AsFd;
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde_json::{Map, Value, json};

use crate::coord::Coord;

const PROTOCOL: u64 = 1;

/// Keeps a private duplicate of fd 1 for protocol output and points fd 1 at stderr.
fn claim_stdout() -> std::io::Result<File> {
    let _ = std::io::stdout().flush();
    // try_clone_to_owned duplicates with F_DUPFD_CLOEXEC: no worker inherits it.
    let private = std::io::stdout().as_fd().try_clone_to_owned()?;
    nix::unistd::dup2_stdout(std::io::stderr()).map_err(std::io::Error::from)?;
    Ok(File::from(private))
}

struct Driver {
    out: File,
}

impl Driver {
    fn send(&mut self, message: &Value) {
        let mut line = message.to_string();
        line.push('\n');
        // A broken stdout means the runner is gone; the next read of stdin ends the driver.
        let _ = self.out.write_all(line.as_bytes());
        let _ = self.out.flush();
    }

    fn send_error(&mut self, seq: Option<&Value>, message: &str, traceback: Option<&str>) {
        let mut m = Map::new();
        m.insert("type".into(), json!("error"));
        m.insert("seq".into(), seq.cloned().unwrap_or(Value::Null));
        m.insert("message".into(), json!(message));
        if let Some(tb) = traceback.filter(|t| !t.is_empty()) {
            m.insert("traceback".into(), json!(tb));
        }
        self.send(&Value::Object(m));
    }

    /// Serves the runner until `stop` or end of stdin; returns the exit status.
    fn serve(&mut self) -> i32 {
        let stdin = std::io::stdin();
        let mut stdin = stdin.lock();
        let mut line = String::new();
        loop {
            line.clear();
            match stdin.read_line(&mut line) {
                Ok(0) | Err(_) => return 0,
                Ok(_) => {}
            }
            let text = line.trim();
            if text.is_empty() {
                continue;
            }
            let message: Value = match serde_json::from_str(text) {
                Ok(v) => v,
                Err(e) => {
                    self.send_error(None, &format!("unreadable message from runner: {e}"), None);
                    continue;
                }
            };
            if !message.is_object() {
                self.send_error(None, "message from runner is not a JSON object", None);
                continue;
            }
            let kind = message.get("type").and_then(Value::as_str).unwrap_or("");
            match kind {
                "hello" => {
                    if let Some(status) = self.hello(&message) {
                        return status;
                    }
                }
                "run" => {
                    let seq = message.get("seq").cloned();
                    let ran = catch_unwind(AssertUnwindSafe(|| self.run(&message)));
                    if let Err(p) = ran {
                        let what = p
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| p.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "panic".into());
                        self.send_error(seq.as_ref(), &format!("driver failure: {what}"), None);
                    }
                }
                "stop" => return 0,
                other => {
                    let shown = message
                        .get("type")
                        .map_or_else(|| "None".to_owned(), |_| tasks::py_repr_str(other));
                    self.send_error(None, &format!("unknown message type {shown}"), None);
                }
            }
        }
    }

    fn hello(&mut self, message: &Value) -> Option<i32> {
        let protocol = message.get("protocol").cloned().unwrap_or(Value::Null);
        if protocol.as_u64() != Some(PROTOCOL) {
            self.send_error(
                None,
                &format!("driver speaks protocol {PROTOCOL}, runner asked for {protocol}"),
                None,
            );
            return Some(2);
        }
        let mut capabilities: Vec<&str> = steps::OPS.to_vec();
        capabilities.extend(["initializer", "processes", "maxtasksperchild", "task_exit"]);
        self.send(&json!({
            "type": "hello",
            "protocol": PROTOCOL,
            "implementation": {
                "name": "pool-ref",
                "version": env!("CARGO_PKG_VERSION"),
                "language": "rust",
            },
            "capabilities": capabilities,
        }));
        None
    }

    fn run(&mut self, message: &Value) {
        let seq = message.get("seq");
        let field = |k: &str| message.get(k).filter(|v| !v.is_null());
        let (Some(token), Some(path), Some(program)) =
            (field("token"), field("coordinator"), field("program"))
        else {
            let missing = ["token", "coordinator", "program"]
                .into_iter()
                .find(|k| field(k).is_none())
                .unwrap_or("?");
            self.send_error(seq, &format!("run message lacks '{missing}'"), None);
            return;
        };
        let (Some(token), Some(path)) = (token.as_str(), path.as_str()) else {
            self.send_error(
                seq,
                "run message: token and coordinator must be strings",
                None,
            );
            return;
        };
        let coord = Coord {
            path: path.to_owned(),
            token: token.to_owned(),
        };
        match steps::run_program(&coord, program) {
            None => {
                let mut m = Map::new();
                m.insert("type".into(), json!("done"));
                m.insert("seq".into(), seq.cloned().unwrap_or(Value::Null));
                self.send(&Value::Object(m));
            }
            Some(f) => self.send_error(seq, &f.message, f.traceback.as_deref()),
        }
    }
}

fn main() {
    // In a pool worker (a re-execution of this binary) this runs the worker loop and exits.
    pool_ref::init(&tasks::registry());
    // Callbacks that "raise" do so by panicking, on purpose. The default hook would capture
    // and print a backtrace for each (RUST_BACKTRACE is often set), which takes long enough
    // to delay the result a case observes; one line on stderr is all a reader needs.
    std::panic::set_hook(Box::new(|info| eprintln!("pool-ref-driver: {info}")));
    let out = match claim_stdout() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("pool-ref-driver: cannot set up stdout: {e}");
            std::process::exit(2);
        }
    };
    let status = Driver { out }.serve();
    std::process::exit(status);
}
