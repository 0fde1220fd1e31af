//! Running a program's steps on a pool (spec/README.md §6; spec/PROTOCOL.md §5 rules 1, 2,
//! 5): [`run_program`] does a whole run given three pieces of glue (make a pool, run one step
//! on it, tear it down); [`run_steps`] is the step loop alone, for drivers that want to own
//! the rest.

use std::collections::HashMap;

use serde_json::Value;

use crate::coord::{Coord, Event};
use crate::exception::Exception;
use crate::program::{PoolParams, Program, Step};
use crate::repr::py_repr_str;
use crate::tasks::reset_process_state;
use crate::teardown::teardown;
use crate::types::{Failure, HandleKind, Outcome, catch_panic};

/// One `run` message: a program to run on a fresh pool, and where to report its events.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// The run's `seq`, echoed in the answer by `serve` (opaque).
    pub seq: Value,
    /// The coordinator socket and token every report of this run goes to.
    pub coord: Coord,
    /// The program, typed.
    pub program: Program,
    /// The program as sent, for fields the typed form does not know.
    pub program_json: Value,
}

/// A handle kept by step id: an AsyncResult of the pool (`R`) or an iterator (`I`).
#[derive(Debug)]
pub enum Handle<R, I> {
    Result(R),
    Iterator(I),
}

/// The handles a program's steps returned, by step id, with the lookups `of` needs and the
/// messages the Python driver gives when a program names the wrong step.
#[derive(Debug)]
pub struct Handles<R, I> {
    by_step: HashMap<String, Handle<R, I>>,
}

impl<R, I> Default for Handles<R, I> {
    fn default() -> Self {
        Handles {
            by_step: HashMap::new(),
        }
    }
}

impl<R, I> Handles<R, I> {
    /// No handles yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the AsyncResult step `step` returned; its outcome is `{"handle": "result"}`.
    pub fn keep_result(&mut self, step: Option<&str>, result: R) -> Outcome {
        self.by_step
            .insert(step.unwrap_or("").to_owned(), Handle::Result(result));
        Outcome::Handle(HandleKind::Result)
    }

    /// Keeps the iterator step `step` returned; its outcome is `{"handle": "iterator"}`.
    pub fn keep_iterator(&mut self, step: Option<&str>, iterator: I) -> Outcome {
        self.by_step
            .insert(step.unwrap_or("").to_owned(), Handle::Iterator(iterator));
        Outcome::Handle(HandleKind::Iterator)
    }

    /// The AsyncResult step `of` returned.
    pub fn result(&mut self, of: Option<&str>) -> Result<&mut R, Failure> {
        match self.lookup(of, HandleKind::Result)? {
            Handle::Result(r) => Ok(r),
            Handle::Iterator(_) => Err(Failure::new("unreachable: handle kind")),
        }
    }

    /// The iterator step `of` returned.
    pub fn iterator(&mut self, of: Option<&str>) -> Result<&mut I, Failure> {
        match self.lookup(of, HandleKind::Iterator)? {
            Handle::Iterator(i) => Ok(i),
            Handle::Result(_) => Err(Failure::new("unreachable: handle kind")),
        }
    }

    fn lookup(&mut self, of: Option<&str>, want: HandleKind) -> Result<&mut Handle<R, I>, Failure> {
        let shown = of.map_or_else(|| "None".to_owned(), py_repr_str);
        let Some(handle) = self.by_step.get_mut(of.unwrap_or("")) else {
            return Err(Failure::new(format!("no handle from a step {shown}")));
        };
        let kind = match handle {
            Handle::Result(_) => HandleKind::Result,
            Handle::Iterator(_) => HandleKind::Iterator,
        };
        if kind != want {
            return Err(Failure::new(format!(
                "step {shown} returned an {}, not an {}",
                kind.name(),
                want.name()
            )));
        }
        Ok(handle)
    }
}

/// Runs the program's steps in order on the calling (main) thread: for each, reports `call`,
/// runs it, reports `return` with its outcome. `open` and `await` steps are run here (they
/// only talk to the coordinator); every other step is handed to `op`, which performs it on
/// the pool and returns its [`Outcome`] (an exception of the operation is
/// [`Outcome::Raised`]; `Err` is for what the driver cannot do, and ends the run with
/// `error`).
///
/// Returns `Ok` after the last step, and also as soon as the coordinator refuses a report
/// (the case is over: tear down and answer `done`); `Err` on a failure of `op` or when the
/// coordinator cannot be reached.
pub fn run_steps(
    run: &Run,
    mut op: impl FnMut(&Step) -> Result<Outcome, Failure>,
) -> Result<(), Failure> {
    let coord = &run.coord;
    for step in &run.program.steps {
        let id = step.id();
        if !coord.report_main(&Event::Call {
            step: id,
            op: step.op(),
        })? {
            return Ok(());
        }
        let outcome = match step {
            Step::Open(o) => {
                if !coord.report_main(&Event::Open { gate: &o.gate })? {
                    return Ok(());
                }
                Outcome::none()
            }
            Step::Await(a) => {
                let until = Event::Await {
                    until_event: a.event.as_deref(),
                    gate: a.gate.as_deref(),
                    waiting: a.waiting,
                };
                if !coord.report_main(&until)? {
                    return Ok(());
                }
                Outcome::none()
            }
            other => op(other)?.classified(),
        };
        if !coord.report_main(&Event::Return {
            step: id,
            outcome: &outcome,
        })? {
            return Ok(());
        }
    }
    Ok(())
}

/// Why [`run_program`]'s `make_pool` made no pool.
#[derive(Debug, Clone, PartialEq)]
pub enum MakeError {
    /// The pool refused its arguments (`processes: 0`, `maxtasksperchild: 0.5`, an
    /// initializer that is not callable, ...), as Python's `Pool(...)` raises: an outcome the
    /// case observes (the `construct` report), and the run ends without steps.
    Refused(Exception),
    /// The driver could not make the pool (answered `error`).
    Failed(Failure),
}

impl From<Failure> for MakeError {
    fn from(f: Failure) -> MakeError {
        MakeError::Failed(f)
    }
}

/// Sends the `construct` report (PROTOCOL.md §4.1): the pool was made (`Ok`), or refused its
/// arguments. `Ok(false)`: the coordinator refused the report (the case is over).
pub fn report_construct(run: &Run, made: Result<(), &Exception>) -> Result<bool, Failure> {
    let outcome = match made {
        Ok(()) => Outcome::none(),
        Err(e) => Outcome::Raised(e.clone().classified_construction()),
    };
    run.coord
        .report_main(&Event::Construct { outcome: &outcome })
}

/// One whole program on a fresh pool, with everything but the pool done for you: makes the
/// pool with `make_pool` (after [`reset_process_state`], which
/// marks this process with the run for `inherited` tasks) and
/// reports the `construct` event, runs the steps ([`run_steps`]) with `step`, then tears the
/// pool down with [`teardown`] (`terminate` is your terminate-and-join, run
/// on a helper thread with a time limit; any child process left over is killed and reported),
/// whatever happened before. A panic while making the pool or running a step is a failure
/// (`driver failure: panic: ...`), and the pool is still torn down.
///
/// `make_pool` constructs the pool as `Pool(...)` would from the [`PoolParams`] (and enters
/// it, for `with_block`). Arguments the pool refuses are [`MakeError::Refused`]: reported as
/// the `construct` outcome, after which the run ends without steps (and is answered `done`).
///
/// `step` is dropped before the teardown starts, so handles it owns (a [`Handles`] moved
/// into it) go first, as they would at the end of a Python function. The failure of the
/// steps, if any, wins over the teardown's.
pub fn run_program<P: Send + 'static>(
    run: &Run,
    make_pool: impl FnOnce(&PoolParams) -> Result<P, MakeError>,
    step: impl FnMut(&mut P, &Step) -> Result<Outcome, Failure>,
    terminate: impl FnOnce(P) -> Result<(), String> + Send + 'static,
) -> Result<(), Failure> {
    let mut pool: Option<P> = None;
    reset_process_state(Some(&run.coord.token));
    let ran = catch_panic(|| {
        let made = match make_pool(&run.program.pool) {
            Ok(p) => p,
            Err(MakeError::Refused(e)) => return report_construct(run, Err(&e)).map(drop),
            Err(MakeError::Failed(f)) => return Err(f),
        };
        let p = pool.insert(made);
        if !report_construct(run, Ok(()))? {
            return Ok(());
        }
        let mut step = step;
        run_steps(run, |s| step(p, s))
    });
    let torn = match pool {
        Some(pool) => teardown(pool, terminate),
        None => Ok(()),
    };
    ran.and(torn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn handles_by_step() {
        let mut h: Handles<u8, &str> = Handles::new();
        assert_eq!(
            h.keep_result(Some("r"), 1),
            Outcome::Handle(HandleKind::Result)
        );
        h.keep_iterator(Some("it"), "iter");
        assert_eq!(*h.result(Some("r")).unwrap(), 1);
        assert_eq!(*h.iterator(Some("it")).unwrap(), "iter");
        let m = |e: Failure| e.message;
        assert_eq!(
            m(h.result(Some("x")).unwrap_err()),
            "no handle from a step 'x'"
        );
        assert_eq!(m(h.result(None).unwrap_err()), "no handle from a step None");
        assert_eq!(
            m(h.iterator(Some("r")).unwrap_err()),
            "step 'r' returned an result, not an iterator"
        );
    }

    fn run(fake: &crate::fake::FakeCoordinator, program: Value) -> Run {
        Run {
            seq: json!(1),
            coord: fake.coord.clone(),
            program: crate::Program::from_json(&program).unwrap(),
            program_json: program,
        }
    }

    #[test]
    fn construction_is_reported_and_a_refusal_ends_the_run() {
        let _lock = crate::connections_lock();
        let fake = crate::fake::FakeCoordinator::start("construct");
        let program = json!({"pool": {"processes": 0}, "steps": [{"close": {"id": "s1"}}]});
        let refused = run_program(
            &run(&fake, program),
            |params| {
                assert_eq!(params.processes, Some(0));
                Err::<(), _>(MakeError::Refused(Exception::new(
                    "ValueError",
                    "Number of processes must be at least 1",
                )))
            },
            |_, _| panic!("no step runs on a pool that was not made"),
            |()| Ok(()),
        );
        assert_eq!(refused, Ok(()));
        crate::close_connections();
        let program = json!({"pool": {"processes": null}, "steps": [{"enter": {"id": "s1"}}]});
        let made = run_program(
            &run(&fake, program),
            |params| {
                assert_eq!(params.processes, None);
                Ok(())
            },
            |(), step| {
                assert_eq!(step.op(), "enter");
                Ok(Outcome::entered())
            },
            |()| Ok(()),
        );
        assert_eq!(made, Ok(()));
        crate::close_connections();
        assert_eq!(
            fake.reports(),
            [
                json!({"event": "construct", "outcome": {"raised": {"type": "ValueError", "message": "Number of processes must be at least 1", "kind": "invalid_argument"}}}),
                json!({"event": "construct", "outcome": {"returned": null}}),
                json!({"event": "call", "step": "s1", "op": "enter"}),
                json!({"event": "return", "step": "s1", "outcome": {"returned": "<pool>"}}),
            ]
        );
        let failed = run_program(
            &run(&fake, json!({})),
            |_| Err::<(), _>(Failure::new("no pool here").into()),
            |_, _| Ok(Outcome::none()),
            |()| Ok(()),
        );
        assert_eq!(failed.unwrap_err().message, "no pool here");
        crate::close_connections();
    }
}
