//! The rows of a training job: a row-level SELECT (scans, filters, joins on
//! the privacy unit, as for aggregate queries) whose output columns are the
//! features and the label, each with bounds derived from declared schemas.
//! The rows leave this crate only grouped by unit, to the learner that
//! clips each unit's contribution (docs/learn.md).

use datafusion::arrow::array::{Array, AsArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::logical_expr::{Expr, LogicalPlan, cast, col};
use sluice_types::rows::UnitRows;
use sluice_types::sandbox::TrainTask;

use crate::analyze::{check_row_expr, plan_query};
use crate::bounds::bounds_of;
use crate::execute::{bounded_rows, register_tables};
use crate::rows::{RowScope, scope_of};
use crate::session::locked_context;
use crate::{ExecError, Rejection};

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
            crate::analyze::node_name(plan)
        )]));
    };
    if matches!(
        projection.input.as_ref(),
        LogicalPlan::Aggregate(_) | LogicalPlan::Distinct(_) | LogicalPlan::Window(_)
    ) {
        return Err(Rejection(vec![format!(
            "a training query is a plain row-level SELECT of numeric columns (found {} below the SELECT); the learner aggregates, under DP",
            crate::analyze::node_name(&projection.input)
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
        check_row_expr(e, &mut reasons);
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
    crate::analyze::register_empty_tables(&ctx, &task.tables)?;
    let plan = plan_query(&ctx, &task.query).await?;
    let checked = check(&plan, task)?;
    crate::rowexpr::check_rows(&ctx, &checked.input, &checked.exprs)?;
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
    crate::rowexpr::check_rows(&ctx, &checked.input, &checked.exprs)
        .map_err(ExecError::Rejected)?;
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

/// Runs `rows` (already bounded per unit) and reads `values`, as f64, of
/// every row, grouped by `unit` (sorted by it); without a unit each row is
/// its own unit. The one path by which unit rows leave the engine, for WASM
/// guests and for training.
pub(crate) async fn read_unit_rows(
    ctx: &datafusion::prelude::SessionContext,
    rows: datafusion::logical_expr::LogicalPlanBuilder,
    unit: Option<Expr>,
    values: Vec<Expr>,
) -> Result<UnitRows, ExecError> {
    let width = values.len();
    let mut select: Vec<Expr> = Vec::new();
    if let Some(u) = &unit {
        select.push(cast(u.clone(), DataType::Utf8).alias("__unit"));
    }
    for (i, e) in values.into_iter().enumerate() {
        select.push(cast(e, DataType::Float64).alias(format!("__c{i}")));
    }
    let mut b = rows.project(select)?;
    if unit.is_some() {
        b = b.sort(vec![col("__unit").sort(true, true)])?;
    }
    let batches = crate::rowexpr::collect(ctx, b.build()?).await?;
    group_by_unit(&batches, width, unit.is_some())
}

/// Reads batches of `[__unit]? , __c0 .. __c{width-1}` (f64), sorted by unit,
/// into rows grouped by unit. Without a unit column each row is a unit.
fn group_by_unit(
    batches: &[datafusion::arrow::array::RecordBatch],
    width: usize,
    by_unit: bool,
) -> Result<UnitRows, ExecError> {
    let mut rows = UnitRows {
        width,
        values: Vec::new(),
        unit_starts: vec![0],
    };
    let offset = usize::from(by_unit);
    let mut last: Option<String> = None;
    let mut count = 0usize;
    for batch in batches {
        let ids = if by_unit {
            Some(
                batch
                    .column(0)
                    .as_string_opt::<i32>()
                    .ok_or_else(|| ExecError::Engine("the unit column is not text".into()))?,
            )
        } else {
            None
        };
        let values: Vec<&Float64Array> = (0..width)
            .map(|i| {
                batch
                    .column(offset + i)
                    .as_primitive_opt::<Float64Type>()
                    .ok_or_else(|| ExecError::Engine("an input column is not f64".into()))
            })
            .collect::<Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            // Rows are sorted by unit: a new unit starts where the id changes.
            let same_unit = ids.is_some_and(|ids| last.as_deref() == Some(ids.value(row)));
            if !same_unit {
                if count > 0 {
                    rows.unit_starts.push(count);
                }
                last = ids.map(|ids| ids.value(row).to_owned());
            }
            for v in &values {
                rows.values.push(if v.is_null(row) {
                    f64::NAN
                } else {
                    v.value(row)
                });
            }
            count += 1;
        }
    }
    if count > 0 {
        rows.unit_starts.push(count);
    }
    Ok(rows)
}
