//! Starting and supervising one driver process.
//!
//! A driver runs under `poolspec-supervisor` ([`crate::supervisor`]), in its own process
//! group, so that the pool workers it starts (our grandchildren, which duct cannot see) die
//! with it, and so does whatever left that group. Every wait on the driver is bounded by a
//! liveness guard; when one expires, or the driver misbehaves, the session ends: the
//! supervisor kills the group and every descendant, and the fault is reported for that case
//! only. A session is restarted lazily for the next case.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use duct::unix::HandleExt;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::bounded_read::bytes_in_words;
use crate::driver_output::{Alarm, DriverOutput, Next};
use crate::protocol::{
    FromDriver, ImplementationInfo, MAX_STDOUT_LINE, PROTOCOL_VERSION, ToDriver,
};
use crate::supervisor::{self, ReportFile};

/// How to start a driver: a program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriverCommand {
    pub program: String,
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

/// The signal a hung driver gets before it is killed: drivers may dump every thread's stack
/// to stderr on it (the Python SDK does, with `faulthandler`), and the timeout report
/// carries that stderr.
pub const DUMP_SIGNAL: Signal = Signal::SIGUSR1;

/// Why a driver failed a case. Each fault is reported with its own status and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum DriverFault {
    /// The liveness guard expired; the process group was killed. `stderr` holds what the
    /// driver wrote last, including the stack dump it was asked for (see [`DUMP_SIGNAL`]).
    Timeout {
        after_ms: u64,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        stderr: String,
    },
    /// The driver died by a signal or exited non-zero.
    Crashed { status: String, stderr: String },
    /// The driver exited with status 0 before answering.
    ExitedEarly { stderr: String },
    /// The driver printed something that is not a protocol message.
    Garbage { line: String },
    /// The handshake failed: wrong protocol version or a malformed hello.
    Handshake { message: String },
    /// A stdout line went over the protocol's limit (`limit` bytes): something that is not
    /// protocol, like garbage, but cut off before the runner holds all of it.
    StdoutLineTooLong { limit: usize },
    /// The driver went over one of the coordinator's limits (a report's size, the number of
    /// connections, the reports of one case); `message` says which.
    CoordinatorLimit { message: String },
}

impl DriverFault {
    pub fn summary(&self) -> String {
        fn tail(s: &str) -> String {
            let last = s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
            if last.is_empty() {
                String::new()
            } else {
                format!("; stderr: {}", last.chars().take(160).collect::<String>())
            }
        }
        match self {
            DriverFault::Timeout { after_ms, .. } => format!(
                "no answer within the liveness guard ({:.1} s); process group killed",
                *after_ms as f64 / 1000.0
            ),
            DriverFault::Crashed { status, stderr } => {
                format!("driver crashed ({status}){}", tail(stderr))
            }
            DriverFault::ExitedEarly { stderr } => {
                format!("driver exited (status 0) before answering{}", tail(stderr))
            }
            DriverFault::Garbage { line } => format!(
                "driver printed a non-protocol line: {:?}",
                line.chars().take(120).collect::<String>()
            ),
            DriverFault::Handshake { message } => format!("handshake failed: {message}"),
            DriverFault::StdoutLineTooLong { limit } => format!(
                "stdout line longer than {} (the protocol's limit); process group killed",
                bytes_in_words(*limit)
            ),
            DriverFault::CoordinatorLimit { message } => {
                format!("coordinator protocol violated: {message}; process group killed")
            }
        }
    }
}

/// A running driver that completed its handshake.
#[derive(Debug)]
pub struct DriverSession {
    /// The supervisor, which runs the driver.
    handle: duct::Handle,
    /// The supervisor's pid, leading its own process group (the driver leads another).
    pgid: Pid,
    report: ReportFile,
    /// Processes killed outside the driver's group, once the session has ended.
    left_behind: Option<usize>,
    stdin: os_pipe::PipeWriter,
    output: DriverOutput,
    stderr: Arc<Mutex<VecDeque<u8>>>,
    /// Closed (disconnected) when the stderr reader reached end of file.
    stderr_done: Receiver<()>,
    pub info: ImplementationInfo,
    pub capabilities: Vec<String>,
}

const STDERR_KEEP: usize = 16 * 1024;

/// How long the supervisor may take to clean up after it is asked to end the session
/// (milliseconds, normally) before it is killed with what it reported.
const SUPERVISOR_BOUND: Duration = Duration::from_secs(10);

/// A driver that did not complete its handshake: why, and how many processes it had left
/// outside its group by then (all killed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unstarted {
    pub fault: DriverFault,
    pub left_behind: usize,
}

impl DriverSession {
    /// Starts the driver under its supervisor and performs the handshake.
    pub fn start(cmd: &DriverCommand, guard: Duration) -> Result<DriverSession, DriverFault> {
        DriverSession::start_contained(cmd, guard).map_err(|u| u.fault)
    }

    /// [`DriverSession::start`], also saying what a driver that did not start left behind.
    pub fn start_contained(
        cmd: &DriverCommand,
        guard: Duration,
    ) -> Result<DriverSession, Unstarted> {
        let unstarted = |fault| Unstarted {
            fault,
            left_behind: 0,
        };
        let binary = supervisor::binary()
            .map_err(|e| unstarted(crashed(&format!("no {}: {e}", supervisor::SUPERVISOR_BIN))))?;
        let report = ReportFile::new().map_err(|e| unstarted(crashed(&e.to_string())))?;
        let mut session = DriverSession::spawn(cmd, binary, report).map_err(unstarted)?;
        match session.handshake(guard) {
            Ok(()) => Ok(session),
            Err(fault) => Err(Unstarted {
                fault,
                left_behind: session.kill(),
            }),
        }
    }

    fn spawn(
        cmd: &DriverCommand,
        binary: &std::path::Path,
        report: ReportFile,
    ) -> Result<DriverSession, DriverFault> {
        let (stdin_r, stdin_w) = os_pipe::pipe().map_err(|e| crashed(&format!("pipe: {e}")))?;
        let (stdout_r, stdout_w) = os_pipe::pipe().map_err(|e| crashed(&format!("pipe: {e}")))?;
        let (stderr_r, stderr_w) = os_pipe::pipe().map_err(|e| crashed(&format!("pipe: {e}")))?;
        let mut expr = duct::cmd(binary, report.command(&cmd.program, &cmd.args))
            .stdin_file(stdin_r)
            .stdout_file(stdout_w)
            .stderr_file(stderr_w)
            .unchecked()
            .before_spawn(|c| {
                std::os::unix::process::CommandExt::process_group(c, 0);
                Ok(())
            });
        for (k, v) in &cmd.env {
            expr = expr.env(k, v);
        }
        let handle = expr.start().map_err(|e| {
            crashed(&format!(
                "supervisor `{}` did not start: {e}",
                binary.display()
            ))
        })?;
        // The expression held our copies of the child's pipe ends; they are gone with it, so
        // EOF on stdout means the driver (and every process sharing its stdout) is gone.
        drop(expr);
        let pid = *handle.pids().first().ok_or_else(|| crashed("no pid"))?;
        let pgid = Pid::from_raw(pid as i32);

        let output = DriverOutput::spawn(stdout_r);
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let sink = Arc::clone(&stderr);
        let (stderr_eof, stderr_done) = channel::<()>();
        thread::spawn(move || {
            let _eof = stderr_eof;
            let mut r = stderr_r;
            let mut buf = [0u8; 4096];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    return;
                }
                let mut q = sink.lock().unwrap_or_else(|e| e.into_inner());
                q.extend(&buf[..n]);
                let excess = q.len().saturating_sub(STDERR_KEEP);
                q.drain(..excess);
            }
        });

        Ok(DriverSession {
            handle,
            pgid,
            report,
            left_behind: None,
            stdin: stdin_w,
            output,
            stderr,
            stderr_done,
            info: ImplementationInfo {
                name: String::new(),
                version: String::new(),
                language: String::new(),
                start_method: None,
                interpreter: None,
                pool_class: None,
                language_version: None,
                default_processes: None,
            },
            capabilities: Vec::new(),
        })
    }

    /// Hello and its answer (the caller ends the session on a fault).
    fn handshake(&mut self, guard: Duration) -> Result<(), DriverFault> {
        self.send(&ToDriver::Hello {
            protocol: PROTOCOL_VERSION,
        })?;
        match self.receive(Instant::now() + guard)? {
            FromDriver::Hello {
                protocol,
                implementation,
                capabilities,
            } if protocol == PROTOCOL_VERSION => {
                self.info = implementation;
                self.capabilities = capabilities;
                Ok(())
            }
            FromDriver::Hello { protocol, .. } => Err(DriverFault::Handshake {
                message: format!(
                    "driver speaks protocol {protocol}, this runner speaks {PROTOCOL_VERSION}{}",
                    if protocol < PROTOCOL_VERSION {
                        " (spec/PROTOCOL.md, \"What changed in protocol 2\", lists what \
                             an older driver must add)"
                    } else {
                        ""
                    }
                ),
            }),
            FromDriver::Error { message, .. } => Err(DriverFault::Handshake { message }),
            other => Err(DriverFault::Handshake {
                message: format!("expected a hello, got {other:?}"),
            }),
        }
    }

    /// The supervisor's process group id (equal to its pid); the driver leads another group.
    pub fn pgid(&self) -> i32 {
        self.pgid.as_raw()
    }

    /// Sends one message. A broken pipe means the driver is gone: reported as a crash.
    pub fn send(&mut self, msg: &ToDriver) -> Result<(), DriverFault> {
        let mut line = serde_json::to_string(msg).map_err(|e| crashed(&e.to_string()))?;
        line.push('\n');
        if self.stdin.write_all(line.as_bytes()).is_err() {
            return Err(self.death_fault(Instant::now() + Duration::from_secs(5)));
        }
        Ok(())
    }

    /// Receives the next message, waiting until `deadline` at most.
    pub fn receive(&mut self, deadline: Instant) -> Result<FromDriver, DriverFault> {
        let started = Instant::now();
        let wait = deadline.saturating_duration_since(started);
        match self.output.next(deadline) {
            Next::Line(line) => match serde_json::from_str::<FromDriver>(&line) {
                Ok(msg) => Ok(msg),
                Err(_) => {
                    self.kill();
                    Err(DriverFault::Garbage { line })
                }
            },
            Next::TooLong => {
                self.kill();
                Err(DriverFault::StdoutLineTooLong {
                    limit: MAX_STDOUT_LINE,
                })
            }
            Next::Alarm(message) => {
                self.kill();
                Err(DriverFault::CoordinatorLimit { message })
            }
            Next::Closed => Err(self.death_fault(Instant::now() + Duration::from_secs(5))),
            Next::Timeout => {
                let stderr = self.dump_stacks();
                self.kill();
                Err(DriverFault::Timeout {
                    after_ms: wait.as_millis() as u64,
                    stderr,
                })
            }
        }
    }

    /// The alarm the coordinator raises when this driver goes over one of its limits; it ends
    /// a [`DriverSession::receive`] at once.
    pub fn alarm(&self) -> Alarm {
        self.output.alarm()
    }

    /// An alarm raised after the last [`DriverSession::receive`] returned (the driver went over
    /// a limit after its answer): the fault, after killing the driver.
    pub fn take_alarm(&mut self) -> Option<DriverFault> {
        let message = self.output.alarm().take()?;
        self.kill();
        Some(DriverFault::CoordinatorLimit { message })
    }

    /// Asks a hung driver for its threads' stacks ([`DUMP_SIGNAL`], which the supervisor
    /// forwards to the driver) and returns its stderr after a short grace period.
    /// Drivers that do not handle the signal just die of it, which is what happens to them
    /// next anyway.
    fn dump_stacks(&mut self) -> String {
        let _ = self.handle.send_signal(DUMP_SIGNAL as i32);
        // A grace period for a diagnostic, not a correctness wait: the dump is best effort.
        std::thread::sleep(Duration::from_millis(300));
        self.stderr_text()
    }

    /// Stdout closed: find out how the driver ended, and clean up its group.
    fn death_fault(&mut self, deadline: Instant) -> DriverFault {
        let status = self
            .handle
            .wait_deadline(deadline)
            .ok()
            .flatten()
            .map(|o| o.status);
        self.kill();
        // Let the stderr reader drain what the driver wrote last (bounded: a grandchild that
        // escaped the group could keep the pipe open).
        let _ = self.stderr_done.recv_timeout(Duration::from_millis(500));
        let stderr = self.stderr_text();
        if let Some(message) = self.report.read().spawn_error {
            return DriverFault::Crashed {
                status: message,
                stderr,
            };
        }
        match status {
            Some(s) if s.success() => DriverFault::ExitedEarly { stderr },
            Some(s) => DriverFault::Crashed {
                status: s.to_string(),
                stderr,
            },
            None => DriverFault::Crashed {
                status: "closed its stdout".into(),
                stderr,
            },
        }
    }

    /// What the driver wrote to stderr recently (the last 16 KiB).
    pub fn stderr_text(&self) -> String {
        let q = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&q.iter().copied().collect::<Vec<_>>()).into_owned()
    }

    /// Asks the driver to stop, then ends the session; returns how many processes were
    /// killed outside the driver's group.
    pub fn stop(mut self) -> usize {
        let _ = self.send(&ToDriver::Stop);
        let _ = self
            .handle
            .wait_deadline(Instant::now() + Duration::from_secs(5));
        self.kill()
    }

    /// Ends the session: the supervisor kills the driver's group and every descendant and
    /// exits. Returns how many processes it killed outside the driver's group (the same
    /// number on every later call).
    pub fn kill(&mut self) -> usize {
        if let Some(n) = self.left_behind {
            return n;
        }
        // duct never signals a child it has reaped, so a recycled pid is safe.
        let _ = self.handle.send_signal(Signal::SIGTERM as i32);
        let finished = self
            .handle
            .wait_deadline(Instant::now() + SUPERVISOR_BOUND)
            .ok()
            .flatten()
            .is_some();
        let report = self.report.read();
        if !finished {
            // Last resort: the supervisor itself is stuck.
            let _ = self.handle.kill();
            for group in report.groups() {
                let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
            }
            let _ = self.handle.wait();
        }
        let n = report.killed.len();
        self.left_behind = Some(n);
        n
    }
}

impl DriverSession {
    /// A handle that ends this driver from another thread, while the thread that owns the
    /// session may be blocked in [`DriverSession::receive`] (a run being cancelled).
    pub fn kill_switch(&self) -> KillSwitch {
        KillSwitch { pgid: self.pgid }
    }
}

/// Ends a driver from a thread that does not own its session ([`DriverSession::kill_switch`]):
/// the supervisor gets SIGTERM and kills the driver's group and every descendant, the
/// owner's blocked `receive` sees the driver gone, and the owner then collects what the
/// supervisor reported through [`DriverSession::kill`]. Never SIGKILL: a supervisor killed
/// outright could not clean up, and what detached from the driver would outlive the run. Use
/// it only while the owner waits on the driver (`cancel::Cancel::in_flight`): the supervisor
/// is not reaped before then, so its pid cannot have been reused.
#[derive(Debug, Clone, Copy)]
pub struct KillSwitch {
    pgid: Pid,
}

impl KillSwitch {
    pub fn kill(&self) {
        let _ = nix::sys::signal::kill(self.pgid, Signal::SIGTERM);
    }
}

impl Drop for DriverSession {
    fn drop(&mut self) {
        self.kill();
    }
}

fn crashed(msg: &str) -> DriverFault {
    DriverFault::Crashed {
        status: msg.to_owned(),
        stderr: String::new(),
    }
}

/// Why [`group_members`] could not list a process group.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// `/proc` itself could not be listed (no procfs: not Linux, or a restricted sandbox).
    #[error("reading /proc")]
    ReadProc(#[source] std::io::Error),
    /// A process's `stat` lacks the `)` that closes its command name: not a Linux procfs.
    #[error("odd /proc stat")]
    OddStat { pid: i32 },
}

/// Pids of the live (non-zombie) processes in process group `pgid`, from `/proc`.
pub fn group_members(pgid: i32) -> Result<Vec<i32>, ProcError> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").map_err(ProcError::ReadProc)? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the parenthesised command name: state ppid pgrp ...
        let after = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .ok_or(ProcError::OddStat { pid })?;
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z" {
            pids.push(pid);
        }
    }
    Ok(pids)
}
