//! The outputs: each column of the SELECT is a group key, an aggregate, or
//! an expression computed from released values (aggregates, keys, literals
//! and deterministic functions) after noise, which costs no privacy.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{
    Aggregate as AggregateNode, Expr, ExprSchemable, Projection, Volatility,
};

use super::analysis::{Aggregate, Output};
use crate::rowexpr::strip_alias;

/// The outputs of `projection` over `aggregate`, whose aggregates compiled
/// to `aggregates` (None where rejected); pushes every reason to reject
/// onto `reasons`.
pub(super) fn outputs(
    projection: &Projection,
    aggregate: &AggregateNode,
    aggregates: &[Option<(Aggregate, String)>],
    reasons: &mut Vec<String>,
) -> Vec<Output> {
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
            other => {
                if let Some(o) = computed(other, name, aggregate, n_keys, aggregates, reasons) {
                    outputs.push(o);
                }
            }
        }
    }
    outputs
}

/// The functions an output may apply to released values: numeric, cheap
/// and deterministic (`sluice_*` are Sluice's total versions of builtins).
const OUTPUT_FUNCTIONS: &[&str] = &[
    "abs",
    "sluice_abs",
    "sqrt",
    "sluice_sqrt",
    "power",
    "pow",
    "sluice_power",
    "cbrt",
    "exp",
    "ln",
    "log",
    "log10",
    "log2",
    "floor",
    "ceil",
    "trunc",
    "round",
    "signum",
    "sin",
    "cos",
    "tan",
    "atan",
    "degrees",
    "radians",
    "pi",
    "greatest",
    "least",
    "coalesce",
    "nullif",
];

/// An output computed from released values: every column it reads is a
/// group key or an aggregate, every function is deterministic, and over
/// aggregates its value is a number.
fn computed(
    e: &Expr,
    name: String,
    aggregate: &AggregateNode,
    n_keys: usize,
    aggregates: &[Option<(Aggregate, String)>],
    reasons: &mut Vec<String>,
) -> Option<Output> {
    let mut used = Vec::new();
    let mut reads_key = false;
    let mut refused = None;
    let _ = e.apply(|node| {
        let reason = match node {
            Expr::Column(c) => match aggregate.schema.index_of_column(c) {
                Ok(idx) if idx < n_keys => {
                    reads_key = true;
                    None
                }
                Ok(idx) => match aggregates.get(idx - n_keys) {
                    Some(Some(_)) => {
                        if !used.contains(&(idx - n_keys)) {
                            used.push(idx - n_keys);
                        }
                        None
                    }
                    // The aggregate's own reason is already given.
                    _ => Some(String::new()),
                },
                Err(_) => Some(format!("{c} is not a group key or an aggregate")),
            },
            Expr::ScalarFunction(f) if f.func.signature().volatility != Volatility::Immutable => {
                Some(format!(
                    "{}() is not deterministic: outputs are computed from the release and must be reproducible from it",
                    f.func.name()
                ))
            }
            Expr::ScalarFunction(f) if !OUTPUT_FUNCTIONS.contains(&f.func.name()) => Some(format!(
                "{}() is not supported in an output (supported: {})",
                f.func.name(),
                OUTPUT_FUNCTIONS
                    .iter()
                    .filter(|n| !n.starts_with("sluice_"))
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Expr::Alias(_)
            | Expr::Literal(..)
            | Expr::BinaryExpr(_)
            | Expr::Negative(_)
            | Expr::Not(_)
            | Expr::IsNull(_)
            | Expr::IsNotNull(_)
            | Expr::Cast(_)
            | Expr::TryCast(_)
            | Expr::Case(_)
            | Expr::Between(_)
            | Expr::ScalarFunction(_) => None,
            Expr::InList(l) if l.list.iter().all(|x| matches!(x, Expr::Literal(..))) => None,
            Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) => Some(
                "a subquery in the output would read rows outside the DP aggregate".to_owned(),
            ),
            other => Some(format!(
                "{} is not supported in an output expression",
                other.variant_name()
            )),
        };
        match reason {
            Some(r) => {
                refused = Some(r);
                Ok(TreeNodeRecursion::Stop)
            }
            None => Ok(TreeNodeRecursion::Continue),
        }
    });
    if let Some(r) = refused {
        if !r.is_empty() {
            reasons.push(format!("output {name}: {r}"));
        }
        return None;
    }
    if !used.is_empty() {
        // A number (with its interval when one follows), or a label or
        // truth value such as CASE WHEN COUNT(*) > 10 THEN 'large' END.
        let released_type = e.get_type(aggregate.schema.as_ref()).is_ok_and(|t| {
            t.is_numeric()
                || matches!(
                    t,
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Boolean
                )
        });
        if !released_type {
            reasons.push(format!(
                "output {name}: an expression over aggregates must compute a number, a text or a boolean"
            ));
            return None;
        }
    }
    let funcs: Vec<String> = used
        .iter()
        .filter_map(|i| aggregates[*i].as_ref().map(|(_, f)| f.clone()))
        .collect();
    Some(Output::Computed {
        expr: e.clone(),
        name,
        aggregates: used,
        reads_key,
        funcs,
    })
}
