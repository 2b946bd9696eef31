//! The row-level part of a query (below its aggregate): which datasets it
//! reads under which names, which column is the privacy unit of its rows,
//! and how many rows one unit can contribute. Accepted shapes: scans,
//! aliases, deterministic filters, and inner joins of datasets on their
//! privacy units (cross-provider computation on pseudonymised ids).

use datafusion::common::{Column, JoinType};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator};
use sluice_types::sandbox::SandboxTable;
use sluice_types::schema::{ColumnSpec, DatasetSchema, MAX_ROWS_PER_UNIT_LIMIT};

use crate::analyze::{check_row_expr, node_name};

#[derive(Debug, Clone)]
pub struct RowScope {
    /// (qualifier in the plan, dataset name, schema) of every dataset read.
    pub tables: Vec<(String, String, DatasetSchema)>,
    /// The privacy-unit column of the rows; None when each row is its own unit.
    pub unit: Option<Column>,
    /// Pseudonym namespace of the unit column.
    id_space: Option<String>,
    /// Most rows one unit can contribute to the row-level output.
    pub max_rows_per_unit: u64,
}

impl RowScope {
    /// The declared column behind a column reference of the plan.
    pub fn column(&self, c: &Column) -> Result<&ColumnSpec, String> {
        let candidates: Vec<&ColumnSpec> = self
            .tables
            .iter()
            .filter(|(q, _, _)| c.relation.as_ref().is_none_or(|r| r.table() == q))
            .filter_map(|(_, _, s)| s.column(&c.name))
            .collect();
        match candidates.as_slice() {
            [one] => Ok(one),
            [] => Err(format!("unknown column {}", c.flat_name())),
            _ => Err(format!(
                "column {} is ambiguous; qualify it with its table",
                c.name
            )),
        }
    }

    pub fn datasets(&self) -> Vec<String> {
        self.tables
            .iter()
            .map(|(_, name, _)| name.clone())
            .collect()
    }
}

fn same_column(e: &Expr, c: &Column) -> bool {
    matches!(e, Expr::Column(x) if x.name == c.name
        && x.relation.as_ref().map(|r| r.table()) == c.relation.as_ref().map(|r| r.table()))
}

/// Walks the row-level plan; pushes every reason to reject onto `reasons`.
pub fn scope_of(
    plan: &LogicalPlan,
    tables: &[SandboxTable],
    reasons: &mut Vec<String>,
) -> Option<RowScope> {
    match plan {
        LogicalPlan::Filter(f) => {
            check_row_expr(&f.predicate, reasons);
            scope_of(&f.input, tables, reasons)
        }
        LogicalPlan::SubqueryAlias(a) => {
            let mut scope = scope_of(&a.input, tables, reasons)?;
            if scope.tables.len() != 1 {
                reasons.push("an alias over a join (a derived table) is not supported yet".into());
                return None;
            }
            let alias = a.alias.table().to_owned();
            scope.tables[0].0 = alias.clone();
            if let Some(u) = &mut scope.unit {
                *u = Column::new(Some(alias), &u.name);
            }
            Some(scope)
        }
        LogicalPlan::TableScan(scan) => {
            for e in &scan.filters {
                check_row_expr(e, reasons);
            }
            if scan.fetch.is_some() {
                reasons.push("a row limit on a scan is not supported".into());
            }
            let name = scan.table_name.table();
            let Some(table) = tables.iter().find(|t| t.name == name) else {
                reasons.push(format!("table {name} is not a dataset of this job"));
                return None;
            };
            let schema = &table.schema;
            Some(RowScope {
                tables: vec![(name.to_owned(), name.to_owned(), schema.clone())],
                unit: schema
                    .privacy_unit()
                    .map(|u| Column::new(Some(name), &u.name)),
                id_space: schema.privacy_unit().map(|_| schema.id_space.clone()),
                max_rows_per_unit: u64::from(schema.max_rows_per_unit),
            })
        }
        LogicalPlan::Join(j) => {
            let left = scope_of(&j.left, tables, reasons);
            let right = scope_of(&j.right, tables, reasons);
            let (left, right) = (left?, right?);
            if j.join_type != JoinType::Inner {
                reasons.push(format!(
                    "{} JOIN is not supported: only inner joins on the privacy unit keep each person's contribution bounded",
                    j.join_type
                ));
                return None;
            }
            let mut pairs: Vec<(Expr, Expr)> = j.on.clone();
            if let Some(filter) = &j.filter {
                for c in split_conjunction(filter) {
                    match c {
                        Expr::BinaryExpr(BinaryExpr {
                            left,
                            op: Operator::Eq,
                            right,
                        }) if matches!(**left, Expr::Column(_))
                            && matches!(**right, Expr::Column(_)) =>
                        {
                            pairs.push(((**left).clone(), (**right).clone()))
                        }
                        other => check_row_expr(other, reasons),
                    }
                }
            }
            let (Some(lu), Some(ru)) = (&left.unit, &right.unit) else {
                reasons.push(
                    "JOIN: both datasets need a privacy_unit column, and the join must be on it"
                        .into(),
                );
                return None;
            };
            let on_units = pairs.iter().any(|(a, b)| {
                (same_column(a, lu) && same_column(b, ru))
                    || (same_column(a, ru) && same_column(b, lu))
            });
            if !on_units {
                reasons.push(format!(
                    "JOIN must be on the privacy units ({} = {}): a join on other columns could multiply one person's rows without bound",
                    lu.flat_name(),
                    ru.flat_name()
                ));
                return None;
            }
            if left.id_space != right.id_space {
                reasons.push(format!(
                    "JOIN: {} and {} use different identifier spaces, so their pseudonyms never match",
                    lu.flat_name(),
                    ru.flat_name()
                ));
                return None;
            }
            let k = left
                .max_rows_per_unit
                .saturating_mul(right.max_rows_per_unit);
            if k > u64::from(MAX_ROWS_PER_UNIT_LIMIT) {
                reasons.push(format!(
                    "JOIN: one person may contribute up to {k} joined rows, more than the limit of {MAX_ROWS_PER_UNIT_LIMIT}"
                ));
                return None;
            }
            let mut all = left.tables.clone();
            for t in right.tables {
                if all.iter().any(|(q, _, _)| *q == t.0) {
                    reasons.push(format!(
                        "table {} appears twice; give each occurrence an alias",
                        t.0
                    ));
                    return None;
                }
                all.push(t);
            }
            Some(RowScope {
                tables: all,
                unit: left.unit,
                id_space: left.id_space,
                max_rows_per_unit: k,
            })
        }
        other => {
            reasons.push(format!(
                "{} is not supported yet in FROM (supported: datasets, WHERE, inner JOIN on the privacy unit)",
                node_name(other)
            ));
            None
        }
    }
}
