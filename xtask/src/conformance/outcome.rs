//! What decides how `cargo xtask conformance` ends: its exit status and closing line, as
//! pure functions of the run's counts, so the rule CI depends on is tested on its own.
//!
//! A cell counts as *unexpected* when its verdict is not the expected one: a divergence no
//! expectation entry records, an entry that no longer holds, or (with `--snapshots`) an
//! observation that changed from its snapshot. A spec file or case that did not load fails
//! the run too: a suite that silently shrinks would otherwise pass.
//!
//! A run interrupted before all its cells finished (Ctrl-C, SIGTERM) exits 130 whatever the
//! cells it finished say: it is neither a pass nor a verdict on the cells it never ran.

use std::process::ExitCode;

use super::interrupt::INTERRUPTED_STATUS;

/// The counts of a run that the exit status depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Cells of the matrix (case × implementation) that finished.
    pub cells: usize,
    /// Cells whose verdict was not the expected one.
    pub unexpected: usize,
    /// Spec files or cases that did not load.
    pub spec_errors: usize,
    /// Set when a signal stopped the run before all its cells finished.
    pub interrupted: Option<Interrupted>,
}

/// What stopped a run early, and how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interrupted {
    /// `SIGINT` or `SIGTERM`.
    pub signal: String,
    /// Cells planned (case × implementation); `Outcome::cells` of them finished.
    pub planned: usize,
}

/// How the run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every cell as expected and the whole suite loaded: exit 0.
    Clean,
    /// Something unexpected, or a spec error: exit 1.
    Failed,
    /// Stopped by a signal before every cell finished: exit 130.
    Interrupted,
}

impl Outcome {
    pub fn ending(&self) -> Ending {
        if self.interrupted.is_some() {
            Ending::Interrupted
        } else if self.unexpected == 0 && self.spec_errors == 0 {
            Ending::Clean
        } else {
            Ending::Failed
        }
    }

    /// The plain closing line CI readers look for: a cell "passed" when its verdict was the
    /// expected one (a pass, or a divergence its expectation file records); each spec error
    /// counts as one more failure. An interrupted run says so on a line before it, and its
    /// counts are of the cells that finished.
    pub fn closing_line(&self) -> String {
        let counts = format!(
            "conformance: {} passed, {} failed",
            self.cells - self.unexpected,
            self.unexpected + self.spec_errors
        );
        match &self.interrupted {
            None => counts,
            Some(i) => format!(
                "conformance: interrupted ({}) after {} of {} cells\n{counts}",
                i.signal, self.cells, i.planned
            ),
        }
    }
}

impl Ending {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Ending::Clean => ExitCode::SUCCESS,
            Ending::Failed => ExitCode::from(1),
            Ending::Interrupted => ExitCode::from(INTERRUPTED_STATUS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(cells: usize, unexpected: usize, spec_errors: usize) -> Outcome {
        Outcome {
            cells,
            unexpected,
            spec_errors,
            interrupted: None,
        }
    }

    fn interrupted(cells: usize, unexpected: usize, planned: usize) -> Outcome {
        Outcome {
            interrupted: Some(Interrupted {
                signal: "SIGINT".into(),
                planned,
            }),
            ..outcome(cells, unexpected, 0)
        }
    }

    #[test]
    fn every_cell_as_expected_and_a_whole_suite_is_clean() {
        let o = outcome(765, 0, 0);
        assert_eq!(o.ending(), Ending::Clean);
        assert_eq!(o.ending().exit_code(), ExitCode::SUCCESS);
        assert_eq!(o.closing_line(), "conformance: 765 passed, 0 failed");
    }

    #[test]
    fn an_unexpected_cell_fails_the_run() {
        let o = outcome(765, 2, 0);
        assert_eq!(o.ending(), Ending::Failed);
        assert_eq!(o.ending().exit_code(), ExitCode::from(1));
        assert_eq!(o.closing_line(), "conformance: 763 passed, 2 failed");
    }

    #[test]
    fn a_spec_error_fails_the_run_even_when_every_cell_passed() {
        let o = outcome(760, 0, 1);
        assert_eq!(o.ending(), Ending::Failed);
        assert_eq!(o.closing_line(), "conformance: 760 passed, 1 failed");
    }

    #[test]
    fn spec_errors_and_unexpected_cells_add_up() {
        let o = outcome(10, 3, 2);
        assert_eq!(o.ending(), Ending::Failed);
        assert_eq!(o.closing_line(), "conformance: 7 passed, 5 failed");
    }

    #[test]
    fn a_suite_that_did_not_load_at_all_fails() {
        // No case loaded, so no cell ran: the spec errors alone decide.
        let o = outcome(0, 0, 4);
        assert_eq!(o.ending(), Ending::Failed);
        assert_eq!(o.closing_line(), "conformance: 0 passed, 4 failed");
    }

    #[test]
    fn an_interrupted_run_exits_130_and_says_how_far_it_got() {
        let o = interrupted(3, 0, 10);
        assert_eq!(o.ending(), Ending::Interrupted);
        assert_eq!(o.ending().exit_code(), ExitCode::from(130));
        assert_eq!(
            o.closing_line(),
            "conformance: interrupted (SIGINT) after 3 of 10 cells\n\
             conformance: 3 passed, 0 failed"
        );
    }

    #[test]
    fn an_interruption_outranks_failures() {
        // Failed cells among those that finished: still 130, the run did not end.
        let o = Outcome {
            spec_errors: 1,
            ..interrupted(4, 2, 10)
        };
        assert_eq!(o.ending(), Ending::Interrupted);
        assert_eq!(
            o.closing_line().lines().last(),
            Some("conformance: 2 passed, 3 failed")
        );
        // Interrupted before any cell finished.
        assert_eq!(interrupted(0, 0, 10).ending(), Ending::Interrupted);
    }
}
