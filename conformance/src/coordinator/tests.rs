//! The coordinator spoken to over its socket, as drivers do: gates, stale reports, limits,
//! reports that do not fit the program.

use std::io::BufRead;

use super::*;
use crate::driver_output::{DriverOutput, Next};

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

/// A coordinator whose limits raise the alarm of a driver output that never ends, and
/// that output (to look at the alarm).
fn alarmed() -> (Coordinator, DriverOutput, os_pipe::PipeWriter) {
    let c = Coordinator::start().unwrap();
    let (reader, writer) = os_pipe::pipe().unwrap();
    let output = DriverOutput::spawn(reader);
    c.alarm_to(output.alarm());
    (c, output, writer)
}

fn alarm_of(output: &DriverOutput) -> Next {
    output.next(std::time::Instant::now() + std::time::Duration::from_secs(30))
}

#[test]
fn an_oversized_report_is_refused_at_once_and_raises_the_alarm() {
    let (c, output, _keep) = alarmed();
    c.begin("t", &IndexMap::new());
    let mut s = connect(&c);
    let huge = "x".repeat(MAX_REPORT + 1);
    let ack = send(
        &mut s,
        serde_json::json!({"token":"t","pid":1,"thread":huge}),
    );
    assert_eq!(ack.reason.as_deref(), Some("report too long"));
    let expected = "a coordinator report longer than 256 KiB (the protocol's limit)";
    assert_eq!(alarm_of(&output), Next::Alarm(expected.into()));
    // The connection is closed after the refusal.
    let mut rest = String::new();
    assert_eq!(s.read_line(&mut rest).unwrap(), 0);
    assert_eq!(c.finish().violations, [expected]);
}

#[test]
fn a_flood_of_connections_is_refused_past_the_limit() {
    let (c, output, _keep) = alarmed();
    c.begin("t", &IndexMap::new());
    // Each connection is admitted (and counted) before the next is accepted; none closes.
    let mut open: Vec<_> = (0..MAX_CONNECTIONS).map(|_| connect(&c)).collect();
    let mut extra = connect(&c);
    let mut reply = String::new();
    extra.read_line(&mut reply).unwrap();
    assert_eq!(
        reply.trim(),
        r#"{"ok":false,"reason":"too many connections"}"#
    );
    let expected = "more than 256 coordinator connections open at once (the protocol's limit)";
    assert_eq!(alarm_of(&output), Next::Alarm(expected.into()));
    // The admitted connections are still served.
    let start = serde_json::json!({"token":"t","pid":1,"thread":1,"event":"start","task":"a"});
    assert!(send(&mut open[0], start).ok);
    assert_eq!(c.finish().violations, [expected]);
}

#[test]
fn the_reports_of_a_case_are_bounded_and_the_next_case_starts_afresh() {
    let (c, output, _keep) = alarmed();
    c.begin("t", &IndexMap::new());
    let mut s = connect(&c);
    let thread = "x".repeat(MAX_REPORT - 200);
    let report =
        serde_json::json!({"token":"t","pid":1,"thread":thread,"event":"start","task":"a"});
    let mut acks = Vec::new();
    for _ in 0..=MAX_CASE_REPORTS / (MAX_REPORT - 200) {
        acks.push(send(&mut s, report.clone()));
    }
    let last = acks.pop().unwrap();
    assert!(acks.iter().all(|a| a.ok));
    assert_eq!(last.reason.as_deref(), Some("too many reports"));
    let expected = "more than 8 MiB of coordinator reports in one case (the protocol's limit)";
    assert_eq!(alarm_of(&output), Next::Alarm(expected.into()));
    let history = c.finish();
    assert_eq!(history.violations, [expected]);
    assert_eq!(history.events.len(), acks.len());

    c.begin("t2", &IndexMap::new());
    let report = serde_json::json!({"token":"t2","pid":1,"thread":1,"event":"start","task":"a"});
    assert!(send(&mut s, report).ok);
    assert!(c.finish().violations.is_empty());
}

#[test]
fn reports_that_do_not_fit_the_program_are_refused_and_recorded() {
    let c = Coordinator::start().unwrap();
    let mut program: Program = serde_json::from_value(serde_json::json!({
        "id": "X", "pool": {"processes": 2},
        "steps": [{"apply": {"id": "s1", "task": {"id": "a", "returns": 1}}}],
    }))
    .unwrap();
    program.ids.insert(
        "s1".into(),
        IdKind::Step {
            handle: None,
            callbacks: false,
        },
    );
    program.ids.insert("a".into(), IdKind::Task);
    c.begin_program("t", &program, None);
    let mut s = connect(&c);
    let report = |event: serde_json::Value| {
        let mut r = serde_json::json!({"token":"t","pid":1,"thread":1});
        r.as_object_mut()
            .unwrap()
            .extend(event.as_object().unwrap().clone());
        r
    };
    let ends = serde_json::json!({"event":"end","task":"a","outcome":{"returned":1}});
    let ack = send(&mut s, report(ends.clone()));
    assert_eq!(ack.reason.as_deref(), Some("out of order"));
    let ack = send(
        &mut s,
        report(serde_json::json!({"event":"start","task":"b"})),
    );
    assert_eq!(ack.reason.as_deref(), Some("unknown id"));
    assert!(
        send(
            &mut s,
            report(serde_json::json!({"event":"start","task":"a"}))
        )
        .ok
    );
    assert!(send(&mut s, report(ends)).ok);
    let history = c.finish();
    assert_eq!(
        history.violations,
        [
            "`end` of task `a` before its `start`",
            "`start` of task `b`, which the program lacks"
        ]
    );
    let refs: Vec<_> = history.events.iter().filter_map(Event::reference).collect();
    assert_eq!(refs, ["a.start", "a.end"]);
}

#[test]
fn dropping_the_coordinator_closes_its_connections() {
    let c = Coordinator::start().unwrap();
    c.begin("t", &IndexMap::new());
    let mut s = connect(&c);
    assert!(
        send(
            &mut s,
            serde_json::json!({"token":"t","pid":1,"thread":1,"event":"start","task":"a"})
        )
        .ok
    );
    drop(c);
    let mut rest = String::new();
    assert_eq!(s.read_line(&mut rest).unwrap(), 0);
}
