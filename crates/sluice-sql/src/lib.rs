//! DP SQL for Sluice: analysis of a query on DataFusion's logical plan,
//! rewriting into a plan that bounds each privacy unit's contribution and
//! clamps values to declared bounds, execution, and release through
//! `sluice-dp`.
//!
//! This is the only crate that names DataFusion. User SQL is never executed
//! as written: it is planned against schemas only, the plan is checked node
//! by node against an allow-list, and a new plan is built from the checked
//! parts. Sensitivities come from declared schemas, never from the data or
//! the user. The crate runs inside the sandbox process only; errors that
//! arise after data is read are reported to the caller as generic failures.

mod analyze;
mod bounds;
mod execute;
mod rowexpr;
mod rows;
mod session;
mod train;

pub use analyze::{Aggregate, Analysis, GroupKey, Measurement, MeasurementKind, analyze};
pub use execute::{execute, unit_rows};
pub use rowexpr::{MAX_IN_LIST, MAX_PAD, MAX_REPEAT, MAX_ROW_WORK_BYTES, MAX_TEXT_BYTES};
pub use train::{MAX_FEATURES, TrainingColumns, analyze_training, training_rows};

/// A rejection: every reason at once, derived from the query and the
/// schemas only (never from data), so it is safe to show the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection(pub Vec<String>);

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "query rejected: {}", self.0.join("; "))
    }
}

impl std::error::Error for Rejection {}

/// A failure while executing: the detail is for the operator log only.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("query rejected")]
    Rejected(Rejection),
    #[error("stored data does not match its declared schema: {0}")]
    SchemaMismatch(String),
    #[error("execution failed: {0}")]
    Engine(String),
    #[error("noise failed: {0}")]
    Noise(#[from] sluice_dp::DpError),
}

impl From<datafusion::error::DataFusionError> for ExecError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        ExecError::Engine(e.to_string())
    }
}

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;
