//! Rows grouped by privacy unit, bounded as for SQL jobs: the one path by
//! which unit rows leave the engine, for WASM guests and for training.

use datafusion::arrow::array::{Array, AsArray, Float64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, cast, col};
use datafusion::prelude::SessionContext;
use sluice_types::rows::UnitRows;
use sluice_types::sandbox::SandboxTable;

use crate::error::{ExecError, Rejection};
use crate::session::locked_context;
use crate::tables::{bounded_rows, register_tables};

/// Each privacy unit's rows of `table`, for a WASM job: the listed numeric
/// columns as f64 (NULL as NaN), grouped by unit, each unit bounded exactly
/// as for SQL jobs. Without a unit column each row is a unit.
pub async fn unit_rows(table: &SandboxTable, columns: &[String]) -> Result<UnitRows, ExecError> {
    let problems = table.schema.guest_column_problems(&table.name, columns);
    if !problems.is_empty() {
        return Err(ExecError::Rejected(Rejection(problems)));
    }
    let ctx = locked_context()?;
    let indexed = register_tables(&ctx, std::slice::from_ref(table)).await?;
    let unit = table.schema.privacy_unit().map(|u| col(u.name.as_str()));
    let scan = ctx
        .table(table.name.as_str())
        .await?
        .into_unoptimized_plan();
    let bounded = bounded_rows(
        scan,
        unit.as_ref(),
        u64::from(table.schema.max_rows_per_unit),
        table.bound_verified,
        indexed.as_ref(),
    )?;
    let values = columns.iter().map(|c| col(c.as_str())).collect();
    read_unit_rows(&ctx, bounded, unit, values).await
}

/// Runs `rows` (already bounded per unit) and reads `values`, as f64, of
/// every row, grouped by `unit` (sorted by it); without a unit each row is
/// its own unit. The one path by which unit rows leave the engine, for WASM
/// guests and for training.
pub(crate) async fn read_unit_rows(
    ctx: &SessionContext,
    rows: LogicalPlanBuilder,
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
    batches: &[RecordBatch],
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
