//! The behaviour cases: their format ([`model`], with its [`step`]s and [`task`]s), loading
//! ([`load`]) and the program form drivers receive ([`program`]).

pub mod area;
pub mod check;
pub mod describe;
pub mod expected;
pub mod folders;
pub mod liveness;
pub mod load;
pub mod locate;
pub mod model;
pub mod own;
pub mod program;
pub mod step;
pub mod suggest;
pub mod task;
pub mod unique;

pub use check::CaseError;
pub use folders::{FolderError, load_folders};
pub use load::{LoadedCase, MAX_FILE_BYTES, Source, SpecError, SpecErrorKind, Suite, load_dir};
pub use model::*;
pub use program::{EventRefError, IdKind, Program, ProgramError};
pub use step::*;
pub use task::*;

/// The JSON Schema of a spec file, for editors (committed as `spec/case.schema.json`).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(SpecFile)).unwrap_or_default()
}
