//! The coordinator client: one Unix-stream connection per (process, thread), one JSON line per
//! report, one acknowledgement line read back before going on (spec/PROTOCOL.md §2.2, §4).
//!
//! Worker processes are fresh executions of this binary, so nothing here is ever inherited
//! across `fork`: a thread-local map holds the calling thread's connections. Every connection
//! this process opens is also registered (as a duplicate of its socket) so that the driver can
//! wake every thread blocked on the coordinator when a program is over ([`abort_connections`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use serde_json::{Map, Value};

/// Where reports go and how they are tagged: the coordinator socket path and the run's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coord {
    pub path: String,
    pub token: String,
}

impl Coord {
    /// `[path, token]`, as carried by a task descriptor's `_coord`.
    pub fn to_json(&self) -> Value {
        Value::Array(vec![
            Value::String(self.path.clone()),
            Value::String(self.token.clone()),
        ])
    }

    pub fn from_json(v: &Value) -> Option<Coord> {
        let a = v.as_array()?;
        Some(Coord {
            path: a.first()?.as_str()?.to_owned(),
            token: a.get(1)?.as_str()?.to_owned(),
        })
    }
}

/// Set by [`abort_connections`]: reports from tasks and callbacks stop quietly until
/// [`close_connections`].
static CLOSING: AtomicBool = AtomicBool::new(false);
/// Bumped by [`close_connections`]: a thread's connection of an older generation is stale.
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// Duplicates of every connection this process opened (for shutting them down).
static OPENED: Mutex<Vec<UnixStream>> = Mutex::new(Vec::new());

fn opened() -> MutexGuard<'static, Vec<UnixStream>> {
    OPENED.lock().unwrap_or_else(|e| e.into_inner())
}

struct Conn {
    generation: u64,
    reader: BufReader<UnixStream>,
}

thread_local! {
    static CONNS: RefCell<HashMap<String, Conn>> = RefCell::new(HashMap::new());
}

/// This thread's identity, unique within the process while it lives.
pub fn thread_id() -> i64 {
    i64::from(nix::unistd::gettid().as_raw())
}

fn exchange(path: &str, line: &[u8]) -> Result<Value, String> {
    CONNS.with(|conns| {
        let mut conns = conns.borrow_mut();
        let generation = GENERATION.load(Ordering::SeqCst);
        if conns.get(path).is_some_and(|c| c.generation != generation) {
            conns.remove(path);
        }
        let result = (|| -> Result<Value, String> {
            if !conns.contains_key(path) {
                let stream = UnixStream::connect(path).map_err(|e| format!("connect: {e}"))?;
                let dup = stream.try_clone().map_err(|e| format!("dup: {e}"))?;
                opened().push(dup);
                conns.insert(
                    path.to_owned(),
                    Conn {
                        generation,
                        reader: BufReader::new(stream),
                    },
                );
            }
            let Some(conn) = conns.get_mut(path) else {
                return Err("no connection".into());
            };
            conn.reader
                .get_mut()
                .write_all(line)
                .map_err(|e| format!("write: {e}"))?;
            let mut reply = String::new();
            let n = conn
                .reader
                .read_line(&mut reply)
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("coordinator closed the connection".into());
            }
            let ack: Value = serde_json::from_str(reply.trim_end())
                .map_err(|_| format!("unreadable acknowledgement: {:?}", reply.trim_end()))?;
            match &ack {
                Value::Object(m) if m.contains_key("ok") => Ok(ack),
                _ => Err(format!(
                    "unreadable acknowledgement: {:?}",
                    reply.trim_end()
                )),
            }
        })();
        if result.is_err() {
            conns.remove(path);
        }
        result
    })
}

fn encode(coord: &Coord, fields: Map<String, Value>) -> Vec<u8> {
    let mut message = Map::new();
    message.insert("token".into(), Value::String(coord.token.clone()));
    message.insert("pid".into(), Value::from(std::process::id()));
    message.insert("thread".into(), Value::from(thread_id()));
    message.extend(fields);
    let mut line = Value::Object(message).to_string().into_bytes();
    line.push(b'\n');
    line
}

/// A report from the driver's main thread: the acknowledgement, or why the coordinator could
/// not be reached.
pub fn report_loud(coord: &Coord, fields: Map<String, Value>) -> Result<Value, String> {
    let event = fields
        .get("event")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned();
    exchange(&coord.path, &encode(coord, fields))
        .map_err(|e| format!("cannot report {event} to coordinator {}: {e}", coord.path))
}

/// A report from a task or a callback: the acknowledgement, or `None` when the coordinator
/// cannot be reached or the driver is ending the program (the caller then stops quietly).
pub fn report(coord: &Coord, fields: Map<String, Value>) -> Option<Value> {
    if CLOSING.load(Ordering::SeqCst) {
        return None;
    }
    exchange(&coord.path, &encode(coord, fields)).ok()
}

/// True when a task or callback must stop quietly: no acknowledgement, or `ok: false`.
pub fn stopped(ack: &Option<Value>) -> bool {
    !matches!(
        ack.as_ref().and_then(|a| a.get("ok")),
        Some(Value::Bool(true))
    )
}

/// Wakes every thread of this process blocked on the coordinator (by shutting its socket
/// down), and makes reports from tasks and callbacks stop quietly until
/// [`close_connections`].
pub fn abort_connections() {
    CLOSING.store(true, Ordering::SeqCst);
    for s in opened().iter() {
        let _ = s.shutdown(Shutdown::Both);
    }
}

/// Forgets every connection of this process (the calling thread's are closed now, other
/// threads' are replaced on their next report) and lets reports flow again.
pub fn close_connections() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
    {
        let mut all = opened();
        for s in all.iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
        all.clear();
    }
    CONNS.with(|c| c.borrow_mut().clear());
    CLOSING.store(false, Ordering::SeqCst);
}

/// Builds a report's fields: `fields!{"event" => "start", "task" => id}`.
#[macro_export]
macro_rules! fields {
    ($($k:expr => $v:expr),* $(,)?) => {{
        let mut m = serde_json::Map::new();
        $( m.insert(($k).to_string(), serde_json::Value::from($v)); )*
        m
    }};
}
