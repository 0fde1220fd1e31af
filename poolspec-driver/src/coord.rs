//! The coordinator client: one Unix-stream connection per (process, thread), one JSON line per
//! report, one acknowledgement line read back before going on (spec/PROTOCOL.md §2.2, §4).
//!
//! Every process and thread of the implementation under test reports through a [`Coord`]: the
//! driver's main thread ([`Coord::report_main`], done for you by
//! [`run_steps`](crate::run_steps)), tasks and callbacks ([`Coord::report`], done for you by
//! [`run_task`](crate::run_task) and [`run_callback`](crate::run_callback)).
//!
//! Connections are opened lazily and kept in a thread-local map, so two threads never share
//! one (a held `wait` blocks its whole connection). Each remembers the pid it was opened in:
//! a child forked by the thread that holds it opens its own instead of using the parent's
//! (PROTOCOL.md §5 rule 4), and forgets the parent's without shutting them down. (Forking a
//! multi-threaded process has its usual hazards besides; pool-ref's workers re-execute the
//! binary instead.) Every connection a process opens is also registered (as a duplicate of
//! its socket) so that the driver can wake every thread blocked on the coordinator when a
//! program is over ([`abort_connections`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::{self, BufRead, BufReader, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::de::{self, Deserializer};
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::exception::Exception;
use crate::types::{CallbackKind, Failure, Outcome};

/// Where reports go and how they are tagged: the coordinator socket of a `run` and its token.
///
/// Serializes as `[path, token]`, the form a task descriptor carries in `_coord`
/// ([`Descriptor`](crate::Descriptor)), so it can cross into a worker with the task.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Coord {
    /// The Unix socket the runner's coordinator listens on.
    pub path: String,
    /// The run's token; every report carries it (opaque, PROTOCOL.md §7).
    pub token: String,
}

impl Serialize for Coord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&self.path)?;
        t.serialize_element(&self.token)?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for Coord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Coord, D::Error> {
        let (path, token) = <(String, String)>::deserialize(d)
            .map_err(|_| de::Error::custom("_coord must be [socket path, token]"))?;
        Ok(Coord { path, token })
    }
}

/// One event, as reported to the coordinator (the `event` field and what follows it;
/// spec/PROTOCOL.md §4.1). [`Coord`] adds `token`, `pid` and `thread`.
///
/// Ids are `Option`s because the wire allows a missing id to be reported as `null`; the
/// runner's compiled programs always have them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<'a> {
    /// The main thread is about to run step `step`.
    Call { step: Option<&'a str>, op: &'a str },
    /// Step `step` finished with `outcome`.
    Return {
        step: Option<&'a str>,
        outcome: &'a Outcome,
    },
    /// A task (or the initializer) began.
    Start { task: Option<&'a str> },
    /// `who` (a task id, or `<step>.<kind>` for a callback) is about to block on `gate`;
    /// acknowledged once the gate is open.
    Wait { who: Option<&'a str>, gate: &'a str },
    /// A task is about to return or raise.
    End {
        task: Option<&'a str>,
        outcome: &'a Outcome,
    },
    /// A task is about to end its process with `code`.
    Exit { task: Option<&'a str>, code: i32 },
    /// A callback of step `step` was entered with `arg`.
    Callback {
        step: &'a str,
        kind: CallbackKind,
        arg: &'a Value,
    },
    /// A callback of step `step` is about to return, or to raise `raised`.
    CallbackDone {
        step: &'a str,
        kind: CallbackKind,
        #[serde(skip_serializing_if = "Option::is_none")]
        raised: Option<&'a Exception>,
    },
    /// The main thread opens `gate` (an `open` step).
    Open { gate: &'a str },
    /// The main thread constructed the pool (and entered it, for `with_block`), before any
    /// step: `returned: null`, or `raised` when the pool refused its arguments.
    Construct { outcome: &'a Outcome },
    /// The main thread waits until `until_event` was recorded, or `gate` has `waiting`
    /// waiters (an `await` step); acknowledged once the condition holds.
    Await {
        #[serde(skip_serializing_if = "Option::is_none")]
        until_event: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        gate: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        waiting: Option<u64>,
    },
}

impl Event<'_> {
    /// The `event` field: `call`, `start`, `callback_done`, ...
    pub fn name(&self) -> &'static str {
        match self {
            Event::Call { .. } => "call",
            Event::Return { .. } => "return",
            Event::Start { .. } => "start",
            Event::Wait { .. } => "wait",
            Event::End { .. } => "end",
            Event::Exit { .. } => "exit",
            Event::Callback { .. } => "callback",
            Event::CallbackDone { .. } => "callback_done",
            Event::Open { .. } => "open",
            Event::Construct { .. } => "construct",
            Event::Await { .. } => "await",
        }
    }
}

/// The coordinator's answer to a report (spec/PROTOCOL.md §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// `true`: recorded (or the condition of a `wait`/`await` holds), go on. `false`: the case
    /// is over or the report was refused; stop quietly.
    pub ok: bool,
    /// Why the report was refused (`case over`, `malformed report`, `unknown gate`).
    pub reason: Option<String>,
}

/// Why a report got no acknowledgement: the coordinator cannot be reached (`Connect`), the
/// connection broke (`Duplicate`, `Write`, `Read`, `Closed`), or it answered what is no
/// acknowledgement (`UnreadableAck`, a protocol mistake). The messages end up in the
/// driver's `error` answer ([`Coord::report_main`]).
///
/// Clone, and equal when the messages are (the I/O errors are shared, not compared).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CoordError {
    /// Connecting to the coordinator's socket failed.
    #[error("connect: {0}")]
    Connect(#[source] Arc<io::Error>),
    /// Duplicating the new connection (to wake its thread at teardown) failed.
    #[error("dup: {0}")]
    Duplicate(#[source] Arc<io::Error>),
    /// Sending the report failed.
    #[error("write: {0}")]
    Write(#[source] Arc<io::Error>),
    /// Reading the acknowledgement failed.
    #[error("read: {0}")]
    Read(#[source] Arc<io::Error>),
    /// The coordinator closed the connection instead of acknowledging.
    #[error("coordinator closed the connection")]
    Closed,
    /// The answer was not an acknowledgement (a JSON object with `ok`): the line as read.
    #[error("unreadable acknowledgement: {0:?}")]
    UnreadableAck(String),
}

impl PartialEq for CoordError {
    fn eq(&self, other: &CoordError) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for CoordError {}

impl Coord {
    /// Sends one report from this thread and reads its acknowledgement, opening this
    /// thread's connection first if needed. Blocks as long as the coordinator holds the
    /// acknowledgement back (a `wait` on a closed gate). Prefer [`Coord::report`] in tasks and
    /// callbacks and [`Coord::report_main`] on the main thread.
    pub fn send(&self, event: &Event<'_>) -> Result<Ack, CoordError> {
        exchange(&self.path, &self.encode(event))
    }

    /// A report from a task or a callback: `true` to go on; `false` when it must stop quietly
    /// (spec/PROTOCOL.md §5 rule 3), because the coordinator refused the report, cannot be
    /// reached, or the driver is ending the program ([`abort_connections`]).
    pub fn report(&self, event: &Event<'_>) -> bool {
        if CLOSING.load(Ordering::SeqCst) {
            return false;
        }
        self.send(event).is_ok_and(|ack| ack.ok)
    }

    /// A report from the driver's main thread: `Ok(true)` to go on, `Ok(false)` when the case
    /// is over (stop running steps, tear down, answer `done`), or the failure to answer with
    /// `error` when the coordinator cannot be reached.
    pub fn report_main(&self, event: &Event<'_>) -> Result<bool, Failure> {
        self.send(event).map(|ack| ack.ok).map_err(|e| {
            Failure::new(format!(
                "cannot report {} to coordinator {}: {e}",
                event.name(),
                self.path
            ))
        })
    }

    /// The report's JSON line: `token`, `pid`, `thread`, then the event's fields.
    fn encode(&self, event: &Event<'_>) -> Vec<u8> {
        #[derive(Serialize)]
        struct Report<'a> {
            token: &'a str,
            pid: u32,
            thread: i64,
            #[serde(flatten)]
            event: &'a Event<'a>,
        }
        let report = Report {
            token: &self.token,
            pid: std::process::id(),
            thread: thread_id(),
            event,
        };
        // Serializing borrowed strings and JSON values into a Vec cannot fail.
        let mut line = serde_json::to_vec(&report).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

/// Set by [`abort_connections`]: reports from tasks and callbacks stop quietly until
/// [`close_connections`].
static CLOSING: AtomicBool = AtomicBool::new(false);
/// Bumped by [`close_connections`]: a thread's connection of an older generation is stale.
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// Duplicates of every connection this process opened (for shutting them down), and the pid
/// they belong to.
static OPENED: Mutex<(u32, Vec<UnixStream>)> = Mutex::new((0, Vec::new()));

/// This process's registered connections; a forked child drops (closes, without shutting
/// down) the ones it inherited.
fn opened() -> MutexGuard<'static, (u32, Vec<UnixStream>)> {
    let mut guard = OPENED.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if guard.0 != pid {
        *guard = (pid, Vec::new());
    }
    guard
}

struct Conn {
    pid: u32,
    generation: u64,
    reader: BufReader<UnixStream>,
}

thread_local! {
    static CONNS: RefCell<HashMap<String, Conn>> = RefCell::new(HashMap::new());
}

/// This thread's identity as reported in `thread`: its kernel thread id, unique within the
/// process while the thread lives.
pub fn thread_id() -> i64 {
    i64::from(nix::unistd::gettid().as_raw())
}

fn exchange(path: &str, line: &[u8]) -> Result<Ack, CoordError> {
    CONNS.with(|conns| {
        let mut conns = conns.borrow_mut();
        let generation = GENERATION.load(Ordering::SeqCst);
        let pid = std::process::id();
        if conns
            .get(path)
            .is_some_and(|c| c.generation != generation || c.pid != pid)
        {
            conns.remove(path);
        }
        let result = (|| -> Result<Ack, CoordError> {
            let conn = match conns.entry(path.to_owned()) {
                Entry::Occupied(open) => open.into_mut(),
                Entry::Vacant(slot) => {
                    let stream =
                        UnixStream::connect(path).map_err(|e| CoordError::Connect(e.into()))?;
                    let dup = stream
                        .try_clone()
                        .map_err(|e| CoordError::Duplicate(e.into()))?;
                    opened().1.push(dup);
                    slot.insert(Conn {
                        pid,
                        generation,
                        reader: BufReader::new(stream),
                    })
                }
            };
            conn.reader
                .get_mut()
                .write_all(line)
                .map_err(|e| CoordError::Write(e.into()))?;
            let mut reply = String::new();
            let n = conn
                .reader
                .read_line(&mut reply)
                .map_err(|e| CoordError::Read(e.into()))?;
            if n == 0 {
                return Err(CoordError::Closed);
            }
            parse_ack(reply.trim_end())
        })();
        if result.is_err() {
            conns.remove(path);
        }
        result
    })
}

/// An acknowledgement line: a JSON object with an `ok` key; anything but `ok: true` refuses.
fn parse_ack(line: &str) -> Result<Ack, CoordError> {
    let unreadable = || CoordError::UnreadableAck(line.to_owned());
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(m)) if m.contains_key("ok") => Ok(Ack {
            ok: m.get("ok") == Some(&Value::Bool(true)),
            reason: m.get("reason").and_then(Value::as_str).map(str::to_owned),
        }),
        _ => Err(unreadable()),
    }
}

/// Wakes every thread of this process blocked on the coordinator (by shutting its socket
/// down), and makes [`Coord::report`] answer `false` until [`close_connections`]. Call it
/// before tearing a pool down: a callback thread held on a gate that will never open would
/// otherwise keep the pool's `join` waiting (`teardown` does).
pub fn abort_connections() {
    CLOSING.store(true, Ordering::SeqCst);
    for s in opened().1.iter() {
        let _ = s.shutdown(Shutdown::Both);
    }
}

/// Forgets every connection of this process (the calling thread's are closed now, other
/// threads' are replaced on their next report) and lets reports flow again.
/// `serve` calls it after every program, before answering.
pub fn close_connections() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
    {
        let mut all = opened();
        for s in all.1.iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
        all.1.clear();
    }
    CONNS.with(|c| c.borrow_mut().clear());
    CLOSING.store(false, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::HandleKind;
    use std::os::unix::net::UnixListener;

    fn coord(path: &str) -> Coord {
        Coord {
            path: path.into(),
            token: "T".into(),
        }
    }

    #[test]
    fn coord_crosses_as_a_pair() {
        let c = coord("/tmp/x.sock");
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"["/tmp/x.sock","T"]"#);
        assert_eq!(serde_json::from_str::<Coord>(&json).unwrap(), c);
        assert!(serde_json::from_str::<Coord>(r#"["/tmp/x.sock"]"#).is_err());
    }

    #[test]
    fn reports_are_token_pid_thread_then_the_event() {
        let c = coord("/p");
        let outcome = Outcome::Handle(HandleKind::Iterator);
        let line = c.encode(&Event::Return {
            step: Some("it"),
            outcome: &outcome,
        });
        let text = String::from_utf8(line).unwrap();
        let expected = format!(
            "{{\"token\":\"T\",\"pid\":{},\"thread\":{},\"event\":\"return\",\"step\":\"it\",\"outcome\":{{\"handle\":\"iterator\"}}}}\n",
            std::process::id(),
            thread_id()
        );
        assert_eq!(text, expected);
        let done = Event::CallbackDone {
            step: "m",
            kind: CallbackKind::ErrorCallback,
            raised: None,
        };
        let v: Value = serde_json::from_slice(&c.encode(&done)).unwrap();
        assert_eq!(v["kind"], "error_callback");
        assert!(v.get("raised").is_none());
        let v: Value = serde_json::from_slice(&c.encode(&Event::Start { task: None })).unwrap();
        assert_eq!(v["task"], Value::Null);
    }

    #[test]
    fn acknowledgements() {
        assert_eq!(
            parse_ack(r#"{"ok":true}"#),
            Ok(Ack {
                ok: true,
                reason: None
            })
        );
        assert_eq!(
            parse_ack(r#"{"ok":false,"reason":"case over"}"#),
            Ok(Ack {
                ok: false,
                reason: Some("case over".into())
            })
        );
        assert!(parse_ack(r#"{"ok":1}"#).is_ok_and(|a| !a.ok));
        assert!(parse_ack(r#"{"reason":"x"}"#).is_err());
        assert!(parse_ack("[]").is_err());
    }

    #[test]
    fn a_round_trip_through_a_socket() {
        let _lock = crate::connections_lock();
        let dir = std::env::temp_dir().join(format!("poolspec-driver-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("coord.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut lines = Vec::new();
            for reply in [
                "{\"ok\":true}\n",
                "{\"ok\":false,\"reason\":\"case over\"}\n",
            ] {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                lines.push(line);
                (&stream).write_all(reply.as_bytes()).unwrap();
            }
            lines
        });
        let c = coord(path.to_str().unwrap());
        assert_eq!(c.report_main(&Event::Open { gate: "g" }), Ok(true));
        assert!(!c.report(&Event::Start { task: Some("t") }));
        let lines = server.join().unwrap();
        assert!(lines[0].contains(r#""event":"open","gate":"g""#));
        assert!(lines[1].contains(r#""event":"start","task":"t""#));
        close_connections();
        // Nobody listens any more: loud on the main thread, quiet elsewhere.
        std::fs::remove_file(&path).unwrap();
        let err = c.report_main(&Event::Open { gate: "g" }).unwrap_err();
        assert!(err.message.starts_with("cannot report open to coordinator"));
        assert!(!c.report(&Event::Start { task: None }));
        // The kind says what failed, with the I/O error as its source.
        let err = c.send(&Event::Open { gate: "g" }).unwrap_err();
        assert!(matches!(err, CoordError::Connect(_)), "{err}");
        assert!(std::error::Error::source(&err).is_some());
        assert!(err.to_string().starts_with("connect: "));
        let _ = std::fs::remove_dir(&dir);
    }
}
