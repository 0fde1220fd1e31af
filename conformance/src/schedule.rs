//! The order the runner hands cells to its job threads: longest first, by each cell's
//! `duration_ms` in an earlier report, so that a slow cell started last does not hold one
//! job thread while the others have nothing left to do (longest processing time first).
//!
//! Only the order of work changes: every cell still runs, each on a fresh pool, and the
//! report keeps its own order (case, then implementation). Without costs, or for cells the
//! earlier report does not know (a new case, another implementation), the order is the
//! matrix order; unknown cells go first, since nothing says they are short. A leaf module:
//! the caller reads the earlier report (xtask's conformance command, before clearing it).

use std::collections::HashMap;
use std::sync::Arc;

/// The key of a cell: stable across suites, unique in a matrix (also `--balance-from`'s).
pub fn cell_key(case: &str, implementation: &str) -> String {
    format!("{case}\0{implementation}")
}

/// Per-cell wall times (ms) of an earlier run, by [`cell_key`].
#[derive(Debug, Clone, Default)]
pub struct Costs {
    by_cell: Arc<HashMap<String, u64>>,
}

impl Costs {
    /// The earlier wall time of the cell `case` × `implementation`, when known.
    pub fn of(&self, case: &str, implementation: &str) -> Option<u64> {
        self.by_cell.get(&cell_key(case, implementation)).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.by_cell.is_empty()
    }
}

impl FromIterator<(String, String, u64)> for Costs {
    /// From (case, implementation, duration in ms) triples.
    fn from_iter<I: IntoIterator<Item = (String, String, u64)>>(cells: I) -> Costs {
        let by_cell = cells.into_iter().map(|(c, i, ms)| (cell_key(&c, &i), ms));
        Costs::from(by_cell.collect::<HashMap<_, _>>())
    }
}

impl From<HashMap<String, u64>> for Costs {
    /// From durations by [`cell_key`] (`shard_select::durations`).
    fn from(by_cell: HashMap<String, u64>) -> Costs {
        Costs {
            by_cell: Arc::new(by_cell),
        }
    }
}

/// The work of a run, as (implementation, case, run) for each cell `owned(case,
/// implementation)` and each of its `repeat` runs: longest first by `cost(case,
/// implementation)`, ties and unknown cells (first) in matrix order (implementation, then
/// case). A stable sort: deterministic, and the runs of one cell under `--verify` stay
/// together.
pub fn work(
    implementations: usize,
    cases: usize,
    repeat: u32,
    owned: impl Fn(usize, usize) -> bool,
    cost: impl Fn(usize, usize) -> Option<u64>,
) -> Vec<(usize, usize, u32)> {
    let mut work = Vec::new();
    for i in 0..implementations {
        for c in (0..cases).filter(|&c| owned(c, i)) {
            work.extend((0..repeat.max(1)).map(|r| (i, c, r)));
        }
    }
    work.sort_by_cached_key(|&(i, c, _)| std::cmp::Reverse(cost(c, i).unwrap_or(u64::MAX)));
    work
}

#[cfg(test)]
mod tests {
    use super::*;

    const CASES: [&str; 4] = ["A", "B", "C", "D"];

    fn costs(cells: &[(&str, u64)]) -> Costs {
        cells
            .iter()
            .map(|(c, ms)| ((*c).to_owned(), "x".to_owned(), *ms))
            .collect()
    }

    #[test]
    fn slow_cells_go_first_and_unknown_ones_before_them() {
        let costs = costs(&[("A", 10), ("B", 900), ("C", 50)]);
        let work = work(1, 4, 2, |_, _| true, |c, _| costs.of(CASES[c], "x"));
        let order: Vec<(&str, u32)> = work.iter().map(|&(_, c, r)| (CASES[c], r)).collect();
        assert_eq!(
            order,
            [
                ("D", 0),
                ("D", 1),
                ("B", 0),
                ("B", 1),
                ("C", 0),
                ("C", 1),
                ("A", 0),
                ("A", 1)
            ]
        );
    }

    #[test]
    fn without_costs_the_order_is_the_matrix_order() {
        let costs = Costs::default();
        assert!(costs.is_empty());
        let work = work(
            2,
            3,
            1,
            |c, i| (c, i) != (1, 0),
            |c, _| costs.of(CASES[c], "x"),
        );
        assert_eq!(
            work,
            [(0, 0, 0), (0, 2, 0), (1, 0, 0), (1, 1, 0), (1, 2, 0)]
        );
    }
}
