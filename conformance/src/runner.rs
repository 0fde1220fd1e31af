//! Running the matrix: every selected case on every selected implementation.
//!
//! Work is spread over `jobs` threads. Each thread keeps one warm driver (and one coordinator)
//! per implementation it has touched, so a driver's interpreter start-up is paid once, while
//! every case still gets a fresh pool. A driver that faults is killed with its process group
//! and restarted for the next case; the fault is that case's result only.
//!
//! A run can be cancelled ([`run_matrix_until`] with a [`Cancel`]): no cell starts after
//! that, the drivers of the cells in flight are killed at once, and those cells are dropped
//! (they did not finish; they are not faults), so the run holds only what finished.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cancel::Cancel;
use crate::coordinator::{Coordinator, History};
use crate::driver::{DriverFault, DriverSession};
use crate::expect::first_mismatch_of;
use crate::expectations::{ExpectationFile, Expected};
use crate::implementations::Implementation;
use crate::observe::{annotate, observe};
use crate::protocol::{FromDriver, ImplementationInfo, ToDriver};
use crate::schedule::{self, Costs};
use crate::spec::{Area, LoadedCase, Step};
use crate::start_failures::StartFailures;
use crate::supervisor::left_behind_note;
use crate::verdict::{Status, Verdict};

/// How to run the matrix.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Scales every liveness guard, for slow or loaded machines.
    pub timeout_multiplier: f64,
    /// Worker threads (each with its own drivers).
    pub jobs: usize,
    /// Runs of each case per implementation; more than one checks that observations are
    /// stable (`--verify N`).
    pub repeat: u32,
    /// Where raw histories are written, one JSON file per case and implementation.
    pub history_dir: Option<PathBuf>,
    /// Only these cells, as (case index, implementation index) (`--shard`); `None`: all.
    pub cells: Option<HashSet<(usize, usize)>>,
    /// Cells' wall times in an earlier run: they start longest first; `None`: matrix order.
    pub costs: Option<Costs>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            timeout_multiplier: 1.0,
            // Cases spend much of their time blocked on gates and bounded waits, so twice
            // the CPUs keeps the machine busy without oversubscribing spawn's start-up.
            jobs: thread::available_parallelism().map_or(4, |n| (2 * n.get()).clamp(2, 8)),
            repeat: 1,
            history_dir: None,
            cells: None,
            costs: None,
        }
    }
}

/// One cell of the matrix.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseResult {
    pub case: String,
    pub area: Area,
    pub quirk: bool,
    pub implementation: String,
    pub status: Status,
    pub verdict: Verdict,
    /// One line saying why the status is not `pass`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<Expected>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<DriverFault>,
    /// The normalized observation, when a history was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observation: Option<serde_json::Value>,
    /// Set by `--verify` when repeated runs observed different things.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unstable: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<PathBuf>,
    pub duration_ms: u64,
}

/// What a driver said about itself at handshake.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImplementationReport {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<ImplementationInfo>,
    pub capabilities: Vec<String>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MatrixRun {
    pub implementations: Vec<ImplementationReport>,
    /// Results in case order, then implementation order.
    pub results: Vec<CaseResult>,
    pub wall: Duration,
}

impl MatrixRun {
    pub fn unexpected(&self) -> impl Iterator<Item = &CaseResult> {
        self.results.iter().filter(|r| !r.verdict.is_ok())
    }

    pub fn result(&self, case: &str, implementation: &str) -> Option<&CaseResult> {
        self.results
            .iter()
            .find(|r| r.case == case && r.implementation == implementation)
    }
}

/// One warm driver, its coordinator, and what went wrong starting it.
struct Slot {
    coordinator: Option<Coordinator>,
    session: Option<DriverSession>,
    starts: Arc<StartFailures>,
}

static SEQ: AtomicU64 = AtomicU64::new(1);

/// Runs `cases` × `impls`. `progress` is called once per finished cell (from worker threads).
pub fn run_matrix(
    cases: &[LoadedCase],
    impls: &[(Implementation, ExpectationFile)],
    options: &RunOptions,
    progress: &(dyn Fn(&CaseResult) + Sync),
) -> MatrixRun {
    run_matrix_until(cases, impls, options, progress, &Cancel::new())
}

/// [`run_matrix`], stopping early once `cancel` is cancelled: the run then holds only the
/// cells that finished (with `--verify`, a cell finished when all its runs did), and
/// `progress` is not called for the dropped ones. [`Cancel::interruption`] says so.
pub fn run_matrix_until(
    cases: &[LoadedCase],
    impls: &[(Implementation, ExpectationFile)],
    options: &RunOptions,
    progress: &(dyn Fn(&CaseResult) + Sync),
    cancel: &Cancel,
) -> MatrixRun {
    let started = Instant::now();
    let owned = |c, i| options.cells.as_ref().is_none_or(|o| o.contains(&(c, i)));
    let cost = |c: usize, i: usize| options.costs.as_ref()?.of(cases[c].id(), &impls[i].0.name);
    let queue = schedule::work(impls.len(), cases.len(), options.repeat, owned, cost);
    let queue = Mutex::new(queue.into_iter());
    let infos: Mutex<HashMap<usize, (ImplementationInfo, Vec<String>)>> =
        Mutex::new(HashMap::new());
    let (tx, rx) = mpsc::channel();
    // (implementation, case, processes left behind) of sessions ended at the end of the run.
    let (left_tx, left_rx) = mpsc::channel();
    let starts = Arc::new(StartFailures::default());
    thread::scope(|s| {
        for _ in 0..options.jobs.max(1) {
            let tx = tx.clone();
            let left_tx = left_tx.clone();
            let queue = &queue;
            let (infos, starts) = (&infos, &starts);
            s.spawn(move || {
                let mut slots: HashMap<usize, Slot> = HashMap::new();
                // The last case each implementation's session ran here.
                let mut last: HashMap<usize, usize> = HashMap::new();
                loop {
                    if cancel.is_cancelled() {
                        break;
                    }
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                    let Some((i, c, r)) = next else { break };
                    let (imp, expectations) = &impls[i];
                    let slot = slots.entry(i).or_insert(Slot {
                        coordinator: None,
                        session: None,
                        starts: Arc::clone(starts),
                    });
                    let (result, _) = run_one(slot, imp, expectations, &cases[c], options, cancel);
                    last.insert(i, c);
                    if let Some(session) = &slot.session {
                        infos
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .entry(i)
                            .or_insert_with(|| {
                                (session.info.clone(), session.capabilities.clone())
                            });
                    }
                    if cancel.is_cancelled() {
                        // In flight when the run was cancelled: it did not finish.
                        discard(&result);
                        break;
                    }
                    progress(&result);
                    if tx.send((i, c, r, result)).is_err() {
                        break;
                    }
                }
                for (i, slot) in slots {
                    if let Some(mut session) = slot.session {
                        let left = if cancel.is_cancelled() {
                            session.kill()
                        } else {
                            session.stop()
                        };
                        if let (true, Some(&c)) = (left > 0, last.get(&i)) {
                            let _ = left_tx.send((i, c, left));
                        }
                    }
                }
            });
        }
    });
    drop(tx);
    drop(left_tx);

    let mut grouped: HashMap<(usize, usize), Vec<(u32, CaseResult)>> = HashMap::new();
    for (i, c, r, result) in rx {
        grouped.entry((i, c)).or_default().push((r, result));
    }
    let left: Vec<(usize, usize, usize)> = left_rx.into_iter().collect();
    let mut results = Vec::new();
    for c in 0..cases.len() {
        for i in 0..impls.len() {
            let Some(mut runs) = grouped.remove(&(i, c)) else {
                continue;
            };
            if cancel.is_cancelled() && runs.len() < options.repeat.max(1) as usize {
                // Some of its runs were cut short: the cell did not finish.
                runs.iter().for_each(|(_, res)| discard(res));
                continue;
            }
            runs.sort_by_key(|(r, _)| *r);
            let mut runs = runs.into_iter().map(|(_, res)| res);
            let Some(mut first) = runs.next() else {
                continue;
            };
            let rest: Vec<CaseResult> = runs.collect();
            for (_, _, n) in left.iter().filter(|(li, lc, _)| (*li, *lc) == (i, c)) {
                first.reason = with_note(first.reason.take(), *n);
            }
            if let Some(note) = instability(&first, &rest) {
                first.unstable = Some(note);
                first.verdict = Verdict::Unexpected;
            }
            results.push(first);
        }
    }
    let infos = infos.into_inner().unwrap_or_else(|e| e.into_inner());
    let implementations = impls
        .iter()
        .enumerate()
        .map(|(i, (imp, _))| ImplementationReport {
            name: imp.name.clone(),
            info: infos.get(&i).map(|(info, _)| info.clone()),
            capabilities: infos.get(&i).map(|(_, c)| c.clone()).unwrap_or_default(),
        })
        .collect();
    MatrixRun {
        implementations,
        results,
        wall: started.elapsed(),
    }
}

/// Forgets a cell that did not finish: its history file too, so that the output folder holds
/// only what the report describes.
fn discard(result: &CaseResult) {
    if let Some(path) = &result.history {
        let _ = std::fs::remove_file(path);
    }
}

/// `reason` with the note that the driver left `left` processes outside its group.
fn with_note(reason: Option<String>, left: usize) -> Option<String> {
    match (reason, left_behind_note(left)) {
        (Some(r), Some(note)) => Some(format!("{r}; {note}")),
        (reason, note) => reason.or(note),
    }
}

/// Describes how repeated runs differed from the first, if they did.
fn instability(first: &CaseResult, rest: &[CaseResult]) -> Option<String> {
    let total = rest.len() + 1;
    let differing = rest
        .iter()
        .filter(|r| r.status != first.status || r.observation != first.observation)
        .count();
    (differing > 0).then(|| {
        let statuses: BTreeSet<&str> = std::iter::once(first)
            .chain(rest)
            .map(|r| r.status.as_str())
            .collect();
        format!(
            "{differing} of {total} runs observed something different from the first (statuses: {})",
            statuses.into_iter().collect::<Vec<_>>().join(", ")
        )
    })
}

/// Capabilities a case needs: its `requires`, plus every operation it uses.
pub fn needed_capabilities(case: &LoadedCase) -> BTreeSet<String> {
    let mut need: BTreeSet<String> = case.case.requires.iter().cloned().collect();
    // An extension needs `ext:NAME`, not an op of its own.
    need.extend(crate::applicability::extension_capabilities(case));
    for step in case
        .program
        .steps
        .iter()
        .filter(|s| !matches!(s, Step::Extension(_)))
    {
        need.insert(step.op().to_owned());
    }
    if crate::observe::tasks(&case.program)
        .iter()
        .chain(&case.program.pool.initializer)
        .any(|t| t.exit.is_some())
    {
        need.insert("task_exit".to_owned());
    }
    if case.program.pool.initializer.is_some() {
        need.insert("initializer".to_owned());
    }
    let pool = &case.program.pool;
    if pool.maxtasksperchild.is_some() {
        need.insert("maxtasksperchild".to_owned());
    }
    if pool.uncallable_initializer {
        need.insert("initializer".to_owned());
    }
    if pool.processes == crate::spec::Processes::Default {
        need.insert("default_processes".to_owned());
    }
    if pool.context.is_some() {
        need.insert("context".to_owned());
    }
    let tasks = crate::observe::tasks(&case.program);
    if !pool.initargs.is_empty() || tasks.iter().any(|t| t.echo_initargs) {
        need.insert("initargs".to_owned());
    }
    if tasks.iter().any(|t| t.blob.is_some()) {
        need.insert("blob".to_owned());
    }
    // echo_all is how keyword arguments become visible: the same feature.
    if tasks.iter().any(|t| t.echo_all) {
        need.insert("kwargs".to_owned());
    }
    if tasks.iter().any(|t| t.inherited) {
        need.insert("inherited".to_owned());
    }
    if tasks.iter().any(|t| t.unserializable_item) {
        need.insert("unserializable_item".to_owned());
    }
    for step in &case.program.steps {
        match step {
            Step::Apply(s) | Step::ApplyAsync(s) => {
                if !s.kwargs.is_empty() {
                    need.insert("kwargs".to_owned());
                }
                if s.blob_arg.is_some() {
                    need.insert("blob".to_owned());
                }
                if s.unserializable_func {
                    need.insert("unserializable_func".to_owned());
                }
            }
            Step::Map(m)
            | Step::MapAsync(m)
            | Step::Imap(m)
            | Step::ImapUnordered(m)
            | Step::Starmap(m)
            | Step::StarmapAsync(m) => {
                if m.then_raise.is_some() {
                    need.insert("iterable_raises".to_owned());
                }
                if m.unserializable_func {
                    need.insert("unserializable_func".to_owned());
                }
            }
            _ => {}
        }
    }
    need
}

/// Why `lc` does not apply to the implementation `info` describes: its `versions` range for
/// the implementation's language excludes the language version the driver reported. A
/// driver that reports no version runs every case.
pub fn not_applicable(lc: &LoadedCase, info: &ImplementationInfo) -> Option<String> {
    let range = lc.case.versions.get(&info.language)?;
    let version = info.language_version.as_deref()?;
    let parsed = crate::versions::Range::parse(range).ok()?;
    match parsed.contains(version) {
        Ok(true) => None,
        Ok(false) => Some(format!(
            "the claim holds for {} {range}; this implementation runs {} {version}",
            info.language, info.language
        )),
        Err(_) => None,
    }
}

/// One implementation's warm driver and coordinator, for callers that run cases one at a
/// time rather than as a matrix (the fuzzer). The driver starts on first use, is reused
/// across cases, and is restarted after a fault, as in [`run_matrix`].
pub struct WarmDriver {
    implementation: Implementation,
    expectations: ExpectationFile,
    slot: Slot,
}

impl std::fmt::Debug for WarmDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmDriver")
            .field("implementation", &self.implementation.name)
            .field("running", &self.slot.session.is_some())
            .finish()
    }
}

impl WarmDriver {
    pub fn new(implementation: Implementation, expectations: ExpectationFile) -> WarmDriver {
        WarmDriver {
            implementation,
            expectations,
            slot: Slot {
                coordinator: None,
                session: None,
                starts: Arc::default(),
            },
        }
    }

    pub fn implementation(&self) -> &Implementation {
        &self.implementation
    }

    /// Runs one case on a fresh pool of this driver; also returns the raw history, when
    /// one was recorded ([`annotate`] makes it readable).
    pub fn run(
        &mut self,
        case: &LoadedCase,
        options: &RunOptions,
    ) -> (CaseResult, Option<History>) {
        run_one(
            &mut self.slot,
            &self.implementation,
            &self.expectations,
            case,
            options,
            &Cancel::new(),
        )
    }

    /// Stops the driver politely (it is killed with its group if it does not comply);
    /// returns how many processes it had left outside its group (all killed).
    pub fn stop(self) -> usize {
        self.slot.session.map_or(0, DriverSession::stop)
    }
}

fn run_one(
    slot: &mut Slot,
    imp: &Implementation,
    expectations: &ExpectationFile,
    lc: &LoadedCase,
    options: &RunOptions,
    cancel: &Cancel,
) -> (CaseResult, Option<History>) {
    let started = Instant::now();
    crate::cell_timing::begin(&imp.name, lc.id());
    let expected = expectations.expected(lc.id()).cloned();
    let mut result = CaseResult {
        case: lc.id().to_owned(),
        area: lc.area,
        quirk: lc.is_quirk(),
        implementation: imp.name.clone(),
        status: Status::Pass,
        verdict: Verdict::Pass,
        reason: None,
        expected: expected.clone(),
        fault: None,
        observation: None,
        unstable: None,
        history: None,
        duration_ms: 0,
    };
    let guard = lc
        .case
        .timeout
        .base()
        .mul_f64(options.timeout_multiplier.max(0.01));

    // A case about another implementation's extension is not run at all.
    let outcome = match crate::applicability::outside_applies_to(lc, &imp.name) {
        Some(why) => Execution::NotApplicable(why),
        None => execute(slot, imp, lc, guard, cancel),
    };
    let mut raw = None;
    match outcome {
        Execution::Unsupported(missing) => {
            result.status = Status::Unsupported;
            result.reason = Some(format!("lacks capabilities: {}", missing.join(", ")));
        }
        Execution::NotApplicable(why) => {
            result.status = Status::NotApplicable;
            result.reason = Some(why);
        }
        Execution::NoDriver(message) => {
            result.status = Status::Error;
            result.reason = Some(message);
        }
        Execution::Ran { history, failure } => {
            let observation = observe(&lc.case, &lc.program, &history);
            let value = serde_json::to_value(&observation).unwrap_or_default();
            if let Some(dir) = &options.history_dir {
                result.history = write_history(dir, &imp.name, lc.id(), &history);
            }
            match failure {
                Some((status, reason, fault)) => {
                    result.status = status;
                    result.reason = Some(reason);
                    result.fault = fault;
                }
                None if !history.violations.is_empty() => {
                    result.status = Status::Error;
                    result.reason = Some(format!(
                        "coordinator protocol violated: {}",
                        history.violations[0]
                    ));
                }
                None => {
                    if let Some(mismatch) = first_mismatch_of(lc, &value) {
                        result.status = Status::Fail;
                        result.reason = Some(mismatch);
                    }
                }
            }
            result.observation = Some(value);
            raw = Some(history);
        }
    }
    result.verdict = Verdict::judge(result.status, expected.map(|e| e.status));
    result.duration_ms = started.elapsed().as_millis() as u64;
    crate::cell_timing::end();
    (result, raw)
}

enum Execution {
    Unsupported(Vec<String>),
    NotApplicable(String),
    NoDriver(String),
    Ran {
        history: History,
        failure: Option<(Status, String, Option<DriverFault>)>,
    },
}

fn fault_status(fault: &DriverFault) -> Status {
    match fault {
        DriverFault::Timeout { .. } => Status::Timeout,
        // Broke the protocol: the handshake, or a limit of the coordinator.
        DriverFault::Handshake { .. } | DriverFault::CoordinatorLimit { .. } => Status::Error,
        // Died, exited early, or printed something that is not protocol.
        DriverFault::Crashed { .. }
        | DriverFault::ExitedEarly { .. }
        | DriverFault::Garbage { .. }
        | DriverFault::StdoutLineTooLong { .. } => Status::Crash,
    }
}

fn execute(
    slot: &mut Slot,
    imp: &Implementation,
    lc: &LoadedCase,
    guard: Duration,
    cancel: &Cancel,
) -> Execution {
    if slot.coordinator.is_none() {
        match Coordinator::start() {
            Ok(c) => slot.coordinator = Some(c),
            Err(e) => return Execution::NoDriver(format!("cannot start the coordinator: {e}")),
        }
    }
    let Some(coordinator) = &slot.coordinator else {
        return Execution::NoDriver("no coordinator".into());
    };
    if slot.session.is_none() {
        // A driver that cannot start is reported once (`start_failures.rs`).
        let start = || DriverSession::start_contained(&imp.command, guard);
        match crate::cell_timing::driver_start(|| slot.starts.start(&imp.name, lc.id(), start)) {
            Ok(s) => slot.session = Some(s),
            Err((fault, reason)) => {
                let failure = Some((fault_status(&fault), reason, Some(fault)));
                let history = History::default();
                return Execution::Ran { history, failure };
            }
        }
    }
    let Some(session) = slot.session.as_mut() else {
        return Execution::NoDriver("no driver".into());
    };
    let missing: Vec<String> = needed_capabilities(lc)
        .into_iter()
        .filter(|c| !session.capabilities.contains(c))
        .collect();
    if !missing.is_empty() {
        return Execution::Unsupported(missing);
    }
    if let Some(why) = not_applicable(lc, &session.info) {
        return Execution::NotApplicable(why);
    }

    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let token = format!("{}/{}/{seq}", imp.name, lc.id());
    coordinator.alarm_to(session.alarm());
    coordinator.begin_program(&token, &lc.program, session.info.default_processes);
    crate::cell_timing::sent(&token);
    let deadline = Instant::now() + guard;
    // Until the answer: a cancelled run kills this driver, which ends the wait below.
    let in_flight = cancel.in_flight(session.kill_switch());
    let sent = session.send(&ToDriver::Run {
        seq,
        token: token.clone(),
        coordinator: coordinator.path().display().to_string(),
        program: Box::new(lc.program.clone()),
    });
    let failure = match sent {
        Err(fault) => Some(fault),
        Ok(()) => match session.receive(deadline) {
            Ok(FromDriver::Done { seq: s }) if s == seq => None,
            Ok(FromDriver::Error {
                message, traceback, ..
            }) => {
                let history = coordinator.finish();
                let detail = traceback
                    .as_deref()
                    .and_then(|t| t.lines().rev().find(|l| !l.trim().is_empty()))
                    .map(|l| format!(" ({})", l.trim()))
                    .unwrap_or_default();
                return Execution::Ran {
                    history,
                    failure: Some((
                        Status::Error,
                        format!("driver error: {message}{detail}"),
                        None,
                    )),
                };
            }
            // The driver answers each run exactly once, and a driver that timed out was
            // killed, so any other message breaks the protocol.
            Ok(other) => Some(DriverFault::Garbage {
                line: format!("unexpected message {other:?}"),
            }),
            Err(fault) => Some(fault),
        },
    };
    drop(in_flight);
    crate::cell_timing::answered();
    let history = coordinator.finish();
    crate::cell_timing::finished(&token);
    // A coordinator limit the driver went over after its answer still ends its session.
    let failure = failure.or_else(|| session.take_alarm());
    let failure = failure.map(|fault| {
        let left = slot.session.take().map_or(0, |mut s| s.kill());
        // The next driver gets a coordinator of its own: nothing the faulty one left open
        // (connections, a half-sent report) counts against it.
        slot.coordinator = None;
        let reason = crate::pending::fault_reason(&fault, &lc.program, &history);
        let reason = with_note(Some(reason), left).unwrap_or_default();
        (fault_status(&fault), reason, Some(fault))
    });
    Execution::Ran { history, failure }
}

fn write_history(
    dir: &std::path::Path,
    imp: &str,
    case: &str,
    history: &History,
) -> Option<PathBuf> {
    let folder = dir.join(crate::implementations::file_stem(imp));
    std::fs::create_dir_all(&folder).ok()?;
    let path = folder.join(format!("{case}.json"));
    let text = serde_json::to_string_pretty(&annotate(history)).ok()?;
    crate::atomic_write::write_atomic(&path, text.as_bytes()).ok()?;
    Some(path)
}
