//! Cells by kind as the page counts them: over its grid (each case of the suite on each
//! implementation of the run, the first result of each), per implementation and in total.

use std::collections::HashMap;

use crate::report::model::{CellKind, Model};

/// Counts by [`CellKind::key`].
#[derive(Default)]
pub struct GridCounts {
    per_implementation: HashMap<String, HashMap<&'static str, usize>>,
    total: HashMap<&'static str, usize>,
}

impl GridCounts {
    pub fn of_model(model: &Model<'_>) -> GridCounts {
        let mut counts = GridCounts::default();
        let names = model.names();
        for c in model.cases {
            for &n in &names {
                if let Some(cell) = model.cell(c.id(), n) {
                    let key = cell.kind.key();
                    *counts
                        .per_implementation
                        .entry(n.to_owned())
                        .or_default()
                        .entry(key)
                        .or_default() += 1;
                    *counts.total.entry(key).or_default() += 1;
                }
            }
        }
        counts
    }

    /// An implementation's cells of a kind (a changed cell counts as a pass).
    pub fn of(&self, implementation: &str, kind: CellKind) -> usize {
        self.per_implementation
            .get(implementation)
            .and_then(|m| m.get(kind.key()))
            .copied()
            .unwrap_or(0)
    }

    /// An implementation's cells.
    pub fn all_of(&self, implementation: &str) -> usize {
        self.per_implementation
            .get(implementation)
            .map_or(0, |m| m.values().sum())
    }

    /// All cells of a kind.
    pub fn total(&self, kind: CellKind) -> usize {
        self.total.get(kind.key()).copied().unwrap_or(0)
    }
}
