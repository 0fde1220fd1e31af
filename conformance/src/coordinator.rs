//! The coordinator: the Unix socket every process of the implementation under test reports
//! to, and on which tasks wait for gates.
//!
//! Each report is acknowledged only after it has its place in the history, so the history
//! order respects causality: if process A reported X before it did something that let B report
//! Y, then X precedes Y. Gates are opened here, by the case's rules or by `open` steps, never
//! by a clock.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::protocol::{Ack, Report, ReportKind};
use crate::spec::{Count, GateRule, Program};

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

#[derive(Debug, Default)]
struct State {
    /// The token of the running case; `None` between cases.
    token: Option<String>,
    gates: IndexMap<String, Gate>,
    history: History,
    seen: HashSet<String>,
}

impl State {
    fn record(&mut self, origin: Origin, kind: ReportKind) {
        let event = Event {
            seq: self.history.events.len() as u64,
            origin,
            kind,
        };
        if let Some(r) = event.reference() {
            self.seen.insert(r);
        }
        self.history.events.push(event);
        self.apply_rules();
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
                    GateRule::After(event) => self.seen.contains(event),
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
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
            .spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    let shared = Arc::clone(&for_accept);
                    let _ = thread::Builder::new()
                        .name("coordinator-conn".into())
                        .spawn(move || serve(stream, &shared));
                }
            })?;
        Ok(Coordinator {
            path,
            shared,
            _dir: dir,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
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
    }

    fn begin_with(&self, token: &str, gates: &IndexMap<String, GateRule>, processes: Option<u32>) {
        let mut st = self.shared.lock();
        *st = State {
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

fn serve(stream: UnixStream, shared: &Shared) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut writer = stream;
    for line in BufReader::new(read_half).lines() {
        let Ok(line) = line else { return };
        if line.trim().is_empty() {
            continue;
        }
        let ack = handle(&line, shared);
        let Ok(mut text) = serde_json::to_string(&ack) else {
            return;
        };
        text.push('\n');
        if writer.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
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
        Err(e) => {
            let mut st = shared.lock();
            if st.token.is_some() {
                let short: String = line.chars().take(200).collect();
                st.history
                    .violations
                    .push(format!("malformed report ({e}): {short}"));
            }
            return nack("malformed report");
        }
    };
    let mut st = shared.lock();
    if st.token.as_deref() != Some(report.token.as_str()) {
        return nack("case over");
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
                st.history
                    .violations
                    .push(format!("`{who}` waited on unknown gate `{gate}`"));
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
                (Some(e), _) => !st.seen.contains(e),
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
                st.history
                    .violations
                    .push(format!("`open` of unknown gate `{gate}`"));
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
mod tests {
    use super::*;

    fn send(stream: &mut BufReader<UnixStream>, json: serde_json::Value) -> Ack {
        let mut line = json.to_string();
        line.push('\n');
        stream.get_mut().write_all(line.as_bytes()).unwrap();
        let mut reply = String::new();
        stream.read_line(&mut reply).unwrap();
        serde_json::from_str(&reply).unwrap()
    }

    fn connect(c: &Coordinator) -> BufReader<UnixStream> {
        BufReader::new(UnixStream::connect(c.path()).unwrap())
    }

    #[test]
    fn a_barrier_gate_releases_all_waiters_at_once_and_records_causally() {
        let c = Coordinator::start().unwrap();
        let mut gates = IndexMap::new();
        gates.insert("b".to_owned(), GateRule::WhenWaiting(Count::N(2)));
        c.begin("t1", &gates);
        let waiters: Vec<_> = ["x", "y"]
            .into_iter()
            .map(|who| {
                let mut s = connect(&c);
                thread::spawn(move || {
                    send(
                        &mut s,
                        serde_json::json!({"token":"t1","pid":1,"thread":who,"event":"wait","who":who,"gate":"b"}),
                    )
                })
            })
            .collect();
        for w in waiters {
            assert!(w.join().unwrap().ok);
        }
        let h = c.finish();
        let refs: Vec<_> = h.events.iter().filter_map(Event::reference).collect();
        assert_eq!(refs.len(), 3);
        assert_eq!(
            refs[2], "b.open",
            "the gate opens only after both waits: {refs:?}"
        );
    }

    #[test]
    fn stale_reports_are_refused_and_pending_waits_end_with_the_case() {
        let c = Coordinator::start().unwrap();
        let mut gates = IndexMap::new();
        gates.insert("never".to_owned(), GateRule::Manual);
        c.begin("t1", &gates);
        let mut s = connect(&c);
        let waiter = thread::spawn(move || {
            send(
                &mut s,
                serde_json::json!({"token":"t1","pid":1,"thread":1,"event":"wait","who":"a","gate":"never"}),
            )
        });
        // Let the wait be recorded before the case ends: poll the history, not a clock (the
        // deadline only keeps a broken coordinator from hanging the test suite).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while c.shared.lock().history.events.is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the wait was never recorded"
            );
            thread::yield_now();
        }
        c.finish();
        assert!(!waiter.join().unwrap().ok);
        let mut s = connect(&c);
        let ack = send(
            &mut s,
            serde_json::json!({"token":"t1","pid":1,"thread":1,"event":"start","task":"a"}),
        );
        assert!(!ack.ok);
    }

    #[test]
    fn after_rules_chain() {
        let c = Coordinator::start().unwrap();
        let mut gates = IndexMap::new();
        gates.insert("g1".to_owned(), GateRule::After("a.end".into()));
        gates.insert("g2".to_owned(), GateRule::After("g1.open".into()));
        c.begin("t", &gates);
        let mut s = connect(&c);
        let end = serde_json::json!({"token":"t","pid":1,"thread":1,"event":"end","task":"a","outcome":{"returned":1}});
        assert!(send(&mut s, end).ok);
        let refs: Vec<_> = c
            .finish()
            .events
            .iter()
            .filter_map(Event::reference)
            .collect();
        assert_eq!(refs, ["a.end", "g1.open", "g2.open"]);
    }

    #[test]
    fn malformed_reports_are_violations() {
        let c = Coordinator::start().unwrap();
        c.begin("t", &IndexMap::new());
        let mut s = connect(&c);
        assert!(!send(&mut s, serde_json::json!({"token":"t","what":1})).ok);
        assert_eq!(c.finish().violations.len(), 1);
    }
}
