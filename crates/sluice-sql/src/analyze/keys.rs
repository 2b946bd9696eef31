//! The group keys: columns with a declared public domain, expressions whose
//! domain follows from the schema, or keys selected from the data by DP
//! thresholding (which costs δ), and the number of cells they give.

use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{Aggregate, Expr, ExprSchemable};
use sluice_types::privacy::Delta;
use sluice_types::schema::{ColumnRole, ColumnSpec, ColumnType};

use super::analysis::{GroupKey, MAX_CELLS, MAX_KEY_DELTA};
use crate::bounds::{domain_of, is_integer_valued};
use crate::rowexpr::{check_shape, strip_alias};
use crate::rows::RowScope;

/// The keys of `aggregate`'s GROUP BY, pushing every reason to reject onto
/// `reasons`.
pub(super) fn group_keys(
    aggregate: &Aggregate,
    scope: &RowScope,
    delta: Delta,
    reasons: &mut Vec<String>,
) -> Vec<GroupKey> {
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
                    // An integer column's bounds give it a public domain.
                    None if let Ok(Some(domain)) =
                        domain_of(&Expr::Column(c.clone()), scope, spec.ty) =>
                    {
                        let mut column = spec.clone();
                        column.domain = Some(domain.clone());
                        group_keys.push(GroupKey {
                            expr: Expr::Column(c.clone()),
                            column,
                            domain: Some(domain),
                        });
                    }
                    None if spec.ty == ColumnType::Float => {
                        reasons.push(format!(
                            "GROUP BY {}: a float column without a declared domain cannot be a key; bucket it with CASE in a subquery",
                            c.name
                        ))
                    }
                    None if delta == Delta::ZERO => reasons.push(format!(
                        "GROUP BY {}: the column has no declared public domain{}, so its keys must be selected by DP thresholding, which needs privacy.delta > 0 (at most {MAX_KEY_DELTA})",
                        c.name,
                        match domain_of(&Expr::Column(c.clone()), scope, spec.ty) {
                            Err(too_large) => format!(" ({too_large})"),
                            _ => String::new(),
                        }
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
            other => match expression_key(other, aggregate, scope, delta) {
                Ok(key) => group_keys.push(key),
                Err(r) => reasons.push(format!("GROUP BY {other}: {r}")),
            },
        }
    }
    group_keys
}

/// A group key that is an expression: its domain derived from the schema
/// (`crate::bounds::domain_of`), or, with δ, keys selected from the data.
fn expression_key(
    e: &Expr,
    aggregate: &Aggregate,
    scope: &RowScope,
    delta: Delta,
) -> Result<GroupKey, String> {
    let mut shape = Vec::new();
    check_shape(e, &mut shape);
    if let Some(r) = shape.into_iter().next() {
        return Err(r.trim_start_matches("WHERE: ").to_owned());
    }
    if reads_identifier(e, scope) {
        return Err(
            "the expression reads an identifier; pseudonyms are never released, nor anything computed from them"
                .into(),
        );
    }
    let ty = match e.get_type(aggregate.input.schema()) {
        // FLOOR, CEIL, ROUND, TRUNC: whole numbers typed as floats, read as integers.
        Ok(t) if t.is_integer() || is_integer_valued(e, scope) => ColumnType::Int,
        Ok(t) if t.is_floating() => ColumnType::Float,
        Ok(DataType::Boolean) => ColumnType::Bool,
        Ok(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => ColumnType::Text,
        Ok(other) => return Err(format!("a key of type {other} is not supported")),
        Err(err) => return Err(format!("its type cannot be derived: {err}")),
    };
    let domain = domain_of(e, scope, ty)?;
    let mut column = ColumnSpec::new(&e.schema_name().to_string(), ColumnRole::Attribute, ty);
    column.domain = domain.clone();
    match &domain {
        Some(_) => {}
        None if ty == ColumnType::Float => {
            return Err(
                "a float expression has no public domain; make it an integer bin, e.g. CAST(x / 10 AS INT), or bucket it with CASE"
                    .into(),
            );
        }
        None if delta == Delta::ZERO => {
            return Err(format!(
                "no public domain follows from the schema (one does for CASE or COALESCE over literals and domain columns, boolean conditions, and integer expressions of bounded columns), so its keys must be selected by DP thresholding, which needs privacy.delta > 0 (at most {MAX_KEY_DELTA})"
            ));
        }
        None => {}
    }
    Ok(GroupKey {
        expr: e.clone(),
        column,
        domain,
    })
}

/// Whether `e` reads a pseudonymised column.
fn reads_identifier(e: &Expr, scope: &RowScope) -> bool {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut found = false;
    let _ = e.apply(|node| {
        if let Expr::Column(c) = node
            && scope.column(c).is_ok_and(|s| s.role.is_pseudonymised())
        {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// Whether some key is selected from the data (it has no public domain).
pub(super) fn selects_keys(keys: &[GroupKey]) -> bool {
    keys.iter().any(|g| g.domain.is_none())
}

/// δ is spent on key selection only: it must be zero when every key is
/// public (it would be charged for nothing), and within the per-job limit.
pub(super) fn check_delta(keys: &[GroupKey], delta: Delta, reasons: &mut Vec<String>) {
    if delta != Delta::ZERO && !selects_keys(keys) {
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
}

/// Cells released before HAVING and LIMIT: the product of the public
/// domains' sizes, within `MAX_CELLS`; 0 when keys are selected from the
/// data (their number depends on it).
pub(super) fn cell_count(keys: &[GroupKey], reasons: &mut Vec<String>) -> usize {
    let cells = if selects_keys(keys) {
        0
    } else {
        keys.iter()
            .filter_map(|g| g.domain.as_ref())
            .try_fold(1usize, |acc, d| acc.checked_mul(d.len()))
            .unwrap_or(usize::MAX)
    };
    if cells > MAX_CELLS {
        reasons.push(format!(
            "the group keys' domains give {cells} cells, more than the limit of {MAX_CELLS}"
        ));
    }
    cells
}
