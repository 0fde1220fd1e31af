//! `cargo xtask conformance merge REPORT... --out DIR [--allow-incomplete]`: the shards'
//! reports (`--shard K/N`) as the report one run would have written, every file of it, through
//! the same writers. The checks and the merged data are `conformance::report::merge`'s; this
//! reads the checkout's suite (the cases' titles and order), writes, and prints.
//!
//! Nothing is written to DIR (nor is it created) unless every check passed: the shards, and
//! the suite of this checkout against theirs. Then an earlier report there is removed, the
//! shards' histories copied in, and the four files written, each atomically.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use conformance::report::merge::{self, ShardReport};
use conformance::report::{self, HISTORIES, Model, OracleSnapshots};
use conformance::spec::load_folders;

use super::outcome::{Interrupted, Outcome};
use super::print;
use crate::flags::Output;

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The shards' reports: report.jsonl files, or the folders (--out) holding them.
    #[arg(required = true, value_name = "REPORT")]
    reports: Vec<PathBuf>,
    /// Where the merged report goes (an earlier report there is replaced).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Merge shards that were interrupted too; the merged report then says it is incomplete.
    #[arg(long)]
    allow_incomplete: bool,
    #[command(flatten)]
    output: Output,
}

pub fn run(root: &Path, args: &MergeArgs) -> Result<ExitCode> {
    let shards = args
        .reports
        .iter()
        .map(|p| merge::read_shard(p))
        .collect::<Result<Vec<ShardReport>, _>>()?;
    let mut merged = merge::merge(&shards, args.allow_incomplete)?;
    // Clearing --out would remove that shard's histories before they are copied.
    let out = args.out.canonicalize().ok();
    if let Some(s) = shards
        .iter()
        .find(|s| out.is_some() && s.path.parent().and_then(|p| p.canonicalize().ok()) == out)
    {
        anyhow::bail!(
            "{}: --out is this shard's folder; merge into another",
            s.path.display()
        );
    }
    let folders: Vec<PathBuf> = merged
        .header
        .spec_folders
        .iter()
        .map(PathBuf::from)
        .collect();
    let suite = load_folders(Some(&root.join("spec")), &folders)?;
    let moves = merged.rebase_histories(&args.out.join(HISTORIES));
    let (run, cases) = merged.run(&suite.cases)?;
    let oracle = OracleSnapshots::committed(root);
    let model = Model::new(&run, &cases)
        .interrupted(merged.interruption.clone())
        .started(merged.header.started.clone())
        .oracle(&oracle);

    // Every check is made: from here on only I/O can fail. The histories go first, since
    // report.html embeds them.
    report::clear(&args.out)?;
    copy_histories(&moves)?;
    let paths = report::write_model(&args.out, &model)?;

    eprintln!(
        "poolspec: merged {} shards ({} cells) into {}",
        shards.len(),
        run.results.len(),
        args.out.display()
    );
    let outcome = Outcome {
        cells: run.results.len(),
        unexpected: model.unexpected,
        spec_errors: 0,
        interrupted: merged.interruption.as_ref().map(|i| Interrupted {
            signal: i.signal.clone(),
            planned: i.planned,
        }),
    };
    let ending = print::Ending {
        differences: false,
        claims: None,
        snapshots: None,
        paths: &paths,
        outcome: &outcome,
    };
    print!("{}", print::ending(&model, &args.output, &ending));
    Ok(outcome.ending().exit_code())
}

/// Copies each shard's history that exists to its place in the merged report.
fn copy_histories(moves: &[(PathBuf, PathBuf)]) -> Result<()> {
    for (from, to) in moves.iter().filter(|(from, _)| from.is_file()) {
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    }
    Ok(())
}
