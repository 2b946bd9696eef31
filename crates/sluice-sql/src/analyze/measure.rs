//! Aggregates compiled into measurements: each aggregate of the query
//! becomes one or more noised vectors (a count, a fixed-point sum, a sum of
//! squares, a DP quantile), shared between aggregates that need the same
//! one, each with its sensitivity from the declared bounds and the
//! contribution bound k.

use datafusion::logical_expr::expr::AggregateFunctionParams;
use datafusion::logical_expr::{Aggregate as AggregateNode, Expr};
use sluice_types::privacy::Epsilon;

use super::analysis::{Aggregate, Measurement, MeasurementKind, QUANTILE_GRID};
use crate::bounds::{bounds_of, is_integer_valued, within_bounds_verified};
use crate::rowexpr::{check_shape, literal_f64, strip_alias};
use crate::rows::RowScope;

/// The measurements of a query, and each aggregate of its aggregate node
/// (None where it was rejected).
pub(super) struct Measured {
    pub measurements: Vec<Measurement>,
    pub aggregates: Vec<Option<(Aggregate, String)>>,
    /// With key selection: the row count whose noisy value is thresholded.
    pub key_count: Option<usize>,
}

/// Compiles every aggregate of `aggregate` into measurements, pushing every
/// reason to reject onto `reasons`. With `selects_keys`, the noisy row
/// count that key selection thresholds is a measurement too (shared with
/// COUNT(*)).
pub(super) fn measurements(
    aggregate: &AggregateNode,
    scope: &RowScope,
    k: u64,
    selects_keys: bool,
    reasons: &mut Vec<String>,
) -> Measured {
    let mut m = Measurements(Vec::new());
    let mut aggregates = Vec::new();
    for a in &aggregate.aggr_expr {
        match aggregate_of(strip_alias(a), scope, k, &mut m) {
            Ok(agg) => aggregates.push(Some(agg)),
            Err(reason) => {
                reasons.push(reason);
                aggregates.push(None);
            }
        }
    }
    // Keys alone: keys selected from the data are released by the noisy
    // row count that selects them (measured below); public keys are the
    // schema's own domains, which need no job.
    if aggregate.aggr_expr.is_empty() && !selects_keys {
        reasons.push(
            "the query has no aggregate and every group key has a public domain (declared, or derived from the schema): its answer is that domain, which the dataset's schema already lists, so no job and no epsilon are needed; select COUNT(*) to count each key's rows"
                .into(),
        );
    }
    let key_count = selects_keys.then(|| m.find_or_add(MeasurementKind::CountRows, None, k));
    Measured {
        measurements: m.0,
        aggregates,
        key_count,
    }
}

/// Measurements, each kind once.
struct Measurements(Vec<Measurement>);

impl Measurements {
    /// The index of the measurement of `kind`, added (with no ε yet) if new.
    fn find_or_add(&mut self, kind: MeasurementKind, input: Option<Expr>, sens: u64) -> usize {
        if let Some(i) = self.0.iter().position(|m| m.kind == kind) {
            return i;
        }
        self.0.push(Measurement {
            kind,
            input,
            l1_sensitivity: sens,
            epsilon: Epsilon::from_units(0),
        });
        self.0.len() - 1
    }

    /// COUNT(arg): the non-null values of `arg` per cell; each of a unit's
    /// k rows adds at most one. A column that ingest proved never null
    /// (declared `nullable = false`) counts every row: its count is the
    /// query's COUNT(*), measured once.
    /// The count an AVG or VARIANCE divides by: of the distinct values
    /// when the aggregate is DISTINCT.
    fn count_values(&mut self, arg: &Expr, distinct: bool, scope: &RowScope, k: u64) -> usize {
        if distinct {
            let kind = MeasurementKind::CountDistinct {
                expr: arg.to_string(),
            };
            return self.find_or_add(kind, Some(arg.clone()), k);
        }
        self.count_non_null(arg, scope, k)
    }

    fn count_non_null(&mut self, arg: &Expr, scope: &RowScope, k: u64) -> usize {
        if never_null(arg, scope) {
            return self.find_or_add(MeasurementKind::CountRows, None, k);
        }
        let kind = MeasurementKind::CountNonNull {
            column: arg.to_string(),
        };
        self.find_or_add(kind, Some(arg.clone()), k)
    }
}

/// Whether `e` is a column declared not nullable, which ingest enforces
/// (an upload with an empty value there is refused). Outer joins make the
/// public side's columns nullable in the row scope.
fn never_null(e: &Expr, scope: &RowScope) -> bool {
    match strip_alias(e) {
        Expr::Column(c) => scope.column(c).is_ok_and(|s| !s.nullable),
        _ => false,
    }
}

/// One aggregate of the query and its function's name.
fn aggregate_of(
    e: &Expr,
    scope: &RowScope,
    k: u64,
    m: &mut Measurements,
) -> Result<(Aggregate, String), String> {
    let Expr::AggregateFunction(f) = e else {
        return Err(format!("{e} is not an aggregate"));
    };
    let func = f.func.name().to_ascii_lowercase();
    let p = &f.params;
    if let Some(alpha) = quantile_level(&func, p)? {
        let agg = quantile_of(&func, alpha, p, scope, k, m)?;
        return Ok((agg, func));
    }
    if p.filter.is_some() {
        return Err(no_filter(&func));
    }
    if !p.order_by.is_empty() {
        return Err(format!("{func}(... ORDER BY ...) is not supported"));
    }
    if p.args.len() != 1 {
        return Err(format!(
            "{func} with {} arguments is not supported",
            p.args.len()
        ));
    }
    let arg = row_argument(&func, p)?;
    let agg = match func.as_str() {
        "count" => count_of(arg, p.distinct, scope, k, m),
        "var" | "var_pop" | "stddev" | "stddev_pop" => {
            variance_of(&func, arg, p.distinct, scope, k, m)?
        }
        "sum" | "avg" => sum_or_avg_of(&func, arg, p.distinct, scope, k, m)?,
        other => {
            return Err(format!(
                "aggregate {other} is not supported yet (supported: COUNT, COUNT(DISTINCT), SUM, AVG, VAR, VAR_POP, STDDEV, STDDEV_POP, MIN, MAX, MEDIAN, PERCENTILE_CONT, APPROX_PERCENTILE_CONT, APPROX_MEDIAN)"
            ));
        }
    };
    Ok((agg, func))
}

fn no_filter(func: &str) -> String {
    format!("{func}(...) FILTER (WHERE ...) is not supported yet; use WHERE")
}

/// The aggregate's first argument, which must be a row expression.
fn row_argument<'a>(func: &str, p: &'a AggregateFunctionParams) -> Result<&'a Expr, String> {
    let arg = strip_alias(&p.args[0]);
    let mut row_reasons = Vec::new();
    check_shape(arg, &mut row_reasons);
    match row_reasons.into_iter().next() {
        Some(r) => Err(format!("{func}({arg}): {r}")),
        None => Ok(arg),
    }
}

/// MIN, MAX, MEDIAN or a percentile: one DP quantile over a public grid of
/// the argument's bounds.
fn quantile_of(
    func: &str,
    alpha: f64,
    p: &AggregateFunctionParams,
    scope: &RowScope,
    k: u64,
    m: &mut Measurements,
) -> Result<Aggregate, String> {
    if p.filter.is_some() {
        return Err(no_filter(func));
    }
    let arg = row_argument(func, p)?;
    let (lower, upper) = bounds_of(arg, scope).map_err(|e| format!("{func}({arg}): {e}"))?;
    let candidates = quantile_candidates(lower, upper, is_integer_valued(arg, scope));
    let kind = MeasurementKind::Quantile {
        column: arg.to_string(),
        alpha,
        lower,
        upper,
        candidates,
    };
    Ok(Aggregate::Quantile {
        quantile: m.find_or_add(kind, Some(arg.clone()), k),
    })
}

/// COUNT(*), COUNT(expr) or COUNT(DISTINCT expr). Each of a unit's k rows
/// adds at most one value to its group's count, distinct or not: the L1
/// sensitivity is k either way.
fn count_of(
    arg: &Expr,
    distinct: bool,
    scope: &RowScope,
    k: u64,
    m: &mut Measurements,
) -> Aggregate {
    let count = match arg {
        Expr::Literal(v, _) if !v.is_null() && !distinct => {
            m.find_or_add(MeasurementKind::CountRows, None, k)
        }
        _ => m.count_values(arg, distinct, scope, k),
    };
    Aggregate::Count { count }
}

/// VARIANCE or STDDEV (sample or population): from the sum, the sum of
/// squares and the count (of the distinct values, with DISTINCT).
fn variance_of(
    func: &str,
    arg: &Expr,
    distinct: bool,
    scope: &RowScope,
    k: u64,
    m: &mut Measurements,
) -> Result<Aggregate, String> {
    let (lower, upper) = bounds_of(arg, scope).map_err(|e| format!("{func}({arg}): {e}"))?;
    if distinct && lower < 0.0 && upper > 0.0 {
        // The squares are summed DISTINCT too, and x and -x share one.
        return Err(format!(
            "{func}(DISTINCT {arg}): its bounds [{lower}, {upper}] span zero, where x and -x have one square, so the distinct squares do not give the distinct values' variance; shift the values, e.g. {func}(DISTINCT {arg} - ({lower}))"
        ));
    }
    let int = is_integer_valued(arg, scope);
    let clamp = !within_bounds_verified(arg, scope);
    let (kind, sens) = sum_measurement(arg.to_string(), (lower, upper), int, clamp, distinct, k);
    let sum = m.find_or_add(kind, Some(arg.clone()), sens);
    let (sq_lo, sq_hi) = if lower >= 0.0 {
        (lower * lower, upper * upper)
    } else if upper <= 0.0 {
        (upper * upper, lower * lower)
    } else {
        (0.0, (lower * lower).max(upper * upper))
    };
    if sq_hi > 1e15 {
        return Err(format!(
            "{func}({arg}): the squares' bounds are too wide to sum exactly"
        ));
    }
    let (kind, sens) = sum_measurement(
        format!("({arg})^2"),
        (sq_lo, sq_hi),
        int,
        clamp,
        distinct,
        k,
    );
    let squares = m.find_or_add(kind, Some(arg.clone() * arg.clone()), sens);
    let count = m.count_values(arg, distinct, scope, k);
    Ok(Aggregate::Var {
        sum,
        squares,
        count,
        sample: !func.ends_with("_pop"),
        root: func.starts_with("stddev"),
    })
}

/// SUM, or AVG as a sum over a count. With DISTINCT: over the distinct
/// values of each cell (after clamping), whose sum one unit's k rows still
/// change by at most k values.
fn sum_or_avg_of(
    func: &str,
    arg: &Expr,
    distinct: bool,
    scope: &RowScope,
    k: u64,
    m: &mut Measurements,
) -> Result<Aggregate, String> {
    let (lower, upper) = bounds_of(arg, scope).map_err(|e| {
        if e.contains("has no declared bounds") {
            // Keep the message users search for.
            format!("{func}({arg}): {e}").replace(
                "a sum over it",
                &format!("{}({arg})", func.to_ascii_uppercase()),
            )
        } else {
            format!("{func}({arg}): {e}")
        }
    })?;
    let (kind, sens) = sum_measurement(
        arg.to_string(),
        (lower, upper),
        is_integer_valued(arg, scope),
        !within_bounds_verified(arg, scope),
        distinct,
        k,
    );
    let sum = m.find_or_add(kind, Some(arg.clone()), sens);
    Ok(if func == "sum" {
        Aggregate::Sum { sum }
    } else {
        Aggregate::Avg {
            sum,
            count: m.count_values(arg, distinct, scope, k),
        }
    })
}

/// The quantile level of MIN, MAX, MEDIAN and the percentile functions
/// (None for other aggregates). The level must be a literal in [0, 1]; the
/// WITHIN GROUP order, when given, must be the argument ascending.
fn quantile_level(func: &str, p: &AggregateFunctionParams) -> Result<Option<f64>, String> {
    let level = match func {
        "min" => 0.0,
        "max" => 1.0,
        "median" | "approx_median" => 0.5,
        "percentile_cont" | "quantile_cont" | "approx_percentile_cont" => {
            let level = match p.args.get(1).map(strip_alias) {
                Some(Expr::Literal(v, _)) => literal_f64(v),
                _ => None,
            };
            match level {
                Some(l) if (0.0..=1.0).contains(&l) => l,
                _ => {
                    return Err(format!(
                        "{func}: the percentile must be a literal number between 0 and 1"
                    ));
                }
            }
        }
        _ => return Ok(None),
    };
    let wanted_args = if matches!(func, "min" | "max" | "median" | "approx_median") {
        1
    } else {
        2
    };
    if p.args.len() != wanted_args {
        return Err(format!(
            "{func} with {} arguments is not supported (the DP quantile needs the value and, for percentiles, the level)",
            p.args.len()
        ));
    }
    if p.distinct {
        return Err(format!(
            "{func}(DISTINCT ...) is not supported: distinct values have no per-unit bound"
        ));
    }
    match p.order_by.as_slice() {
        [] => {}
        [o] if o.asc && strip_alias(&o.expr) == strip_alias(&p.args[0]) => {}
        _ => {
            return Err(format!(
                "{func} WITHIN GROUP: only ORDER BY the argument ascending is supported"
            ));
        }
    }
    Ok(Some(level))
}

/// The public grid a quantile is chosen from: every integer of an integer
/// column's bounds when there are at most `QUANTILE_GRID` of them, otherwise
/// `QUANTILE_GRID` evenly spaced points from `lower` to `upper`.
fn quantile_candidates(lower: f64, upper: f64, int_column: bool) -> Vec<f64> {
    if upper <= lower {
        return vec![lower];
    }
    if int_column {
        let (lo, hi) = (lower.ceil(), upper.floor());
        if hi - lo < QUANTILE_GRID as f64 {
            return (0..=(hi - lo) as u64).map(|i| lo + i as f64).collect();
        }
    }
    let steps = (QUANTILE_GRID - 1) as f64;
    let mut grid: Vec<f64> = (0..QUANTILE_GRID)
        .map(|i| lower + (upper - lower) * (i as f64 / steps))
        .collect();
    grid.dedup();
    grid
}

/// A fixed-point SUM of a value bounded by `(lower, upper)` (clamped to it
/// unless ingest verified the inputs), and its L1 sensitivity when each
/// unit has at most `k` rows.
fn sum_measurement(
    column: String,
    (lower, upper): (f64, f64),
    int_column: bool,
    clamp: bool,
    distinct: bool,
    k: u64,
) -> (MeasurementKind, u64) {
    // Integer columns are summed exactly; other values in fixed point.
    let (scale, per_row) = sluice_dp::fixed_point(lower.abs().max(upper.abs()), int_column);
    (
        MeasurementKind::Sum {
            column,
            lower,
            upper,
            scale,
            clamp,
            distinct,
        },
        k.saturating_mul(per_row),
    )
}
