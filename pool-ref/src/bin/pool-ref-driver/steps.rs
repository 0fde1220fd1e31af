//! The steps of spec/README.md §6 on a pool_ref::Pool: making the pool, and one step at a
//! time. The loop around them (reports, `open`, `await`, teardown) is poolspec-driver's
//! [`run_program`](poolspec_driver::run_program).

use pool_ref::{AsyncResult, IMapIter, Pool, PoolError};
use poolspec_driver::{
    Coord, Descriptor, Failure, Handles, Outcome, PoolParams, Step, py_repr_str,
};
use serde_json::Value;

use crate::tasks::{Lambda, Obj, RUN_TASK, callback, error_callback, exception, step_exception};

/// An AsyncResult of the pool, by the Python class it stands for.
pub enum Async {
    /// `apply_async`: an `ApplyResult`.
    Apply(AsyncResult<Obj>),
    /// `map_async` / `starmap_async`: a `MapResult`.
    Map(AsyncResult<Vec<Obj>>),
}

/// The handles a program's steps returned.
pub type PoolHandles = Handles<Async, IMapIter<Obj>>;

/// A fresh pool for a program.
pub fn make_pool(params: &PoolParams, coord: &Coord) -> Result<Pool, Failure> {
    let mut builder = Pool::builder().processes(params.processes);
    if let Some(n) = params.maxtasksperchild {
        builder = builder.maxtasksperchild(n);
    }
    if let Some(init) = &params.initializer {
        builder = builder.initializer(RUN_TASK, (Descriptor::new(init, coord), Vec::new()));
    }
    // with_block: `Pool.__enter__` only checks the pool is running and returns it.
    builder.build().map_err(|e| {
        let e = exception(&e, None);
        Failure::new(format!("creating the pool raised {e}"))
    })
}

fn returned_all(v: &[Obj]) -> Outcome {
    Outcome::Returned(Value::Array(v.iter().map(Obj::to_json).collect()))
}

fn raised(e: &PoolError, handle: Option<&str>) -> Outcome {
    Outcome::Raised(step_exception(e, handle))
}

/// The outcome of an operation that returns a value or raises.
fn outcome<T>(
    r: Result<T, PoolError>,
    show: impl FnOnce(T) -> Outcome,
    handle: Option<&str>,
) -> Outcome {
    r.map_or_else(|e| raised(&e, handle), show)
}

fn returned(v: Value) -> Outcome {
    Outcome::Returned(v)
}

/// Runs one step on the pool; returns its outcome. Errors of the operation are outcomes;
/// anything wrong with the program itself is a failure.
pub fn execute(
    pool: &Pool,
    coord: &Coord,
    step: &Step,
    handles: &mut PoolHandles,
) -> Result<Outcome, Failure> {
    let id = step.id();
    Ok(match step {
        Step::Apply(s) | Step::ApplyAsync(s) => {
            let mut args: Vec<Obj> = s.args.iter().cloned().map(Obj::Json).collect();
            if s.unserializable_arg {
                // Fails to serialize: the pool fails the result with it, as pickle in
                // CPython's task handler.
                args.push(Obj::Lambda(Lambda::Argument));
            }
            let call = (Descriptor::new(&s.task, coord), args);
            if let Step::Apply(_) = step {
                return Ok(outcome(
                    pool.apply(RUN_TASK, call),
                    |v| returned(v.to_json()),
                    None,
                ));
            }
            let on_value = s
                .callback
                .as_ref()
                .map(|spec| callback::<Obj>(coord, id, spec, Obj::to_json));
            let on_error = s
                .error_callback
                .as_ref()
                .map(|spec| error_callback(coord, id, spec));
            match pool.apply_async(RUN_TASK, call, on_value, on_error) {
                Ok(h) => handles.keep_result(id, Async::Apply(h)),
                Err(e) => raised(&e, None),
            }
        }
        Step::Map(m)
        | Step::MapAsync(m)
        | Step::Imap(m)
        | Step::ImapUnordered(m)
        | Step::Starmap(m)
        | Step::StarmapAsync(m) => {
            let items: Vec<(Descriptor, Vec<Obj>)> = m
                .items()
                .into_iter()
                .map(|(t, extra)| {
                    let extra = extra.into_iter().map(Obj::Json).collect();
                    (Descriptor::new(t, coord), extra)
                })
                .collect();
            let chunksize = m.chunksize.map(|n| n as usize);
            match step {
                Step::Map(_) | Step::Starmap(_) => outcome(
                    pool.map(RUN_TASK, items, chunksize),
                    |v| returned_all(&v),
                    None,
                ),
                Step::MapAsync(_) | Step::StarmapAsync(_) => {
                    let on_value = m.callback.as_ref().map(|spec| {
                        callback::<Vec<Obj>>(coord, id, spec, |v| {
                            Value::Array(v.iter().map(Obj::to_json).collect())
                        })
                    });
                    let on_error = m
                        .error_callback
                        .as_ref()
                        .map(|spec| error_callback(coord, id, spec));
                    match pool.map_async(RUN_TASK, items, chunksize, on_value, on_error) {
                        Ok(h) => handles.keep_result(id, Async::Map(h)),
                        Err(e) => raised(&e, None),
                    }
                }
                _ => {
                    let it = if let Step::Imap(_) = step {
                        pool.imap(RUN_TASK, items, chunksize)
                    } else {
                        pool.imap_unordered(RUN_TASK, items, chunksize)
                    };
                    match it {
                        Ok(it) => handles.keep_iterator(id, it),
                        Err(e) => raised(&e, None),
                    }
                }
            }
        }
        Step::Get(h) | Step::Wait(h) | Step::Ready(h) | Step::Successful(h) => {
            let timeout = h.timeout();
            let result = handles.result(h.of.as_deref())?;
            let (apply, map) = ("ApplyResult", "MapResult");
            match (step, result) {
                (Step::Get(_), Async::Apply(r)) => {
                    outcome(r.get(timeout), |v| returned(v.to_json()), Some(apply))
                }
                (Step::Get(_), Async::Map(r)) => {
                    outcome(r.get(timeout), |v| returned_all(&v), Some(map))
                }
                (Step::Wait(_), Async::Apply(r)) => {
                    r.wait(timeout);
                    Outcome::none()
                }
                (Step::Wait(_), Async::Map(r)) => {
                    r.wait(timeout);
                    Outcome::none()
                }
                (Step::Ready(_), Async::Apply(r)) => returned(Value::Bool(r.ready())),
                (Step::Ready(_), Async::Map(r)) => returned(Value::Bool(r.ready())),
                (_, Async::Apply(r)) => {
                    outcome(r.successful(), |b| returned(Value::Bool(b)), Some(apply))
                }
                (_, Async::Map(r)) => {
                    outcome(r.successful(), |b| returned(Value::Bool(b)), Some(map))
                }
            }
        }
        Step::Next(h) => {
            let it = handles.iterator(h.of.as_deref())?;
            match it.next_timeout(h.timeout()) {
                Ok(Some(v)) => returned(v.to_json()),
                Ok(None) => Outcome::stop_iteration(),
                Err(e) => raised(&e, None),
            }
        }
        Step::Collect(h) => {
            let it = handles.iterator(h.of.as_deref())?;
            let mut all = Vec::new();
            loop {
                match it.next_timeout(None) {
                    Ok(Some(v)) => all.push(v),
                    Ok(None) => break returned_all(&all),
                    Err(e) => break raised(&e, None),
                }
            }
        }
        Step::Close(_) => {
            pool.close();
            Outcome::none()
        }
        Step::Join(_) => outcome(pool.join(), |()| Outcome::none(), None),
        // `Pool.__exit__` calls terminate().
        Step::Terminate(_) | Step::ExitWith(_) => {
            pool.terminate();
            Outcome::none()
        }
        // run_steps runs these itself.
        Step::Open(_) | Step::Await(_) => {
            return Err(Failure::new(format!(
                "op {} is not implemented",
                py_repr_str(step.op())
            )));
        }
    })
}
