//! The job's tables: registered by their declared schemas, with no rows
//! for planning or on the stored Parquet for running, and the one
//! mechanism that bounds each privacy unit's rows, shared by SQL, WASM and
//! training jobs.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::TableProvider;
use datafusion::catalog::empty::EmptyTable;
use datafusion::functions::math::expr_fn::random;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{ExprFunctionExt, LogicalPlan, LogicalPlanBuilder, col, lit};
use datafusion::prelude::{Expr, ParquetReadOptions, SessionContext};
use sluice_types::sandbox::SandboxTable;
use sluice_types::schema::UNIT_ROW_COLUMN;

use crate::error::{ExecError, Rejection};
use crate::session::arrow_schema;

const ROW_NUMBER: &str = "__sluice_rn";

/// Registers each table by its declared schema with no rows: planning
/// needs schemas only, and reads no data.
pub(crate) fn register_empty_tables(
    ctx: &SessionContext,
    tables: &[SandboxTable],
) -> Result<(), Rejection> {
    for t in tables {
        let provider: Arc<dyn TableProvider> = Arc::new(EmptyTable::new(arrow_schema(&t.schema)));
        ctx.register_table(t.name.as_str(), provider).map_err(|e| {
            Rejection(vec![format!(
                "table {} could not be registered: {e}",
                t.name
            )])
        })?;
    }
    Ok(())
}

/// The stored tables that carry `UNIT_ROW_COLUMN`: their full providers and
/// row bounds, so that bounding is a filter at each scan.
pub(crate) type IndexedTables = HashMap<String, (Arc<dyn TableProvider>, u64)>;

/// Registers every table under its name with exactly its declared columns,
/// after checking the stored file matches them (plus, optionally, the
/// unit-row index at the end). Returns the indexed tables when every private
/// table with a privacy unit has the index, else None (then bounding is a
/// window over the rows).
pub(crate) async fn register_tables(
    ctx: &SessionContext,
    tables: &[SandboxTable],
) -> Result<Option<IndexedTables>, ExecError> {
    let mut indexed = HashMap::new();
    let mut all_indexed = true;
    for t in tables {
        let internal = format!("__sluice_rows_{}", t.name);
        ctx.register_parquet(internal.as_str(), &t.path, ParquetReadOptions::default())
            .await?;
        let full = ctx.table_provider(internal.as_str()).await?;
        let stored = full.schema();
        let declared = arrow_schema(&t.schema);
        let n = declared.fields().len();
        let has_index = stored.fields().len() == n + 1
            && stored.field(n).name() == UNIT_ROW_COLUMN
            && stored.field(n).data_type() == &DataType::Int64;
        let same = (stored.fields().len() == n || has_index)
            && stored
                .fields()
                .iter()
                .zip(declared.fields())
                .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
        if !same {
            return Err(ExecError::SchemaMismatch(t.name.clone()));
        }
        // The query sees the declared columns only, never the index.
        ctx.register_parquet(
            t.name.as_str(),
            &t.path,
            ParquetReadOptions {
                schema: Some(&declared),
                ..Default::default()
            },
        )
        .await?;
        let needs_bounding = !t.public && t.schema.privacy_unit().is_some();
        if has_index {
            indexed.insert(
                t.name.clone(),
                (full, u64::from(t.schema.max_rows_per_unit)),
            );
        } else if needs_bounding {
            all_indexed = false;
        }
    }
    Ok(all_indexed.then_some(indexed))
}

/// The rows of `plan` with each privacy unit's contribution bounded, the one
/// mechanism shared by SQL and WASM jobs:
/// - ingest verified every table read (no unit over its bound, no row
///   without a unit): nothing to do;
/// - every table carries the stored unit-row index: each is bounded where it
///   is read (a join multiplies the bounds and a union adds them, as the
///   analysis assumed), a streaming filter;
/// - otherwise rows without a unit are dropped (they cannot be attributed)
///   and a window keeps each unit's first `k` rows in a random order.
///
/// Without a unit column each row is its own unit and nothing is done.
pub(crate) fn bounded_rows(
    plan: LogicalPlan,
    unit: Option<&Expr>,
    k: u64,
    bound_verified: bool,
    indexed: Option<&IndexedTables>,
) -> Result<LogicalPlanBuilder, ExecError> {
    let Some(unit) = unit.filter(|_| !bound_verified) else {
        return Ok(LogicalPlanBuilder::from(plan));
    };
    if let Some(indexed) = indexed {
        return Ok(LogicalPlanBuilder::from(bound_at_scans(plan, indexed)?));
    }
    let rn = row_number()
        .partition_by(vec![unit.clone()])
        .order_by(vec![random().sort(true, true)])
        .build()?
        .alias(ROW_NUMBER);
    Ok(LogicalPlanBuilder::from(plan)
        .filter(unit.clone().is_not_null())?
        .window(vec![rn])?
        .filter(col(ROW_NUMBER).lt_eq(lit(k)))?)
}

/// Replaces each scan of an indexed table by a scan of the stored file that
/// keeps the first `k` rows of every unit (by the secret order fixed at
/// ingest) and drops rows without a unit: a streaming filter. Subqueries in
/// WHERE keep reading whole tables: they only decide membership.
fn bound_at_scans(plan: LogicalPlan, indexed: &IndexedTables) -> Result<LogicalPlan, ExecError> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    let out = plan.transform_up(|node| {
        let LogicalPlan::TableScan(scan) = &node else {
            return Ok(Transformed::no(node));
        };
        let Some((full, k)) = indexed.get(scan.table_name.table()) else {
            return Ok(Transformed::no(node));
        };
        let qualifier = scan.table_name.clone();
        let mut b = LogicalPlanBuilder::scan(
            qualifier.clone(),
            datafusion::datasource::provider_as_source(full.clone()),
            None,
        )?
        .filter(
            Expr::Column(datafusion::common::Column::new(
                Some(qualifier.clone()),
                UNIT_ROW_COLUMN,
            ))
            .lt_eq(lit(*k as i64)),
        )?;
        for f in &scan.filters {
            b = b.filter(f.clone())?;
        }
        let columns: Vec<Expr> = scan
            .projected_schema
            .fields()
            .iter()
            .map(|f| {
                Expr::Column(datafusion::common::Column::new(
                    Some(qualifier.clone()),
                    f.name(),
                ))
            })
            .collect();
        Ok(Transformed::yes(b.project(columns)?.build()?))
    })?;
    Ok(out.data)
}
