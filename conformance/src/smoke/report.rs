//! The result of a smoke check ([`SmokeReport`]: what passed, what was skipped, every
//! [`Finding`]) and its rendering for a terminal.

use std::fmt::Write as _;

use serde::Serialize;

use super::finding::{Finding, Mistake, kebab};
use super::text::wrap;
use crate::protocol::{ImplementationInfo, PROTOCOL_VERSION};

/// One line of a smoke report.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// A check that passed.
    Ok { check: String, note: String },
    /// A check that found a problem.
    Problem(Finding),
    /// A check that was not made, and why.
    Skipped { check: String, note: String },
}

/// The result of a smoke check.
#[derive(Debug, Clone, Serialize)]
pub struct SmokeReport {
    pub implementation: String,
    /// What the driver said about itself, when its handshake succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<ImplementationInfo>,
    pub capabilities: Vec<String>,
    pub entries: Vec<Entry>,
    /// The liveness guard used for the handshake and each case.
    pub guard_ms: u64,
}

impl SmokeReport {
    /// Every problem found, in order.
    pub fn problems(&self) -> impl Iterator<Item = &Finding> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Problem(f) => Some(f),
            _ => None,
        })
    }

    /// Whether the driver passed every check.
    pub fn passed(&self) -> bool {
        self.problems().next().is_none()
    }

    /// The first problem of kind `mistake`, if any.
    pub fn find(&self, mistake: Mistake) -> Option<&Finding> {
        self.problems().find(|f| f.mistake == mistake)
    }

    /// The report as text for a terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "smoke check of `{}` (protocol {PROTOCOL_VERSION}; liveness guard {:.1} s for the \
             handshake and for each case)",
            self.implementation,
            self.guard_ms as f64 / 1000.0
        );
        let mut explained: Vec<&Finding> = Vec::new();
        for entry in &self.entries {
            match entry {
                Entry::Ok { check, note } => {
                    let _ = writeln!(out, "  ok       {check:10} {note}");
                }
                Entry::Skipped { check, note } => {
                    let _ = writeln!(out, "  skipped  {check:10} {note}");
                }
                Entry::Problem(f) => {
                    let check = f.case.as_deref().unwrap_or("driver");
                    let _ = writeln!(out, "  PROBLEM  {check:10} [{}]", kebab(f.mistake));
                    if let Some(earlier) = explained.iter().find(|e| e.explanation == f.explanation)
                    {
                        let _ = writeln!(
                            out,
                            "           the same as for {} above",
                            earlier.case.as_deref().unwrap_or("the driver")
                        );
                    } else {
                        explained.push(f);
                        for line in wrap(&f.explanation, 88) {
                            let _ = writeln!(out, "           {line}");
                        }
                    }
                    for detail in &f.details {
                        for line in detail.lines() {
                            let _ = writeln!(out, "             {line}");
                        }
                    }
                }
            }
        }
        let problems = self.problems().count();
        if problems == 0 {
            let _ = writeln!(
                out,
                "result: every check passed. Next: run the whole suite, \
                 `cargo xtask conformance --impl {}`.",
                if self.implementation.contains(char::is_whitespace) {
                    format!("'{}'", self.implementation)
                } else {
                    self.implementation.clone()
                }
            );
        } else {
            let _ = writeln!(
                out,
                "result: {problems} problem{} found. The protocol is described in \
                 spec/PROTOCOL.md (checklist in §9).",
                if problems == 1 { "" } else { "s" }
            );
        }
        out
    }
}
