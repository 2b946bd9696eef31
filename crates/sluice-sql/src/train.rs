//! The rows of a training job: a row-level SELECT (scans, filters, joins on
//! the privacy unit, as for aggregate queries) whose output columns are the
//! features and the label, each with bounds derived from declared schemas.
//! The rows leave this crate only grouped by unit, to the learner that
//! clips each unit's contribution (docs/learn.md).

use datafusion::logical_expr::{Expr, LogicalPlan};
use sluice_types::rows::UnitRows;
use sluice_types::sandbox::TrainTask;

use crate::bounds::bounds_of;
use crate::error::{ExecError, Rejection};
use crate::rowexpr::{check_rows, check_shape};
use crate::rows::{RowScope, node_name, scope_of};
use crate::session::{locked_context, plan_query};
use crate::tables::{bounded_rows, register_empty_tables, register_tables};
use crate::units::read_unit_rows;

/// Most features a training job may have.
pub const MAX_FEATURES: usize = 1000;

/// What a training query selects, known from schemas alone.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingColumns {
    /// (name, lower, upper) of each feature, in SELECT order.
    pub features: Vec<(String, f64, f64)>,
    pub label: (String, f64, f64),
    pub datasets: Vec<String>,
    /// Whether rows are grouped by a privacy unit (else each row is one).
    pub by_unit: bool,
    pub max_rows_per_unit: u64,
}

struct Checked {
    columns: TrainingColumns,
    scope: RowScope,
    input: LogicalPlan,
    /// Label last, features before it, in SELECT order.
    exprs: Vec<Expr>,
}

fn check(plan: &LogicalPlan, task: &TrainTask) -> Result<Checked, Rejection> {
    let mut reasons = Vec::new();
    let LogicalPlan::Projection(projection) = plan else {
        return Err(Rejection(vec![format!(
            "a training query is a plain row-level SELECT of numeric columns (found {}); aggregates, DISTINCT, ORDER BY and LIMIT have no place in it",
            node_name(plan)
        )]));
    };
    if matches!(
        projection.input.as_ref(),
        LogicalPlan::Aggregate(_) | LogicalPlan::Distinct(_) | LogicalPlan::Window(_)
    ) {
        return Err(Rejection(vec![format!(
            "a training query is a plain row-level SELECT of numeric columns (found {} below the SELECT); the learner aggregates, under DP",
            node_name(&projection.input)
        )]));
    }
    let Some(scope) = scope_of(&projection.input, &task.tables, &mut reasons) else {
        return Err(Rejection(reasons));
    };
    let mut features = Vec::new();
    let mut label = None;
    let mut feature_exprs = Vec::new();
    let mut label_expr = None;
    for (e, field) in projection.expr.iter().zip(projection.schema.fields()) {
        let name = field.name().clone();
        check_shape(e, &mut reasons);
        let bounds = match bounds_of(e, &scope) {
            Ok(b) => b,
            Err(why) => {
                reasons.push(format!(
                    "column {name}: {why}; training scales each column from its declared bounds"
                ));
                continue;
            }
        };
        let unaliased = match e {
            Expr::Alias(a) => a.expr.as_ref().clone(),
            other => other.clone(),
        };
        if name == task.label {
            if label.is_some() {
                reasons.push(format!("the label {name} is selected twice"));
            }
            label = Some((name, bounds.0, bounds.1));
            label_expr = Some(unaliased);
        } else {
            features.push((name, bounds.0, bounds.1));
            feature_exprs.push(unaliased);
        }
    }
    if label.is_none() && !reasons.iter().any(|r| r.contains(&task.label)) {
        reasons.push(format!(
            "job.label {} is not a column of the SELECT",
            task.label
        ));
    }
    if features.is_empty() {
        reasons.push("the SELECT has no feature column besides the label".into());
    }
    if features.len() > MAX_FEATURES {
        reasons.push(format!("at most {MAX_FEATURES} features"));
    }
    if let Some((_, lo, hi)) = &label
        && task.model == sluice_types::manifest::TrainModel::Logistic
        && (*lo < 0.0 || *hi > 1.0)
    {
        reasons.push(format!(
            "the label {} of a logistic model must have bounds within [0, 1] (e.g. a 0/1 column or a CASE WHEN … THEN 1 ELSE 0 END); its are [{lo}, {hi}]",
            task.label
        ));
    }
    if !reasons.is_empty() {
        return Err(Rejection(reasons));
    }
    let label = label.expect("checked above");
    let mut exprs = feature_exprs;
    exprs.push(label_expr.expect("set with label"));
    Ok(Checked {
        columns: TrainingColumns {
            features,
            label,
            datasets: scope.datasets(),
            by_unit: scope.unit.is_some(),
            max_rows_per_unit: scope.max_rows_per_unit,
        },
        scope,
        input: projection.input.as_ref().clone(),
        exprs,
    })
}

/// Checks a training job against schemas only: no data is read.
pub async fn analyze_training(task: &TrainTask) -> Result<TrainingColumns, Rejection> {
    let ctx = locked_context().map_err(|e| Rejection(vec![format!("engine setup failed: {e}")]))?;
    register_empty_tables(&ctx, &task.tables)?;
    let plan = plan_query(&ctx, &task.query).await?;
    let checked = check(&plan, task)?;
    check_rows(&ctx, &checked.input, &checked.exprs)?;
    Ok(checked.columns)
}

/// Runs the training query: the features then the label of every row, as
/// f64 (NULL as NaN), grouped by privacy unit and bounded as for SQL jobs.
pub async fn training_rows(task: &TrainTask) -> Result<(TrainingColumns, UnitRows), ExecError> {
    let ctx = locked_context()?;
    let indexed = register_tables(&ctx, &task.tables).await?;
    let plan = plan_query(&ctx, &task.query)
        .await
        .map_err(ExecError::Rejected)?;
    let checked = check(&plan, task).map_err(ExecError::Rejected)?;
    check_rows(&ctx, &checked.input, &checked.exprs).map_err(ExecError::Rejected)?;
    let unit = checked.scope.unit.clone().map(Expr::Column);
    let rows = read_unit_rows(
        &ctx,
        bounded_rows(
            checked.input,
            unit.as_ref(),
            checked.scope.max_rows_per_unit,
            checked.scope.bound_verified,
            indexed.as_ref(),
        )?,
        unit,
        checked.exprs,
    )
    .await?;
    Ok((checked.columns, rows))
}
