//! Flags that several commands share, each defined once and pulled into a command's
//! arguments with `#[command(flatten)]`, so their spelling, help and meaning cannot drift
//! apart between commands.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use clap::{ArgAction, Args, ValueEnum};
use conformance::implementations;
use conformance::report::terminal::TerminalOptions;
use conformance::report::terminal::style::ColorChoice;
use conformance::shard::Shard;

/// `--case PATTERN`: which cases run.
#[derive(Args, Debug, Clone, Default)]
pub struct CaseFilter {
    /// Only cases whose id starts with, or contains, this text (repeatable).
    #[arg(long = "case", value_name = "PATTERN")]
    pub cases: Vec<String>,
}

impl CaseFilter {
    /// Whether the case `id` is selected (no pattern: every case is).
    pub fn matches(&self, id: &str) -> bool {
        self.cases.is_empty()
            || self
                .cases
                .iter()
                .any(|p| id.starts_with(p.as_str()) || id.contains(p.as_str()))
    }

    /// Whether some pattern narrows the run.
    pub fn narrows(&self) -> bool {
        !self.cases.is_empty()
    }
}

/// `--timeout-multiplier`: the scale of every liveness guard.
#[derive(Args, Debug, Clone)]
pub struct Guards {
    /// Scale every liveness guard (for slow or loaded machines).
    #[arg(long, default_value_t = 1.0)]
    pub timeout_multiplier: f64,
}

/// `--no-progress`: no progress bar on the terminal.
#[derive(Args, Debug, Clone)]
pub struct Progress {
    /// Never draw a progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

impl Progress {
    /// Whether to draw a bar: not asked to keep quiet, and stderr is a terminal.
    pub fn bar_wanted(&self) -> bool {
        !self.no_progress && std::io::stderr().is_terminal()
    }
}

/// How much `cargo xtask conformance` prints, and whether in colour.
#[derive(Args, Debug, Clone)]
pub struct Output {
    /// -v: a line per finished cell (to stderr) and per expected failure, and the cases
    /// observed differently from the oracle; -vv: the expected failures with their diffs.
    #[arg(long, short, action = ArgAction::Count)]
    pub verbose: u8,
    /// Print one line: how many cells ran, and the ids of the unexpected results.
    #[arg(long, short, conflicts_with_all = ["verbose", "show", "matrix"])]
    pub quiet: bool,
    /// Show more: `expected` shows every expected failure in full, with its diff.
    #[arg(long, value_enum, value_name = "WHAT")]
    pub show: Vec<Show>,
    /// Print the full matrix: a row per case, a column per implementation.
    #[arg(long)]
    pub matrix: bool,
    /// Colour labels and headings: auto (when stdout is a terminal; NO_COLOR and
    /// CLICOLOR_FORCE are honoured), always, never.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = Color::Auto)]
    pub color: Color,
}

/// What `--show` adds.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// Every expected failure in full (reason, diff against the oracle, history).
    Expected,
}

/// `--color WHEN`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    Auto,
    Always,
    Never,
}

impl Output {
    /// The terminal view's options; colour decided by the flag, the environment and whether
    /// stdout is a terminal.
    pub fn terminal(&self) -> TerminalOptions {
        let choice = match self.color {
            Color::Auto => ColorChoice::Auto,
            Color::Always => ColorChoice::Always,
            Color::Never => ColorChoice::Never,
        };
        TerminalOptions {
            verbosity: self.verbose,
            show_expected: self.show.contains(&Show::Expected),
            matrix: self.matrix,
            differences: false,
            color: choice.wanted(
                std::env::var_os("NO_COLOR").as_deref(),
                std::env::var_os("CLICOLOR_FORCE").as_deref(),
                std::io::stdout().is_terminal(),
            ),
        }
    }
}

/// `--python`: the interpreter of commands that run one Python.
#[derive(Args, Debug, Clone)]
pub struct Python {
    /// The Python interpreter (default: $POOLSPEC_PYTHON, else python3 on PATH).
    #[arg(long)]
    pub python: Option<PathBuf>,
}

impl Python {
    /// The interpreter named, else the default one.
    pub fn resolve(&self) -> Result<PathBuf> {
        match &self.python {
            Some(p) => Ok(p.clone()),
            None => Ok(implementations::find_python()?),
        }
    }
}

/// `--shard K/N [--balance-from REPORT.jsonl]`: run one shard of a command's work.
#[derive(Args, Debug, Clone, Default)]
pub struct ShardArgs {
    /// Run only shard K of N (1 <= K <= N): a stable partition of the work, so that N jobs
    /// together run it all once; `merge` puts their reports back together.
    #[arg(long, value_name = "K/N", value_parser = clap::value_parser!(Shard))]
    pub shard: Option<Shard>,
    /// With --shard: balance the shards by the per-cell durations recorded in this report
    /// (every shard must be given the same one); without it, by count.
    #[arg(long, value_name = "REPORT.jsonl", requires = "shard")]
    pub balance_from: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_pattern_matches_a_prefix_or_any_part_of_the_id() {
        let filter = CaseFilter {
            cases: vec!["BLK-".to_owned(), "003".to_owned()],
        };
        assert!(filter.matches("BLK-001"));
        assert!(filter.matches("ORD-003"));
        assert!(!filter.matches("ORD-001"));
        assert!(filter.narrows());
        assert!(CaseFilter::default().matches("anything"));
        assert!(!CaseFilter::default().narrows());
    }
}
