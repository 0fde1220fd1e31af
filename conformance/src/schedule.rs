//! The order the runner hands cells to its job threads: longest first, by each cell's
//! `duration_ms` in an earlier report, so that a slow cell started last does not hold one
//! job thread while the others have nothing left to do (longest processing time first).
//!
//! Only the order of work changes: every cell still runs, each on a fresh pool, and the
//! report keeps its own order (case, then implementation). Without costs, or for cells the
//! earlier report does not know (a new case, another implementation), the order is the
//! matrix order; unknown cells go first, since nothing says they are short.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::shard_select::{self, cell_key};

/// Per-cell wall times (ms) of an earlier run, by [`cell_key`].
#[derive(Debug, Clone, Default)]
pub struct Costs {
    by_key: Arc<HashMap<String, u64>>,
}

impl Costs {
    /// The durations of the report at `path` (a report.jsonl, or the folder holding one).
    /// `None` when there is none or it cannot be read: scheduling then falls back to the
    /// matrix order, which is never wrong, only slower.
    pub fn from_report(path: &Path) -> Option<Costs> {
        let durations = shard_select::durations(path).ok()?;
        Some(Costs::from_durations(durations.by_key))
    }

    /// Costs from durations already keyed by [`cell_key`].
    pub fn from_durations(by_key: HashMap<String, u64>) -> Costs {
        Costs {
            by_key: Arc::new(by_key),
        }
    }

    /// The earlier wall time of the cell `case` × `implementation`, when known.
    pub fn of(&self, case: &str, implementation: &str) -> Option<u64> {
        self.by_key.get(&cell_key(case, implementation)).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// Reorders `work` (items in matrix order) longest first by `cost`; items of equal cost, and
/// unknown ones (which come first), keep their matrix order (a stable sort), so that the
/// runs of one cell under `--verify` stay together and the order is deterministic.
pub fn longest_first<T>(work: &mut [T], cost: impl Fn(&T) -> Option<u64>) {
    work.sort_by_key(|item| std::cmp::Reverse(cost(item).unwrap_or(u64::MAX)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn costs(cells: &[(&str, &str, u64)]) -> Costs {
        Costs::from_durations(
            cells
                .iter()
                .map(|(c, i, ms)| (cell_key(c, i), *ms))
                .collect(),
        )
    }

    #[test]
    fn slow_cells_go_first_and_unknown_ones_before_them() {
        let costs = costs(&[("A", "x", 10), ("B", "x", 900), ("C", "x", 50)]);
        let mut work = vec![("A", 0), ("B", 0), ("C", 0), ("D", 0), ("B", 1)];
        longest_first(&mut work, |(case, _)| costs.of(case, "x"));
        assert_eq!(work, [("D", 0), ("B", 0), ("B", 1), ("C", 0), ("A", 0)]);
    }

    #[test]
    fn without_costs_the_order_is_the_matrix_order() {
        let costs = Costs::default();
        let mut work = vec!["C", "A", "B"];
        longest_first(&mut work, |case| costs.of(case, "x"));
        assert_eq!(work, ["C", "A", "B"]);
        assert!(costs.is_empty());
    }

    #[test]
    fn a_missing_report_gives_no_costs() {
        assert!(Costs::from_report(Path::new("/nonexistent/poolspec/report.jsonl")).is_none());
    }
}
