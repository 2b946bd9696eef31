//! Analysis of a query's logical plan. The plan is produced by DataFusion's
//! SQL planner against empty tables (schemas only), then checked node by
//! node: only the shapes listed here are accepted, everything else is
//! rejected with the construct named and the reason. Sensitivities are
//! computed from the declared schemas.

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::catalog::empty::EmptyTable;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::prelude::SessionContext;
use sluice_types::privacy::{Delta, Epsilon};
use sluice_types::sandbox::{QueryTask, SandboxTable};
use sluice_types::schema::{ColumnSpec, DomainValue};

use crate::Rejection;
use crate::session::{arrow_schema, locked_context, sql_options};

/// Largest number of output cells (product of the group keys' domain sizes).
pub const MAX_CELLS: usize = 1_000_000;

#[derive(Debug, Clone)]
pub struct GroupKey {
    /// The key column as it appears in the row-level plan.
    pub expr: Expr,
    pub column: ColumnSpec,
    /// The declared domain, sorted: the release has one row per value (or
    /// per combination of values), empty groups included. None: the key has
    /// no public domain, and keys found in the data are released only when
    /// their noisy count passes the key threshold.
    pub domain: Option<Vec<DomainValue>>,
}

/// Most δ a job may spend on releasing keys that are not public.
pub const MAX_KEY_DELTA: f64 = 1e-5;

/// How keys without a public domain are released: a key found in the data
/// is kept only if its noisy row count (measurement `count`) exceeds
/// `threshold`, chosen so that a key of a single unit escapes with
/// probability at most δ.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySelection {
    pub count: usize,
    pub threshold: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MeasurementKind {
    /// COUNT(*): rows per cell.
    CountRows,
    /// COUNT(expr): non-null values per cell.
    CountNonNull { column: String },
    /// COUNT(DISTINCT expr): distinct non-null values per cell.
    CountDistinct { expr: String },
    /// SUM of the column clamped to `[lower, upper]`, in fixed point:
    /// each value is multiplied by `scale` and rounded to an integer.
    Sum {
        column: String,
        lower: f64,
        upper: f64,
        scale: f64,
        /// False when ingest verified the inputs within bounds.
        clamp: bool,
    },
    /// The `alpha`-quantile of the column clamped to `[lower, upper]`, by the
    /// exponential mechanism over `candidates` (a public grid of the bounds).
    Quantile {
        column: String,
        alpha: f64,
        lower: f64,
        upper: f64,
        candidates: Vec<f64>,
    },
}

/// Most candidates of a quantile's grid: the release is one of them.
pub const QUANTILE_GRID: usize = 4096;

/// One noised vector (one value per cell).
#[derive(Debug, Clone)]
pub struct Measurement {
    pub kind: MeasurementKind,
    /// The argument column in the row-level plan (None for COUNT(*)).
    pub input: Option<Expr>,
    /// L1 sensitivity over the whole vector of cells, in integer units, when
    /// one privacy unit is added or removed. For a quantile: the most rows
    /// one unit adds to or removes from all cells together.
    pub l1_sensitivity: u64,
    pub epsilon: Epsilon,
}

impl Measurement {
    /// Integer units per output unit: a sum's fixed-point scale, else 1.
    pub fn fixed_point_scale(&self) -> f64 {
        match &self.kind {
            MeasurementKind::Sum { scale, .. } => *scale,
            _ => 1.0,
        }
    }

    pub fn describe(&self) -> String {
        match &self.kind {
            MeasurementKind::CountRows => "count(*)".to_owned(),
            MeasurementKind::CountNonNull { column } => format!("count({column})"),
            MeasurementKind::CountDistinct { expr } => format!("count(distinct {expr})"),
            MeasurementKind::Sum { column, .. } => format!("sum({column})"),
            MeasurementKind::Quantile { column, alpha, .. } => {
                format!("quantile({column}, {alpha})")
            }
        }
    }
}

/// A released aggregate, computed from measurements by post-processing.
#[derive(Debug, Clone, PartialEq)]
pub enum Aggregate {
    Count {
        count: usize,
    },
    Sum {
        sum: usize,
    },
    Avg {
        sum: usize,
        count: usize,
    },
    /// VARIANCE / STDDEV from the sum, the sum of squares and the count.
    Var {
        sum: usize,
        squares: usize,
        count: usize,
        sample: bool,
        root: bool,
    },
    /// MIN, MAX, MEDIAN and percentiles: one quantile measurement.
    Quantile {
        quantile: usize,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Key {
        key: usize,
        name: String,
    },
    Aggregate {
        agg: Aggregate,
        func: String,
        name: String,
    },
}

#[derive(Debug, Clone)]
pub struct Analysis {
    /// Row-level part of the plan (below the aggregate): scans and filters.
    pub row_plan: LogicalPlan,
    /// Names of the datasets read.
    pub datasets: Vec<String>,
    /// The privacy-unit column in the row-level plan; None: each row is a unit.
    pub unit: Option<Expr>,
    /// Most rows one privacy unit contributes (after joins); enforced in the
    /// plan unless `bound_verified`.
    pub max_rows_per_unit: u64,
    /// Every table's row bound was verified at ingest: the bound holds
    /// without the bounding step.
    pub bound_verified: bool,
    /// (table, column) of public tables joined on a key declared unique.
    pub public_keys: Vec<(String, String)>,
    pub group_keys: Vec<GroupKey>,
    pub measurements: Vec<Measurement>,
    pub outputs: Vec<Output>,
    pub epsilon: Epsilon,
    /// δ spent, on key selection only (zero when every key is public).
    pub delta: Delta,
    pub key_selection: Option<KeySelection>,
    /// Cells released before HAVING and LIMIT; with key selection, the
    /// number depends on the data and this is 0.
    pub cells: usize,
    /// Every aggregate of the query, in the aggregate node's order (HAVING
    /// may use aggregates that are not selected).
    pub aggregates: Vec<Aggregate>,
    /// The aggregate node's output schema (keys, then aggregates).
    pub aggregate_schema: datafusion::common::DFSchemaRef,
    pub post: PostProcess,
}

/// HAVING, ORDER BY and LIMIT: applied to released (noised) rows only, so
/// they cost no privacy.
#[derive(Debug, Clone, Default)]
pub struct PostProcess {
    pub having: Option<Expr>,
    /// (output column name, ascending, nulls first)
    pub order: Vec<(String, bool, bool)>,
    pub skip: usize,
    pub fetch: Option<usize>,
}

impl Analysis {
    /// The ε an output column consumes: the sum of its measurements' shares.
    pub fn output_epsilon(&self, agg: &Aggregate) -> Epsilon {
        let units = match agg {
            Aggregate::Count { count: i }
            | Aggregate::Sum { sum: i }
            | Aggregate::Quantile { quantile: i } => self.measurements[*i].epsilon.units(),
            Aggregate::Avg { sum, count } => {
                self.measurements[*sum].epsilon.units() + self.measurements[*count].epsilon.units()
            }
            Aggregate::Var {
                sum,
                squares,
                count,
                ..
            } => {
                self.measurements[*sum].epsilon.units()
                    + self.measurements[*squares].epsilon.units()
                    + self.measurements[*count].epsilon.units()
            }
        };
        Epsilon::from_units(units)
    }

    /// Exact cost and expected error of every output column, from the
    /// calibrated mechanisms; reads no data.
    pub fn estimate(&self) -> Result<sluice_types::sandbox::Estimate, sluice_dp::DpError> {
        use sluice_types::sandbox::{ColumnEstimate, Estimate};
        let mechanisms = self
            .measurements
            .iter()
            .map(Mechanism::calibrate)
            .collect::<Result<Vec<_>, _>>()?;
        let scale_of = |i: usize| self.measurements[i].fixed_point_scale();
        let columns = self
            .outputs
            .iter()
            .map(|o| match o {
                Output::Key { name, .. } => ColumnEstimate {
                    name: name.clone(),
                    aggregate: None,
                    epsilon: None,
                    std_dev: None,
                    ci95_halfwidth: None,
                    rank_error95: None,
                    note: None,
                },
                Output::Aggregate { agg, func, name } => {
                    let mut rank_error95 = None;
                    let (std_dev, half, note) = match agg {
                        Aggregate::Quantile { quantile } => {
                            let t = mechanisms[*quantile].rank_error95();
                            rank_error95 = Some(t);
                            (
                                None,
                                None,
                                Some(format!(
                                    "a DP quantile: one of {} candidates from the declared bounds; with 95% confidence its rank is off by at most {t} row(s)",
                                    self.candidates_of(*quantile)
                                )),
                            )
                        }
                        Aggregate::Count { count: i } | Aggregate::Sum { sum: i } => (
                            Some(mechanisms[*i].std_dev() / scale_of(*i)),
                            Some(mechanisms[*i].ci_halfwidth() / scale_of(*i)),
                            None,
                        ),
                        Aggregate::Var { sum, squares, count, .. } => (
                            None,
                            None,
                            Some(format!(
                                "from a sum (noise sd {:.4}), a sum of squares (noise sd {:.4}) and a count (noise sd {:.4}); its error shrinks with the group's size",
                                mechanisms[*sum].std_dev() / scale_of(*sum),
                                mechanisms[*squares].std_dev() / scale_of(*squares),
                                mechanisms[*count].std_dev()
                            )),
                        ),
                        Aggregate::Avg { sum, count } => (
                            None,
                            None,
                            Some(format!(
                                "ratio of a sum with noise sd {:.4} and a count with noise sd {:.4}; its error shrinks with the group's size",
                                mechanisms[*sum].std_dev() / scale_of(*sum),
                                mechanisms[*count].std_dev()
                            )),
                        ),
                    };
                    ColumnEstimate {
                        name: name.clone(),
                        aggregate: Some(func.clone()),
                        epsilon: Some(self.output_epsilon(agg)),
                        std_dev,
                        ci95_halfwidth: half,
                        rank_error95,
                        note,
                    }
                }
            })
            .collect();
        Ok(Estimate {
            epsilon: self.epsilon,
            delta: self.delta,
            rows: self.cells as u64,
            key_threshold: self.key_selection.as_ref().map(|k| k.threshold),
            columns,
        })
    }

    fn candidates_of(&self, i: usize) -> usize {
        match &self.measurements[i].kind {
            MeasurementKind::Quantile { candidates, .. } => candidates.len(),
            _ => 0,
        }
    }

    /// A reviewer-readable description of what will run.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "dataset(s) {}; contribution bound: {} row(s) per privacy unit{}; {} cell(s)",
            self.datasets.join(", "),
            self.max_rows_per_unit,
            if self.unit.is_none() {
                " (each row is a unit)"
            } else if self.bound_verified {
                " (verified at ingest)"
            } else {
                " (enforced in the plan)"
            },
            self.cells
        );
        if let Some(ks) = &self.key_selection {
            s.push_str(&format!(
                "; group keys without a public domain are released only where the noisy {} exceeds {} (delta {})",
                self.measurements[ks.count].describe(),
                ks.threshold,
                self.delta
            ));
        }
        for m in &self.measurements {
            s.push_str(&format!(
                "; {}: L1 sensitivity {} unit(s), epsilon {}",
                m.describe(),
                m.l1_sensitivity,
                m.epsilon
            ));
        }
        s
    }
}

/// A measurement's calibrated mechanism.
pub(crate) enum Mechanism {
    Laplace(sluice_dp::DiscreteLaplace),
    Quantile(sluice_dp::Quantile),
}

impl Mechanism {
    pub(crate) fn calibrate(m: &Measurement) -> Result<Self, sluice_dp::DpError> {
        Ok(match &m.kind {
            MeasurementKind::Quantile {
                alpha, candidates, ..
            } => Mechanism::Quantile(sluice_dp::Quantile::calibrate(
                candidates.clone(),
                *alpha,
                m.l1_sensitivity,
                m.epsilon,
            )?),
            _ => Mechanism::Laplace(sluice_dp::DiscreteLaplace::calibrate(
                m.l1_sensitivity,
                m.epsilon,
            )?),
        })
    }

    pub(crate) fn std_dev(&self) -> f64 {
        match self {
            Mechanism::Laplace(l) => l.std_dev(),
            Mechanism::Quantile(_) => f64::NAN,
        }
    }

    pub(crate) fn ci_halfwidth(&self) -> f64 {
        match self {
            Mechanism::Laplace(l) => l.ci_halfwidth(),
            Mechanism::Quantile(_) => f64::NAN,
        }
    }

    pub(crate) fn rank_error95(&self) -> f64 {
        match self {
            Mechanism::Quantile(q) => q.rank_error95(),
            Mechanism::Laplace(_) => f64::NAN,
        }
    }
}

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
    crate::rowexpr::check_rows(ctx, &a.row_plan, &exprs)
}

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

/// Plans SQL under the locked-down options; errors name only SQL and schema.
pub(crate) async fn plan_query(ctx: &SessionContext, sql: &str) -> Result<LogicalPlan, Rejection> {
    let df = ctx
        .sql_with_options(sql, sql_options())
        .await
        .map_err(|e| Rejection(vec![planning_message(&e.to_string())]))?;
    Ok(df.logical_plan().clone())
}

pub(crate) fn planning_message(e: &str) -> String {
    let e = e.trim();
    if e.contains("DDL not supported")
        || e.contains("DML not supported")
        || e.contains("Statement not supported")
    {
        return format!("only SELECT queries are allowed ({e})");
    }
    // DataFusion's messages repeat prefixes and add bug-report boilerplate.
    let first = e.lines().next().unwrap_or(e);
    let mut msg = first;
    while let Some(rest) = ["Error during planning: ", "Internal error: ", "SQL error: "]
        .iter()
        .find_map(|p| msg.strip_prefix(p))
    {
        msg = rest;
    }
    let msg = msg.split(", errors:").next().unwrap_or(msg);
    format!("the query could not be planned: {msg}")
}

pub(crate) fn analyze_plan(
    plan: &LogicalPlan,
    tables: &[SandboxTable],
    epsilon: Epsilon,
    delta: Delta,
    split: &std::collections::BTreeMap<String, f64>,
) -> Result<Analysis, Rejection> {
    let mut reasons = Vec::new();
    // Post-processing above the projection: LIMIT and ORDER BY on released rows.
    let mut post = PostProcess::default();
    let mut node = plan;
    if let LogicalPlan::Limit(l) = node {
        use datafusion::logical_expr::{FetchType, SkipType};
        match (l.get_skip_type(), l.get_fetch_type()) {
            (Ok(SkipType::Literal(skip)), Ok(FetchType::Literal(fetch))) => {
                post.skip = skip;
                post.fetch = fetch;
            }
            _ => reasons.push("LIMIT and OFFSET must be literal numbers".into()),
        }
        node = &l.input;
    }
    if let LogicalPlan::Sort(sort) = node {
        for e in &sort.expr {
            match &e.expr {
                Expr::Column(c) => post.order.push((c.name.clone(), e.asc, e.nulls_first)),
                other => reasons.push(format!(
                    "ORDER BY {other}: order by output columns (their names or aliases)"
                )),
            }
        }
        if let Some(f) = sort.fetch {
            post.fetch = Some(post.fetch.map_or(f, |x| x.min(f)));
        }
        node = &sort.input;
    }
    let (projection, aggregate) = match node {
        LogicalPlan::Projection(p) => match p.input.as_ref() {
            LogicalPlan::Aggregate(a) => (p, a),
            LogicalPlan::Filter(f) if matches!(f.input.as_ref(), LogicalPlan::Aggregate(_)) => {
                let LogicalPlan::Aggregate(a) = f.input.as_ref() else {
                    unreachable!()
                };
                check_row_expr(&f.predicate, &mut reasons);
                post.having = Some(f.predicate.clone());
                (p, a)
            }
            LogicalPlan::Sort(_) => {
                return Err(Rejection(vec![
                    "ORDER BY a column that is not selected is not supported; select it too".into(),
                ]));
            }
            other => {
                reasons.push(no_aggregate_reason(other));
                return Err(Rejection(reasons));
            }
        },
        LogicalPlan::Distinct(_) => {
            return Err(Rejection(vec![
                "SELECT DISTINCT would release raw values: only aggregates are released".into(),
            ]));
        }
        LogicalPlan::Union(_) => {
            return Err(Rejection(vec![
                "UNION of aggregate queries is not supported: UNION ALL the rows in a subquery, then aggregate".into(),
            ]));
        }
        other => {
            return Err(Rejection(vec![format!(
                "{} at the top of the query is not supported: the query must be SELECT <group keys and aggregates> FROM <table> [WHERE ...] [GROUP BY ...] [HAVING ...] [ORDER BY ...] [LIMIT ...]",
                node_name(other)
            )]));
        }
    };
    for (name, _, _) in &post.order {
        if projection
            .schema
            .index_of_column_by_name(None, name)
            .is_none()
        {
            reasons.push(format!("ORDER BY {name}: not an output column"));
        }
    }

    // Row-level input: scans, filters and joins on the privacy unit.
    let Some(scope) = crate::rows::scope_of(&aggregate.input, tables, &mut reasons) else {
        if reasons.is_empty() {
            reasons.push("the query reads no dataset of this job".into());
        }
        return Err(Rejection(reasons));
    };
    let k = scope.max_rows_per_unit;
    let unit = scope.unit.clone().map(Expr::Column);

    // Group keys: columns with a declared public domain, or keys selected
    // from the data by DP thresholding (which costs δ).
    let mut group_keys = Vec::new();
    for g in &aggregate.group_expr {
        match strip_alias(g) {
            Expr::Column(c) => match scope.column(c) {
                Ok(spec) if spec.role.is_pseudonymised() => reasons.push(format!(
                    "GROUP BY {}: the column is an identifier; its pseudonyms are never released",
                    c.name
                )),
                Ok(spec) => match &spec.domain {
                    Some(domain) => {
                        let mut domain = domain.clone();
                        domain.sort();
                        group_keys.push(GroupKey {
                            expr: Expr::Column(c.clone()),
                            column: spec.clone(),
                            domain: Some(domain),
                        });
                    }
                    None if spec.ty == sluice_types::schema::ColumnType::Float => {
                        reasons.push(format!(
                            "GROUP BY {}: a float column without a declared domain cannot be a key; bucket it with CASE in a subquery",
                            c.name
                        ))
                    }
                    None if delta == Delta::ZERO => reasons.push(format!(
                        "GROUP BY {}: the column has no declared public domain, so its keys must be selected by DP thresholding, which needs privacy.delta > 0 (at most {MAX_KEY_DELTA})",
                        c.name
                    )),
                    None => group_keys.push(GroupKey {
                        expr: Expr::Column(c.clone()),
                        column: spec.clone(),
                        domain: None,
                    }),
                },
                Err(e) => reasons.push(format!("GROUP BY: {e}")),
            },
            Expr::GroupingSet(_) => reasons.push("GROUPING SETS, ROLLUP and CUBE are not supported yet".into()),
            other => reasons.push(format!(
                "GROUP BY {other}: only plain columns with a declared public domain can be group keys"
            )),
        }
    }
    let selects_keys = group_keys.iter().any(|g| g.domain.is_none());
    if delta != Delta::ZERO && !selects_keys {
        reasons.push(
            "privacy.delta is set, but every group key of this query is public, so the query is pure epsilon-DP: remove privacy.delta (it would be charged as asked)"
                .into(),
        );
    }
    if delta.as_f64() > MAX_KEY_DELTA {
        reasons.push(format!(
            "privacy.delta {delta} is above the limit of {MAX_KEY_DELTA} per job"
        ));
    }
    let cells = if selects_keys {
        0
    } else {
        group_keys
            .iter()
            .filter_map(|g| g.domain.as_ref())
            .try_fold(1usize, |acc, d| acc.checked_mul(d.len()))
            .unwrap_or(usize::MAX)
    };
    if cells > MAX_CELLS {
        reasons.push(format!(
            "the group keys' domains give {cells} cells, more than the limit of {MAX_CELLS}"
        ));
    }

    // Aggregates → measurements.
    let mut measurements: Vec<Measurement> = Vec::new();
    let mut find_or_add = |kind: MeasurementKind, input: Option<Expr>, sens: u64| -> usize {
        if let Some(i) = measurements.iter().position(|m| m.kind == kind) {
            return i;
        }
        measurements.push(Measurement {
            kind,
            input,
            l1_sensitivity: sens,
            epsilon: Epsilon::from_units(0),
        });
        measurements.len() - 1
    };
    let mut aggregates: Vec<Option<(Aggregate, String)>> = Vec::new();
    for a in &aggregate.aggr_expr {
        let r = aggregate_of(strip_alias(a), &scope, k, &mut find_or_add);
        match r {
            Ok(agg) => aggregates.push(Some(agg)),
            Err(reason) => {
                reasons.push(reason);
                aggregates.push(None);
            }
        }
    }
    if aggregate.aggr_expr.is_empty() {
        reasons.push(
            "the query has no aggregate: GROUP BY alone would release the keys present in the data"
                .into(),
        );
    }

    // Projection: each output is a group key or an aggregate.
    // Group fields come first in the aggregate's schema (grouping sets add
    // a grouping id, so count fields rather than group expressions).
    let n_keys = aggregate
        .schema
        .fields()
        .len()
        .saturating_sub(aggregate.aggr_expr.len());
    let mut outputs = Vec::new();
    for (i, e) in projection.expr.iter().enumerate() {
        let name = projection.schema.field(i).name().clone();
        match strip_alias(e) {
            Expr::Column(c) => match aggregate.schema.index_of_column(c) {
                Ok(idx) if idx < n_keys => outputs.push(Output::Key { key: idx, name }),
                Ok(idx) => {
                    if let Some(Some((agg, func))) = aggregates.get(idx - n_keys).cloned() {
                        outputs.push(Output::Aggregate { agg, func, name })
                    }
                }
                Err(_) => reasons.push(format!("output {name} is not a group key or an aggregate")),
            },
            other => reasons.push(format!(
                "output {other}: expressions over aggregates are not supported yet; select the aggregate itself"
            )),
        }
    }

    // Key selection thresholds the noisy row count, shared with COUNT(*).
    let key_count = selects_keys.then(|| find_or_add(MeasurementKind::CountRows, None, k));

    if !reasons.is_empty() {
        return Err(Rejection(reasons));
    }
    let names: Vec<String> = measurements.iter().map(Measurement::describe).collect();
    let unknown: Vec<&String> = split.keys().filter(|k| !names.contains(k)).collect();
    if !unknown.is_empty() {
        return Err(Rejection(vec![format!(
            "privacy.split names {} but this query's measurements are {}",
            unknown
                .iter()
                .map(|k| format!("\"{k}\""))
                .collect::<Vec<_>>()
                .join(", "),
            names
                .iter()
                .map(|k| format!("\"{k}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )]));
    }
    let weights: Vec<f64> = names
        .iter()
        .map(|n| split.get(n).copied().unwrap_or(1.0))
        .collect();
    let shares = sluice_dp::split_epsilon_weighted(epsilon, &weights)
        .map_err(|e| Rejection(vec![format!("privacy.split: {e}")]))?;
    for (m, e) in measurements.iter_mut().zip(shares) {
        m.epsilon = e;
    }
    let key_selection = match key_count {
        Some(count) => {
            let m = &measurements[count];
            let scale = sluice_dp::DiscreteLaplace::calibrate(m.l1_sensitivity, m.epsilon)
                .map_err(|e| Rejection(vec![format!("key selection: {e}")]))?
                .scale();
            let threshold = sluice_dp::key_threshold(scale, k, delta)
                .map_err(|e| Rejection(vec![format!("key selection: {e}")]))?;
            Some(KeySelection { count, threshold })
        }
        None => None,
    };
    Ok(Analysis {
        row_plan: aggregate.input.as_ref().clone(),
        datasets: scope.datasets(),
        bound_verified: scope.bound_verified,
        public_keys: scope.public_keys.clone(),
        unit,
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

fn aggregate_of(
    e: &Expr,
    scope: &crate::rows::RowScope,
    k: u64,
    find_or_add: &mut impl FnMut(MeasurementKind, Option<Expr>, u64) -> usize,
) -> Result<(Aggregate, String), String> {
    let Expr::AggregateFunction(f) = e else {
        return Err(format!("{e} is not an aggregate"));
    };
    let func = f.func.name().to_ascii_lowercase();
    let p = &f.params;
    if let Some(alpha) = quantile_level(&func, p)? {
        if p.filter.is_some() {
            return Err(format!(
                "{func}(...) FILTER (WHERE ...) is not supported yet; use WHERE"
            ));
        }
        let arg = strip_alias(&p.args[0]);
        let mut row_reasons = Vec::new();
        check_row_expr(arg, &mut row_reasons);
        if let Some(r) = row_reasons.into_iter().next() {
            return Err(format!("{func}({arg}): {r}"));
        }
        let (lower, upper) =
            crate::bounds::bounds_of(arg, scope).map_err(|e| format!("{func}({arg}): {e}"))?;
        let candidates =
            quantile_candidates(lower, upper, crate::bounds::is_int_column(arg, scope));
        let kind = MeasurementKind::Quantile {
            column: arg.to_string(),
            alpha,
            lower,
            upper,
            candidates,
        };
        return Ok((
            Aggregate::Quantile {
                quantile: find_or_add(kind, Some(arg.clone()), k),
            },
            func,
        ));
    }
    if p.filter.is_some() {
        return Err(format!(
            "{func}(...) FILTER (WHERE ...) is not supported yet; use WHERE"
        ));
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
    let arg = strip_alias(&p.args[0]);
    let mut row_reasons = Vec::new();
    check_row_expr(arg, &mut row_reasons);
    if let Some(r) = row_reasons.into_iter().next() {
        return Err(format!("{func}({arg}): {r}"));
    }
    if p.distinct && func != "count" {
        return Err(format!(
            "{func}(DISTINCT ...) is not supported: a distinct sum or average has no useful bound"
        ));
    }
    match func.as_str() {
        "count" => match arg {
            Expr::Literal(v, _) if !v.is_null() && !p.distinct => Ok((
                Aggregate::Count {
                    count: find_or_add(MeasurementKind::CountRows, None, k),
                },
                func,
            )),
            // Each of a unit's k rows adds at most one value to its group's
            // count, distinct or not: the L1 sensitivity is k either way.
            _ if p.distinct => {
                let kind = MeasurementKind::CountDistinct {
                    expr: arg.to_string(),
                };
                Ok((
                    Aggregate::Count {
                        count: find_or_add(kind, Some(arg.clone()), k),
                    },
                    func,
                ))
            }
            _ => {
                let kind = MeasurementKind::CountNonNull {
                    column: arg.to_string(),
                };
                Ok((
                    Aggregate::Count {
                        count: find_or_add(kind, Some(arg.clone()), k),
                    },
                    func,
                ))
            }
        },
        "var" | "var_pop" | "stddev" | "stddev_pop" => {
            let (lower, upper) =
                crate::bounds::bounds_of(arg, scope).map_err(|e| format!("{func}({arg}): {e}"))?;
            let int = crate::bounds::is_int_column(arg, scope);
            let clamp = !crate::bounds::within_bounds_verified(arg, scope);
            let (kind, sens) = sum_measurement(arg.to_string(), (lower, upper), int, clamp, k);
            let sum = find_or_add(kind, Some(arg.clone()), sens);
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
            let (kind, sens) = sum_measurement(format!("({arg})^2"), (sq_lo, sq_hi), int, clamp, k);
            let squares = find_or_add(kind, Some(arg.clone() * arg.clone()), sens);
            let count = find_or_add(
                MeasurementKind::CountNonNull {
                    column: arg.to_string(),
                },
                Some(arg.clone()),
                k,
            );
            Ok((
                Aggregate::Var {
                    sum,
                    squares,
                    count,
                    sample: !func.ends_with("_pop"),
                    root: func.starts_with("stddev"),
                },
                func,
            ))
        }
        "sum" | "avg" => {
            let (lower, upper) = crate::bounds::bounds_of(arg, scope).map_err(|e| {
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
                crate::bounds::is_int_column(arg, scope),
                !crate::bounds::within_bounds_verified(arg, scope),
                k,
            );
            let sum = find_or_add(kind, Some(arg.clone()), sens);
            if func == "sum" {
                Ok((Aggregate::Sum { sum }, func))
            } else {
                let count = find_or_add(
                    MeasurementKind::CountNonNull {
                        column: arg.to_string(),
                    },
                    Some(arg.clone()),
                    k,
                );
                Ok((Aggregate::Avg { sum, count }, func))
            }
        }
        other => Err(format!(
            "aggregate {other} is not supported yet (supported: COUNT, COUNT(DISTINCT), SUM, AVG, VAR, VAR_POP, STDDEV, STDDEV_POP, MIN, MAX, MEDIAN, PERCENTILE_CONT, APPROX_PERCENTILE_CONT, APPROX_MEDIAN)"
        )),
    }
}

/// The quantile level of MIN, MAX, MEDIAN and the percentile functions
/// (None for other aggregates). The level must be a literal in [0, 1]; the
/// WITHIN GROUP order, when given, must be the argument ascending.
fn quantile_level(
    func: &str,
    p: &datafusion::logical_expr::expr::AggregateFunctionParams,
) -> Result<Option<f64>, String> {
    let level = match func {
        "min" => 0.0,
        "max" => 1.0,
        "median" | "approx_median" => 0.5,
        "percentile_cont" | "quantile_cont" | "approx_percentile_cont" => {
            let level = match p.args.get(1).map(strip_alias) {
                Some(Expr::Literal(v, _)) => crate::bounds::literal_f64(v),
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
    k: u64,
) -> (MeasurementKind, u64) {
    let (scale, per_row) = fixed_point(lower, upper, int_column);
    (
        MeasurementKind::Sum {
            column,
            lower,
            upper,
            scale,
            clamp,
        },
        k.saturating_mul(per_row),
    )
}

/// Fixed-point scale and per-row sensitivity (in integer units) of a sum
/// clamped to `[lower, upper]`. Integer columns whose bound fits 2^30 are
/// summed exactly (scale 1); otherwise values are scaled by a power of two
/// so the largest clamped value is at most 2^30 units, which keeps sums of
/// up to 2^33 rows exact in i64.
fn fixed_point(lower: f64, upper: f64, int_column: bool) -> (f64, u64) {
    let magnitude = lower.abs().max(upper.abs());
    let limit = (1u64 << 30) as f64;
    let scale = if (int_column && magnitude <= limit) || magnitude == 0.0 {
        1.0
    } else {
        let exp = 30 - magnitude.log2().ceil() as i32;
        2f64.powi(exp.clamp(-60, 60))
    };
    (scale, ((magnitude * scale).ceil() as u64).max(1))
}

fn strip_alias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => strip_alias(&a.expr),
        other => other,
    }
}

fn no_aggregate_reason(input: &LogicalPlan) -> String {
    let _ = input;
    "the query selects rows, not aggregates: rows are never released (SELECT * and row-level selects are rejected); select COUNT, SUM or AVG, optionally GROUP BY columns with a declared domain".into()
}

pub(crate) fn node_name(plan: &LogicalPlan) -> String {
    match plan {
        LogicalPlan::Join(_) => "JOIN".into(),
        LogicalPlan::Union(_) => "UNION".into(),
        LogicalPlan::Window(_) => "a window function".into(),
        LogicalPlan::Subquery(_) => "a subquery".into(),
        LogicalPlan::Values(_) => "VALUES".into(),
        LogicalPlan::EmptyRelation(_) => "a query without FROM".into(),
        LogicalPlan::Distinct(_) => "DISTINCT".into(),
        LogicalPlan::Aggregate(_) => "a nested aggregate".into(),
        LogicalPlan::Projection(_) => "a derived table (subquery in FROM)".into(),
        other => format!("plan node {}", other.display()),
    }
}

/// Row predicates must be deterministic expressions over the row's columns.
pub(crate) fn check_row_expr(e: &Expr, reasons: &mut Vec<String>) {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let _ = e.apply(|node| {
        let before = reasons.len();
        check_row_node(node, reasons);
        Ok(if reasons.len() > before {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
}

/// The check of one node of a row expression (not its children).
pub(crate) fn check_row_node(node: &Expr, reasons: &mut Vec<String>) {
    let bad = match node {
        Expr::ScalarFunction(f) if node.is_volatile_node() => {
            Some(format!("{}() is not deterministic", f.func.name()))
        }
        Expr::Exists(_)
        | Expr::InSubquery(_)
        | Expr::ScalarSubquery(_)
        | Expr::SetComparison(_) => Some(
            "subqueries are supported only as unit IN (SELECT unit ...) or over public tables, in WHERE".into(),
        ),
        Expr::Placeholder(_) => Some("query parameters are not supported".into()),
        Expr::ScalarVariable(..) => Some("variables are not supported".into()),
        Expr::AggregateFunction(_) | Expr::WindowFunction(_) => {
            Some("aggregates and window functions are not allowed in WHERE".into())
        }
        Expr::OuterReferenceColumn(..) | Expr::Unnest(_) | Expr::GroupingSet(_) => {
            Some(format!("{node} is not supported in WHERE"))
        }
        _ => None,
    };
    if let Some(r) = bad {
        reasons.push(format!("WHERE: {r}"));
    }
}
