//! `poolspec-supervisor --report FILE --parent PID -- PROGRAM [ARGS...]`: runs one driver so
//! that nothing it starts outlives its session.
//!
//! It makes itself a child subreaper, so every process that detaches from the driver (new
//! session, new group, double fork) is re-parented to it rather than to init, and starts the
//! driver in a process group of its own with the runner's stdio, so the runner's pipes reach
//! the driver directly. When the driver exits, or the runner ends the session (SIGTERM,
//! SIGINT, SIGHUP) or dies (the parent-death signal), it kills the driver's group, then every
//! child it has, however it got there, until it has none; the processes it had to kill
//! outside the driver's group go to the report file (`conformance::supervisor::Record`).
//! Then it exits as the driver did (same code, or the same signal re-raised), so the runner
//! classifies a crash exactly as without it. [`DUMP_SIGNAL`] is forwarded to the driver
//! process (not its group: PROTOCOL.md §6). Signals are taken synchronously from a
//! `signalfd`: no handler, no `unsafe`.
//!
//! The signals it takes that way stay blocked in every child it spawns (std leaves the mask
//! as it is), and a driver must start with none blocked. With no `unsafe` there is no code
//! between fork and exec, so the driver is started through this binary again
//! (`--exec-driver`): it clears the mask, then becomes the driver with `exec`, keeping its
//! pid and process group.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use conformance::driver::DUMP_SIGNAL;
use conformance::supervisor::{Record, children_of};
use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, killpg, raise, sigprocmask};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, getpid, getppid};

/// The parent-death signal: one nobody else sends, because it also arrives when only the
/// runner *thread* that started us ends, which is no reason to stop (`getppid` tells).
const PARENT_DEATH: Signal = Signal::SIGUSR2;
/// What the runner sends to end a session (and what a terminal or a shell might).
const END: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

struct Args {
    report: String,
    /// `None` in `--exec-driver` mode.
    parent: Option<i32>,
    program: String,
    args: Vec<String>,
}

fn parse_args() -> Option<Args> {
    let mut it = std::env::args().skip(1);
    let (mut report, mut parent) = (None, None);
    loop {
        match it.next()?.as_str() {
            "--report" | "--exec-driver" => report = Some(it.next()?),
            "--parent" => parent = Some(it.next()?.parse().ok()?),
            "--" => break,
            _ => return None,
        }
    }
    Some(Args {
        report: report?,
        parent,
        program: it.next()?,
        args: it.collect(),
    })
}

fn main() -> ExitCode {
    let Some(args) = parse_args() else {
        eprintln!(
            "usage: poolspec-supervisor --report FILE --parent PID -- PROGRAM [ARGS...] \
             (started by the poolspec runner)"
        );
        return ExitCode::from(2);
    };
    let Some(parent) = args.parent else {
        return become_driver(&args);
    };
    match supervise(&args, parent) {
        Ok(status) => mirror(status),
        Err(e) => {
            eprintln!("poolspec-supervisor: {e}");
            ExitCode::from(125)
        }
    }
}

/// Runs the driver to the end of its session and cleans up; the driver's status.
fn supervise(args: &Args, parent: i32) -> Result<Option<WaitStatus>, String> {
    let mut report = File::options()
        .append(true)
        .open(&args.report)
        .map_err(|e| format!("opening {}: {e}", args.report))?;
    prctl::set_child_subreaper(true).map_err(|e| format!("PR_SET_CHILD_SUBREAPER: {e}"))?;
    // Blocked before anything can send them, so none is lost: the signalfd delivers them.
    let mut mask = SigSet::empty();
    for s in END
        .into_iter()
        .chain([Signal::SIGCHLD, DUMP_SIGNAL, PARENT_DEATH])
    {
        mask.add(s);
    }
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .map_err(|e| format!("blocking signals: {e}"))?;
    prctl::set_pdeathsig(PARENT_DEATH).map_err(|e| format!("PR_SET_PDEATHSIG: {e}"))?;
    if getppid().as_raw() != parent {
        return Ok(None); // the runner died before we could notice: nothing started yet
    }
    let signals = SignalFd::new(&mask).map_err(|e| format!("signalfd: {e}"))?;

    let me = std::env::current_exe().map_err(|e| format!("finding myself: {e}"))?;
    let driver = Command::new(me)
        .arg("--exec-driver")
        .arg(&args.report)
        .arg("--")
        .arg(&args.program)
        .args(&args.args)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("starting the driver: {e}"))?;
    let driver = Pid::from_raw(driver.id() as i32);
    let _ = Record::Driver {
        pid: driver.as_raw(),
    }
    .append(&mut report);
    // Our copies of the driver's stdin and stdout must not keep the runner's pipes open:
    // end of file on its stdout is how the runner learns that the driver is gone.
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
    }

    let mut status = None;
    loop {
        reap(driver, &mut status, false);
        if status.is_some() {
            break;
        }
        let signal = match signals.read_signal() {
            Ok(Some(info)) => Signal::try_from(info.ssi_signo as i32).ok(),
            Ok(None) | Err(Errno::EINTR) => continue,
            Err(_) => break,
        };
        match signal {
            Some(s) if s == DUMP_SIGNAL => {
                let _ = kill(driver, DUMP_SIGNAL);
            }
            // Only the runner's thread that started us ended when the parent is still the
            // runner's process: no reason to stop.
            Some(s) if s == PARENT_DEATH && getppid().as_raw() != parent => break,
            Some(s) if END.contains(&s) => break,
            _ => {} // SIGCHLD: reaped at the top of the loop
        }
    }
    clean_up(driver, &mut status, &mut report);
    Ok(status)
}

/// `--exec-driver`: clears the signal mask and becomes the driver; returns only when it
/// cannot, having said why in the report file.
fn become_driver(args: &Args) -> ExitCode {
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    let e = Command::new(&args.program).args(&args.args).exec();
    let message = format!("cannot start `{}`: {e}", args.program);
    if let Ok(mut report) = File::options().append(true).open(&args.report) {
        let _ = Record::SpawnError { message }.append(&mut report);
    }
    ExitCode::from(127)
}

/// Reaps children (`block`: wait for one); records the driver's status when it is reaped.
/// Returns whether a child is left to wait for.
fn reap(driver: Pid, status: &mut Option<WaitStatus>, block: bool) -> bool {
    let flags = (!block).then_some(WaitPidFlag::WNOHANG);
    loop {
        match waitpid(Pid::from_raw(-1), flags) {
            Ok(WaitStatus::StillAlive) => return true,
            Ok(s) => {
                if s.pid() == Some(driver) {
                    *status = Some(s);
                }
                if block {
                    return true;
                }
            }
            Err(Errno::EINTR) => continue,
            Err(_) => return false, // ECHILD: no child at all
        }
    }
}

/// Kills the driver's group, then every child, until there is none: each process killed
/// re-parents its own children to us, so the sweep repeats after every reaped child. A
/// child is only ever re-parented to us when one of our descendants dies, and we wait for
/// the death of every child we killed, so when `waitpid` says we have no child, no
/// descendant is left anywhere.
fn clean_up(driver: Pid, status: &mut Option<WaitStatus>, report: &mut File) {
    let _ = killpg(driver, Signal::SIGKILL);
    let me = getpid().as_raw();
    let mut killed: HashSet<i32> = HashSet::new();
    loop {
        if let Ok(children) = children_of(me) {
            for child in children {
                if !killed.insert(child.pid) {
                    continue;
                }
                if !child.zombie && child.pgid != driver.as_raw() {
                    let _ = Record::Killed {
                        pid: child.pid,
                        pgid: child.pgid,
                    }
                    .append(report);
                }
                let _ = kill(Pid::from_raw(child.pid), Signal::SIGKILL);
            }
        }
        match waitpid(Pid::from_raw(-1), None) {
            Ok(s) => {
                if let Some(pid) = s.pid() {
                    // A pid reaped may be reused by a later child: forget it.
                    killed.remove(&pid.as_raw());
                    if pid == driver {
                        *status = Some(s);
                    }
                }
            }
            Err(Errno::EINTR) => {}
            Err(_) => break, // ECHILD: nothing left
        }
    }
    let _ = Record::Done.append(report);
}

/// Exits as the driver did: its exit code, or its fatal signal raised on ourselves.
fn mirror(status: Option<WaitStatus>) -> ExitCode {
    match status {
        Some(WaitStatus::Exited(_, code)) => ExitCode::from(code as u8),
        Some(WaitStatus::Signaled(_, signal, _)) => {
            // The driver's core file, if any, is the one worth having: none of ours.
            if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_CORE) {
                let _ = setrlimit(Resource::RLIMIT_CORE, 0, hard);
            }
            let mut one = SigSet::empty();
            one.add(signal);
            let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&one), None);
            // Twice: std's handler for SIGSEGV and SIGBUS (stack overflow detection) only
            // restores the default action on a signal that is not its guard page's.
            let _ = raise(signal);
            let _ = raise(signal);
            // Still here: the signal is ignored in this process (inherited SIG_IGN).
            ExitCode::from(128 + signal as u8)
        }
        _ => ExitCode::from(1),
    }
}
