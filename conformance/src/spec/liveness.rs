//! x
use super::model::Case;
use super::program::{Located, Program};
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LivenessError {
    #[error("x")]
    X,
}
pub fn check_liveness(_c: &Case, _p: &Program) -> Result<(), Located<LivenessError>> {
    Ok(())
}
