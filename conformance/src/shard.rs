//! One shard of a run split over several machines or CI jobs (`--shard K/N`): which cells (or,
//! for fuzzing, which program indices) shard K of N owns.
//!
//! Every shard computes the same partition on its own, so the partition must be a function of
//! what all of them are given: the cells' keys, and the recorded durations when balancing by a
//! previous report. By count, a cell's shard is a stable hash of its key, so adding a case
//! never moves another case's cells; balanced, it is the longest-processing-time-first
//! assignment of the recorded durations (cells the report does not know fall back to the hash).

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Shard `index` of `count`, both counted from 1 as written (`2/4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// Why `--shard` did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--shard {given:?}: {why} (write K/N with 1 <= K <= N, e.g. 2/4)")]
pub struct ShardError {
    given: String,
    why: &'static str,
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let err = |why| ShardError {
            given: s.to_owned(),
            why,
        };
        let (k, n) = s.split_once('/').ok_or_else(|| err("no '/'"))?;
        let index: u32 = k.trim().parse().map_err(|_| err("K is not a number"))?;
        let count: u32 = n.trim().parse().map_err(|_| err("N is not a number"))?;
        if count == 0 {
            return Err(err("N is 0"));
        }
        if index == 0 || index > count {
            return Err(err("K is not between 1 and N"));
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The header's `shard`: which shard of which run the report holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRun {
    /// K, from 1.
    pub index: u32,
    /// N.
    pub count: u32,
    /// The logical run all N shards belong to (`shard_select::run_id`).
    pub run: String,
    /// Cells of the whole matrix, over all shards (this shard's own are the footer's count).
    pub matrix_cells: usize,
    /// The run's case ids in suite order: the merged run's cases even where an interrupted
    /// shard finished no cell of one.
    #[serde(default)]
    pub cases: Vec<String>,
}

impl ShardRun {
    /// The shard as `--shard` writes it.
    pub fn shard(&self) -> Shard {
        Shard {
            index: self.index,
            count: self.count,
        }
    }
}

impl Shard {
    /// The whole run as one shard.
    pub const WHOLE: Shard = Shard { index: 1, count: 1 };

    /// The shard (0-based) a key falls in by count: a stable hash, the same on every machine
    /// and release (FNV-1a, not std's randomly seeded hasher).
    pub fn of_key(key: &str, count: u32) -> u32 {
        (fnv1a(key) % u64::from(count.max(1))) as u32
    }

    /// Whether this shard owns `key`, partitioning by count.
    pub fn owns(&self, key: &str) -> bool {
        Shard::of_key(key, self.count) == self.index - 1
    }

    /// This shard's part of `0..total`: contiguous, disjoint across shards, together the
    /// whole range, sizes differing by at most one (fuzzing's program indices).
    pub fn range(&self, total: u64) -> Range<u64> {
        let (k, n) = (u64::from(self.index - 1), u64::from(self.count));
        let at = |i: u64| i * (total / n) + i.min(total % n);
        at(k)..at(k + 1)
    }

    /// Shard (0-based) of each key, balanced by `weights` (a key's recorded duration):
    /// longest first onto the least loaded shard, ties broken by key so that every shard
    /// computes the same assignment. A key without a weight falls back to [`Shard::of_key`].
    pub fn balance(keys: &[String], weights: &HashMap<String, u64>, count: u32) -> Vec<u32> {
        let count = count.max(1);
        let mut load = vec![0u64; count as usize];
        let mut out = vec![0u32; keys.len()];
        let mut weighted: Vec<(usize, u64)> = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            match weights.get(k) {
                Some(&w) => weighted.push((i, w)),
                None => out[i] = Shard::of_key(k, count),
            }
        }
        weighted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| keys[a.0].cmp(&keys[b.0])));
        for (i, w) in weighted {
            let (s, _) = load
                .iter()
                .enumerate()
                .min_by_key(|&(s, l)| (*l, s))
                .unwrap_or((0, &0));
            load[s] += w.max(1);
            out[i] = s as u32;
        }
        out
    }
}

pub(crate) fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_prints_k_of_n() {
        let s: Shard = "2/4".parse().unwrap();
        assert_eq!(s, Shard { index: 2, count: 4 });
        assert_eq!(s.to_string(), "2/4");
        for bad in ["", "2", "0/3", "4/3", "1/0", "a/3", "1/b"] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.starts_with(&format!("--shard {bad:?}: ")), "{e}");
        }
    }

    #[test]
    fn the_hash_is_fixed_across_releases() {
        // A changed hash would move cells between shards of CI jobs running different
        // releases of poolspec: pinned.
        // FNV-1a's published test vector, then a cell key.
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a("BLK-001/cpython-fork"), 5_457_086_181_379_044_829);
    }

    #[test]
    fn balancing_puts_the_longest_cells_apart() {
        let keys: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let w: HashMap<String, u64> = [("a", 10), ("b", 9), ("c", 1), ("d", 1)]
            .map(|(k, v)| (k.to_owned(), v))
            .into();
        // a (10) | b (9) + c (1), then d onto the first of two equal loads.
        assert_eq!(Shard::balance(&keys, &w, 2), [0, 1, 1, 0]);
    }

    proptest! {
        #[test]
        fn ranges_tile_the_whole(total in 0u64..10_000, n in 1u32..40) {
            let mut next = 0;
            for k in 1..=n {
                let r = Shard { index: k, count: n }.range(total);
                prop_assert_eq!(r.start, next);
                prop_assert!(r.end - r.start <= total / u64::from(n) + 1);
                next = r.end;
            }
            prop_assert_eq!(next, total);
        }

        #[test]
        fn every_key_has_exactly_one_shard(key in ".{0,30}", n in 1u32..20) {
            let owners = (1..=n).filter(|&k| Shard { index: k, count: n }.owns(&key)).count();
            prop_assert_eq!(owners, 1);
        }
    }
}
