//! The coordinator: the Unix socket every process of the implementation under test reports
//! to, and on which tasks wait for gates.
//!
//! Each report is acknowledged only after it has its place in the history, so the history
//! order respects causality: if process A reported X before it did something that let B report
//! Y, then X precedes Y. Gates are opened here, by the case's rules or by `open` steps, never
//! by a clock.
//!
//! What a driver sends is bounded (PROTOCOL.md §2.3): each report's size, the connections open
//! at once, the bytes of reports per case. Going over a limit fails the case at once through
//! the driver session's [`Alarm`]; reports that do not fit the program (unknown ids, events out
//! of causal order) are refused and recorded as violations. Either way only the running case
//! is failed.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::bounded_read::{Capped, bytes_in_words, read_line_capped};
use crate::driver_output::Alarm;
use crate::protocol::{Ack, MAX_CASE_REPORTS, MAX_CONNECTIONS, MAX_REPORT, Report, ReportKind};
use crate::report_fit::misfit;
use crate::spec::{Count, GateRule, IdKind, Program};

/// One entry of a case's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the history: one global sequence per case.
    pub seq: u64,
    /// Who recorded it: a process of the implementation, or the runner itself (gate opening).
    pub origin: Origin,
    pub kind: ReportKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Process { pid: u32, thread: String },
    Runner,
}

impl Event {
    /// The event reference this entry satisfies, such as `a.start` or `g1.open`.
    pub fn reference(&self) -> Option<String> {
        Some(match &self.kind {
            ReportKind::Call { step, .. } => format!("{step}.call"),
            ReportKind::Return { step, .. } => format!("{step}.return"),
            ReportKind::Start { task } => format!("{task}.start"),
            ReportKind::End { task, .. } => format!("{task}.end"),
            ReportKind::Exit { task, .. } => format!("{task}.exit"),
            ReportKind::Callback { step, kind, .. } => format!("{step}.{kind}"),
            ReportKind::CallbackDone { step, kind, .. } => format!("{step}.{kind}_done"),
            ReportKind::Wait { who, .. } => format!("{who}.wait"),
            ReportKind::Open { gate } => format!("{gate}.open"),
            ReportKind::Await { .. } | ReportKind::Construct { .. } => return None,
        })
    }
}

/// The recorded history of one case, plus any protocol violations seen while recording it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    pub events: Vec<Event>,
    pub violations: Vec<String>,
    /// The pool's number of processes as the case resolved it: the explicit count, or the
    /// driver's default for `processes: default` (`None` when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u32>,
}

#[derive(Debug)]
struct Gate {
    rule: GateRule,
    open: bool,
    waiting: u32,
}

/// How many violations a history keeps: the first one is the reason, the rest are detail, and
/// a driver sending malformed reports in a loop must not grow the list without end.
const KEPT_VIOLATIONS: usize = 20;

#[derive(Debug, Default)]
struct State {
    /// The token of the running case; `None` between cases.
    token: Option<String>,
    gates: IndexMap<String, Gate>,
    history: History,
    /// How many times each event reference (`a.start`, `s1.call`) was recorded.
    counts: HashMap<String, u32>,
    /// The running program's ids, to check reports against; `None` when the case was begun
    /// without its program (`Coordinator::begin`).
    ids: Option<BTreeMap<String, IdKind>>,
    /// Bytes of reports accepted for the running case.
    bytes: usize,
    /// Raised when the driver goes over a limit; outlives the cases.
    alarm: Option<Alarm>,
}

impl State {
    fn record(&mut self, origin: Origin, kind: ReportKind) {
        let event = Event {
            seq: self.history.events.len() as u64,
            origin,
            kind,
        };
        if let Some(r) = event.reference() {
            *self.counts.entry(r).or_default() += 1;
        }
        self.history.events.push(event);
        self.apply_rules();
    }

    fn count(&self, reference: &str) -> u32 {
        self.counts.get(reference).copied().unwrap_or(0)
    }

    /// Records a protocol violation of the running case (if any).
    fn violation(&mut self, message: String) {
        if self.token.is_some() && self.history.violations.len() < KEPT_VIOLATIONS {
            self.history.violations.push(message);
        }
    }

    /// Records that the driver went over a limit during the running case, and raises the
    /// alarm that ends the case at once.
    fn over_limit(&mut self, message: String) {
        if self.token.is_none() {
            return;
        }
        if let Some(alarm) = &self.alarm {
            alarm.raise(message.clone());
        }
        self.violation(message);
    }

    fn open_gate(&mut self, name: &str) {
        if let Some(g) = self.gates.get_mut(name)
            && !g.open
        {
            g.open = true;
            self.record(
                Origin::Runner,
                ReportKind::Open {
                    gate: name.to_owned(),
                },
            );
        }
    }

    /// Opens every closed gate whose rule now holds. Recording an opening can satisfy another
    /// rule, so `record` calls back here until nothing changes.
    fn apply_rules(&mut self) {
        let ready = self.gates.iter().find_map(|(name, g)| {
            let due = !g.open
                && match &g.rule {
                    GateRule::Manual => false,
                    GateRule::WhenWaiting(Count::N(n)) => g.waiting >= *n,
                    // Resolved by the runner before the case begins; unresolved never opens.
                    GateRule::WhenWaiting(Count::Word(_)) => false,
                    GateRule::After(event) => self.counts.contains_key(event),
                };
            due.then(|| name.clone())
        });
        if let Some(name) = ready {
            self.open_gate(&name);
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    /// The open connections (a clone of each stream, to shut it down when the coordinator is
    /// dropped), by a number of their own.
    connections: Mutex<(u64, HashMap<u64, UnixStream>)>,
    /// Set when the coordinator is dropped: the accept loop ends.
    closing: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn connections(&self) -> MutexGuard<'_, (u64, HashMap<u64, UnixStream>)> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a new connection in, unless [`MAX_CONNECTIONS`] are open already.
    fn admit(&self, stream: &UnixStream) -> Option<u64> {
        let clone = stream.try_clone().ok()?;
        let mut guard = self.connections();
        let (next, open) = &mut *guard;
        if open.len() >= MAX_CONNECTIONS {
            return None;
        }
        *next += 1;
        open.insert(*next, clone);
        Some(*next)
    }

    fn leave(&self, id: u64) {
        self.connections().1.remove(&id);
    }
}

/// A coordinator listening on a socket in its own temporary directory.
#[derive(Debug)]
pub struct Coordinator {
    path: PathBuf,
    shared: Arc<Shared>,
    _dir: tempfile::TempDir,
}

impl Coordinator {
    /// Binds a fresh socket under a new temporary directory and starts accepting reports.
    pub fn start() -> std::io::Result<Coordinator> {
        let dir = tempfile::Builder::new().prefix("poolspec-").tempdir()?;
        let path = dir.path().join("coord.sock");
        let listener = UnixListener::bind(&path)?;
        let shared = Arc::new(Shared::default());
        let for_accept = Arc::clone(&shared);
        thread::Builder::new()
            .name("coordinator-accept".into())
            .spawn(move || accept(&listener, &for_accept))?;
        Ok(Coordinator {
            path,
            shared,
            _dir: dir,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends the limits this coordinator's driver goes over to `alarm` (the driver session's),
    /// which ends the running case at once.
    pub fn alarm_to(&self, alarm: Alarm) {
        self.shared.lock().alarm = Some(alarm);
    }

    /// Starts recording a new case: forgets the previous one and sets up its gates.
    pub fn begin(&self, token: &str, gates: &IndexMap<String, GateRule>) {
        self.begin_with(token, gates, None);
    }

    /// Starts a case whose program is `program`: barrier sizes written as `processes` become
    /// the pool's number of processes (`default_processes`, the driver's, when the case
    /// leaves it to the pool).
    pub fn begin_program(&self, token: &str, program: &Program, default_processes: Option<u32>) {
        let processes = match program.pool.processes.count() {
            Some(n) => u32::try_from(n).ok(),
            None => default_processes,
        };
        let gates = program
            .gates
            .iter()
            .map(|(name, rule)| {
                let rule = match rule {
                    GateRule::WhenWaiting(c) => match c.resolve(processes) {
                        Some(n) => GateRule::WhenWaiting(Count::N(n)),
                        None => rule.clone(),
                    },
                    other => other.clone(),
                };
                (name.clone(), rule)
            })
            .collect();
        self.begin_with(token, &gates, processes);
        self.shared.lock().ids = Some(program.ids.clone());
    }

    fn begin_with(&self, token: &str, gates: &IndexMap<String, GateRule>, processes: Option<u32>) {
        let mut st = self.shared.lock();
        let alarm = st.alarm.take();
        if let Some(a) = &alarm {
            a.clear();
        }
        *st = State {
            alarm,
            token: Some(token.to_owned()),
            gates: gates
                .iter()
                .map(|(name, rule)| {
                    let gate = Gate {
                        rule: rule.clone(),
                        open: false,
                        waiting: 0,
                    };
                    (name.clone(), gate)
                })
                .collect(),
            ..State::default()
        };
        st.history.processes = processes;
        st.apply_rules();
        self.shared.changed.notify_all();
    }

    /// Ends the case: every pending `wait` and `await` is answered `ok: false`, later reports
    /// with its token are ignored, and the history is handed over.
    pub fn finish(&self) -> History {
        let mut st = self.shared.lock();
        st.token = None;
        let history = std::mem::take(&mut st.history);
        self.shared.changed.notify_all();
        history
    }
}

impl Drop for Coordinator {
    /// Ends every case, closes every connection and the accept loop: nothing a driver left
    /// behind keeps a thread of the runner.
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        self.finish();
        for stream in self.shared.connections().1.values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        // Wakes the accept loop, which then sees `closing`.
        let _ = UnixStream::connect(&self.path);
    }
}

/// Accepts connections until the coordinator is dropped, one thread per connection, at most
/// [`MAX_CONNECTIONS`] at once.
fn accept(listener: &UnixListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.closing.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let Some(id) = shared.admit(&stream) else {
            shared.lock().over_limit(format!(
                "more than {MAX_CONNECTIONS} coordinator connections open at once (the \
                 protocol's limit)"
            ));
            // A fresh socket's buffer takes this line without blocking; best effort anyway.
            let _ = stream.set_nonblocking(true);
            let _ = reply(&mut &stream, &nack("too many connections"));
            continue;
        };
        let for_conn = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name("coordinator-conn".into())
            .spawn(move || {
                serve(stream, &for_conn);
                for_conn.leave(id);
            });
        if spawned.is_err() {
            shared.leave(id);
        }
    }
}

fn reply(writer: &mut impl Write, ack: &Ack) -> std::io::Result<()> {
    let mut text = serde_json::to_string(ack).map_err(std::io::Error::other)?;
    text.push('\n');
    writer.write_all(text.as_bytes())
}

/// Serves one connection: one report read (at most [`MAX_REPORT`] bytes), one reply written.
fn serve(stream: UnixStream, shared: &Shared) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let ack = match read_line_capped(&mut reader, MAX_REPORT) {
            Ok(Capped::Line(bytes)) if bytes.trim_ascii().is_empty() => continue,
            Ok(Capped::Line(bytes)) => match std::str::from_utf8(&bytes) {
                Ok(line) => handle(line, shared),
                Err(e) => malformed(shared, &e.to_string(), &String::from_utf8_lossy(&bytes)),
            },
            Ok(Capped::TooLong) => {
                shared.lock().over_limit(format!(
                    "a coordinator report longer than {} (the protocol's limit)",
                    bytes_in_words(MAX_REPORT)
                ));
                let _ = reply(&mut writer, &nack("report too long"));
                return;
            }
            Ok(Capped::Eof) | Err(_) => return,
        };
        if reply(&mut writer, &ack).is_err() {
            return;
        }
    }
}

fn malformed(shared: &Shared, error: &str, line: &str) -> Ack {
    let short: String = line.chars().take(200).collect();
    shared
        .lock()
        .violation(format!("malformed report ({error}): {short}"));
    nack("malformed report")
}

fn nack(reason: &str) -> Ack {
    Ack {
        ok: false,
        reason: Some(reason.to_owned()),
    }
}

fn handle(line: &str, shared: &Shared) -> Ack {
    let report: Report = match serde_json::from_str(line) {
        Ok(r) => r,
        Err(e) => return malformed(shared, &e.to_string(), line),
    };
    let _timing = crate::cell_timing::report(&report.token, &report.event);
    let mut st = shared.lock();
    if st.token.as_deref() != Some(report.token.as_str()) {
        return nack("case over");
    }
    st.bytes = st.bytes.saturating_add(line.len());
    if st.bytes > MAX_CASE_REPORTS {
        st.over_limit(format!(
            "more than {} of coordinator reports in one case (the protocol's limit)",
            bytes_in_words(MAX_CASE_REPORTS)
        ));
        return nack("too many reports");
    }
    let found = st
        .ids
        .as_ref()
        .and_then(|ids| misfit(ids, |r| st.count(r), &report.event));
    if let Some(m) = found {
        st.violation(m.violation);
        return nack(m.reason);
    }
    let origin = Origin::Process {
        pid: report.pid,
        thread: match &report.thread {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        },
    };
    let token = report.token.clone();
    match report.event {
        ReportKind::Wait { who, gate } => {
            let Some(g) = st.gates.get_mut(&gate) else {
                st.violation(format!("`{who}` waited on unknown gate `{gate}`"));
                return nack("unknown gate");
            };
            g.waiting += 1;
            let kind = ReportKind::Wait {
                who,
                gate: gate.clone(),
            };
            st.record(origin, kind);
            shared.changed.notify_all();
            let mut st = wait_while(shared, st, &token, |st| {
                st.gates.get(&gate).is_some_and(|g| !g.open)
            });
            if let Some(g) = st.gates.get_mut(&gate) {
                g.waiting = g.waiting.saturating_sub(1);
            }
            live_ack(&st, &token)
        }
        ReportKind::Await {
            until_event,
            gate,
            waiting,
        } => {
            let st = wait_while(shared, st, &token, |st| match (&until_event, &gate) {
                (Some(e), _) => !st.counts.contains_key(e),
                (None, Some(g)) => st
                    .gates
                    .get(g)
                    .is_some_and(|g| g.waiting < waiting.unwrap_or(1) && !g.open),
                (None, None) => false,
            });
            live_ack(&st, &token)
        }
        ReportKind::Open { gate } => {
            if !st.gates.contains_key(&gate) {
                st.violation(format!("`open` of unknown gate `{gate}`"));
                return nack("unknown gate");
            }
            st.open_gate(&gate);
            shared.changed.notify_all();
            Ack {
                ok: true,
                reason: None,
            }
        }
        kind => {
            st.record(origin, kind);
            shared.changed.notify_all();
            Ack {
                ok: true,
                reason: None,
            }
        }
    }
}

/// Blocks while `pending` holds and the case `token` is still running.
fn wait_while<'a>(
    shared: &'a Shared,
    mut st: MutexGuard<'a, State>,
    token: &str,
    pending: impl Fn(&State) -> bool,
) -> MutexGuard<'a, State> {
    while st.token.as_deref() == Some(token) && pending(&st) {
        st = shared.changed.wait(st).unwrap_or_else(|e| e.into_inner());
    }
    st
}

fn live_ack(st: &State, token: &str) -> Ack {
    if st.token.as_deref() == Some(token) {
        Ack {
            ok: true,
            reason: None,
        }
    } else {
        nack("case over")
    }
}

#[cfg(test)]
mod tests;
