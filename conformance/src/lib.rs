//! poolspec's conformance runner.
//!
//! The flow, from YAML to verdict (see `ARCHITECTURE.md` for the bird's-eye view):
//!
//! 1. [`spec::load_dir`] parses `spec/*.yaml` into [`spec::LoadedCase`]s and compiles each
//!    into the explicit [`spec::Program`] a driver receives.
//! 2. [`runner::run_matrix`] starts each implementation's driver ([`driver`]) in its own
//!    process group, hosts a [`coordinator`] socket for it, and sends programs.
//! 3. Every process of the implementation reports events to the coordinator synchronously;
//!    tasks wait there on gates. The result is a causal [`coordinator::History`].
//! 4. [`observe::observe`] normalizes the history into an [`observe::Observation`];
//!    [`expect`] checks the case's expectations on it; [`verdict`] judges the status against
//!    the implementation's [`expectations`] file.
//! 5. [`report`] renders the run as JSON lines, Markdown and JUnit XML; [`html`] as a static
//!    page.

pub mod applicability;
pub mod atomic_write;
pub mod bounded_read;
pub mod cancel;
pub mod capabilities;
pub mod cargo_build;
pub mod cell_timing;
pub mod checkout;
pub mod claims;
pub mod coordinator;
pub mod coverage;
pub mod driver;
pub mod driver_output;
pub mod exec_names;
pub mod expect;
pub mod expectations;
pub mod fuzz;
pub mod implementations;
pub mod interpreters;
pub mod lint;
pub mod observe;
pub mod pending;
pub mod protocol;
pub mod report;
pub mod report_fit;
pub mod rewordings;
pub mod runner;
pub mod schedule;
pub mod shard;
pub mod shard_select;
pub mod smoke;
pub mod snapshots;
pub mod spec;
pub mod start_failures;
pub mod supervisor;
pub mod verdict;
pub mod versions;
pub mod yaml;

/// `report.html`, a view of [`report`] (also at its old path).
pub use report::html;

use std::path::{Path, PathBuf};

/// The checkout this crate was compiled in (the folder holding `spec/` and `fixtures/`):
/// for tests, which always run from their own checkout. Binaries find the checkout at run
/// time instead ([`checkout::find`]), since with a shared target folder one clone can run
/// another's binary.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}
