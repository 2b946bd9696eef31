//! What the analysis of a query produces, and all that follows from it
//! without data: the measurements with their ε shares, the released
//! aggregates and outputs, the estimate and the reviewer's description.

use datafusion::logical_expr::{Expr, LogicalPlan};
use sluice_types::privacy::{Delta, Epsilon};
use sluice_types::schema::{ColumnSpec, DomainValue};

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
        /// SUM(DISTINCT ...): each distinct fixed-point value once per cell.
        distinct: bool,
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
            MeasurementKind::Sum {
                column,
                distinct: false,
                ..
            } => format!("sum({column})"),
            MeasurementKind::Sum {
                column,
                distinct: true,
                ..
            } => format!("sum(distinct {column})"),
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
    /// An expression over released values, computed after noise: `expr`
    /// reads the aggregate node's columns (`aggregates` are the indices of
    /// the ones it uses in `Analysis::aggregates`, `funcs` their names).
    /// With no aggregate it is public: a constant, or a function of keys.
    Computed {
        expr: Expr,
        name: String,
        aggregates: Vec<usize>,
        reads_key: bool,
        funcs: Vec<String>,
    },
}

impl Output {
    pub fn name(&self) -> &str {
        match self {
            Output::Key { name, .. }
            | Output::Aggregate { name, .. }
            | Output::Computed { name, .. } => name,
        }
    }
}

impl Aggregate {
    /// The measurements this aggregate is computed from.
    pub fn measurements(&self) -> Vec<usize> {
        match self {
            Aggregate::Count { count: i }
            | Aggregate::Sum { sum: i }
            | Aggregate::Quantile { quantile: i } => vec![*i],
            Aggregate::Avg { sum, count } => vec![*sum, *count],
            Aggregate::Var {
                sum,
                squares,
                count,
                ..
            } => vec![*sum, *squares, *count],
        }
    }
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
    /// SELECT DISTINCT: released rows that are equal, cell by cell, once.
    pub distinct: bool,
    /// (output column name, ascending, nulls first)
    pub order: Vec<(String, bool, bool)>,
    pub skip: usize,
    pub fetch: Option<usize>,
}

impl Analysis {
    /// The ε an output column consumes: the sum of its measurements' shares.
    pub fn output_epsilon(&self, agg: &Aggregate) -> Epsilon {
        self.epsilon_of(agg.measurements())
    }

    /// The ε of a set of measurements, each counted once.
    fn epsilon_of(&self, mut measurements: Vec<usize>) -> Epsilon {
        measurements.sort_unstable();
        measurements.dedup();
        Epsilon::from_units(
            measurements
                .iter()
                .map(|i| self.measurements[*i].epsilon.units())
                .sum(),
        )
    }

    /// The ε a computed output consumes: its aggregates' measurements, once each.
    pub fn computed_epsilon(&self, aggregates: &[usize]) -> Epsilon {
        self.epsilon_of(
            aggregates
                .iter()
                .flat_map(|a| self.aggregates[*a].measurements())
                .collect(),
        )
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
                Output::Computed {
                    name,
                    aggregates,
                    funcs,
                    ..
                } => ColumnEstimate {
                    name: name.clone(),
                    aggregate: (!funcs.is_empty()).then(|| computed_label(funcs)),
                    epsilon: (!aggregates.is_empty()).then(|| self.computed_epsilon(aggregates)),
                    std_dev: None,
                    ci95_halfwidth: None,
                    rank_error95: None,
                    note: Some(computed_note(aggregates.len())),
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
                                "ratio of {} (noise sd {:.4}) and {} (noise sd {:.4}){}; its error shrinks with the group's size",
                                self.measurements[*sum].describe(),
                                mechanisms[*sum].std_dev() / scale_of(*sum),
                                self.measurements[*count].describe(),
                                mechanisms[*count].std_dev(),
                                self.shared_note(*count),
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

    /// Says so when measurement `i` is the row count that a COUNT(*) output
    /// releases too (an AVG of a never-null column): measured and charged once.
    fn shared_note(&self, i: usize) -> &'static str {
        let counted = self.outputs.iter().any(|o| {
            matches!(o, Output::Aggregate { agg: Aggregate::Count { count }, .. } if *count == i)
        });
        if counted && self.measurements[i].kind == MeasurementKind::CountRows {
            " (the count is the query's COUNT(*), measured once: the column is never null)"
        } else {
            ""
        }
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

/// The `aggregate` label of a computed output column.
pub(crate) fn computed_label(funcs: &[String]) -> String {
    format!("expression of {}", funcs.join(", "))
}

/// What the estimate says of a computed output using `n` aggregates.
fn computed_note(n: usize) -> String {
    match n {
        0 => "public: computed from literals and group keys, no noise and no privacy cost".into(),
        1 => "computed from a released aggregate after noise (no further privacy cost); its interval is the image of the aggregate's 95% interval, when the expression's operations bound it".into(),
        _ => "computed from several released aggregates after noise (no further privacy cost); no interval is stated".into(),
    }
}
