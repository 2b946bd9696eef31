//! Post-processing on released values only: a batch of one release's keys
//! and noisy aggregates, HAVING on it, and outputs computed from it with
//! the interval that their one noisy aggregate's interval implies. Nothing
//! here sees an exact value, so nothing here costs privacy.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Cast, Expr, ExprSchemable, Operator, TryCast};
use datafusion::prelude::{SessionContext, col};
use sluice_types::release::Cell;
use sluice_types::schema::DomainValue;

use crate::analyze::Analysis;
use crate::error::ExecError;
use crate::rowexpr::literal_f64;

/// The released values of every cell as the aggregate node's columns: keys
/// as declared, aggregates as their noisy values (Int64 where the query's
/// type is an integer, so SQL's integer arithmetic holds after noise).
pub(crate) struct ReleasedBatch {
    schema: DFSchema,
    batch: RecordBatch,
}

impl ReleasedBatch {
    pub(crate) fn new(
        a: &Analysis,
        keys: &[Vec<DomainValue>],
        aggregate_cells: &[Vec<Cell>],
    ) -> Result<ReleasedBatch, ExecError> {
        let n_keys = a.group_keys.len();
        let mut fields = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for (i, (_, field)) in a.aggregate_schema.iter().enumerate() {
            if i < n_keys {
                let values: Vec<ScalarValue> = keys.iter().map(|k| key_scalar(&k[i])).collect();
                let array = if values.is_empty() {
                    datafusion::arrow::array::new_empty_array(field.data_type())
                } else {
                    ScalarValue::iter_to_array(values)?
                };
                fields.push(Field::new(field.name(), array.data_type().clone(), true));
                columns.push(array);
                continue;
            }
            let values = aggregate_cells[i - n_keys].iter().map(cell_value);
            if field.data_type().is_integer() {
                let ints: Int64Array = values
                    .map(|v| v.is_finite().then(|| v.round() as i64))
                    .collect();
                fields.push(Field::new(field.name(), DataType::Int64, true));
                columns.push(Arc::new(ints));
            } else {
                fields.push(Field::new(field.name(), DataType::Float64, true));
                columns.push(Arc::new(Float64Array::from_iter_values(values)));
            }
        }
        let qualifiers: Vec<_> = a.aggregate_schema.iter().map(|(q, _)| q.cloned()).collect();
        let arrow = Arc::new(Schema::new(fields));
        let schema = DFSchema::from_field_specific_qualified_schema(qualifiers, &arrow)?;
        let batch =
            RecordBatch::try_new(arrow, columns).map_err(|e| ExecError::Engine(e.to_string()))?;
        Ok(ReleasedBatch { schema, batch })
    }

    /// `e` evaluated on every cell; a cell where evaluation fails (an
    /// integer division by a noisy zero) gets NULL.
    fn evaluate(&self, e: &Expr) -> Result<ArrayRef, ExecError> {
        // Aggregate calls (in HAVING) stand for the aggregate node's outputs.
        let e = e
            .clone()
            .transform(|e| match e {
                Expr::AggregateFunction(_) => Ok(Transformed::yes(col(Column::from_name(
                    e.schema_name().to_string(),
                )))),
                other => Ok(Transformed::no(other)),
            })?
            .data;
        // A plain context, built once: it only types and compiles `e`.
        static CONTEXT: std::sync::LazyLock<SessionContext> =
            std::sync::LazyLock::new(SessionContext::new);
        let physical = CONTEXT.create_physical_expr(e, &self.schema)?;
        let rows = self.batch.num_rows();
        if let Ok(array) = physical
            .evaluate(&self.batch)
            .and_then(|v| v.into_array(rows))
        {
            return Ok(array);
        }
        let mut values = Vec::with_capacity(rows);
        let mut data_type = DataType::Null;
        for i in 0..rows {
            let one = self.batch.slice(i, 1);
            match physical.evaluate(&one).and_then(|v| v.into_array(1)) {
                Ok(array) => {
                    data_type = array.data_type().clone();
                    values.push(Some(ScalarValue::try_from_array(&array, 0)?));
                }
                Err(_) => values.push(None),
            }
        }
        let values: Vec<ScalarValue> = values
            .into_iter()
            .map(|v| v.map_or_else(|| ScalarValue::try_from(&data_type), Ok))
            .collect::<Result<_, _>>()?;
        Ok(ScalarValue::iter_to_array(values)?)
    }

    /// HAVING on released values: which cells it keeps.
    pub(crate) fn having_mask(&self, having: &Expr) -> Result<Vec<bool>, ExecError> {
        let result = self.evaluate(having)?;
        let mask = result
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| ExecError::Engine("HAVING is not a boolean condition".into()))?;
        Ok((0..mask.len())
            .map(|i| mask.is_valid(i) && mask.value(i))
            .collect())
    }

    /// The cells of a computed output. With no aggregate the value is
    /// public (a key cell). With one noisy aggregate, the interval is the
    /// image of that aggregate's interval under `e` when every operation
    /// of `e` bounds it; otherwise the value is stated without one.
    pub(crate) fn computed(
        &self,
        a: &Analysis,
        e: &Expr,
        used: &[usize],
        aggregate_cells: &[Vec<Cell>],
    ) -> Result<Vec<Cell>, ExecError> {
        let values = self.evaluate(e)?;
        let n_keys = a.group_keys.len();
        (0..values.len())
            .map(|row| {
                let value = ScalarValue::try_from_array(&values, row)?;
                // Public values, and labels or truth values computed from
                // released ones, carry no interval.
                if used.is_empty() || !value.data_type().is_numeric() {
                    return Ok(Cell::Key(scalar_json(&value)));
                }
                let Some(v) = scalar_f64(&value) else {
                    return Ok(Cell::Key(serde_json::Value::Null));
                };
                let interval = match (used, aggregate_cells[used[0]][row].clone()) {
                    ([one], Cell::Noisy { ci95, .. }) => {
                        let leaf = |c: &Column| {
                            let idx = self.schema.index_of_column(c).ok()?;
                            if idx < n_keys {
                                let k = scalar_f64(
                                    &ScalarValue::try_from_array(self.batch.column(idx), row)
                                        .ok()?,
                                )?;
                                Some((k, k))
                            } else {
                                (idx - n_keys == *one).then_some((ci95[0], ci95[1]))
                            }
                        };
                        image(e, &self.schema, &leaf)
                    }
                    _ => None,
                };
                Ok(match interval {
                    Some((lo, hi)) if lo <= v && v <= hi => Cell::Noisy {
                        value: v,
                        ci95: [lo, hi],
                    },
                    _ => Cell::Derived { value: v },
                })
            })
            .collect()
    }
}

fn cell_value(c: &Cell) -> f64 {
    match c {
        Cell::Noisy { value, .. } | Cell::Quantile { value, .. } | Cell::Derived { value } => {
            *value
        }
        Cell::Key(v) => v.as_f64().unwrap_or(f64::NAN),
    }
}

fn key_scalar(v: &DomainValue) -> ScalarValue {
    match v {
        DomainValue::Bool(b) => ScalarValue::Boolean(Some(*b)),
        DomainValue::Int(i) => ScalarValue::Int64(Some(*i)),
        DomainValue::Text(s) => ScalarValue::Utf8(Some(s.clone())),
    }
}

fn scalar_f64(v: &ScalarValue) -> Option<f64> {
    literal_f64(v).filter(|x| x.is_finite())
}

fn scalar_json(v: &ScalarValue) -> serde_json::Value {
    if v.is_null() {
        return serde_json::Value::Null;
    }
    match v {
        ScalarValue::Boolean(Some(b)) => serde_json::Value::Bool(*b),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => serde_json::Value::String(s.clone()),
        ScalarValue::Int64(Some(i)) => serde_json::Value::from(*i),
        ScalarValue::Int32(Some(i)) => serde_json::Value::from(*i),
        other => match literal_f64(other) {
            Some(x) => serde_json::Number::from_f64(x)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            None => serde_json::Value::String(other.to_string()),
        },
    }
}

/// The interval `e` lies in when each column lies in `leaf(column)`, by
/// interval arithmetic (valid for any number of occurrences); None when an
/// operation has no bounded image there or is not one of those below.
fn image(
    e: &Expr,
    schema: &DFSchema,
    leaf: &dyn Fn(&Column) -> Option<(f64, f64)>,
) -> Option<(f64, f64)> {
    let sub = |x: &Expr| image(x, schema, leaf);
    let int = |x: &Expr| x.get_type(schema).is_ok_and(|t| t.is_integer());
    let hull = |ps: &[f64]| {
        (
            ps.iter().copied().fold(f64::INFINITY, f64::min),
            ps.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        )
    };
    let (lo, hi) = match e {
        Expr::Alias(a) => sub(&a.expr)?,
        Expr::Column(c) => leaf(c)?,
        Expr::Literal(v, _) => literal_f64(v).map(|x| (x, x))?,
        Expr::Negative(x) => sub(x).map(|(l, h)| (-h, -l))?,
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (a, b) = (sub(left)?, sub(right)?);
            match op {
                Operator::Plus => (a.0 + b.0, a.1 + b.1),
                Operator::Minus => (a.0 - b.1, a.1 - b.0),
                Operator::Multiply => hull(&[a.0 * b.0, a.0 * b.1, a.1 * b.0, a.1 * b.1]),
                Operator::Divide if b.0 > 0.0 || b.1 < 0.0 => {
                    let (l, h) = hull(&[a.0 / b.0, a.0 / b.1, a.1 / b.0, a.1 / b.1]);
                    // Integer division truncates toward zero: monotone.
                    if int(left) && int(right) {
                        (l.trunc(), h.trunc())
                    } else {
                        (l, h)
                    }
                }
                _ => return None,
            }
        }
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field })
            if field.data_type().is_numeric() =>
        {
            let (l, h) = sub(expr)?;
            if field.data_type().is_integer() {
                (l.trunc(), h.trunc())
            } else {
                (l, h)
            }
        }
        Expr::ScalarFunction(f) => {
            let args: Vec<(f64, f64)> = f.args.iter().map(sub).collect::<Option<_>>()?;
            function_image(f.func.name(), &args)?
        }
        _ => return None,
    };
    (lo.is_finite() && hi.is_finite() && lo <= hi).then_some((lo, hi))
}

/// The image of the argument intervals under a scalar function.
fn function_image(name: &str, args: &[(f64, f64)]) -> Option<(f64, f64)> {
    let monotone = |f: fn(f64) -> f64| args.first().map(|&(l, h)| (f(l), f(h)));
    match (name, args.len()) {
        ("pi", 0) => Some((std::f64::consts::PI, std::f64::consts::PI)),
        ("abs" | "sluice_abs", 1) => {
            let (l, h) = args[0];
            Some(if l >= 0.0 {
                (l, h)
            } else if h <= 0.0 {
                (-h, -l)
            } else {
                (0.0, (-l).max(h))
            })
        }
        ("sqrt" | "sluice_sqrt", 1) => monotone(f64::sqrt),
        ("cbrt", 1) => monotone(f64::cbrt),
        ("exp", 1) => monotone(f64::exp),
        ("ln", 1) => monotone(f64::ln),
        ("log10", 1) => monotone(f64::log10),
        ("log2", 1) => monotone(f64::log2),
        ("floor", 1) => monotone(f64::floor),
        ("ceil", 1) => monotone(f64::ceil),
        ("trunc", 1) => monotone(f64::trunc),
        ("round", 1) => monotone(f64::round),
        ("signum", 1) => monotone(f64::signum),
        ("atan", 1) => monotone(f64::atan),
        ("round", 2) if args[1].0 == args[1].1 && args[1].0.fract() == 0.0 => {
            let p = 10f64.powi(args[1].0 as i32);
            Some(((args[0].0 * p).round() / p, (args[0].1 * p).round() / p))
        }
        ("power" | "pow" | "sluice_power", 2) if args[1].0 == args[1].1 => {
            power_image(args[0], args[1].0)
        }
        ("greatest", n) if n > 0 => Some(
            args.iter()
                .fold((f64::NEG_INFINITY, f64::NEG_INFINITY), |acc, &(l, h)| {
                    (acc.0.max(l), acc.1.max(h))
                }),
        ),
        ("least", n) if n > 0 => Some(
            args.iter()
                .fold((f64::INFINITY, f64::INFINITY), |acc, &(l, h)| {
                    (acc.0.min(l), acc.1.min(h))
                }),
        ),
        _ => None,
    }
}

/// The image of `[l, h]` under `x^c`, which is monotone on each side of 0.
fn power_image((l, h): (f64, f64), c: f64) -> Option<(f64, f64)> {
    if l < 0.0 && c.fract() != 0.0 {
        return None;
    }
    let spans_zero = l <= 0.0 && 0.0 <= h;
    if c < 0.0 && spans_zero {
        return None;
    }
    let mut points = vec![l.powf(c), h.powf(c)];
    if spans_zero && c > 0.0 {
        points.push(0.0);
    }
    Some((
        points.iter().copied().fold(f64::INFINITY, f64::min),
        points.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    ))
}
