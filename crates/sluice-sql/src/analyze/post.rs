//! The first step: the post-processing around the aggregate. LIMIT, ORDER
//! BY, DISTINCT and HAVING are peeled off the top of the plan and kept to apply to
//! released rows; below them must stand the projection of an aggregate.

use datafusion::logical_expr::{Aggregate, Distinct, Expr, LogicalPlan, Projection};

use super::analysis::PostProcess;
use crate::error::Rejection;
use crate::rowexpr::check_shape;
use crate::rows::node_name;

/// The query's shape: what is applied to released rows, the projection of
/// the outputs, and the aggregate below it.
pub(super) struct Shape<'a> {
    pub post: PostProcess,
    pub projection: &'a Projection,
    pub aggregate: &'a Aggregate,
}

/// Splits `plan` into its post-processing and its aggregate, pushing every
/// reason to reject onto `reasons`; a plan of another shape is rejected at
/// once.
pub(super) fn post_processing<'a>(
    plan: &'a LogicalPlan,
    reasons: &mut Vec<String>,
) -> Result<Shape<'a>, Rejection> {
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
    // SELECT DISTINCT over aggregates: on released rows too.
    if let LogicalPlan::Distinct(Distinct::All(input)) = node
        && reads_aggregate(input)
    {
        post.distinct = true;
        node = input;
    }
    let (projection, aggregate) = match node {
        LogicalPlan::Projection(p) => match p.input.as_ref() {
            LogicalPlan::Aggregate(a) => (p, a),
            LogicalPlan::Filter(f) if matches!(f.input.as_ref(), LogicalPlan::Aggregate(_)) => {
                let LogicalPlan::Aggregate(a) = f.input.as_ref() else {
                    unreachable!()
                };
                check_shape(&f.predicate, reasons);
                post.having = Some(f.predicate.clone());
                (p, a)
            }
            LogicalPlan::Sort(_) => {
                return Err(Rejection(vec![
                    "ORDER BY a column that is not selected is not supported; select it too".into(),
                ]));
            }
            _ => {
                reasons.push(NO_AGGREGATE.into());
                return Err(Rejection(std::mem::take(reasons)));
            }
        },
        LogicalPlan::Distinct(Distinct::On(_)) => {
            return Err(Rejection(vec![
                "SELECT DISTINCT ON is not supported: select the rows' group keys with GROUP BY"
                    .into(),
            ]));
        }
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
    Ok(Shape {
        post,
        projection,
        aggregate,
    })
}

const NO_AGGREGATE: &str = "the query selects rows, not aggregates: rows are never released (SELECT * and row-level selects are rejected); select COUNT, SUM or AVG, optionally GROUP BY columns with a declared domain";

/// Whether `plan` is the projection of an aggregate (or of its HAVING).
fn reads_aggregate(plan: &LogicalPlan) -> bool {
    let LogicalPlan::Projection(p) = plan else {
        return false;
    };
    match p.input.as_ref() {
        LogicalPlan::Aggregate(_) => true,
        LogicalPlan::Filter(f) => matches!(f.input.as_ref(), LogicalPlan::Aggregate(_)),
        _ => false,
    }
}
