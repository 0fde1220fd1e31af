//! The stdio side of the protocol (spec/PROTOCOL.md §2.1, §3): the [`Driver`] trait and the
//! loop that serves the runner with it.

use std::fs::File;
use std::io::{BufRead, Write};
use std::os::fd::AsFd;
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::coord::{Coord, close_connections};
use crate::program::Program;
use crate::repr::py_repr_str;
use crate::steps::Run;
use crate::teardown::program_name;
use crate::types::{Failure, panic_message};

/// The protocol version this crate speaks (spec/PROTOCOL.md). A runner asking for another
/// is answered `error`, and the driver exits with status 2.
pub const PROTOCOL: u64 = 2;

/// What a driver supplies: who it is, what it can do, and how it runs one program.
///
/// [`serve`] calls [`setup`](Driver::setup), [`implementation`](Driver::implementation) and
/// [`capabilities`](Driver::capabilities) once, at `hello`, then
/// [`run_program`](Driver::run_program) once per `run`, on the main thread.
pub trait Driver {
    /// The handshake's `implementation`: name, version, language, and optionally the start
    /// method, interpreter and pool class.
    fn implementation(&self) -> Implementation;

    /// The handshake's `capabilities`: exactly the ops and features this driver implements
    /// ([`OPS`](crate::OPS) for every op; plus the [`FEATURES`](crate::FEATURES) that apply;
    /// spec/README.md §2.3). The runner answers a case that needs another with
    /// `unsupported`, without sending it.
    fn capabilities(&self) -> Vec<String>;

    /// The pool's extensions (PROTOCOL.md §3.5): constructor arguments
    /// ([`PoolParams::extension`](crate::PoolParams)) and methods
    /// ([`Step::Extension`](crate::Step)) it has beyond Pool's. Each is declared in the
    /// handshake as the capability `ext:NAME`, so the runner sends a case using it. Default:
    /// none, and every such case is `unsupported`.
    fn extensions(&self) -> Vec<String> {
        Vec::new()
    }

    /// Runs one program on a fresh pool (spec/PROTOCOL.md §5): make the pool, run the steps,
    /// tear the pool down so that no worker survives; [`run_program`](crate::run_program)
    /// does all but the pool-specific parts. `Ok` is answered `done`, also when the steps
    /// stopped early because the coordinator refused a report (the case is over). `Err` is
    /// answered `error` and is only for the driver's own failures (an op it does not
    /// implement, a pool it cannot make, a failed teardown); an exception an operation
    /// raises is a step's outcome. A panic is answered `error` too.
    ///
    /// After it returns, [`serve`] forgets every coordinator connection of this process
    /// ([`close_connections`]) before answering.
    fn run_program(&mut self, run: &Run) -> Result<(), Failure>;

    /// Called at `hello`, before [`implementation`](Driver::implementation) and
    /// [`capabilities`](Driver::capabilities), once stdout is claimed: the place for set-up
    /// that may fail or print (probing the pool, starting a cluster). An `Err` is answered
    /// `error` to `hello`, so every case says why, and the driver exits with status 2.
    fn setup(&mut self) -> Result<(), Failure> {
        Ok(())
    }
}

/// The handshake's `implementation` object (spec/PROTOCOL.md §3.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Implementation {
    /// The name reports and expectation files use (`pool-ref`).
    pub name: String,
    /// The implementation's version.
    pub version: String,
    /// The language of the implementation (`rust`).
    pub language: String,
    /// The start method of its workers, when it has such a notion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_method: Option<String>,
    /// The interpreter or runtime, when it matters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    /// The pool's type, when one name covers several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_class: Option<String>,
    /// The version of the language whose semantics the pool follows, checked against a
    /// case's `versions` for that language. `None` for Rust drivers: cases give version
    /// ranges where CPython's behaviour changed between Python versions; a Rust pool's
    /// semantics are its own, not the compiler's, and a driver that reports no version runs
    /// every case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language_version: Option<String>,
    /// How many processes the pool uses when `processes` is left to it (`processes: null`);
    /// declare the capability `default_processes` with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_processes: Option<u32>,
}

impl Implementation {
    /// A Rust implementation with this name and version; the optional fields unset.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Implementation {
        Implementation {
            name: name.into(),
            version: version.into(),
            language: "rust".into(),
            start_method: None,
            interpreter: None,
            pool_class: None,
            language_version: None,
            default_processes: None,
        }
    }
}

/// Keeps a private duplicate of fd 1 for protocol output and points fd 1 at stderr, so that
/// nothing but protocol messages ever reaches the runner: a stray `println!` anywhere, in the
/// driver, the pool, or a child process that inherits fd 1, lands on stderr. The duplicate is
/// close-on-exec, so no worker inherits it. [`serve`] calls it; call it yourself only with
/// [`serve_io`].
pub fn claim_stdout() -> std::io::Result<File> {
    let _ = std::io::stdout().flush();
    // try_clone_to_owned duplicates with F_DUPFD_CLOEXEC: no worker inherits it.
    let private = std::io::stdout().as_fd().try_clone_to_owned()?;
    nix::unistd::dup2_stdout(std::io::stderr()).map_err(std::io::Error::from)?;
    Ok(File::from(private))
}

/// Serves the runner on stdin and stdout with `driver` until `stop` or end of input; returns
/// the exit status (0, or 2 after refusing the handshake or when stdout cannot be claimed).
/// Call it from `main` as `std::process::exit(serve(driver))`, after whatever turns a worker
/// process of your pool into a worker.
pub fn serve(mut driver: impl Driver) -> i32 {
    let out = match claim_stdout() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("{}: cannot set up stdout: {e}", program_name());
            return 2;
        }
    };
    serve_io(&mut driver, std::io::stdin().lock(), out)
}

/// The loop of [`serve`] on any input and output (neither claimed nor closed here): reads one
/// JSON message per line from `input`, writes one per line to `output`. Ends at `stop` or
/// end of input (status 0) or after refusing the handshake (status 2). A message it cannot
/// read is answered `error` and the loop goes on.
pub fn serve_io(driver: &mut impl Driver, input: impl BufRead, output: impl Write) -> i32 {
    Session {
        driver,
        out: output,
    }
    .serve(input)
}

struct Session<'a, D, W> {
    driver: &'a mut D,
    out: W,
}

impl<D: Driver, W: Write> Session<'_, D, W> {
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

    fn serve(&mut self, mut input: impl BufRead) -> i32 {
        let mut line = String::new();
        loop {
            line.clear();
            match input.read_line(&mut line) {
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
                "run" => self.run(&message),
                "stop" => return 0,
                other => {
                    let shown = message
                        .get("type")
                        .map_or_else(|| "None".to_owned(), |_| py_repr_str(other));
                    self.send_error(None, &format!("unknown message type {shown}"), None);
                }
            }
        }
    }

    /// Answers `hello`; `Some(status)` when the driver must exit.
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
        let set_up = catch_unwind(AssertUnwindSafe(|| self.driver.setup())).unwrap_or_else(|p| {
            Err(Failure::new(format!(
                "driver failure: {}",
                panic_message(p.as_ref())
            )))
        });
        if let Err(f) = set_up {
            self.send_error(None, &f.message, f.traceback.as_deref());
            return Some(2);
        }
        let implementation = self.driver.implementation();
        let mut capabilities = self.driver.capabilities();
        for name in self.driver.extensions() {
            let capability = format!("ext:{name}");
            if !capabilities.contains(&capability) {
                capabilities.push(capability);
            }
        }
        self.send(&json!({
            "type": "hello",
            "protocol": PROTOCOL,
            "implementation": implementation,
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
        let run = match Program::from_json(program) {
            Ok(typed) => Run {
                seq: seq.cloned().unwrap_or(Value::Null),
                coord: Coord {
                    path: path.to_owned(),
                    token: token.to_owned(),
                },
                program: typed,
                program_json: program.clone(),
            },
            Err(e) => {
                self.send_error(seq, &e.to_string(), None);
                return;
            }
        };
        let ran =
            catch_unwind(AssertUnwindSafe(|| self.driver.run_program(&run))).unwrap_or_else(|p| {
                Err(Failure::new(format!(
                    "driver failure: {}",
                    panic_message(p.as_ref())
                )))
            });
        close_connections();
        match ran {
            Ok(()) => self.send(&json!({"type": "done", "seq": run.seq})),
            Err(f) => self.send_error(seq, &f.message, f.traceback.as_deref()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Step;

    /// Records the programs it is given; fails or panics on request.
    #[derive(Default)]
    struct Fake {
        runs: Vec<Run>,
        refuse_setup: bool,
    }

    impl Driver for Fake {
        fn implementation(&self) -> Implementation {
            Implementation {
                start_method: Some("spawn".into()),
                ..Implementation::new("fake", "1.0")
            }
        }

        fn capabilities(&self) -> Vec<String> {
            vec!["apply".into(), "close".into()]
        }

        fn setup(&mut self) -> Result<(), Failure> {
            if self.refuse_setup {
                Err(Failure::new("cannot import mypool"))
            } else {
                Ok(())
            }
        }

        fn run_program(&mut self, run: &Run) -> Result<(), Failure> {
            self.runs.push(run.clone());
            match run.program.steps.first() {
                Some(Step::Terminate(_)) => panic!("boom"),
                Some(Step::Join(_)) => {
                    Err(Failure::new("join failed").with_traceback("line 1\nline 2"))
                }
                _ => Ok(()),
            }
        }
    }

    fn session(driver: &mut Fake, input: &str) -> (i32, Vec<Value>) {
        let _lock = crate::connections_lock();
        let mut out = Vec::new();
        let status = serve_io(driver, input.as_bytes(), &mut out);
        let lines = String::from_utf8(out).unwrap();
        let messages = lines
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (status, messages)
    }

    fn run_line(seq: u64, program: &str) -> String {
        format!(
            r#"{{"type":"run","seq":{seq},"token":"T","coordinator":"/nowhere","program":{program}}}"#
        )
    }

    #[test]
    fn handshake_then_stop() {
        let (status, out) = session(
            &mut Fake::default(),
            "{\"type\":\"hello\",\"protocol\":2}\n\n{\"type\":\"stop\"}\n{\"type\":\"hello\"}\n",
        );
        assert_eq!(status, 0);
        assert_eq!(
            out,
            [json!({
                "type": "hello",
                "protocol": 2,
                "implementation": {"name": "fake", "version": "1.0", "language": "rust", "start_method": "spawn"},
                "capabilities": ["apply", "close"],
            })]
        );
        // The exact bytes: the field order of the reference driver.
        let mut bytes = Vec::new();
        serve_io(
            &mut Fake::default(),
            &b"{\"type\":\"hello\",\"protocol\":2}\n"[..],
            &mut bytes,
        );
        assert!(bytes.starts_with(br#"{"type":"hello","protocol":2,"implementation":{"name":"fake","version":"1.0","language":"rust","start_method":"spawn"},"#));
    }

    #[test]
    fn another_protocol_version_is_refused() {
        let (status, out) = session(
            &mut Fake::default(),
            "{\"type\":\"hello\",\"protocol\":1}\n{\"type\":\"stop\"}\n",
        );
        assert_eq!(status, 2);
        assert_eq!(
            out,
            [
                json!({"type": "error", "seq": null, "message": "driver speaks protocol 2, runner asked for 1"})
            ]
        );
        let (status, out) = session(&mut Fake::default(), "{\"type\":\"hello\"}\n");
        assert_eq!(status, 2);
        assert_eq!(
            out[0]["message"],
            "driver speaks protocol 2, runner asked for null"
        );
    }

    #[test]
    fn a_failing_setup_refuses_the_handshake() {
        let mut fake = Fake {
            refuse_setup: true,
            ..Fake::default()
        };
        let (status, out) = session(&mut fake, "{\"type\":\"hello\",\"protocol\":2}\n");
        assert_eq!(status, 2);
        assert_eq!(
            out,
            [json!({"type": "error", "seq": null, "message": "cannot import mypool"})]
        );
    }

    #[test]
    fn runs_are_answered_done_or_error() {
        let input = [
            run_line(
                1,
                r#"{"id":"X","steps":[{"apply":{"id":"s1","task":{"id":"t","returns":7}}}]}"#,
            ),
            run_line(2, r#"{"steps":[{"terminate":null}]}"#),
            run_line(3, r#"{"steps":[{"join":{}}]}"#),
            run_line(4, r#"{"steps":[{"fly":{}}]}"#),
            r#"{"type":"run","seq":5,"token":"T","program":{}}"#.to_owned(),
            r#"{"type":"run","seq":6,"token":"T","coordinator":7,"program":{}}"#.to_owned(),
            run_line(7, "{}"),
        ]
        .join("\n");
        let mut fake = Fake::default();
        let (status, out) = session(&mut fake, &input);
        assert_eq!(status, 0);
        assert_eq!(
            out,
            [
                json!({"type": "done", "seq": 1}),
                json!({"type": "error", "seq": 2, "message": "driver failure: boom"}),
                json!({"type": "error", "seq": 3, "message": "join failed", "traceback": "line 1\nline 2"}),
                json!({"type": "error", "seq": 4, "message": "unknown op 'fly' (step 1)"}),
                json!({"type": "error", "seq": 5, "message": "run message lacks 'coordinator'"}),
                json!({"type": "error", "seq": 6, "message": "run message: token and coordinator must be strings"}),
                json!({"type": "done", "seq": 7}),
            ]
        );
        assert_eq!(fake.runs.len(), 4);
        let first = &fake.runs[0];
        assert_eq!(first.seq, json!(1));
        assert_eq!(
            first.coord,
            Coord {
                path: "/nowhere".into(),
                token: "T".into()
            }
        );
        assert_eq!(first.program.id.as_deref(), Some("X"));
        assert_eq!(first.program_json["id"], "X");
        assert!(fake.runs[3].program.steps.is_empty());
    }

    #[test]
    fn unreadable_messages_are_answered_and_skipped() {
        let input = "not json\n[1]\n{\"type\":\"fly\"}\n{\"x\":1}\n{\"type\":\"stop\"}\n";
        let (status, out) = session(&mut Fake::default(), input);
        assert_eq!(status, 0);
        let messages: Vec<_> = out.iter().map(|m| m["message"].as_str().unwrap()).collect();
        assert!(messages[0].starts_with("unreadable message from runner: "));
        assert_eq!(
            &messages[1..],
            [
                "message from runner is not a JSON object",
                "unknown message type 'fly'",
                "unknown message type None",
            ]
        );
        assert!(
            out.iter()
                .all(|m| m["type"] == "error" && m["seq"].is_null())
        );
    }
}
