//! The floor: what the pool starts and stops of a run cost at least, per implementation.
//!
//! Every case's program starts one fresh pool (of its `processes`) and the driver stops it.
//! For a CPython start method, `fixtures/bench/pool_floor.py` times `Pool(n)` started and
//! closed/joined on the drivers' interpreter (wall, and CPU of the workers); for any other
//! implementation the cheapest cell of the run stands for one pool start and stop (wall
//! only). A cell also waits, by design, for each of its timeouts that expires (a `get`,
//! `wait` or `next` whose timeout the case lets run out to show it does): that wall time
//! counts too ([`deliberate_wait`]). The floor is the sum over cells, spread over the run's
//! parallelism: wall cost divided by the job threads, CPU cost divided by the cores,
//! whichever is larger.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use conformance::runner::CaseResult;
use conformance::spec::{LoadedCase, Processes, Program, Step};
use conformance::verdict::Status;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What one pool start and stop costs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PoolCost {
    pub wall_s: f64,
    /// CPU of the pool's processes, when measured.
    pub cpu_s: Option<f64>,
}

/// Which figure limits the floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// Wall cost over job threads.
    Wall,
    /// CPU cost over cores.
    Cpu,
}

/// One implementation's floor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Floor {
    /// Pools the run's cases start, and their processes in all.
    pub pools: u32,
    pub processes: u32,
    pub wall_cost_s: f64,
    /// Timeouts that expired by design, summed over the cells ([`deliberate_wait`]).
    #[serde(default)]
    pub waits_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_cost_s: Option<f64>,
    pub floor_s: f64,
    pub bound: Bound,
    /// Where the cost of one pool came from.
    pub source: String,
}

/// The processes of the pool a cell started; `None` when it started none (not run, or a
/// pool size that cannot construct).
pub fn pool_of(case: &LoadedCase, result: &CaseResult, default_processes: u32) -> Option<u32> {
    if matches!(result.status, Status::Unsupported | Status::NotApplicable) {
        return None;
    }
    match case.program.pool.processes {
        Processes::Count(n) if n >= 1 => u32::try_from(n).ok(),
        Processes::Count(_) => None,
        Processes::Default => Some(default_processes),
    }
}

/// A `wait` that returned None is taken to have expired when its timeout is at most this:
/// the suite's short timeouts are there to run out, its long ones (5 s, an hour) to be met.
const SHORT_TIMEOUT_S: f64 = 1.0;

/// The seconds a cell spent in timeouts that ran out by design: each `get` or `next` with a
/// timeout whose observation raised the neutral kind `timeout`, and each `wait` with a short
/// timeout that returned None (it returns None either way). No pool can answer sooner.
pub fn deliberate_wait(program: &Program, observation: Option<&Value>) -> f64 {
    let Some(steps) = observation.and_then(|o| o.get("steps")) else {
        return 0.0;
    };
    let mut waited = 0.0;
    for (index, step) in program.steps.iter().enumerate() {
        let (on, is_wait) = match step {
            Step::Get(h) | Step::Next(h) => (h, false),
            Step::Wait(h) => (h, true),
            _ => continue,
        };
        let Some(timeout) = on.timeout.filter(|t| *t > 0.0) else {
            continue;
        };
        let label = step
            .explicit_id()
            .map_or_else(|| format!("s{}", index + 1), str::to_owned);
        let Some(seen) = steps.get(&label) else {
            continue;
        };
        let expired = if is_wait {
            timeout <= SHORT_TIMEOUT_S && seen.get("returned").is_some_and(|v| v.is_null())
        } else {
            seen.pointer("/raised/kind").and_then(|k| k.as_str()) == Some("timeout")
        };
        if expired {
            waited += timeout;
        }
    }
    waited
}

/// The floor of pools of these sizes, each costing `cost(n)`, and of `waits` seconds of
/// timeouts that expire by design.
pub fn floor(
    pools: &[u32],
    cost: impl Fn(u32) -> PoolCost,
    waits: f64,
    cores: usize,
    jobs: usize,
    source: &str,
) -> Floor {
    let mut wall = 0.0;
    let mut cpu = Some(0.0);
    for &n in pools {
        let c = cost(n);
        wall += c.wall_s;
        cpu = cpu.zip(c.cpu_s).map(|(a, b)| a + b);
    }
    let by_wall = (wall + waits) / jobs.max(1) as f64;
    let by_cpu = cpu.map_or(0.0, |c| c / cores.max(1) as f64);
    let (floor_s, bound) = if by_cpu > by_wall {
        (by_cpu, Bound::Cpu)
    } else {
        (by_wall, Bound::Wall)
    };
    Floor {
        pools: pools.len() as u32,
        processes: pools.iter().sum(),
        wall_cost_s: wall,
        waits_s: waits,
        cpu_cost_s: cpu.filter(|_| !pools.is_empty()),
        floor_s,
        bound,
        source: source.to_owned(),
    }
}

/// The floor of every implementation's pools together, on the same jobs and cores.
pub fn combine(floors: &[&Floor], cores: usize, jobs: usize) -> Floor {
    let wall: f64 = floors.iter().map(|f| f.wall_cost_s).sum();
    let waits: f64 = floors.iter().map(|f| f.waits_s).sum();
    let cpu: f64 = floors.iter().filter_map(|f| f.cpu_cost_s).sum();
    let by_wall = (wall + waits) / jobs.max(1) as f64;
    let by_cpu = cpu / cores.max(1) as f64;
    Floor {
        pools: floors.iter().map(|f| f.pools).sum(),
        processes: floors.iter().map(|f| f.processes).sum(),
        wall_cost_s: wall,
        waits_s: waits,
        cpu_cost_s: Some(cpu),
        floor_s: by_wall.max(by_cpu),
        bound: if by_cpu > by_wall {
            Bound::Cpu
        } else {
            Bound::Wall
        },
        source: "every implementation's pools".into(),
    }
}

/// The CPython start method an implementation runs on the drivers' interpreter.
pub fn start_method(implementation: &str) -> Option<&str> {
    let method = implementation
        .strip_prefix("cpython-")
        .or_else(|| implementation.strip_prefix("pypy-"))?;
    ["fork", "spawn", "forkserver"]
        .contains(&method)
        .then_some(method)
}

#[derive(Deserialize)]
struct Row {
    method: String,
    processes: u32,
    close_wall_s: f64,
    close_cpu_s: f64,
}

/// Pool costs by (start method, processes), from `pool_floor.py` on `python`.
pub fn measure_cpython(
    root: &Path,
    python: &Path,
    methods: &BTreeSet<String>,
    sizes: &BTreeSet<u32>,
    repeats: u32,
) -> Result<BTreeMap<(String, u32), PoolCost>> {
    let join = |v: Vec<String>| v.join(",");
    // With the built-in drivers' flags, so that a worker costs here what it costs there.
    let out = Command::new(python)
        .args(conformance::implementations::STDLIB_FLAGS)
        .arg(root.join("fixtures/bench/pool_floor.py"))
        .args(["--methods", &join(methods.iter().cloned().collect())])
        .args([
            "--processes",
            &join(sizes.iter().map(u32::to_string).collect()),
        ])
        .args(["--repeats", &repeats.to_string()])
        .output()
        .with_context(|| format!("running {} pool_floor.py", python.display()))?;
    if !out.status.success() {
        bail!(
            "pool_floor.py failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut costs = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let row: Row = serde_json::from_str(line).context("a line of pool_floor.py")?;
        let cost = PoolCost {
            wall_s: row.close_wall_s,
            cpu_s: Some(row.close_cpu_s),
        };
        costs.insert((row.method, row.processes), cost);
    }
    Ok(costs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(n: u32) -> PoolCost {
        PoolCost {
            wall_s: 0.1 * f64::from(n),
            cpu_s: Some(0.05 * f64::from(n)),
        }
    }

    #[test]
    fn wall_bound_when_jobs_are_few() {
        // 10 pools of 2: 2.0 s of wall over 2 jobs = 1.0; 1.0 s of CPU over 2 cores = 0.5.
        let f = floor(&[2; 10], cost, 0.0, 2, 2, "t");
        assert_eq!((f.pools, f.processes), (10, 20));
        assert!((f.wall_cost_s - 2.0).abs() < 1e-9);
        assert!((f.floor_s - 1.0).abs() < 1e-9);
        assert_eq!(f.bound, Bound::Wall);
    }

    #[test]
    fn cpu_bound_when_jobs_outnumber_cores() {
        // 2.0 s of wall over 8 jobs = 0.25; 1.0 s of CPU over 2 cores = 0.5.
        let f = floor(&[2; 10], cost, 0.0, 2, 8, "t");
        assert!((f.floor_s - 0.5).abs() < 1e-9);
        assert_eq!(f.bound, Bound::Cpu);
    }

    #[test]
    fn unknown_cpu_leaves_the_wall() {
        let wall_only = |_| PoolCost {
            wall_s: 0.01,
            cpu_s: None,
        };
        let f = floor(&[1, 2, 4], wall_only, 0.0, 2, 4, "t");
        assert_eq!(f.cpu_cost_s, None);
        assert_eq!(f.processes, 7);
        assert!((f.floor_s - 0.0075).abs() < 1e-9);
        assert_eq!(f.bound, Bound::Wall);
        assert_eq!(floor(&[], wall_only, 0.0, 2, 4, "t").floor_s, 0.0);
    }

    #[test]
    fn together_adds_costs_then_divides() {
        let a = floor(&[2; 10], cost, 0.0, 2, 4, "a");
        let wall_only = |_| PoolCost {
            wall_s: 0.2,
            cpu_s: None,
        };
        let b = floor(&[1; 10], wall_only, 0.0, 2, 4, "b");
        let all = combine(&[&a, &b], 2, 4);
        // Wall: 2.0 + 2.0 over 4 jobs = 1.0; CPU: 1.0 over 2 cores = 0.5.
        assert_eq!((all.pools, all.processes), (20, 30));
        assert!((all.floor_s - 1.0).abs() < 1e-9);
        assert_eq!(all.bound, Bound::Wall);
    }

    fn spec_case(id: &str) -> LoadedCase {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec");
        let suite = conformance::spec::load_dir(&root);
        let found = suite.cases.into_iter().find(|c| c.id() == id);
        found.unwrap_or_else(|| panic!("{id} is not in spec/"))
    }

    #[test]
    fn a_wait_counts_when_its_timeout_ran_out() {
        // TMO-001: s3 is get(timeout=0.05), s4 get(timeout=0): only s3 waited.
        let case = spec_case("TMO-001");
        let timed_out = serde_json::json!({"raised": {"kind": "timeout"}});
        let observed =
            serde_json::json!({"steps": {"s3": timed_out, "s4": timed_out, "s6": {"returned": 5}}});
        let waited = deliberate_wait(&case.program, Some(&observed));
        assert!((waited - 0.05).abs() < 1e-9, "{waited}");
        // The same steps answered at once (a pool that never blocks): nothing waited.
        let answered = serde_json::json!({"steps": {"s3": {"returned": 5}, "s4": {"returned": 5}}});
        assert_eq!(deliberate_wait(&case.program, Some(&answered)), 0.0);
        assert_eq!(deliberate_wait(&case.program, None), 0.0);
        // TMO-002: wait(timeout=0.05) returns None whether or not it expired; s6 waits
        // without a timeout.
        let case = spec_case("TMO-002");
        let observed =
            serde_json::json!({"steps": {"s3": {"returned": null}, "s6": {"returned": null}}});
        let waited = deliberate_wait(&case.program, Some(&observed));
        assert!((waited - 0.05).abs() < 1e-9, "{waited}");
    }

    #[test]
    fn expiring_timeouts_raise_the_wall_floor() {
        // 0.1 s of pools and 0.7 s of expiring timeouts over 4 jobs = 0.2.
        let wall_only = |_| PoolCost {
            wall_s: 0.05,
            cpu_s: None,
        };
        let f = floor(&[2, 2], wall_only, 0.7, 2, 4, "t");
        assert!((f.floor_s - 0.2).abs() < 1e-9);
        assert!((combine(&[&f, &f], 2, 4).floor_s - 0.4).abs() < 1e-9);
    }

    #[test]
    fn start_methods() {
        assert_eq!(start_method("cpython-spawn"), Some("spawn"));
        assert_eq!(start_method("pypy-forkserver"), Some("forkserver"));
        assert_eq!(start_method("cpython-threadpool"), None);
        assert_eq!(start_method("cpython-3.11-fork"), None);
        assert_eq!(start_method("rust-ref"), None);
    }
}
