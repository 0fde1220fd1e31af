//! Differential fuzzing: random pool programs run on CPython (the oracle) and on an
//! implementation, compared by their normalized observations.
//!
//! 1. [`generate`] draws a raw program from proptest strategies over the case format's
//!    own types; program `i` of seed `s` is drawn from its own RNG stream, so any program
//!    can be regenerated alone (`--seed s --start i --cases 1`).
//! 2. [`legalize`] turns it into a case whose every observation is forced by gates and
//!    `await`s (or rewrites and drops the steps that would race or hang).
//! 3. Lanes (threads), each with a warm oracle driver and a warm implementation driver, run
//!    programs side by side and compare observations ([`diff`]); [`tally`] counts them in
//!    index order, so the result does not depend on the number of lanes.
//! 4. On the lowest index that diverges, proptest's value tree shrinks the raw program;
//!    every candidate is legalized and run on both again, and the smallest program that
//!    still diverges is written as a case file ([`emit`]).
//! 5. Every run describes itself in a [`report`] (which indices ran, what was found, in a
//!    form that dedups); [`merge`] joins the reports of a run's shards.

pub mod diff;
pub mod emit;
pub mod generate;
pub mod legalize;
pub mod merge;
pub mod raw;
pub mod report;
pub mod tally;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;

use crate::coordinator::History;
use crate::driver::DriverFault;
use crate::expectations::ExpectationFile;
use crate::implementations::Implementation;
use crate::observe::annotate;
use crate::runner::{CaseResult, RunOptions, WarmDriver};
use crate::spec::program::{ProgramError, compile};
use crate::spec::{Area, Case, LoadedCase};
use crate::verdict::Status;
use diff::{Difference, differences};
use raw::{Feature, RawProgram};
use tally::Tally;

/// How to fuzz.
#[derive(Debug, Clone)]
pub struct FuzzOptions {
    /// The run's seed; program `i` is drawn from a stream derived from `(seed, i)`.
    pub seed: u64,
    /// Index of the first program.
    pub start: u64,
    /// Stop after this many programs (with `time`, whichever comes first).
    pub cases: Option<u64>,
    /// Stop taking new programs after this long.
    pub time: Option<Duration>,
    /// Lanes: pairs of warm drivers running programs in parallel (default [`default_jobs`]).
    pub jobs: usize,
    /// Steps of a raw program, at most (legalizing adds `await`s and an epilogue).
    pub max_steps: usize,
    /// Candidate programs run while shrinking, at most.
    pub shrink_runs: u32,
    /// Parts of the vocabulary left out of every program.
    pub exclude: BTreeSet<Feature>,
    /// Compare exceptions by type only: for implementations whose messages legitimately
    /// differ (other class names in reprs, other wording).
    pub ignore_messages: bool,
    /// Liveness guards (its `history_dir` is ignored: see `history_dir`).
    pub run: RunOptions,
    /// Where the raw histories of the found program's confirming runs go.
    pub history_dir: Option<PathBuf>,
}

impl Default for FuzzOptions {
    fn default() -> Self {
        FuzzOptions {
            seed: 0,
            start: 0,
            cases: Some(100),
            time: None,
            jobs: default_jobs(),
            max_steps: 10,
            shrink_runs: 400,
            exclude: BTreeSet::new(),
            ignore_messages: false,
            run: RunOptions {
                history_dir: None,
                ..RunOptions::default()
            },
            history_dir: None,
        }
    }
}

/// How one program went on the two implementations.
#[derive(Debug, Clone)]
pub enum PairOutcome {
    /// Same status, same observation.
    Agree,
    /// The implementation observed something else (or faulted where the oracle did not).
    Diverge {
        oracle: Value,
        target: Value,
        differences: Vec<Difference>,
    },
    /// The oracle itself did not run the program cleanly: a program CPython does not
    /// define slipped through the legalizer. Reported, never shrunk; `history` is the
    /// oracle's raw history of it (roles annotated).
    OracleFault {
        reason: String,
        history: Option<Value>,
        /// The oracle driver's recent stderr (with a stack dump, after a timeout).
        stderr: Option<String>,
    },
}

/// What the fuzzer found.
#[derive(Debug, Clone)]
pub struct Found {
    /// Index of the program in the seed's stream.
    pub index: u64,
    /// Time from the start of the run to the divergence (before shrinking).
    pub after: Duration,
    /// The legalized program as generated.
    pub original: Case,
    /// The smallest diverging program (equal to `original` for an oracle fault).
    pub shrunk: Case,
    pub outcome: PairOutcome,
    /// Candidate programs run while shrinking.
    pub shrink_runs: u32,
    /// Did two more runs of the shrunk program diverge again, with the oracle observing
    /// exactly what it did before? `false` means the program is not deterministic on one
    /// side: a legalizer bug or an unstable implementation, not yet a divergence.
    pub reproduced: bool,
    /// Raw histories of the last runs of the shrunk program, one folder per implementation.
    pub histories: Option<PathBuf>,
    /// Raw histories of the run that first diverged, roles annotated (oracle, implementation).
    pub first_histories: (Option<Value>, Option<Value>),
}

/// A program the oracle did not run cleanly once but did on a second try: CPython (or its
/// driver) hung or crashed on a program it normally runs. Kept for diagnosis; the run goes on.
#[derive(Debug, Clone)]
pub struct OracleFlake {
    pub index: u64,
    pub case: Case,
    /// The first attempt's outcome (an [`PairOutcome::OracleFault`]).
    pub fault: PairOutcome,
}

/// The result of a fuzzing run.
#[derive(Debug, Clone)]
pub struct FuzzSummary {
    pub seed: u64,
    /// Programs run on both implementations (including the diverging one): indices
    /// `start..start + programs`, since every index a lane takes is run.
    pub programs: u64,
    /// Of those, the ones whose observations agreed.
    pub agreements: u64,
    /// Steps of all legalized programs run, for a sense of size.
    pub steps: u64,
    pub wall: Duration,
    pub found: Option<Found>,
    pub oracle_flakes: Vec<OracleFlake>,
}

/// 32 bytes of RNG seed for program `index` of `seed` (splitmix64).
fn program_seed(seed: u64, index: u64) -> [u8; 32] {
    let mut state = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut out = [0u8; 32];
    for chunk in out.chunks_mut(8) {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes());
    }
    out
}

type Tree = Box<dyn ValueTree<Value = RawProgram>>;

/// The value tree of program `index` of `seed`: its current value is the program, and
/// it shrinks.
pub fn program_tree(seed: u64, index: u64, max_steps: usize) -> Tree {
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &program_seed(seed, index));
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = generate::raw_program(max_steps).boxed();
    match strategy.new_tree(&mut runner) {
        Ok(tree) => Box::new(tree),
        // The strategies have no filters, so drawing cannot be rejected.
        Err(reason) => unreachable!("program strategy rejected a draw: {reason}"),
    }
}

/// The case id of program `index` of `seed`.
pub fn case_id(seed: u64, index: u64) -> String {
    let bytes = program_seed(seed, index);
    format!(
        "FUZZ-{:02X}{:02X}{:02X}{:02X}",
        bytes[0], bytes[1], bytes[2], bytes[3]
    )
}

/// Program `index` of `seed`, legalized without the `excluded` features.
pub fn program_case(seed: u64, index: u64, max_steps: usize, excluded: &BTreeSet<Feature>) -> Case {
    legalize::legalize(
        &program_tree(seed, index, max_steps).current(),
        &case_id(seed, index),
        excluded,
    )
}

fn loaded(case: &Case) -> Result<LoadedCase, ProgramError> {
    let program = compile(case)?;
    Ok(LoadedCase {
        file: PathBuf::from("<fuzz>"),
        source: crate::spec::Source::BuiltIn,
        area: Area::Ordering,
        case: case.clone(),
        program,
    })
}

/// A warm oracle driver and a warm implementation driver.
#[derive(Debug)]
pub struct Lane {
    oracle: WarmDriver,
    target: WarmDriver,
    /// The raw histories of the last run (oracle, implementation).
    last: (Option<History>, Option<History>),
    /// Compare exceptions by type only (see [`FuzzOptions::ignore_messages`]).
    ignore_messages: bool,
}

impl Lane {
    pub fn new(oracle: &Implementation, target: &Implementation) -> Lane {
        Lane {
            oracle: WarmDriver::new(oracle.clone(), ExpectationFile::default()),
            target: WarmDriver::new(target.clone(), ExpectationFile::default()),
            last: (None, None),
            ignore_messages: false,
        }
    }

    /// Compare exceptions by type only.
    pub fn ignoring_messages(mut self, ignore: bool) -> Lane {
        self.ignore_messages = ignore;
        self
    }

    /// The raw histories of the last run, roles annotated: `(oracle, implementation)`.
    pub fn last_histories(&self) -> (Option<Value>, Option<Value>) {
        (
            self.last.0.as_ref().map(annotate),
            self.last.1.as_ref().map(annotate),
        )
    }

    /// Runs `case` on both drivers at once.
    pub fn run(&mut self, case: &Case, options: &RunOptions) -> PairOutcome {
        let lc = match loaded(case) {
            Ok(lc) => lc,
            Err(e) => {
                return PairOutcome::OracleFault {
                    reason: format!("legalized program does not compile: {e}"),
                    history: None,
                    stderr: None,
                };
            }
        };
        self.last = (None, None);
        let Lane { oracle, target, .. } = self;
        let (o, t) = thread::scope(|s| {
            let o = s.spawn(|| oracle.run(&lc, options));
            let t = target.run(&lc, options);
            (o.join(), t)
        });
        let Ok((o, history)) = o else {
            return PairOutcome::OracleFault {
                reason: "the oracle's runner thread panicked".into(),
                history: None,
                stderr: None,
            };
        };
        let mut outcome = compare(&o, &t.0, self.ignore_messages);
        if let PairOutcome::OracleFault { history: h, .. } = &mut outcome {
            *h = history.as_ref().map(annotate);
        }
        self.last = (history, t.1);
        outcome
    }

    pub fn stop(self) {
        self.oracle.stop();
        self.target.stop();
    }
}

/// Removes `message` from every `{type, message}` object: exceptions compared by type only.
fn strip_messages(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.contains_key("type") && map.contains_key("message") {
                map.remove("message");
            }
            map.values_mut().for_each(strip_messages);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_messages),
        _ => {}
    }
}

/// Drops what only a Python driver reports about an exception (`python`: its class and what
/// it is an instance of): the fuzzer compares implementations across languages.
fn strip_language_specific(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.contains_key("type") && map.contains_key("message") {
                map.remove("python");
            }
            map.values_mut().for_each(strip_language_specific);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_language_specific),
        _ => {}
    }
}

fn compare(o: &CaseResult, t: &CaseResult, ignore_messages: bool) -> PairOutcome {
    if o.status != Status::Pass {
        return PairOutcome::OracleFault {
            reason: format!(
                "{} on the oracle: {}",
                o.status.as_str(),
                o.reason.as_deref().unwrap_or("")
            ),
            history: None,
            stderr: match &o.fault {
                Some(
                    DriverFault::Timeout { stderr, .. }
                    | DriverFault::Crashed { stderr, .. }
                    | DriverFault::ExitedEarly { stderr },
                ) => Some(stderr.clone()),
                _ => None,
            },
        };
    }
    let mut oracle = o.observation.clone().unwrap_or(Value::Null);
    let mut target = t.observation.clone().unwrap_or(Value::Null);
    strip_language_specific(&mut oracle);
    strip_language_specific(&mut target);
    if ignore_messages {
        strip_messages(&mut oracle);
        strip_messages(&mut target);
    }
    if t.status != Status::Pass {
        // A fault is a divergence even where the partial observation happens to agree.
        target = serde_json::json!({
            "status": t.status.as_str(),
            "reason": t.reason.clone().unwrap_or_default(),
            "observation": target,
        });
        // The status first, then where the partial observation already differs (a step
        // that never returned, tasks that never ran).
        let mut differences = vec![Difference {
            path: "status".into(),
            oracle: Some(Value::from("pass")),
            target: Some(Value::from(t.status.as_str())),
        }];
        if let Some(partial) = &t.observation {
            differences.extend(diff::differences(&oracle, partial));
        }
        return PairOutcome::Diverge {
            oracle,
            target,
            differences,
        };
    }
    let differences = differences(&oracle, &target);
    if differences.is_empty() {
        PairOutcome::Agree
    } else {
        PairOutcome::Diverge {
            oracle,
            target,
            differences,
        }
    }
}

/// Shrinks a diverging program: proptest's simplify/complicate walk over the raw program,
/// each candidate legalized and run on both; identical legalized candidates run once.
fn shrink(
    lane: &mut Lane,
    mut tree: Tree,
    first: (Case, PairOutcome),
    options: &FuzzOptions,
    id: &str,
) -> (Case, PairOutcome, u32) {
    let mut best = first;
    let mut runs = 0u32;
    let mut seen: HashMap<String, bool> = HashMap::new();
    let run = RunOptions {
        history_dir: None,
        ..options.run.clone()
    };
    if !tree.simplify() {
        return (best.0, best.1, runs);
    }
    loop {
        let case = legalize::legalize(&tree.current(), id, &options.exclude);
        let key = serde_json::to_string(&case.steps).unwrap_or_default()
            + &serde_json::to_string(&case.pool).unwrap_or_default();
        let diverges = match seen.get(&key) {
            Some(d) => *d,
            None => {
                if runs >= options.shrink_runs {
                    break;
                }
                runs += 1;
                let outcome = lane.run(&case, &run);
                let d = matches!(outcome, PairOutcome::Diverge { .. });
                if d && smaller(&case, &best.0) {
                    best = (case, outcome);
                }
                seen.insert(key, d);
                d
            }
        };
        let more = if diverges {
            tree.simplify()
        } else {
            tree.complicate()
        };
        if !more {
            break;
        }
    }
    (best.0, best.1, runs)
}

/// Fewer steps, then fewer tasks.
fn smaller(a: &Case, b: &Case) -> bool {
    let size = |c: &Case| {
        let tasks: usize = c.steps.iter().map(|s| s.task_specs().len()).sum();
        (c.steps.len(), tasks)
    };
    size(a) <= size(b)
}

/// Lanes when `--jobs` is not given: two per CPU. A lane spends most of a program waiting
/// on its drivers (pool start-up, gates, teardown), so one per CPU leaves the CPUs idle.
pub fn default_jobs() -> usize {
    thread::available_parallelism().map_or(2, |n| (2 * n.get()).clamp(2, 8))
}

/// Runs programs until the budget is spent or a program does not agree; the lowest such
/// index is shrunk (every index below it runs, whatever the number of lanes: see [`tally`]).
/// `progress` gets the number of programs finished so far (from lane threads).
pub fn fuzz(
    oracle: &Implementation,
    target: &Implementation,
    options: &FuzzOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> FuzzSummary {
    let shared = Shared {
        started: Instant::now(),
        next: AtomicU64::new(options.start),
        done: AtomicU64::new(0),
        tally: Mutex::new(Tally::new(options.start)),
        flakes: Mutex::new(Vec::new()),
        end: options.cases.map(|n| options.start.saturating_add(n)),
    };
    let mut hits: Vec<(Lane, Hit)> = thread::scope(|s| {
        let lanes: Vec<_> = (0..options.jobs.max(1))
            .map(|_| s.spawn(|| run_lane(&shared, oracle, target, options, progress)))
            .collect();
        lanes
            .into_iter()
            .filter_map(|l| l.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    hits.sort_by_key(|(_, hit)| hit.index);
    let mut hits = hits.into_iter();
    let lowest = hits.next();
    hits.for_each(|(lane, _)| lane.stop());
    let found = lowest.map(|(mut lane, hit)| {
        let found = investigate(&mut lane, hit, options);
        lane.stop();
        found
    });
    let tally = shared.tally.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut oracle_flakes = shared
        .flakes
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    oracle_flakes.retain(|f| tally.wanted(f.index) || Some(f.index) == tally.lowest());
    oracle_flakes.sort_by_key(|f| f.index);
    FuzzSummary {
        seed: options.seed,
        programs: tally.programs(),
        agreements: tally.agreements(),
        steps: tally.steps(),
        wall: shared.started.elapsed(),
        found,
        oracle_flakes,
    }
}

/// What the lanes of a run share.
struct Shared {
    started: Instant,
    /// The next index to take.
    next: AtomicU64,
    /// Programs finished, for the progress bar (in any order).
    done: AtomicU64,
    tally: Mutex<Tally>,
    flakes: Mutex<Vec<OracleFlake>>,
    /// One past the last index of the budget, when it is a count.
    end: Option<u64>,
}

impl Shared {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One lane: takes indices until the budget is spent or an index no longer matters; returns
/// its warm drivers with the program that did not agree, if one did.
fn run_lane(
    shared: &Shared,
    oracle: &Implementation,
    target: &Implementation,
    options: &FuzzOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Option<(Lane, Hit)> {
    let run = RunOptions {
        history_dir: None,
        ..options.run.clone()
    };
    let mut lane = Lane::new(oracle, target).ignoring_messages(options.ignore_messages);
    loop {
        if options.time.is_some_and(|t| shared.started.elapsed() >= t) {
            break;
        }
        let index = shared.next.fetch_add(1, Ordering::SeqCst);
        if shared.end.is_some_and(|end| index >= end) || !shared.tally().wanted(index) {
            break;
        }
        let tree = program_tree(options.seed, index, options.max_steps);
        let id = case_id(options.seed, index);
        let case = legalize::legalize(&tree.current(), &id, &options.exclude);
        let mut outcome = lane.run(&case, &run);
        if matches!(outcome, PairOutcome::OracleFault { .. }) {
            // Once is a flake to record; twice is a program CPython does not define, which
            // stops the run.
            let again = lane.run(&case, &run);
            if !matches!(again, PairOutcome::OracleFault { .. }) {
                shared
                    .flakes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(OracleFlake {
                        index,
                        case: case.clone(),
                        fault: outcome,
                    });
            }
            outcome = again;
        }
        let agreed = matches!(outcome, PairOutcome::Agree);
        shared
            .tally()
            .finish(index, case.steps.len() as u64, agreed);
        progress(shared.done.fetch_add(1, Ordering::SeqCst) + 1);
        if !agreed {
            let hit = Hit {
                index,
                id,
                case,
                outcome,
                after: shared.started.elapsed(),
                first_histories: lane.last_histories(),
            };
            return Some((lane, hit));
        }
    }
    lane.stop();
    None
}

/// A program that did not agree, as first seen.
struct Hit {
    index: u64,
    id: String,
    case: Case,
    outcome: PairOutcome,
    after: Duration,
    /// The raw histories of that run, roles annotated (oracle, implementation).
    first_histories: (Option<Value>, Option<Value>),
}

/// Shrinks a divergence, then checks that the oracle's observation of the result is
/// stable and records raw histories of it.
fn investigate(lane: &mut Lane, hit: Hit, options: &FuzzOptions) -> Found {
    let Hit {
        index,
        id,
        case,
        outcome,
        after,
        first_histories,
    } = hit;
    // Drawn again (a value tree stays on the thread that drew it): the same stream.
    let tree = program_tree(options.seed, index, options.max_steps);
    let id = id.as_str();
    let (shrunk, outcome, shrink_runs) = match outcome {
        PairOutcome::Diverge { .. } => shrink(lane, tree, (case.clone(), outcome), options, id),
        other => (case.clone(), other, 0),
    };
    let mut reproduced = true;
    let histories = options.history_dir.clone();
    let confirm = RunOptions {
        history_dir: histories.clone(),
        ..options.run.clone()
    };
    if let PairOutcome::Diverge { oracle, .. } = &outcome {
        for _ in 0..2 {
            let again = lane.run(&shrunk, &confirm);
            let same = match &again {
                PairOutcome::Diverge { oracle: o, .. } => o == oracle,
                // Agreeing now means the oracle (or the implementation) is not stable.
                PairOutcome::Agree | PairOutcome::OracleFault { .. } => false,
            };
            reproduced &= same;
        }
    }
    Found {
        index,
        after,
        original: case,
        shrunk,
        outcome,
        shrink_runs,
        reproduced,
        histories,
        first_histories,
    }
}
