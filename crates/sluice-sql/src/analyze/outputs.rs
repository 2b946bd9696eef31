//! The outputs: each column of the SELECT is a group key or an aggregate.

use datafusion::logical_expr::{Aggregate as AggregateNode, Expr, Projection};

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
            other => reasons.push(format!(
                "output {other}: expressions over aggregates are not supported yet; select the aggregate itself"
            )),
        }
    }
    outputs
}
