//! x
use super::model::Case;
use super::program::{Located, Program};
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpectError { #[error("x")] X }
pub fn check_expect(_c: &Case, _p: &Program) -> Result<(), Located<ExpectError>> { Ok(()) }
