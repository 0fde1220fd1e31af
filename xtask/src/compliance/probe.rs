//! Whether a subject can run here, checked before the suite runs on it: its import (for
//! Ray, one pool with one task), and for Ray a network namespace with only loopback in it.
//! A subject that fails is one "not run" line in COMPLIANCE.md instead of a column of errors.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use conformance::driver::DriverCommand;

use super::subjects::Subject;

/// How long the Ray smoke test (start an instance, one task, tear down) may take.
const RAY_SMOKE_TIMEOUT: Duration = Duration::from_secs(240);

/// Checks that a subject can be imported (and, for Ray, started and torn down) before the
/// suite runs on it, so a broken install is one line in COMPLIANCE.md instead of a column of
/// errors.
pub fn probe(root: &Path, python: &Path, subject: &Subject) -> Result<(), String> {
    let script = if subject.pythonpath.is_some() {
        // Factory modules: create a one-worker pool, run one task, tear it down.
        let module = subject
            .spec
            .strip_prefix("python:")
            .and_then(|s| s.rsplit_once(':'))
            .map(|(m, a)| (m.to_owned(), a.to_owned()))
            .unwrap_or_default();
        format!(
            "import {m}\np = {m}.{a}(1)\nassert p.apply(abs, (-3,)) == 3\np.terminate()\np.join()\n",
            m = module.0,
            a = module.1
        )
    } else {
        format!("import {}\n", subject.module)
    };
    let prefix = if subject.loopback {
        loopback_only().unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut cmd = match prefix.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(python);
            c
        }
        None => Command::new(python),
    };
    cmd.args(["-c", &script])
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("RAY_USAGE_STATS_ENABLED", "0");
    if let Some(extra) = subject.pythonpath {
        cmd.env("PYTHONPATH", root.join(extra));
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot run python: {e}"))?;
    let stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut s) = stderr {
            let _ = std::io::Read::read_to_string(&mut s, &mut text);
        }
        text
    });
    let deadline = Instant::now() + RAY_SMOKE_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            // Polling interval of a liveness guard.
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let text = reader.join().unwrap_or_default();
    match status {
        Some(s) if s.success() => Ok(()),
        Some(_) => Err(text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim().to_owned())
            .unwrap_or_else(|| "the smoke test failed".into())),
        None => Err(format!(
            "the smoke test (one pool, one task) did not finish within {} s",
            RAY_SMOKE_TIMEOUT.as_secs()
        )),
    }
}

/// The command prefix that runs a program in a new network namespace whose only interface is
/// loopback: `unshare -n` as root, else `unshare -rn` (an unprivileged user namespace), then
/// `ip link set lo up`. `None` when neither works here. Ray binds its servers to every
/// interface and advertises the machine's address even when told 127.0.0.1; inside such a
/// namespace there is nothing but 127.0.0.1 to bind to or advertise.
pub fn loopback_only() -> Option<Vec<String>> {
    let script = "ip link set lo up && exec \"$0\" \"$@\"";
    for flags in ["-n", "-rn"] {
        let ok = Command::new("unshare")
            .args([flags, "sh", "-c", script, "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(
                ["unshare", flags, "sh", "-c", script]
                    .map(str::to_owned)
                    .to_vec(),
            );
        }
    }
    None
}

/// Prefixes a driver command with `prefix` (whose last word is a `sh -c` script taking the
/// real program as `$0`).
pub fn wrap(command: &mut DriverCommand, prefix: &[String]) {
    let Some((program, rest)) = prefix.split_first() else {
        return;
    };
    let mut args: Vec<String> = rest.to_vec();
    args.push(std::mem::replace(&mut command.program, program.clone()));
    args.append(&mut command.args);
    command.args = args;
}
