//! Merging the reports of a run's shards (`--shard K/N`) into the report one run would have
//! written (`cargo xtask conformance merge`).
//!
//! Every shard report is read and every check made before anything is built, so a refusal
//! leaves nothing behind. Refused: a file that is not a report, a report without its footer,
//! one marked incomplete (unless allowed: the merged report is then itself incomplete),
//! reports of different suites, shards of different runs (run id or N differ), the same
//! shard twice, a cell in two shards, and missing shards or cells. Each refusal is one line
//! naming the file(s).
//!
//! The merged header is the shards' without `shard` (a merged report is a whole run's); its
//! implementations carry what the first shard that started each driver learnt of it. The
//! footer's `wall_ms` is the longest shard's (the shards ran side by side). The cells are
//! put in a single run's order by [`Merged::run`], given the cases in suite order.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::jsonl::{self, Header, JsonlError, Record};
use super::model::suite_hash;
use super::write::HISTORIES;
use crate::cancel::Interruption;
use crate::runner::MatrixRun;
use crate::spec::LoadedCase;

/// One shard's report, read.
#[derive(Debug, Clone)]
pub struct ShardReport {
    /// The report.jsonl it was read from.
    pub path: PathBuf,
    pub report: jsonl::Report,
}

/// Why shard reports cannot be merged. Each names the file(s) it is about, on one line.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("no report to merge")]
    Nothing,
    #[error("{}: cannot read: {why}", path.display())]
    Read { path: PathBuf, why: std::io::Error },
    #[error("{}: not a report: {why}", path.display())]
    NotAReport { path: PathBuf, why: JsonlError },
    #[error("{}: truncated: it has no footer (its run was cut short without saying so)", path.display())]
    Truncated { path: PathBuf },
    #[error("{}: not a shard's report: its header names no shard (run with --shard K/N)", path.display())]
    NotAShard { path: PathBuf },
    #[error("{}: incomplete: {why} (--allow-incomplete merges it, and says so)", path.display())]
    Incomplete { path: PathBuf, why: String },
    #[error("{} and {}: different suites (suite hash {first_hash} and {other_hash})", first.display(), other.display())]
    MixedSuites {
        first: PathBuf,
        other: PathBuf,
        first_hash: String,
        other_hash: String,
    },
    #[error("{} and {}: shards of different runs ({first_run} and {other_run})", first.display(), other.display())]
    DifferentRuns {
        first: PathBuf,
        other: PathBuf,
        first_run: String,
        other_run: String,
    },
    #[error("{} and {}: both are shard {shard}", first.display(), other.display())]
    DuplicateShard {
        first: PathBuf,
        other: PathBuf,
        shard: String,
    },
    #[error("{} and {}: both hold {case} on {implementation}", first.display(), other.display())]
    Overlap {
        first: PathBuf,
        other: PathBuf,
        case: String,
        implementation: String,
    },
    #[error("{}: shard{} {} of {count} missing from the run it belongs to", path.display(), if missing.len() > 1 { "s" } else { "" }, list(missing))]
    MissingShards {
        path: PathBuf,
        missing: Vec<u32>,
        count: u32,
    },
    #[error("{}: the shards of its run hold {found} of its {expected} cells", path.display())]
    MissingCells {
        path: PathBuf,
        found: usize,
        expected: usize,
    },
    #[error("{}: case {case} is not in this checkout's suite (merge where the shards ran)", path.display())]
    UnknownCase { path: PathBuf, case: String },
    #[error("{}: suite hash {theirs}, this checkout's cases hash to {ours} (merge where the shards ran)", path.display())]
    SuiteNotHere {
        path: PathBuf,
        theirs: String,
        ours: String,
    },
}

fn list(indices: &[u32]) -> String {
    let text: Vec<String> = indices.iter().map(u32::to_string).collect();
    text.join(", ")
}

/// Reads a shard's report: a report.jsonl, or a folder holding one.
pub fn read_shard(path: &Path) -> Result<ShardReport, MergeError> {
    let path = if path.is_dir() {
        path.join("report.jsonl")
    } else {
        path.to_owned()
    };
    let text = std::fs::read_to_string(&path).map_err(|why| MergeError::Read {
        path: path.clone(),
        why,
    })?;
    let report = match jsonl::read(&text) {
        Ok(r) => r,
        Err(JsonlError::NoFooter) => return Err(MergeError::Truncated { path }),
        Err(why) => return Err(MergeError::NotAReport { path, why }),
    };
    Ok(ShardReport { path, report })
}

/// The shards' reports put together, before ordering.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The first shard's header, without `shard`, with every implementation's driver info.
    pub header: Header,
    pub records: Vec<Record>,
    /// Set when incomplete shards were allowed in: the merged report is incomplete too.
    pub interruption: Option<Interruption>,
    /// The longest shard's wall time.
    pub wall: Duration,
    /// The first report, named by errors about the merged whole.
    pub first: PathBuf,
    /// The run's case ids, in suite order (from the shards' headers).
    pub cases: Vec<String>,
}

/// Checks that `shards` are every shard of one run, each once and whole (or interrupted, if
/// `allow_incomplete`), and puts their cells together.
pub fn merge(shards: &[ShardReport], allow_incomplete: bool) -> Result<Merged, MergeError> {
    let first = shards.first().ok_or(MergeError::Nothing)?;
    let Some(run) = first.report.header.shard.clone() else {
        return Err(MergeError::NotAShard {
            path: first.path.clone(),
        });
    };
    let mut by_index: HashMap<u32, &Path> = HashMap::new();
    let mut planned = 0;
    let mut signals: BTreeSet<&str> = BTreeSet::new();
    for s in shards {
        let (h, path) = (&s.report.header, s.path.clone());
        let Some(this) = &h.shard else {
            return Err(MergeError::NotAShard { path });
        };
        if let Some(i) = &s.report.footer.interrupted {
            if !allow_incomplete {
                let why = i.describe();
                return Err(MergeError::Incomplete { path, why });
            }
            signals.insert(&i.signal);
        }
        if h.suite_hash != first.report.header.suite_hash {
            return Err(MergeError::MixedSuites {
                first: first.path.clone(),
                other: path,
                first_hash: first.report.header.suite_hash.clone(),
                other_hash: h.suite_hash.clone(),
            });
        }
        if this.run != run.run || this.count != run.count {
            return Err(MergeError::DifferentRuns {
                first: first.path.clone(),
                other: path,
                first_run: format!("run {} of {} shards", run.run, run.count),
                other_run: format!("run {} of {} shards", this.run, this.count),
            });
        }
        if let Some(earlier) = by_index.insert(this.index, &s.path) {
            return Err(MergeError::DuplicateShard {
                first: earlier.to_owned(),
                other: path,
                shard: this.shard().to_string(),
            });
        }
        planned += s
            .report
            .footer
            .interrupted
            .as_ref()
            .map_or(s.report.records.len(), |i| i.planned);
    }
    let missing: Vec<u32> = (1..=run.count)
        .filter(|k| !by_index.contains_key(k))
        .collect();
    if !missing.is_empty() {
        return Err(MergeError::MissingShards {
            path: first.path.clone(),
            missing,
            count: run.count,
        });
    }
    let records = cells_once(shards)?;
    if planned != run.matrix_cells {
        return Err(MergeError::MissingCells {
            path: first.path.clone(),
            found: planned,
            expected: run.matrix_cells,
        });
    }
    let interruption = (!signals.is_empty()).then(|| Interruption {
        signal: signals.into_iter().collect::<Vec<_>>().join("+"),
        finished: records.len(),
        planned,
    });
    Ok(Merged {
        header: merged_header(shards),
        records,
        interruption,
        wall: Duration::from_millis(
            shards
                .iter()
                .map(|s| s.report.footer.wall_ms)
                .max()
                .unwrap_or(0),
        ),
        first: first.path.clone(),
        cases: run.cases,
    })
}

/// Every shard's records, refusing a cell two shards hold. A cell's history is looked for in
/// its shard's folder (`histories/IMPL/CASE.json` beside its report.jsonl), wherever the shard
/// ran: CI downloads the reports elsewhere.
fn cells_once(shards: &[ShardReport]) -> Result<Vec<Record>, MergeError> {
    let mut owner: HashMap<(&str, &str), &Path> = HashMap::new();
    let mut records = Vec::new();
    for s in shards {
        for r in &s.report.records {
            let key = (r.result.case.as_str(), r.result.implementation.as_str());
            if let Some(earlier) = owner.insert(key, &s.path) {
                return Err(MergeError::Overlap {
                    first: earlier.to_owned(),
                    other: s.path.clone(),
                    case: key.0.to_owned(),
                    implementation: key.1.to_owned(),
                });
            }
            let mut r = r.clone();
            if r.result.history.is_some() {
                let dir = s.path.parent().unwrap_or(Path::new("."));
                r.result.history = Some(history_of(dir, &r.result.case, &r.result.implementation));
            }
            records.push(r);
        }
    }
    Ok(records)
}

/// The first shard's header without `shard`; each implementation as reported by the first
/// shard that started its driver (one that ran none of its cells knows only its name).
fn merged_header(shards: &[ShardReport]) -> Header {
    let mut header = shards[0].report.header.clone();
    header.shard = None;
    // The logical run started when its first shard did (RFC 3339 in UTC sorts as text).
    header.started = shards
        .iter()
        .filter_map(|s| s.report.header.started.clone())
        .min();
    for imp in &mut header.implementations {
        let known = shards
            .iter()
            .flat_map(|s| &s.report.header.implementations)
            .find(|i| i.name == imp.name && i.info.is_some());
        if let Some(known) = known {
            *imp = known.clone();
        }
    }
    header
}

impl Merged {
    /// The ids of the run's cases: as the shards' headers list them, and any a record names.
    pub fn case_ids(&self) -> BTreeSet<&str> {
        let recorded = self.records.iter().map(|r| r.result.case.as_str());
        self.cases
            .iter()
            .map(String::as_str)
            .chain(recorded)
            .collect()
    }

    /// The run as one process would have recorded it, cells in its order (case by case in
    /// `suite` order, implementations in the header's), checked to be of the same suite:
    /// `suite` is this checkout's, of which the run's cases are picked.
    pub fn run(&self, suite: &[LoadedCase]) -> Result<(MatrixRun, Vec<LoadedCase>), MergeError> {
        let ids = self.case_ids();
        let known: BTreeSet<&str> = suite.iter().map(LoadedCase::id).collect();
        if let Some(case) = ids.iter().find(|id| !known.contains(*id)) {
            return Err(MergeError::UnknownCase {
                path: self.first.clone(),
                case: (*case).to_owned(),
            });
        }
        let cases: Vec<LoadedCase> = suite
            .iter()
            .filter(|c| ids.contains(c.id()))
            .cloned()
            .collect();
        let ours = suite_hash(&cases);
        if ours != self.header.suite_hash {
            return Err(MergeError::SuiteNotHere {
                path: self.first.clone(),
                theirs: self.header.suite_hash.clone(),
                ours,
            });
        }
        let case_at: HashMap<&str, usize> =
            cases.iter().enumerate().map(|(n, c)| (c.id(), n)).collect();
        let impl_at: HashMap<&str, usize> = (self.header.implementations.iter())
            .enumerate()
            .map(|(n, i)| (i.name.as_str(), n))
            .collect();
        let mut results: Vec<_> = self.records.iter().map(|r| r.result.clone()).collect();
        results.sort_by_key(|r| {
            (
                case_at.get(r.case.as_str()).copied(),
                impl_at.get(r.implementation.as_str()).copied(),
            )
        });
        let run = MatrixRun {
            implementations: self.header.implementations.clone(),
            results,
            wall: self.wall,
        };
        Ok((run, cases))
    }

    /// Points every cell's history at `histories` (the merged report's folder of them), and
    /// returns (where it is, where it goes) for each history file to copy.
    pub fn rebase_histories(&mut self, histories: &Path) -> Vec<(PathBuf, PathBuf)> {
        let mut moves = Vec::new();
        for r in &mut self.records {
            let r = &mut r.result;
            if let Some(from) = r.history.take() {
                let to = history_in(histories, &r.case, &r.implementation);
                moves.push((from, to.clone()));
                r.history = Some(to);
            }
        }
        moves
    }
}

/// Where a run whose reports are in `dir` keeps a cell's history.
fn history_of(dir: &Path, case: &str, implementation: &str) -> PathBuf {
    history_in(&dir.join(HISTORIES), case, implementation)
}

fn history_in(histories: &Path, case: &str, implementation: &str) -> PathBuf {
    histories.join(implementation).join(format!("{case}.json"))
}

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
