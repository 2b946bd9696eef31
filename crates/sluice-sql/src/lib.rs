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

// Modules import one way only, each from those listed before it (tests
// aside); `use crate::` lines say which:
//   error     Rejection, ExecError
//   rowexpr   what a row expression may compute              (error)
//   session   locked-down context, planning                  (error, rowexpr)
//   bounds    interval bounds of row expressions             (rowexpr)
//   rows      the row scope: datasets, unit, bound k         (bounds, rowexpr)
//   tables    registration, per-unit bounding                (error, session)
//   units     rows grouped by unit, for WASM and training    (error, session, tables)
//   analyze   the analysis steps, in analyze/                (error, rowexpr, rows, bounds, session, tables)
//   train     the rows of a training job                     (error, rowexpr, rows, bounds, session, tables, units)
//   released  post-processing of released values             (error, rowexpr, analyze)
//   execute   exact aggregates, noise, release               (error, rowexpr, session, tables, analyze, released)
mod analyze;
mod bounds;
mod error;
mod execute;
mod released;
mod rewrite;
mod rowexpr;
mod rows;
mod session;
mod tables;
mod train;
mod units;

pub use analyze::{Aggregate, Analysis, GroupKey, Measurement, MeasurementKind, analyze};
pub use error::{ExecError, Rejection};
pub use execute::execute;
pub use rowexpr::{MAX_IN_LIST, MAX_PAD, MAX_REPEAT, MAX_ROW_WORK_BYTES, MAX_TEXT_BYTES};
pub use train::{MAX_FEATURES, TrainingColumns, analyze_training, training_rows};
pub use units::unit_rows;

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;
