//! Wall and CPU time of a piece of work: the runner's own CPU and that of every child it
//! waited for (drivers, their supervisors and pool workers), from `getrusage` deltas.

use std::time::Instant;

use nix::sys::resource::{UsageWho, getrusage};
use serde::{Deserialize, Serialize};

/// Seconds of wall, user and system time.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub wall_s: f64,
    pub user_s: f64,
    pub sys_s: f64,
}

fn cpu_now() -> (f64, f64) {
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    let mut user = 0.0;
    let mut sys = 0.0;
    for who in [UsageWho::RUSAGE_SELF, UsageWho::RUSAGE_CHILDREN] {
        if let Ok(u) = getrusage(who) {
            user += secs(u.user_time());
            sys += secs(u.system_time());
        }
    }
    (user, sys)
}

/// Runs `work`, returning what it returned and what it cost. Children count once waited for.
pub fn measure<T>(work: impl FnOnce() -> T) -> (T, Usage) {
    let (user, sys) = cpu_now();
    let started = Instant::now();
    let out = work();
    let wall_s = started.elapsed().as_secs_f64();
    let (user2, sys2) = cpu_now();
    let usage = Usage {
        wall_s,
        user_s: (user2 - user).max(0.0),
        sys_s: (sys2 - sys).max(0.0),
    };
    (out, usage)
}

/// The round with the median wall time (its CPU times with it).
pub fn median(mut rounds: Vec<Usage>) -> Usage {
    rounds.sort_by(|a, b| a.wall_s.total_cmp(&b.wall_s));
    rounds.get(rounds.len() / 2).copied().unwrap_or_default()
}
