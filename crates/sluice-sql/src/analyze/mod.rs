//! Analysis of a query's logical plan. The plan is produced by DataFusion's
//! SQL planner against empty tables (schemas only), then checked node by
//! node: only the shapes listed here are accepted, everything else is
//! rejected with the construct named and the reason. Sensitivities are
//! computed from the declared schemas.
//!
//! [`analyze_plan`] runs the steps in order, each in its own module:
//! the post-processing around the aggregate (`post`), the row scope below
//! it (`crate::rows`), the group keys (`keys`), the measurements (`measure`),
//! the outputs (`outputs`) and the budget split (`budget`). What they
//! produce is in `analysis`. Every step gives all its reasons at once.

mod analysis;
mod budget;
mod keys;
mod measure;
mod outputs;
mod post;

use std::collections::BTreeMap;

use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::prelude::SessionContext;
use sluice_types::privacy::{Delta, Epsilon};
use sluice_types::sandbox::{QueryTask, SandboxTable};

pub use analysis::{Aggregate, Analysis, GroupKey, Measurement, MeasurementKind};
pub(crate) use analysis::{Mechanism, Output, computed_label};

use crate::error::Rejection;
use crate::rowexpr::check_rows;
use crate::rows::scope_of;
use crate::session::{locked_context, plan_query};
use crate::tables::register_empty_tables;

/// Plans `task.query` against empty tables with the declared schemas and
/// analyses the plan. Touches no data.
pub async fn analyze(task: &QueryTask) -> Result<Analysis, Rejection> {
    let ctx = locked_context().map_err(|e| Rejection(vec![format!("engine setup failed: {e}")]))?;
    register_empty_tables(&ctx, &task.tables)?;
    let plan = plan_query(&ctx, &task.query).await?;
    let analysis = analyze_plan(&plan, &task.tables, task.epsilon, task.delta, &task.split)?;
    check_row_expressions(&ctx, &analysis)?;
    Ok(analysis)
}

/// Every row expression of the analysed query (its row-level plan, group
/// keys and aggregate arguments) is total and cheap (`rowexpr`).
pub(crate) fn check_row_expressions(ctx: &SessionContext, a: &Analysis) -> Result<(), Rejection> {
    let exprs: Vec<Expr> = a
        .group_keys
        .iter()
        .map(|g| g.expr.clone())
        .chain(a.measurements.iter().filter_map(|m| m.input.clone()))
        .collect();
    check_rows(ctx, &a.row_plan, &exprs)
}

/// The analysis of a planned query: its steps in order. Reasons gathered
/// before the budget split are all given together.
pub(crate) fn analyze_plan(
    plan: &LogicalPlan,
    tables: &[SandboxTable],
    epsilon: Epsilon,
    delta: Delta,
    split: &BTreeMap<String, f64>,
) -> Result<Analysis, Rejection> {
    let mut reasons = Vec::new();
    let post::Shape {
        post,
        projection,
        aggregate,
    } = post::post_processing(plan, &mut reasons)?;

    // Row-level input: scans, filters and joins on the privacy unit.
    let Some(scope) = scope_of(&aggregate.input, tables, &mut reasons) else {
        if reasons.is_empty() {
            reasons.push("the query reads no dataset of this job".into());
        }
        return Err(Rejection(reasons));
    };
    let k = scope.max_rows_per_unit;

    let group_keys = keys::group_keys(aggregate, &scope, delta, &mut reasons);
    keys::check_delta(&group_keys, delta, &mut reasons);
    let cells = keys::cell_count(&group_keys, &mut reasons);
    let measure::Measured {
        mut measurements,
        aggregates,
        key_count,
    } = measure::measurements(
        aggregate,
        &scope,
        k,
        keys::selects_keys(&group_keys),
        &mut reasons,
    );
    let outputs = outputs::outputs(projection, aggregate, &aggregates, &mut reasons);
    if !reasons.is_empty() {
        return Err(Rejection(reasons));
    }

    budget::split_budget(&mut measurements, epsilon, split)?;
    let key_selection = key_count
        .map(|count| budget::key_selection(&measurements, count, k, delta))
        .transpose()?;
    Ok(Analysis {
        row_plan: aggregate.input.as_ref().clone(),
        datasets: scope.datasets(),
        bound_verified: scope.bound_verified,
        public_keys: scope.public_keys.clone(),
        unit: scope.unit.clone().map(Expr::Column),
        max_rows_per_unit: k,
        group_keys,
        measurements,
        outputs,
        epsilon,
        delta,
        key_selection,
        cells,
        aggregates: aggregates
            .into_iter()
            .map(|a| a.expect("no reasons, so every aggregate was accepted").0)
            .collect(),
        aggregate_schema: aggregate.schema.clone(),
        post,
    })
}
