//! A locked-down DataFusion session. DataFusion is not an authorization
//! boundary, so the session can do nothing but plan SELECTs over the job's
//! own tables: no DDL, DML or statements, no URL tables, no information
//! schema, a memory cap and no spilling to disk. User SQL is planned here,
//! under those options.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use sluice_types::schema::{ColumnType, DatasetSchema};

use crate::error::Rejection;

/// Memory a query may use inside the sandbox.
pub const MEMORY_LIMIT: usize = 2 * 1024 * 1024 * 1024;

pub fn locked_context() -> Result<SessionContext, datafusion::error::DataFusionError> {
    let mut config = SessionConfig::new()
        .with_information_schema(false)
        .with_default_catalog_and_schema("sluice", "job")
        .with_create_default_catalog_and_schema(true)
        .with_target_partitions(2);
    // Read text as Utf8, the declared storage type, not as Utf8View.
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(MEMORY_LIMIT, 1.0)
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .build_arc()?;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    // Total versions of builtins that fail on some values (abs, sqrt, power).
    for udf in crate::rowexpr::replacements() {
        ctx.register_udf(udf);
    }
    register_aggregate_aliases(&ctx);
    Ok(ctx)
}

/// Other engines' names for the sample variance and deviation
/// (`VARIANCE`, `STD`, `STDEV`), which DataFusion does not know.
pub(crate) fn register_aggregate_aliases(ctx: &SessionContext) {
    use datafusion::functions_aggregate::{stddev::stddev_udaf, variance::var_samp_udaf};
    ctx.register_udaf(var_samp_udaf().as_ref().clone().with_aliases(["variance"]));
    ctx.register_udaf(
        stddev_udaf()
            .as_ref()
            .clone()
            .with_aliases(["std", "stdev"]),
    );
}

/// Only SELECT queries: no DDL, DML or SET/other statements.
pub fn sql_options() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Plans SQL under the locked-down options; errors name only SQL and schema.
/// The statement is rewritten first where DataFusion refuses SQL that other
/// DP SQL engines accept (`rewrite`).
pub async fn plan_query(ctx: &SessionContext, sql: &str) -> Result<LogicalPlan, Rejection> {
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let mut statement = state
        .sql_to_statement(sql, &dialect)
        .map_err(|e| Rejection::planning(&e))?;
    crate::rewrite::rewrite(&mut statement, &|name| {
        state.aggregate_functions().contains_key(name)
    });
    let plan = state
        .statement_to_plan(statement)
        .await
        .map_err(|e| Rejection::planning(&e))?;
    sql_options()
        .verify_plan(&plan)
        .map_err(|e| Rejection::planning(&e))?;
    Ok(plan)
}

pub fn arrow_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Int => DataType::Int64,
        ColumnType::Float => DataType::Float64,
        ColumnType::Text => DataType::Utf8,
        ColumnType::Bool => DataType::Boolean,
    }
}

/// The Arrow schema a stored version has (same mapping as ingest).
pub fn arrow_schema(schema: &DatasetSchema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .columns
            .iter()
            .map(|c| Field::new(&c.name, arrow_type(c.stored_type()), true))
            .collect::<Vec<_>>(),
    ))
}
