//! Execution: the checked row-level plan is wrapped in a new plan that
//! bounds each privacy unit to `max_rows_per_unit` rows (chosen in a random,
//! data-independent order), keeps only declared group keys, clamps summed
//! values to their declared bounds in fixed point, and aggregates. The
//! exact aggregates never leave this module: they go straight to the
//! OpenDP mechanism, and only noised values and their intervals come out.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::functions::math::expr_fn::round;
use datafusion::functions_aggregate::expr_fn::{
    array_agg, count, count_distinct, sum, sum_distinct,
};
use datafusion::logical_expr::{cast, col, lit, when};
use datafusion::prelude::{Expr, SessionContext};
use sluice_dp::discrete_laplace_halfwidth;
use sluice_types::release::{CONFIDENCE_LEVEL, Cell, ColumnKind, OutputColumn, ReleasedOutputs};
use sluice_types::sandbox::QueryTask;
use sluice_types::schema::DomainValue;

use crate::analyze::{
    Aggregate, Analysis, MeasurementKind, Mechanism, Output, analyze_plan, check_row_expressions,
};
use crate::error::{ExecError, Rejection};
use crate::released::ReleasedBatch;
use crate::rowexpr::collect;
use crate::session::{locked_context, plan_query};
use crate::tables::{IndexedTables, bounded_rows, register_tables};

/// Runs a query on the job's stored Parquet files and returns noised outputs.
pub async fn execute(task: &QueryTask) -> Result<ReleasedOutputs, ExecError> {
    let ctx = locked_context()?;
    let indexed = register_tables(&ctx, &task.tables).await?;
    let plan = plan_query(&ctx, &task.query)
        .await
        .map_err(ExecError::Rejected)?;
    let analysis = analyze_plan(&plan, &task.tables, task.epsilon, task.delta, &task.split)
        .map_err(ExecError::Rejected)?;
    check_row_expressions(&ctx, &analysis).map_err(ExecError::Rejected)?;
    check_public_keys_unique(&ctx, &analysis).await?;
    let (keys, exact) = exact_aggregates(&ctx, &analysis, indexed.as_ref()).await?;
    release(&analysis, &keys, exact)
}

/// A public table joined on a key must have each key once, or a private row
/// could match several public rows. The table is public, so saying which
/// table and column failed reveals nothing private.
async fn check_public_keys_unique(ctx: &SessionContext, a: &Analysis) -> Result<(), ExecError> {
    for (table, column) in &a.public_keys {
        let key = Expr::Column(datafusion::common::Column::new_unqualified(column));
        let repeated = ctx
            .table(table.as_str())
            .await?
            .filter(key.clone().is_not_null())?
            .aggregate(vec![key], vec![count(lit(1i64)).alias("__n")])?
            .filter(col("__n").gt(lit(1i64)))?
            .count()
            .await?;
        if repeated > 0 {
            return Err(ExecError::Rejected(Rejection(vec![format!(
                "public table {table}: its key column {column} is declared unique but has repeated values, so a join on it could multiply a person's rows"
            )])));
        }
    }
    Ok(())
}

/// `input` limited to `[lower, upper]`; NULL stays NULL. Arrow compares
/// floats in IEEE total order, where NaN (from a total row expression such
/// as 0.0 / 0.0) is above every number, so NaN becomes `upper`.
fn clamped(input: Expr, lower: Expr, upper: Expr) -> Result<Expr, ExecError> {
    Ok(when(input.clone().lt(lower.clone()), lower)
        .when(input.clone().gt(upper.clone()), upper)
        .otherwise(input)?)
}

/// One measurement's exact value in every cell, cells in key order: an
/// integer total, or (for a quantile) the cell's clamped values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Exact {
    Totals(Vec<i64>),
    Values(Vec<Vec<f64>>),
}

/// The cells' keys in order, and the exact per-cell aggregates, one vector
/// per measurement. With public domains the cells are every combination of
/// keys; with key selection, the key combinations found in the data (the
/// caller releases only those whose noisy count passes the threshold).
pub(crate) async fn exact_aggregates(
    ctx: &SessionContext,
    a: &Analysis,
    indexed: Option<&IndexedTables>,
) -> Result<(Vec<Vec<DomainValue>>, Vec<Exact>), ExecError> {
    let b = bounded_rows(
        a.row_plan.clone(),
        a.unit.as_ref(),
        a.max_rows_per_unit,
        a.bound_verified,
        indexed,
    )?;
    // Keys outside a declared domain (and NULL keys) form groups that are
    // never released: they are skipped when the groups are read back, which
    // is cheaper than filtering every row.
    let mut projection: Vec<Expr> = Vec::new();
    for (i, g) in a.group_keys.iter().enumerate() {
        // Integer keys are read back as Int64 (a CAST AS INT key is Int32).
        let key = if g.column.ty == sluice_types::schema::ColumnType::Int {
            cast(g.expr.clone(), DataType::Int64)
        } else {
            g.expr.clone()
        };
        projection.push(key.alias(format!("__k{i}")));
    }
    let mut aggregates: Vec<Expr> = Vec::new();
    for (j, m) in a.measurements.iter().enumerate() {
        let name = format!("__m{j}");
        match &m.kind {
            MeasurementKind::CountRows => {
                aggregates.push(count(lit(1i64)).alias(format!("__a{j}")))
            }
            MeasurementKind::CountNonNull { .. } => {
                let input = m.input.clone().expect("count(column) has an input");
                projection.push(input.alias(&name));
                aggregates.push(count(col(&name)).alias(format!("__a{j}")));
            }
            MeasurementKind::CountDistinct { .. } => {
                let input = m.input.clone().expect("count(distinct) has an input");
                projection.push(input.alias(&name));
                aggregates.push(count_distinct(col(&name)).alias(format!("__a{j}")));
            }
            MeasurementKind::Sum {
                lower,
                upper,
                scale,
                clamp,
                distinct,
                ..
            } => {
                let input = m.input.clone().expect("sum has an input");
                let integral = *scale == 1.0 && lower.fract() == 0.0 && upper.fract() == 0.0;
                let fixed = if !clamp && integral && input_is_int(a, &input) {
                    // Ingest verified the inputs within bounds: nothing to clamp.
                    cast(input, DataType::Int64)
                } else if !clamp {
                    cast(
                        round(vec![cast(input, DataType::Float64) * lit(*scale)]),
                        DataType::Int64,
                    )
                } else if integral && input_is_int(a, &input) {
                    // Integer values with integer bounds: clamp in Int64.
                    clamped(
                        cast(input, DataType::Int64),
                        lit(*lower as i64),
                        lit(*upper as i64),
                    )?
                } else {
                    let value = clamped(cast(input, DataType::Float64), lit(*lower), lit(*upper))?;
                    cast(round(vec![value * lit(*scale)]), DataType::Int64)
                };
                projection.push(fixed.alias(&name));
                let total = if *distinct { sum_distinct } else { sum };
                aggregates.push(total(col(&name)).alias(format!("__a{j}")));
            }
            MeasurementKind::Quantile { lower, upper, .. } => {
                let input = cast(
                    m.input.clone().expect("a quantile has an input"),
                    DataType::Float64,
                );
                projection.push(clamped(input, lit(*lower), lit(*upper))?.alias(&name));
                aggregates.push(array_agg(col(&name)).alias(format!("__a{j}")));
            }
        }
    }
    if projection.is_empty() {
        projection.push(lit(1i64).alias("__one"));
    }
    let keys: Vec<Expr> = (0..a.group_keys.len())
        .map(|i| col(format!("__k{i}")))
        .collect();
    let plan = b
        .project(projection)?
        .aggregate(keys, aggregates)?
        .build()?;
    let batches = collect(ctx, plan).await?;

    let n_keys = a.group_keys.len();
    // Each group read back goes to its cell: with public domains by a
    // mixed-radix index (the key's position in each sorted domain, the first
    // key most significant, as `cells` orders them), with no key vectors
    // built or hashed; with key selection, by the sorted keys found.
    let (keys, found) = if a.key_selection.is_none() {
        let domains: Vec<&[DomainValue]> = a
            .group_keys
            .iter()
            .map(|g| g.domain.as_deref().unwrap_or_default())
            .collect();
        let mut found = Vec::new();
        for (b, batch) in batches.iter().enumerate() {
            'rows: for row in 0..batch.num_rows() {
                let mut cell = 0usize;
                for (k, domain) in domains.iter().enumerate() {
                    match domain_position(batch.column(k).as_ref(), row, domain)? {
                        Some(position) => cell = cell * domain.len() + position,
                        None => continue 'rows,
                    }
                }
                found.push((cell, b, row));
            }
        }
        (cells(a), found)
    } else {
        let mut found_keys = Vec::new();
        for (b, batch) in batches.iter().enumerate() {
            'rows: for row in 0..batch.num_rows() {
                let mut key = Vec::with_capacity(n_keys);
                for (k, g) in a.group_keys.iter().enumerate() {
                    match domain_value(batch.column(k).as_ref(), row)? {
                        // A key with a public domain keeps only its values.
                        Some(v)
                            if g.domain
                                .as_ref()
                                .is_none_or(|d| d.binary_search(&v).is_ok()) =>
                        {
                            key.push(v)
                        }
                        _ => continue 'rows,
                    }
                }
                found_keys.push((key, b, row));
            }
        }
        let mut keys: Vec<Vec<DomainValue>> = found_keys.iter().map(|f| f.0.clone()).collect();
        keys.sort();
        keys.dedup();
        let found = found_keys
            .into_iter()
            .map(|(key, b, row)| {
                let cell = keys
                    .binary_search(&key)
                    .expect("every key found is among the keys");
                (cell, b, row)
            })
            .collect::<Vec<_>>();
        (keys, found)
    };
    let mut vectors: Vec<Exact> = a
        .measurements
        .iter()
        .map(|m| match m.kind {
            MeasurementKind::Quantile { .. } => Exact::Values(vec![Vec::new(); keys.len()]),
            _ => Exact::Totals(vec![0; keys.len()]),
        })
        .collect();
    for &(cell, b, row) in &found {
        let batch = &batches[b];
        {
            for (j, v) in vectors.iter_mut().enumerate() {
                let col = batch.column(n_keys + j);
                let wrong_type =
                    || ExecError::Engine(format!("aggregate {j} has type {}", col.data_type()));
                match v {
                    Exact::Totals(v) => {
                        let col = col.as_primitive_opt::<Int64Type>().ok_or_else(wrong_type)?;
                        v[cell] = if col.is_null(row) { 0 } else { col.value(row) };
                    }
                    Exact::Values(v) => {
                        let list = col.as_list_opt::<i32>().ok_or_else(wrong_type)?;
                        if list.is_null(row) {
                            continue;
                        }
                        let values = list.value(row);
                        let values = values
                            .as_primitive_opt::<Float64Type>()
                            .ok_or_else(wrong_type)?;
                        // NULL arguments do not count, as in SQL.
                        v[cell] = values.iter().flatten().collect();
                    }
                }
            }
        }
    }
    Ok((keys, vectors))
}

/// The position of a group's key in its sorted public domain; None for
/// NULL and for values outside the domain (groups never released). Reads
/// the typed array, so no key value is allocated per group.
fn domain_position(
    array: &dyn Array,
    row: usize,
    domain: &[DomainValue],
) -> Result<Option<usize>, ExecError> {
    use std::cmp::Ordering;
    if array.is_null(row) {
        return Ok(None);
    }
    let text = |s: &str| {
        domain.binary_search_by(|d| match d {
            DomainValue::Text(t) => t.as_str().cmp(s),
            _ => Ordering::Less,
        })
    };
    let found = if let Some(a) = array.as_primitive_opt::<Int64Type>() {
        domain.binary_search(&DomainValue::Int(a.value(row)))
    } else if let Some(a) = array.as_string_opt::<i32>() {
        text(a.value(row))
    } else if let Some(a) = array.as_string_view_opt() {
        text(a.value(row))
    } else if let Some(a) = array.as_string_opt::<i64>() {
        text(a.value(row))
    } else if let Some(a) = array.as_boolean_opt() {
        domain.binary_search(&DomainValue::Bool(a.value(row)))
    } else {
        match domain_value(array, row)? {
            Some(v) => domain.binary_search(&v),
            None => return Ok(None),
        }
    };
    Ok(found.ok())
}

/// A group's key value; None for NULL.
fn domain_value(array: &dyn Array, row: usize) -> Result<Option<DomainValue>, ExecError> {
    if array.is_null(row) {
        return Ok(None);
    }
    match ScalarValue::try_from_array(array, row)? {
        ScalarValue::Int64(Some(i)) => Ok(Some(DomainValue::Int(i))),
        ScalarValue::Int32(Some(i)) => Ok(Some(DomainValue::Int(i.into()))),
        ScalarValue::Int16(Some(i)) => Ok(Some(DomainValue::Int(i.into()))),
        ScalarValue::Int8(Some(i)) => Ok(Some(DomainValue::Int(i.into()))),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => Ok(Some(DomainValue::Text(s))),
        ScalarValue::Boolean(Some(b)) => Ok(Some(DomainValue::Bool(b))),
        other => Err(ExecError::Engine(format!(
            "unexpected key type {}",
            other.data_type()
        ))),
    }
}

/// Whether a row expression has an integer type in the row-level plan.
fn input_is_int(a: &Analysis, e: &Expr) -> bool {
    use datafusion::logical_expr::ExprSchemable;
    e.get_type(a.row_plan.schema().as_ref())
        .is_ok_and(|t| t.is_integer())
}

/// All cells in key order: the cartesian product of the sorted domains.
fn cells(a: &Analysis) -> Vec<Vec<DomainValue>> {
    let mut out: Vec<Vec<DomainValue>> = vec![vec![]];
    for g in &a.group_keys {
        let domain = g.domain.as_deref().unwrap_or_default();
        out = out
            .into_iter()
            .flat_map(|prefix| {
                domain.iter().map(move |v| {
                    let mut p = prefix.clone();
                    p.push(v.clone());
                    p
                })
            })
            .collect();
    }
    out
}

struct Noised {
    values: Vec<i64>,
    /// A quantile measurement's released values (and no `values`).
    quantiles: Vec<f64>,
    rank_error95: f64,
    /// 95% half-width, and the 97.5% one used when two measurements combine.
    half95: f64,
    half975: f64,
    /// Half-width at 1 - 0.05/3, when three measurements combine.
    half_third: f64,
}

/// Adds noise to every measurement and computes the released cells.
pub(crate) fn release(
    a: &Analysis,
    keys: &[Vec<DomainValue>],
    exact: Vec<Exact>,
) -> Result<ReleasedOutputs, ExecError> {
    let mut noised = Vec::with_capacity(exact.len());
    let mut mechanism = format!(
        "exact discrete Laplace noise (the scale and privacy loss from OpenDP, samples from sluice-dp's exact sampler); epsilon {} split over {} measurement(s); each privacy unit bounded to {} row(s)",
        a.epsilon,
        a.measurements.len(),
        a.max_rows_per_unit
    );
    for (m, values) in a.measurements.iter().zip(exact) {
        match (Mechanism::calibrate(m)?, values) {
            (Mechanism::Laplace(mech), Exact::Totals(values)) => {
                mechanism.push_str(&format!(
                    "; {}: epsilon {}, L1 sensitivity {}, scale {:.6}",
                    m.describe(),
                    m.epsilon,
                    m.l1_sensitivity,
                    mech.scale()
                ));
                noised.push(Noised {
                    values: mech.release(values)?,
                    quantiles: Vec::new(),
                    rank_error95: f64::NAN,
                    half95: mech.ci_halfwidth(),
                    half975: discrete_laplace_halfwidth(
                        mech.scale(),
                        (1.0 - CONFIDENCE_LEVEL) / 2.0,
                    ),
                    half_third: discrete_laplace_halfwidth(
                        mech.scale(),
                        (1.0 - CONFIDENCE_LEVEL) / 3.0,
                    ),
                });
            }
            (Mechanism::Quantile(mech), Exact::Values(cells)) => {
                mechanism.push_str(&format!(
                    "; {}: exponential mechanism (permute-and-flip), epsilon {}, at most {} row(s) per unit, scale {:.6} rows",
                    m.describe(),
                    m.epsilon,
                    m.l1_sensitivity,
                    mech.scale()
                ));
                noised.push(Noised {
                    values: Vec::new(),
                    quantiles: cells
                        .iter()
                        .map(|c| mech.release(c))
                        .collect::<Result<_, _>>()?,
                    rank_error95: mech.rank_error95(),
                    half95: f64::NAN,
                    half975: f64::NAN,
                    half_third: f64::NAN,
                });
            }
            _ => {
                return Err(ExecError::Engine(
                    "measurement and exact aggregate disagree".into(),
                ));
            }
        }
    }
    let scale_of = |i: usize| a.measurements[i].fixed_point_scale();
    let bounds_of = |i: usize| match &a.measurements[i].kind {
        MeasurementKind::Sum { lower, upper, .. } => (*lower, *upper),
        _ => (f64::NEG_INFINITY, f64::INFINITY),
    };

    let columns = a
        .outputs
        .iter()
        .map(|o| match o {
            Output::Key { name, .. } => OutputColumn {
                name: name.clone(),
                kind: ColumnKind::GroupKey,
                aggregate: None,
                epsilon: None,
            },
            Output::Aggregate { agg, func, name } => OutputColumn {
                name: name.clone(),
                kind: ColumnKind::Aggregate,
                aggregate: Some(func.clone()),
                epsilon: Some(a.output_epsilon(agg)),
            },
            Output::Computed {
                name,
                aggregates,
                reads_key,
                funcs,
                ..
            } => OutputColumn {
                name: name.clone(),
                kind: match (aggregates.is_empty(), reads_key) {
                    (false, _) => ColumnKind::Aggregate,
                    (true, true) => ColumnKind::GroupKey,
                    (true, false) => ColumnKind::Constant,
                },
                aggregate: (!funcs.is_empty()).then(|| crate::analyze::computed_label(funcs)),
                epsilon: (!aggregates.is_empty()).then(|| a.computed_epsilon(aggregates)),
            },
        })
        .collect();
    let noisy_cell = |agg: &Aggregate, cell: usize| match agg {
        Aggregate::Quantile { quantile } => Cell::Quantile {
            value: noised[*quantile].quantiles[cell],
            rank_error95: noised[*quantile].rank_error95,
        },
        // A count's scale is 1: its cell is a sum's.
        Aggregate::Count { count: i } | Aggregate::Sum { sum: i } => {
            let n = &noised[*i];
            let s = scale_of(*i);
            let v = n.values[cell] as f64 / s;
            Cell::Noisy {
                value: v,
                ci95: [v - n.half95 / s, v + n.half95 / s],
            }
        }
        Aggregate::Var {
            sum,
            squares,
            count,
            sample,
            root,
        } => {
            let (lo, hi) = bounds_of(*sum);
            let moments = Moments {
                sum: noised[*sum].values[cell] as f64 / scale_of(*sum),
                sum_half: noised[*sum].half_third / scale_of(*sum),
                squares: noised[*squares].values[cell] as f64 / scale_of(*squares),
                squares_half: noised[*squares].half_third / scale_of(*squares),
                count: noised[*count].values[cell] as f64,
                count_half: noised[*count].half_third,
            };
            var_cell(&moments, lo, hi, *sample, *root)
        }
        Aggregate::Avg { sum, count } => {
            let s = scale_of(*sum);
            let (lo, hi) = bounds_of(*sum);
            avg_cell(
                noised[*sum].values[cell] as f64 / s,
                noised[*sum].half975 / s,
                noised[*count].values[cell] as f64,
                noised[*count].half975,
                lo,
                hi,
            )
        }
    };
    let n_cells = keys.len();
    let needs_batch = a.post.having.is_some()
        || a.outputs
            .iter()
            .any(|o| matches!(o, Output::Computed { .. }));
    // Released value of every aggregate in every cell, for HAVING (which
    // may use ones not selected) and computed outputs; only when needed,
    // since a release of many cells would build it for nothing.
    let aggregate_cells: Vec<Vec<Cell>> = if needs_batch {
        a.aggregates
            .iter()
            .map(|agg| (0..n_cells).map(|cell| noisy_cell(agg, cell)).collect())
            .collect()
    } else {
        Vec::new()
    };
    let mut kept: Vec<usize> = (0..n_cells).collect();
    if let Some(ks) = &a.key_selection {
        let counts = &noised[ks.count].values;
        kept.retain(|&cell| counts[cell] > ks.threshold as i64);
        mechanism.push_str(&format!(
            "; group keys found in the data released where the noisy {} exceeds {} (delta {})",
            a.measurements[ks.count].describe(),
            ks.threshold,
            a.delta
        ));
    }
    let batch = needs_batch
        .then(|| ReleasedBatch::new(a, keys, &aggregate_cells))
        .transpose()?;
    if let (Some(having), Some(batch)) = (&a.post.having, &batch) {
        let mask = batch.having_mask(having)?;
        kept.retain(|&cell| mask[cell]);
    }
    let computed: Vec<Option<Vec<Cell>>> = a
        .outputs
        .iter()
        .map(|o| match (o, &batch) {
            (
                Output::Computed {
                    expr, aggregates, ..
                },
                Some(batch),
            ) => batch
                .computed(a, expr, aggregates, &aggregate_cells)
                .map(Some),
            _ => Ok(None),
        })
        .collect::<Result<_, _>>()?;
    let mut rows: Vec<Vec<Cell>> = kept
        .into_iter()
        .map(|cell| {
            a.outputs
                .iter()
                .zip(&computed)
                .map(|(o, computed)| match o {
                    Output::Key { key: k, .. } => Cell::Key(domain_json(&keys[cell][*k])),
                    Output::Aggregate { agg, .. } => noisy_cell(agg, cell),
                    Output::Computed { .. } => computed
                        .as_ref()
                        .map_or(Cell::Key(serde_json::Value::Null), |c| c[cell].clone()),
                })
                .collect()
        })
        .collect();
    if a.post.distinct {
        // Equal released values carry equal intervals: the cells compare whole.
        let mut seen = std::collections::HashSet::new();
        rows.retain(|row| seen.insert(serde_json::to_string(row).expect("cells serialise")));
    }
    order_and_limit(a, &mut rows);
    Ok(ReleasedOutputs {
        columns,
        rows,
        mechanism,
        epsilon: a.epsilon,
        delta: a.delta,
    })
}

/// ORDER BY output columns, then OFFSET/LIMIT, on released rows.
fn order_and_limit(a: &Analysis, rows: &mut Vec<Vec<Cell>>) {
    let index = |name: &str| a.outputs.iter().position(|o| o.name() == name);
    let order: Vec<(usize, bool)> = a
        .post
        .order
        .iter()
        .filter_map(|(name, asc, _)| index(name).map(|i| (i, *asc)))
        .collect();
    if !order.is_empty() {
        rows.sort_by(|x, y| {
            for (i, asc) in &order {
                let o = compare_cells(&x[*i], &y[*i]);
                let o = if *asc { o } else { o.reverse() };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
    }
    let skip = a.post.skip.min(rows.len());
    rows.drain(..skip);
    if let Some(f) = a.post.fetch {
        rows.truncate(f);
    }
}

fn compare_cells(x: &Cell, y: &Cell) -> std::cmp::Ordering {
    match (x, y) {
        (
            Cell::Noisy { value: a, .. }
            | Cell::Quantile { value: a, .. }
            | Cell::Derived { value: a },
            Cell::Noisy { value: b, .. }
            | Cell::Quantile { value: b, .. }
            | Cell::Derived { value: b },
        ) => a.total_cmp(b),
        (Cell::Key(a), Cell::Key(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(p), Some(q)) => p.total_cmp(&q),
            _ => a.to_string().cmp(&b.to_string()),
        },
        _ => std::cmp::Ordering::Equal,
    }
}

pub(crate) fn domain_json(v: &DomainValue) -> serde_json::Value {
    match v {
        DomainValue::Bool(b) => serde_json::Value::Bool(*b),
        DomainValue::Int(i) => serde_json::Value::from(*i),
        DomainValue::Text(s) => serde_json::Value::String(s.clone()),
    }
}

/// AVG = noisy sum / noisy count, clamped to the declared bounds. Its
/// interval combines the sum's and the count's 97.5% intervals (so both hold
/// together with probability >= 95%) and takes the extreme ratios; when the
/// count's interval reaches below one, the bounds themselves are the interval.
fn avg_cell(sum: f64, sum_half: f64, count: f64, count_half: f64, lo: f64, hi: f64) -> Cell {
    let value = if count >= 1.0 {
        (sum / count).clamp(lo, hi)
    } else {
        (lo + hi) / 2.0
    };
    let c_lo = count - count_half;
    let ci95 = if c_lo >= 1.0 {
        let (s_lo, s_hi) = (sum - sum_half, sum + sum_half);
        let c_hi = count + count_half;
        let corners = [s_lo / c_lo, s_lo / c_hi, s_hi / c_lo, s_hi / c_hi];
        let min = corners.iter().copied().fold(f64::INFINITY, f64::min);
        let max = corners.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        [min.clamp(lo, hi), max.clamp(lo, hi)]
    } else {
        [lo, hi]
    };
    Cell::Noisy { value, ci95 }
}

/// Exact (un-noised) aggregates of a task, for the crate's own tests of
/// sensitivity. Never reachable from outside the crate.
#[cfg(test)]
pub(crate) async fn exact_for_test(
    task: &QueryTask,
) -> (Analysis, Vec<Vec<DomainValue>>, Vec<Exact>) {
    let ctx = locked_context().unwrap();
    let indexed = register_tables(&ctx, &task.tables).await.unwrap();
    let plan = plan_query(&ctx, &task.query).await.unwrap();
    let analysis =
        analyze_plan(&plan, &task.tables, task.epsilon, task.delta, &task.split).unwrap();
    let (keys, exact) = exact_aggregates(&ctx, &analysis, indexed.as_ref())
        .await
        .unwrap();
    (analysis, keys, exact)
}

/// Noisy moments of one cell and their half-widths at 1 - 0.05/3 each, so
/// that all three intervals hold together with probability >= 95%.
struct Moments {
    sum: f64,
    sum_half: f64,
    squares: f64,
    squares_half: f64,
    count: f64,
    count_half: f64,
}

fn corners(a: (f64, f64), n: (f64, f64)) -> (f64, f64) {
    let q = [a.0 / n.0, a.0 / n.1, a.1 / n.0, a.1 / n.1];
    (
        q.iter().copied().fold(f64::INFINITY, f64::min),
        q.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    )
}

/// VARIANCE (or STDDEV) = Q/n - (S/n)^2, times n/(n-1) for the sample
/// version, clamped to what values in `[lo, hi]` allow. The interval takes
/// the extremes over the three joint intervals; when the count's interval
/// reaches below 2, it is everything the bounds allow.
fn var_cell(m: &Moments, lo: f64, hi: f64, sample: bool, root: bool) -> Cell {
    let max_pop = (hi - lo) * (hi - lo) / 4.0;
    let factor = |n: f64| if sample { n / (n - 1.0) } else { 1.0 };
    let cap = |n: f64| max_pop * factor(n.max(2.0));
    let value = if m.count >= 2.0 {
        let mean = m.sum / m.count;
        ((m.squares / m.count - mean * mean) * factor(m.count)).clamp(0.0, cap(m.count))
    } else {
        cap(2.0) / 2.0
    };
    let n = (m.count - m.count_half, m.count + m.count_half);
    let ci = if n.0 >= 2.0 {
        let mean = corners((m.sum - m.sum_half, m.sum + m.sum_half), n);
        let second = corners((m.squares - m.squares_half, m.squares + m.squares_half), n);
        let mean_sq_max = (mean.0 * mean.0).max(mean.1 * mean.1);
        let mean_sq_min = if mean.0 <= 0.0 && mean.1 >= 0.0 {
            0.0
        } else {
            (mean.0 * mean.0).min(mean.1 * mean.1)
        };
        let low = (second.0 - mean_sq_max) * factor(n.1);
        let high = (second.1 - mean_sq_min) * factor(n.0);
        [low.clamp(0.0, cap(n.0)), high.clamp(0.0, cap(n.0))]
    } else {
        [0.0, cap(2.0)]
    };
    if root {
        Cell::Noisy {
            value: value.sqrt(),
            ci95: [ci[0].sqrt(), ci[1].sqrt()],
        }
    } else {
        Cell::Noisy { value, ci95: ci }
    }
}
