//! Rewriting submissions: `apply`/`apply_async` and the map family, kept blocking only
//! where everything they wait for will complete, with at most one failing task per
//! `map`-family call and an explicit chunksize when workers get replaced.

use super::model::{HandleM, Kind, Model, PoolState, TaskM, Unit};
use crate::fuzz::raw::SMALL_BLOB;
use crate::spec::{MapCall, Step, Submit, Task, TaskSpec};

impl Model {
    pub(super) fn submit(&mut self, step: &Step, s: &Submit) {
        let id = self.next_id();
        let mut s = s.clone();
        s.id = None;
        // One gate per task keeps the held-task accounting exact.
        let mut task = s.task.to_task();
        task.wait.truncate(1);
        task.id = None;
        s.task = TaskSpec::Full(task.clone());
        let blocking = matches!(step, Step::Apply(_));
        if self.state != PoolState::Running {
            // Rejected with ValueError("Pool not running"): no handle, no task runs.
            self.push(if blocking {
                Step::Apply(s)
            } else {
                Step::ApplyAsync(s)
            });
            return;
        }
        let units = if s.unserializable_arg {
            Vec::new()
        } else {
            let t = self.add_task(&task);
            self.units.push(Unit {
                tasks: vec![t],
                chunk: false,
            });
            vec![self.units.len() - 1]
        };
        let mut handle = HandleM {
            step: id,
            kind: Kind::Apply,
            units,
            immediate_error: s.unserializable_arg,
            known_ready: false,
            got: false,
            chunked: false,
            pos: 0,
            consumed: Vec::new(),
            partial: 0,
            dead: false,
        };
        let fates = self.settle();
        if blocking && self.handle_complete(&handle, &fates) {
            handle.known_ready = true;
            self.handles.push(handle);
            let i = self.handles.len() - 1;
            self.learn_ready(i);
            // A blocking call hands out no handle.
            self.handles.pop();
            self.push(Step::Apply(s));
        } else {
            self.handles.push(handle);
            self.push(Step::ApplyAsync(s));
        }
    }

    pub(super) fn map_family(&mut self, step: &Step, m: &MapCall) {
        let id = self.next_id();
        let mut m = m.clone();
        m.id = None;
        let star = matches!(step, Step::Starmap(_) | Step::StarmapAsync(_));
        let iterator = matches!(step, Step::Imap(_) | Step::ImapUnordered(_));
        let mut failing = 0;
        // A value that does not serialize fails its chunk with MaybeEncodingError, whose
        // message shows the repr of every value of the chunk: byte strings stay small there.
        let unsendable = m.tasks.iter().any(|t| t.to_task().unserializable);
        for spec in &mut m.tasks {
            let mut task = spec.to_task();
            task.id = None;
            task.wait.truncate(1);
            if let Some(b) = task.blob.as_mut().filter(|_| unsendable) {
                b.size = b.size.min(SMALL_BLOB);
            }
            if task.raises.is_some() || task.unserializable {
                failing += 1;
                // Which of two failing chunks a MapResult reports depends on arrival order.
                if failing > 1 && !iterator {
                    task.raises = None;
                    task.unserializable = false;
                    task.returns = Some(serde_json::json!(0));
                }
            }
            *spec = TaskSpec::Full(task);
        }
        if star {
            m.args.resize(m.tasks.len(), Vec::new());
        } else {
            m.args.clear();
        }
        if iterator {
            m.callback = None;
            m.error_callback = None;
        }
        let rebuild = |m: MapCall, async_form: bool| -> Step {
            match (step, async_form) {
                (Step::Map(_) | Step::MapAsync(_), false) => Step::Map(m),
                (Step::Map(_) | Step::MapAsync(_), true) => Step::MapAsync(m),
                (Step::Starmap(_) | Step::StarmapAsync(_), false) => Step::Starmap(m),
                (Step::Starmap(_) | Step::StarmapAsync(_), true) => Step::StarmapAsync(m),
                (Step::Imap(_), _) => Step::Imap(m),
                _ => Step::ImapUnordered(m),
            }
        };
        let blocking = matches!(step, Step::Map(_) | Step::Starmap(_));
        if self.state != PoolState::Running {
            self.push(rebuild(m, !blocking));
            return;
        }
        if m.then_raise.is_some() && !iterator {
            // `list(iterable)` raises before any task is sent: the call itself raises, at
            // once, whatever the gates; no task runs, no handle, no callback.
            self.push(rebuild(m, !blocking));
            return;
        }
        let mut tasks: Vec<Task> = m.tasks.iter().map(TaskSpec::to_task).collect();
        let chunksize = match (m.chunksize, iterator) {
            (Some(c), _) => c.max(1) as usize,
            (None, true) => 1,
            (None, false) => default_chunksize(tasks.len(), self.processes),
        };
        // imap's task handler reads a raising iterable lazily: the chunks read whole run,
        // the one being read when it raised is lost, and the exception becomes one more
        // task (`_helper_reraises_exception`) that a worker runs and that fails in position.
        let reraise = m.then_raise.is_some();
        if reraise {
            tasks.truncate(tasks.len() / chunksize * chunksize);
        }
        // CPython computes the default from the workers alive at that instant; while
        // maxtasksperchild replaces them there can be fewer (even none: ZeroDivisionError,
        // gh-82980). Make the size explicit there.
        // It divides even for an empty iterable.
        if self.maxtasksperchild && m.chunksize.is_none() && !iterator {
            m.chunksize = Some(chunksize.max(1) as u32);
        }
        let mut ids = Vec::new();
        for t in &tasks {
            ids.push(self.add_task(t));
        }
        let mut units = Vec::new();
        if chunksize > 0 {
            for chunk in ids.chunks(chunksize) {
                self.units.push(Unit {
                    tasks: chunk.to_vec(),
                    chunk: true,
                });
                units.push(self.units.len() - 1);
            }
        }
        if reraise {
            // No gate, always fails; not a task of the program (it reports nothing).
            self.tasks.push(TaskM {
                gate: None,
                raises: true,
                unserializable: false,
            });
            self.units.push(Unit {
                tasks: vec![self.tasks.len() - 1],
                chunk: true,
            });
            units.push(self.units.len() - 1);
        }
        let kind = match step {
            Step::Imap(_) => Kind::Imap,
            Step::ImapUnordered(_) => Kind::ImapUnordered,
            _ => Kind::Map,
        };
        let consumed = vec![false; units.len()];
        let handle = HandleM {
            step: id,
            kind,
            units,
            immediate_error: false,
            // An empty MapResult is ready at once and never calls its callbacks.
            known_ready: kind == Kind::Map && tasks.is_empty(),
            got: false,
            chunked: chunksize > 1,
            pos: 0,
            consumed,
            partial: 0,
            dead: false,
        };
        let fates = self.settle();
        let complete = self.handle_complete(&handle, &fates);
        self.handles.push(handle);
        if blocking && complete {
            let i = self.handles.len() - 1;
            self.learn_ready(i);
            self.handles.pop();
            self.push(rebuild(m, false));
        } else {
            // Not blocking, or blocking on a task that would never finish: the async form.
            self.push(rebuild(m, true));
        }
    }
}

/// CPython's default chunksize for `map`/`map_async`/`starmap`/`starmap_async`.
fn default_chunksize(len: usize, processes: usize) -> usize {
    if len == 0 {
        return 0;
    }
    let (size, extra) = (len / (processes * 4), len % (processes * 4));
    size + usize::from(extra > 0)
}
