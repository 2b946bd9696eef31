//! SQL as analysts write it, made plannable: two forms other DP SQL
//! engines accept and DataFusion's planner refuses, rewritten in the
//! parsed statement before planning. Neither changes what the query means,
//! so the analysis of the plan that follows sees the query as written.
//!
//! - HAVING may name an output's alias even where a column of the same
//!   name exists (`SUM(income) AS income ... HAVING income > 100`): an
//!   identifier in HAVING, outside any aggregate or subquery, that names an
//!   output alias and is not a GROUP BY expression is that output's
//!   expression. (As a column it could only be an error: HAVING may name
//!   a column only when it is grouped.)
//! - The same unnamed expression twice in SELECT (`SUM(age), SUM(age)`):
//!   the second is named `SUM(age) (2)`, the third `(3)`, and so on.

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::sql::parser::Statement;
use datafusion::sql::sqlparser::ast::{
    Expr, GroupByExpr, Ident, Query, Select, SelectItem, SetExpr, VisitMut, VisitorMut,
};

/// Which function names are aggregates: the session's own registry (with
/// its aliases), so the rewrite knows every aggregate the planner does.
pub(crate) type IsAggregate<'a> = &'a dyn Fn(&str) -> bool;

/// Rewrites every SELECT of `statement`, including those in CTEs and
/// subqueries.
pub(crate) fn rewrite(statement: &mut Statement, is_aggregate: IsAggregate) {
    if let Statement::Statement(s) = statement {
        let _ = s.visit(&mut EverySelect(is_aggregate));
    }
}

struct EverySelect<'a>(IsAggregate<'a>);

impl VisitorMut for EverySelect<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        rewrite_set_expr(&mut query.body, self.0);
        ControlFlow::Continue(())
    }
}

fn rewrite_set_expr(body: &mut SetExpr, is_aggregate: IsAggregate) {
    match body {
        SetExpr::Select(select) => {
            name_duplicate_outputs(select);
            resolve_having_aliases(select, is_aggregate);
        }
        SetExpr::SetOperation { left, right, .. } => {
            rewrite_set_expr(left, is_aggregate);
            rewrite_set_expr(right, is_aggregate);
        }
        // Nested queries are visited as queries of their own.
        _ => {}
    }
}

/// SQL's identifier rule as DataFusion applies it: unquoted names fold to
/// lower case.
fn normalized(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

fn name_duplicate_outputs(select: &mut Select) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for item in &mut select.projection {
        if let SelectItem::UnnamedExpr(expr) = item {
            let text = expr.to_string();
            let n = seen.entry(text.clone()).or_insert(0);
            *n += 1;
            if *n > 1 {
                *item = SelectItem::ExprWithAlias {
                    expr: expr.clone(),
                    alias: Ident::with_quote('"', format!("{text} ({n})")),
                };
            }
        }
    }
}

fn resolve_having_aliases(select: &mut Select, is_aggregate: IsAggregate) {
    let Some(having) = select.having.as_mut() else {
        return;
    };
    let grouped: Vec<String> = match &select.group_by {
        GroupByExpr::Expressions(exprs, _) => exprs
            .iter()
            .filter_map(|e| match e {
                Expr::Identifier(i) => Some(normalized(i)),
                Expr::CompoundIdentifier(parts) => parts.last().map(normalized),
                _ => None,
            })
            .collect(),
        GroupByExpr::All(_) => return,
    };
    let aliases: HashMap<String, Expr> = select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::ExprWithAlias { expr, alias } => Some((normalized(alias), expr.clone())),
            _ => None,
        })
        .filter(|(name, expr)| {
            // An alias of the column itself changes nothing.
            !grouped.contains(name)
                && !matches!(expr, Expr::Identifier(i) if normalized(i) == *name)
        })
        .collect();
    if aliases.is_empty() {
        return;
    }
    let _ = having.visit(&mut HavingAliases {
        aliases: &aliases,
        is_aggregate,
        opaque: 0,
    });
}

/// Replaces alias references outside aggregates and subqueries, where an
/// identifier names the input's columns.
struct HavingAliases<'a> {
    aliases: &'a HashMap<String, Expr>,
    is_aggregate: IsAggregate<'a>,
    opaque: usize,
}

impl HavingAliases<'_> {
    fn is_opaque(&self, e: &Expr) -> bool {
        match e {
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => true,
            // An aggregate's (or window function's) arguments name input columns.
            Expr::Function(f) => {
                f.over.is_some() || (self.is_aggregate)(&f.name.to_string().to_ascii_lowercase())
            }
            _ => false,
        }
    }
}

impl VisitorMut for HavingAliases<'_> {
    type Break = ();

    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if self.is_opaque(e) {
            self.opaque += 1;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if self.is_opaque(e) {
            self.opaque -= 1;
        } else if self.opaque == 0
            && let Expr::Identifier(i) = e
            && let Some(output) = self.aliases.get(&normalized(i))
        {
            *e = Expr::Nested(Box::new(output.clone()));
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let dialect = datafusion::sql::sqlparser::dialect::GenericDialect {};
        let mut s = datafusion::sql::parser::DFParser::parse_sql_with_dialect(sql, &dialect)
            .unwrap()
            .pop_front()
            .unwrap();
        let ctx = crate::session::locked_context().unwrap();
        let state = ctx.state();
        rewrite(&mut s, &|name| {
            state.aggregate_functions().contains_key(name)
        });
        s.to_string()
    }

    #[test]
    fn having_names_outputs_outside_aggregates_and_grouped_columns() {
        assert_eq!(
            rewritten(
                "SELECT age, SUM(income) AS income, COUNT(*) AS age2 FROM t GROUP BY age HAVING income > 5 AND SUM(income) > 1 AND age > 3 AND Age2 > 0"
            ),
            "SELECT age, SUM(income) AS income, COUNT(*) AS age2 FROM t GROUP BY age HAVING (SUM(income)) > 5 AND SUM(income) > 1 AND age > 3 AND (COUNT(*)) > 0"
        );
        // In a CTE too; a quoted alias keeps its case.
        assert_eq!(
            rewritten(
                "WITH c AS (SELECT sex, COUNT(*) AS \"N\" FROM t GROUP BY sex HAVING \"N\" > 1 AND n > 2) SELECT * FROM c"
            ),
            "WITH c AS (SELECT sex, COUNT(*) AS \"N\" FROM t GROUP BY sex HAVING (COUNT(*)) > 1 AND n > 2) SELECT * FROM c"
        );
    }

    #[test]
    fn repeated_unnamed_outputs_get_numbered_names() {
        assert_eq!(
            rewritten("SELECT SUM(age), SUM(age), COUNT(*), SUM(age) AS s FROM t"),
            "SELECT SUM(age), SUM(age) AS \"SUM(age) (2)\", COUNT(*), SUM(age) AS s FROM t"
        );
    }
}
