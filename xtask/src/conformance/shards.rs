//! `--shard K/N [--balance-from REPORT]` of a matrix run: the cells this shard owns
//! (`conformance::shard_select`), the `shard` its report's header carries, and the line that
//! says so.

use anyhow::Result;
use conformance::expectations::ExpectationFile;
use conformance::implementations::Implementation;
use conformance::report;
use conformance::shard::ShardRun;
use conformance::shard_select::{self, Selection};
use conformance::spec::LoadedCase;

use crate::flags::ShardArgs;

/// One shard's part of the run.
pub struct Plan {
    pub selection: Selection,
    pub header: ShardRun,
}

impl Plan {
    /// `shard 2/3: 120 of 360 cells, by count (...)`.
    pub fn describe(&self) -> String {
        format!(
            "shard {}: {} of {} cells, {}",
            self.header.shard(),
            self.selection.cells.len(),
            self.selection.matrix_cells,
            self.selection.basis.describe()
        )
    }
}

/// The plan of `--shard`, or `None` when the run is whole.
pub fn plan(
    args: &ShardArgs,
    run_id: Option<&str>,
    cases: &[LoadedCase],
    impls: &[(Implementation, ExpectationFile)],
) -> Result<Option<Plan>> {
    let Some(shard) = args.shard else {
        return Ok(None);
    };
    let durations = match &args.balance_from {
        Some(path) => Some(shard_select::durations(path)?),
        None => None,
    };
    let case_ids: Vec<&str> = cases.iter().map(LoadedCase::id).collect();
    let names: Vec<&str> = impls.iter().map(|(i, _)| i.name.as_str()).collect();
    let selection = shard_select::select(shard, &case_ids, &names, durations.as_ref());
    let run = shard_select::run_id(
        &report::suite_hash(cases),
        &names,
        shard.count,
        durations.as_ref(),
        run_id,
    );
    Ok(Some(Plan {
        header: ShardRun {
            index: shard.index,
            count: shard.count,
            run,
            matrix_cells: selection.matrix_cells,
            cases: case_ids.iter().map(|&c| c.to_owned()).collect(),
        },
        selection,
    }))
}
