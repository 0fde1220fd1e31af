//! The steps of spec/README.md §6 on a pool_ref::Pool: making the pool, and one step at a
//! time. The loop around them (reports, `open`, `await`, teardown) is poolspec-driver's
//! [`run_program`](poolspec_driver::run_program).

use pool_ref::{AsyncResult, IMapIter, Pool, PoolError};
use poolspec_driver::{
    Coord, Descriptor, Exception, Failure, Handles, MakeError, Outcome, PoolParams, Step, blob,
    py_repr_str,
};
use serde_json::{Map, Value};

use crate::tasks::{
    Call, Func, Lambda, Obj, RUN_TASK, callback, error_callback, exception, step_exception,
};

/// An AsyncResult of the pool, by the Python class it stands for.
pub enum Async {
    /// `apply_async`: an `ApplyResult`.
    Apply(AsyncResult<Obj>),
    /// `map_async` / `starmap_async`: a `MapResult`.
    Map(AsyncResult<Vec<Obj>>),
}

/// The handles a program's steps returned.
pub type PoolHandles = Handles<Async, IMapIter<Obj>>;

/// A refusal of the pool's arguments, as Python's `Pool(...)` raises it.
fn refused(kind: &str, message: &str) -> MakeError {
    MakeError::Refused(Exception::new(kind, message).with_neutral("invalid_argument"))
}

/// A fresh pool for a program, as `Pool(processes, initializer, initargs, maxtasksperchild)`
/// makes it, refusing what CPython refuses, in its order (processes, then maxtasksperchild,
/// then the initializer).
///
/// pool-ref's builder takes typed arguments: a count (`usize`, `u32`) and an initializer that
/// is a registered task. It refuses a count of 0 itself (`InvalidArgument`, with CPython's
/// messages); a negative count is given to it as 0. What its types cannot express at all, a
/// `maxtasksperchild` that is no integer (`0.5`, `"12"`) or an initializer that is not
/// callable, a Rust program cannot pass: the compiler refuses it. The driver reports that
/// refusal as CPython words it (`ValueError`, `TypeError`), of neutral kind
/// `invalid_argument`.
pub fn make_pool(params: &PoolParams, coord: &Coord) -> Result<Pool, MakeError> {
    if params.context.is_some() {
        return Err(Failure::new(
            "pool-ref has no start methods (the capability `context` is not declared)",
        )
        .into());
    }
    let mut builder = Pool::builder();
    let mut processes_ok = true;
    if let Some(n) = params.processes {
        processes_ok = n >= 1;
        builder = builder.processes(usize::try_from(n).unwrap_or(0));
    }
    let mut maxtasks_ok = true;
    match params.maxtasksperchild_int() {
        None => {}
        Some(Ok(n)) => {
            maxtasks_ok = n >= 1;
            builder = builder.maxtasksperchild(u32::try_from(n.max(0)).unwrap_or(u32::MAX));
        }
        Some(Err(_)) if processes_ok => {
            return Err(refused(
                "ValueError",
                "maxtasksperchild must be a positive int or None",
            ));
        }
        // The count is refused first (by the builder).
        Some(Err(_)) => maxtasks_ok = false,
    }
    if params.uncallable_initializer && processes_ok && maxtasks_ok {
        return Err(refused("TypeError", "initializer must be a callable"));
    }
    if let Some(init) = &params.initializer {
        let initargs = params.initargs.iter().cloned().map(Obj::Json).collect();
        let desc = Descriptor::initializer(init, coord);
        builder = builder.initializer(RUN_TASK, Call::task(desc, initargs, Map::new()));
    }
    let pool = builder.build().map_err(|e| match e {
        PoolError::InvalidArgument(_) => MakeError::Refused(step_exception(&e, None)),
        e => Failure::new(format!("creating the pool raised {}", exception(&e, None))).into(),
    })?;
    if params.with_block {
        // `with Pool(...) as pool:`: `__enter__` checks the pool runs and returns it.
        pool.enter()
            .map_err(|e| MakeError::Refused(step_exception(&e, None)))?;
    }
    Ok(pool)
}

/// The function a submission runs.
fn func(unserializable: bool) -> Func {
    if unserializable {
        Func::Closure
    } else {
        Func::RunTask
    }
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
            if let Some(b) = s.blob_arg {
                args.push(Obj::Bytes(blob(b.size, b.seed)));
            }
            if s.unserializable_arg {
                // Fails to serialize: the pool fails the result with it, as pickle in
                // CPython's task handler.
                args.push(Obj::Lambda(Lambda::Argument));
            }
            let call = Call::Task {
                func: func(s.unserializable_func),
                desc: Box::new(Descriptor::new(&s.task, coord)),
                args,
                kwargs: s.kwargs.clone(),
            };
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
            let mut items: Vec<Call> = m
                .items()
                .into_iter()
                .map(|(t, extra)| {
                    let mut args: Vec<Obj> = extra.into_iter().map(Obj::Json).collect();
                    if t.unserializable_item {
                        // Fails to serialize, so its chunk fails and the others run.
                        args.push(Obj::Unpicklable);
                    }
                    Call::Task {
                        func: func(m.unserializable_func),
                        desc: Box::new(Descriptor::new(t, coord)),
                        args,
                        kwargs: Map::new(),
                    }
                })
                .collect();
            let chunksize = m.chunksize.map(|n| n as usize);
            if let Some(spec) = &m.then_raise {
                // A Rust iterator cannot raise; the driver does with the items what CPython
                // does with an iterable that raises after them.
                let thrown = Exception::from_spec(spec);
                if let Step::Imap(_) | Step::ImapUnordered(_) = step {
                    // Its task handler reads it lazily: the chunks read whole, then the
                    // exception as one more task, which a worker raises.
                    items.truncate(m.raising_at(m.chunksize.unwrap_or(1)).unwrap_or(0));
                    items.push(Call::Reraise(thrown));
                } else {
                    // `_map_async` checks the pool runs, then reads the whole iterable,
                    // `list(iterable)`, before any task is sent: the call raises.
                    return Ok(match pool.enter() {
                        Err(e) => raised(&e, None),
                        Ok(_) => Outcome::Raised(thrown.with_neutral("task").with_traceback(false)),
                    });
                }
            }
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
        // `Pool.__enter__`: the pool itself, while it runs.
        Step::Enter(_) => match pool.enter() {
            Ok(entered) if std::ptr::eq(entered, pool) => Outcome::entered(),
            Ok(_) => returned(Value::from("<another pool>")),
            Err(e) => raised(&e, None),
        },
        // run_steps runs `open` and `await` itself; `drop` is not declared.
        Step::Open(_) | Step::Await(_) | Step::Drop(_) => {
            return Err(Failure::new(format!(
                "op {} is not implemented",
                py_repr_str(step.op())
            )));
        }
        // pool-ref has no extension; it declares none, so the runner never sends one.
        Step::Extension(call) => return Err(call.unsupported()),
    })
}
