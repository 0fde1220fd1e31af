//! `cargo xtask compliance --shard K/N` and `--from SHARD.json...`: a shard runs its part of
//! the (case × subject) cells and writes `target/compliance/shard-K-of-N.json` instead of
//! COMPLIANCE.md; `--from` merges all N files (`merge.rs`) into the measurement of the
//! whole run, which renders exactly as a single run's.
//!
//! A cell `CASE/IMPLEMENTATION` belongs to the shard of its stable hash
//! (`conformance::shard::Shard::owns`), so every machine computes the same partition and a
//! new case moves no other cell. A shard file holds, besides its cells, everything else the
//! rendering reads (interpreter, installed versions, cases, subjects), which every shard of
//! one run must agree on.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use conformance::runner::CaseResult;
use conformance::shard::Shard;
use conformance::verdict::Status;
use serde::{Deserialize, Serialize};

use super::measurement::{CaseFacts, Measurement};
use super::node::NodeFacts;

pub mod merge;

/// The first field of every shard file: what tells one from any other JSON.
pub const KIND: &str = "poolspec-compliance-shard";
/// The shard file format's version; a reader refuses any other (2: `run.node`).
pub const VERSION: u32 = 2;

/// `shard-K-of-N.json`.
pub fn file_name(shard: Shard) -> String {
    format!("shard-{}-of-{}.json", shard.index, shard.count)
}

/// A cell's key, as sharding hashes it.
pub fn cell_key(case: &str, implementation: &str) -> String {
    format!("{case}/{implementation}")
}

/// One shard's part of a compliance measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardFile {
    pub kind: String,
    pub version: u32,
    pub shard: Shard,
    /// `report::suite_hash` of the cases measured.
    pub suite_hash: String,
    /// Narrowed by `--impl` or `--case` (so never the committed COMPLIANCE.md).
    pub narrowed: bool,
    pub run: RunFacts,
    /// This shard's cells, first run, in case then subject order.
    pub results: Vec<CaseResult>,
    /// Every run's statuses of this shard's cells.
    pub statuses: Vec<CellStatuses>,
}

/// What every shard of a run sees alike: the circumstances, the cases, the subjects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFacts {
    pub interpreter: String,
    pub pypy: Option<String>,
    /// Node.js and its pools' versions, when a Node.js subject ran.
    pub node: Option<NodeFacts>,
    /// `(package, version)` of the venv.
    pub installed: Vec<(String, String)>,
    pub runs: u32,
    pub cases: Vec<CaseFacts>,
    /// The subjects that ran: `(spec, implementation name)`, in subject order.
    pub subjects: Vec<(String, String)>,
    /// The subjects that did not: `(spec, why)`.
    pub unavailable: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellStatuses {
    pub case: String,
    pub implementation: String,
    pub statuses: Vec<Status>,
}

impl ShardFile {
    /// Shard `shard`'s part of `m`: its own cells only (a shard's run has no others; a whole
    /// run's measurement is cut down, for tests).
    pub fn of(m: &Measurement, shard: Shard, narrowed: bool) -> ShardFile {
        let owns = |case: &str, implementation: &str| shard.owns(&cell_key(case, implementation));
        ShardFile {
            kind: KIND.to_owned(),
            version: VERSION,
            shard,
            suite_hash: m.suite.hash.clone(),
            narrowed,
            run: RunFacts {
                interpreter: m.header.interpreter.clone(),
                pypy: m.header.pypy.clone(),
                node: m.header.node.clone(),
                installed: m.header.installed.0.clone(),
                runs: m.header.runs,
                cases: m.cases.clone(),
                subjects: m
                    .ran
                    .iter()
                    .map(|(s, name)| (s.spec.to_owned(), name.clone()))
                    .collect(),
                unavailable: m
                    .unavailable
                    .iter()
                    .map(|u| (u.subject.spec.to_owned(), u.why.clone()))
                    .collect(),
            },
            results: m
                .matrix
                .results
                .iter()
                .filter(|r| owns(&r.case, &r.implementation))
                .cloned()
                .collect(),
            statuses: m
                .statuses
                .iter()
                .filter(|((imp, case), _)| owns(case, imp))
                .map(|((imp, case), set)| CellStatuses {
                    case: case.clone(),
                    implementation: imp.clone(),
                    statuses: set.iter().copied().collect(),
                })
                .collect(),
        }
    }

    /// Writes `dir/shard-K-of-N.json`; returns the file.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(file_name(self.shard));
        let text = serde_json::to_string(self)? + "\n";
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Reads a shard file, refusing (in one line naming it) anything else.
    pub fn read(path: &Path) -> Result<ShardFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        #[derive(Deserialize)]
        struct Kind {
            kind: String,
            version: u32,
        }
        let not_one = || format!("{}: not a compliance shard file", path.display());
        let kind: Kind = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} (no `kind`/`version`: {e})", not_one()))?;
        if kind.kind != KIND {
            bail!("{} (its kind is {:?})", not_one(), kind.kind);
        }
        if kind.version != VERSION {
            bail!(
                "{}: compliance shard file version {}, this release reads version {VERSION}",
                path.display(),
                kind.version
            );
        }
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", not_one()))
    }
}
