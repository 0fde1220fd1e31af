//! Everything COMPLIANCE.md is rendered from: the run's circumstances, the suite, the first
//! run's results, every run's statuses, the subjects that ran and those that did not. A
//! whole run makes one; a shard file (`shards/`) holds one shard's part of one, and the
//! merge of all parts renders as the whole run would.

use super::render::{self, Header, SuiteFacts};
use super::subjects::{Subject, Unavailable};
use super::table::{Column, Statuses};
use conformance::runner::MatrixRun;
use conformance::spec::{Area, LoadedCase};
use serde::{Deserialize, Serialize};

/// What the tables need of a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseFacts {
    pub id: String,
    pub area: Area,
    pub quirk: bool,
}

impl CaseFacts {
    pub fn of(cases: &[LoadedCase]) -> Vec<CaseFacts> {
        cases
            .iter()
            .map(|c| CaseFacts {
                id: c.id().to_owned(),
                area: c.area,
                quirk: c.is_quirk(),
            })
            .collect()
    }
}

pub struct Measurement {
    pub header: Header,
    /// The cases measured, in suite order.
    pub cases: Vec<CaseFacts>,
    pub suite: SuiteFacts,
    /// The first run's results, in case then subject order.
    pub matrix: MatrixRun,
    pub statuses: Statuses,
    /// The subjects that ran, with their implementation names, in subject order.
    pub ran: Vec<(Subject, String)>,
    pub unavailable: Vec<Unavailable>,
}

impl Measurement {
    pub fn columns(&self) -> Vec<Column> {
        self.ran
            .iter()
            .map(|(s, name)| {
                Column::build(
                    s.clone(),
                    name.clone(),
                    &self.matrix,
                    &self.statuses,
                    &self.suite.areas,
                )
            })
            .collect()
    }

    /// COMPLIANCE.md's text.
    pub fn render(&self) -> String {
        render::render(
            &self.header,
            &self.suite,
            &self.columns(),
            &self.unavailable,
        )
    }
}
