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

use crate::bounds::{DeclaredColumns, bounds_of, domain_of};
use crate::rowexpr::{check_shape, check_shape_node};

#[derive(Debug, Clone)]
pub struct RowScope {
    /// (qualifier in the plan, dataset name, schema) of every table in
    /// scope; a derived table (a subquery or CTE) has a schema built from
    /// its projection.
    pub tables: Vec<(String, String, DatasetSchema)>,
    /// Names of the datasets read, in order.
    pub read: Vec<String>,
    /// The privacy-unit column of the rows; None when each row is its own unit.
    pub unit: Option<Column>,
    /// Pseudonym namespace of the unit column.
    id_space: Option<String>,
    /// Most rows one unit can contribute to the row-level output.
    pub max_rows_per_unit: u64,
    /// Every table read was verified at ingest to respect its row bound, so
    /// the bound already holds here (filters and projections keep it, and a
    /// unit-to-unit join multiplies it) and the plan need not enforce it.
    pub bound_verified: bool,
    /// Every table in scope is public data (no privacy unit is involved).
    pub public: bool,
    /// (table, column) of public tables joined on a key declared unique;
    /// execution checks the uniqueness on the public data itself.
    pub public_keys: Vec<(String, String)>,
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

impl DeclaredColumns for RowScope {
    fn column(&self, c: &Column) -> Result<&ColumnSpec, String> {
        RowScope::column(self, c)
    }
}

/// How a plan node is named in a reason to reject it.
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
            let scope = scope_of(&f.input, tables, reasons)?;
            check_filter(&f.predicate, &scope, tables, reasons);
            Some(scope)
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
                check_shape(e, reasons);
            }
            if scan.fetch.is_some() {
                reasons.push("a row limit on a scan is not supported".into());
            }
            let name = scan.table_name.table();
            let Some(table) = tables.iter().find(|t| t.name == name) else {
                reasons.push(format!("table {name} is not a dataset of this job"));
                return None;
            };
            let mut schema = table.schema.clone();
            for c in &mut schema.columns {
                c.verified = table.in_bounds.contains(&c.name);
            }
            let schema = &schema;
            Some(RowScope {
                tables: vec![(name.to_owned(), name.to_owned(), schema.clone())],
                read: vec![name.to_owned()],
                unit: schema
                    .privacy_unit()
                    .map(|u| Column::new(Some(name), &u.name)),
                id_space: schema.privacy_unit().map(|_| schema.id_space.clone()),
                max_rows_per_unit: u64::from(schema.max_rows_per_unit),
                bound_verified: table.bound_verified,
                public: table.public,
                public_keys: Vec::new(),
            })
        }
        LogicalPlan::Join(j) => {
            let left = scope_of(&j.left, tables, reasons);
            let right = scope_of(&j.right, tables, reasons);
            let (left, right) = (left?, right?);
            if left.public != right.public {
                let private_is_left = !left.public;
                return public_join(j, left, right, private_is_left, reasons);
            }
            if j.join_type != JoinType::Inner {
                reasons.push(format!(
                    "{} JOIN is not supported: only inner joins on the privacy unit keep each person's contribution bounded",
                    j.join_type
                ));
                return None;
            }
            let pairs = join_pairs(j, reasons);
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
            let mut read = left.read.clone();
            read.extend(right.read.iter().cloned());
            Some(RowScope {
                tables: joined_tables(left.tables, right.tables, reasons)?,
                read,
                unit: left.unit,
                id_space: left.id_space,
                max_rows_per_unit: k,
                bound_verified: left.bound_verified && right.bound_verified,
                public: left.public && right.public,
                public_keys: [left.public_keys, right.public_keys].concat(),
            })
        }
        LogicalPlan::Projection(p) => derived_table(p, tables, reasons),
        LogicalPlan::Union(u) => union_all(u, tables, reasons),
        LogicalPlan::Distinct(d) if matches!(d.input().as_ref(), LogicalPlan::Union(_)) => {
            reasons.push(
                "UNION (without ALL) would merge identical rows of different persons; use UNION ALL".into(),
            );
            None
        }
        other => {
            reasons.push(format!(
                "{} is not supported yet in FROM (supported: datasets, WHERE, inner JOIN on the privacy unit, subqueries and CTEs)",
                node_name(other)
            ));
            None
        }
    }
}

/// A WHERE predicate over rows of `scope`. Besides deterministic row
/// expressions it may hold `x [NOT] IN (SELECT ...)` when the answer for a
/// row depends only on that row's own person or on public data:
/// - `x` is a privacy-unit column of the rows and the subquery selects the
///   privacy unit of private rows in the same identifier space (a semi-join
///   on the person: removing a person changes the answer for that person's
///   rows only, which the row bound already covers); or
/// - the subquery reads public tables only (any column).
///
/// Correlated, scalar and EXISTS subqueries are rejected.
fn check_filter(
    predicate: &Expr,
    scope: &RowScope,
    tables: &[SandboxTable],
    reasons: &mut Vec<String>,
) {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let _ = predicate.apply(|node| {
        let Expr::InSubquery(in_subquery) = node else {
            if let Expr::Exists(_) = node {
                reasons.push(
                    "WHERE: EXISTS subqueries are not supported; write unit IN (SELECT unit FROM ...)"
                        .into(),
                );
                return Ok(TreeNodeRecursion::Jump);
            }
            if let Expr::ScalarSubquery(_) = node {
                reasons.push(
                    "WHERE: a scalar subquery (such as a comparison with an aggregate of the data) depends on every person's data, so its sensitivity is unbounded"
                        .into(),
                );
                return Ok(TreeNodeRecursion::Jump);
            }
            let mut node_reasons = Vec::new();
            check_shape_node(node, &mut node_reasons);
            let stop = !node_reasons.is_empty();
            reasons.extend(node_reasons);
            return Ok(if stop {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            });
        };
        let sub = &in_subquery.subquery;
        if !sub.outer_ref_columns.is_empty() {
            reasons.push("WHERE: correlated subqueries are not supported".into());
            return Ok(TreeNodeRecursion::Jump);
        }
        check_shape(&in_subquery.expr, reasons);
        let mut sub_reasons = Vec::new();
        let inner = match sub.subquery.as_ref() {
            LogicalPlan::Projection(p) if p.expr.len() == 1 => {
                scope_of(&p.input, tables, &mut sub_reasons).map(|s| (s, &p.expr[0]))
            }
            _ => {
                sub_reasons.push(
                    "WHERE ... IN (SELECT ...): the subquery must select one column of rows (no aggregate, DISTINCT or LIMIT)"
                        .into(),
                );
                None
            }
        };
        let prefix = |r: String| format!("WHERE ... IN (SELECT ...): {r}");
        reasons.extend(sub_reasons.into_iter().map(prefix));
        let Some((inner, selected)) = inner else {
            return Ok(TreeNodeRecursion::Jump);
        };
        if inner.public {
            return Ok(TreeNodeRecursion::Jump);
        }
        let outer_is_unit = match in_subquery.expr.as_ref() {
            Expr::Column(c) => scope
                .column(c)
                .is_ok_and(|s| s.role == sluice_types::schema::ColumnRole::PrivacyUnit),
            _ => false,
        };
        let selects_unit = match (selected, &inner.unit) {
            (Expr::Column(c), Some(u)) => same_column(&Expr::Column(c.clone()), u),
            _ => false,
        };
        if in_subquery.negated {
            reasons.push(
                "WHERE ... NOT IN (SELECT ...) over private data is not supported: one row without a privacy unit in the subquery would turn every row's answer to NULL; use IN, or NOT IN over a public table"
                    .into(),
            );
        } else if !(outer_is_unit && selects_unit) {
            reasons.push(
                "WHERE ... IN (SELECT ...) over private data must compare the privacy unit with the subquery's privacy unit (a semi-join on the person); any other subquery over private data could let one person change every row's answer"
                    .into(),
            );
        } else if inner.id_space != scope.id_space {
            reasons.push(
                "WHERE ... IN (SELECT ...): the two privacy units use different identifier spaces, so their pseudonyms never match"
                    .into(),
            );
        }
        Ok(TreeNodeRecursion::Jump)
    });
}

/// The tables of both sides of a join: each qualifier may appear once, or
/// a column reference could not tell them apart.
fn joined_tables(
    mut left: Vec<(String, String, DatasetSchema)>,
    right: Vec<(String, String, DatasetSchema)>,
    reasons: &mut Vec<String>,
) -> Option<Vec<(String, String, DatasetSchema)>> {
    for t in right {
        if left.iter().any(|(q, _, _)| *q == t.0) {
            reasons.push(format!(
                "table {} appears twice; give each occurrence an alias",
                t.0
            ));
            return None;
        }
        left.push(t);
    }
    Some(left)
}

/// The column equalities of a join's condition (its `on` keys and the
/// column = column conjuncts of its filter); every other conjunct must be a
/// deterministic row predicate.
fn join_pairs(j: &datafusion::logical_expr::Join, reasons: &mut Vec<String>) -> Vec<(Expr, Expr)> {
    let mut pairs: Vec<(Expr, Expr)> = j.on.clone();
    if let Some(filter) = &j.filter {
        for c in split_conjunction(filter) {
            match c {
                Expr::BinaryExpr(BinaryExpr {
                    left,
                    op: Operator::Eq,
                    right,
                }) if matches!(**left, Expr::Column(_)) && matches!(**right, Expr::Column(_)) => {
                    pairs.push(((**left).clone(), (**right).clone()))
                }
                other => check_shape(other, reasons),
            }
        }
    }
    pairs
}

/// A private row set joined with public data: an inner join (either side
/// public) or a LEFT join keeping the private rows, on an equality between a
/// private column and a public column declared unique. Each private row then
/// matches at most one public row, so every unit keeps its row bound, and
/// the public columns bring their declared bounds and domains.
fn public_join(
    j: &datafusion::logical_expr::Join,
    left: RowScope,
    right: RowScope,
    private_is_left: bool,
    reasons: &mut Vec<String>,
) -> Option<RowScope> {
    let (private, public) = if private_is_left {
        (left, right)
    } else {
        (right, left)
    };
    match j.join_type {
        JoinType::Inner => {}
        JoinType::Left if private_is_left => {}
        other => {
            reasons.push(format!(
                "{other} JOIN with a public table is not supported: use an inner join or a LEFT JOIN that keeps the private rows"
            ));
            return None;
        }
    }
    let mut key = None;
    for (a, b) in join_pairs(j, reasons) {
        for (pub_side, priv_side) in [(&a, &b), (&b, &a)] {
            let (Expr::Column(pc), Expr::Column(qc)) = (pub_side, priv_side) else {
                continue;
            };
            if let (Ok(spec), Ok(_)) = (public.column(pc), private.column(qc))
                && spec.unique
            {
                let table = public
                    .tables
                    .iter()
                    .find(|(q, _, s)| {
                        pc.relation.as_ref().is_none_or(|r| r.table() == q)
                            && s.column(&pc.name).is_some()
                    })
                    .map(|(_, name, _)| name.clone());
                if let Some(table) = table {
                    key = Some((table, pc.name.clone()));
                }
            }
        }
    }
    let Some(key) = key else {
        reasons.push(
            "JOIN with a public table must be on a column of the public table declared unique (unique = true), equal to a column of the private rows; otherwise one person's row could match many public rows".into(),
        );
        return None;
    };
    if public.tables.len() != 1 {
        reasons.push("JOIN with a public table: join one public table at a time".into());
        return None;
    }
    let mut public_tables = public.tables;
    if j.join_type == JoinType::Left {
        // Private rows with no match get NULL in every public column.
        for (_, _, schema) in &mut public_tables {
            for c in &mut schema.columns {
                c.nullable = true;
            }
        }
    }
    let tables = joined_tables(private.tables, public_tables, reasons)?;
    let mut read = private.read.clone();
    read.extend(public.read);
    let mut public_keys = private.public_keys;
    public_keys.push(key);
    Some(RowScope {
        tables,
        read,
        unit: private.unit,
        id_space: private.id_space,
        max_rows_per_unit: private.max_rows_per_unit,
        bound_verified: private.bound_verified,
        public: false,
        public_keys,
    })
}

/// A projection below the aggregate (a subquery or CTE): a derived table.
/// Each output column keeps its source's declared bounds and domain, or gets
/// bounds derived from its expression and, for a CASE whose results are all
/// literals, those literals as its domain. The privacy unit must be selected.
fn derived_table(
    p: &datafusion::logical_expr::Projection,
    tables: &[SandboxTable],
    reasons: &mut Vec<String>,
) -> Option<RowScope> {
    use sluice_types::schema::{ColumnRole, ColumnType};
    let inner = scope_of(&p.input, tables, reasons)?;
    let mut columns = Vec::with_capacity(p.expr.len());
    let mut unit_name = None;
    for (i, e) in p.expr.iter().enumerate() {
        check_shape(e, reasons);
        let name = p.schema.field(i).name().clone();
        let mut base = match e {
            Expr::Alias(a) => a.expr.as_ref(),
            other => other,
        };
        // Coercion casts (e.g. a union's Utf8 to Utf8View) keep the column's spec
        // when the value kind does not change.
        while let Expr::Cast(datafusion::logical_expr::Cast { expr, field })
        | Expr::TryCast(datafusion::logical_expr::TryCast { expr, field }) = base
        {
            let same_kind = |t: &datafusion::arrow::datatypes::DataType| {
                (
                    t.is_integer(),
                    t.is_floating(),
                    t.is_numeric() || matches!(t, datafusion::arrow::datatypes::DataType::Boolean),
                )
            };
            let inner_type = match expr.as_ref() {
                Expr::Column(c) => p
                    .input
                    .schema()
                    .qualified_field_from_column(c)
                    .ok()
                    .map(|(_, f)| f.data_type().clone()),
                _ => None,
            };
            match inner_type {
                Some(t) if same_kind(&t) == same_kind(field.data_type()) => base = expr.as_ref(),
                _ => break,
            }
        }
        if inner.unit.as_ref().is_some_and(|u| same_column(base, u)) {
            unit_name = Some(name.clone());
        }
        let ty = match p.schema.field(i).data_type() {
            t if t.is_integer() => ColumnType::Int,
            t if t.is_floating() => ColumnType::Float,
            datafusion::arrow::datatypes::DataType::Boolean => ColumnType::Bool,
            _ => ColumnType::Text,
        };
        let mut spec = match base {
            Expr::Column(c) => inner
                .column(c)
                .cloned()
                .unwrap_or_else(|_| blank(&name, ty)),
            other => {
                let mut spec = blank(&name, ty);
                if let Ok((lo, hi)) = bounds_of(other, &inner)
                    && ty.is_numeric()
                {
                    spec.lower = Some(lo);
                    spec.upper = Some(hi);
                }
                spec.domain = domain_of(other, &inner, ty).ok().flatten();
                spec
            }
        };
        spec.name = name;
        if unit_name.as_deref() == Some(spec.name.as_str()) {
            spec.role = ColumnRole::PrivacyUnit;
        } else if spec.role == ColumnRole::PrivacyUnit {
            spec.role = ColumnRole::Identifier;
        }
        columns.push(spec);
    }
    if inner.unit.is_some() && unit_name.is_none() {
        reasons.push(format!(
            "a subquery must select the privacy unit ({}) so that each person's contribution can be bounded",
            inner.unit.as_ref().map(|u| u.name.clone()).unwrap_or_default()
        ));
        return None;
    }
    let schema = DatasetSchema {
        max_rows_per_unit: u32::try_from(inner.max_rows_per_unit).unwrap_or(u32::MAX),
        id_space: inner.id_space.clone().unwrap_or_else(|| "default".into()),
        columns,
    };
    Some(RowScope {
        tables: vec![(String::new(), inner.read.join("+"), schema)],
        read: inner.read,
        unit: unit_name.map(Column::new_unqualified),
        id_space: inner.id_space,
        max_rows_per_unit: inner.max_rows_per_unit,
        bound_verified: inner.bound_verified,
        public: inner.public,
        public_keys: inner.public_keys.clone(),
    })
}

fn blank(name: &str, ty: sluice_types::schema::ColumnType) -> ColumnSpec {
    ColumnSpec::new(name, sluice_types::schema::ColumnRole::Attribute, ty)
}

/// UNION ALL of row-level sets: one person contributes at most the sum of
/// the branches' bounds. Columns are matched by position; a column's bounds
/// are the hull of the branches' (none if any branch has none) and its
/// domain the union of theirs (none if any has none). The privacy unit must
/// be in the same position in every branch.
fn union_all(
    u: &datafusion::logical_expr::Union,
    tables: &[SandboxTable],
    reasons: &mut Vec<String>,
) -> Option<RowScope> {
    use sluice_types::schema::ColumnRole;
    let mut branches = Vec::new();
    for input in &u.inputs {
        branches.push(scope_of(input, tables, reasons)?);
    }
    let unit_position = |b: &RowScope| {
        let (_, _, schema) = b.tables.first()?;
        schema
            .columns
            .iter()
            .position(|c| c.role == ColumnRole::PrivacyUnit && b.tables.len() == 1)
    };
    let positions: Vec<Option<usize>> = branches.iter().map(unit_position).collect();
    let Some(Some(unit_at)) = positions.first().copied() else {
        reasons.push("UNION ALL: every branch must select its privacy unit".into());
        return None;
    };
    if positions.iter().any(|p| *p != Some(unit_at)) {
        reasons.push(
            "UNION ALL: every branch must select its privacy unit in the same position".into(),
        );
        return None;
    }
    if branches.iter().any(|b| b.id_space != branches[0].id_space) {
        reasons
            .push("UNION ALL: the branches' privacy units use different identifier spaces".into());
        return None;
    }
    let k: u64 = branches.iter().map(|b| b.max_rows_per_unit).sum();
    if k > u64::from(MAX_ROWS_PER_UNIT_LIMIT) {
        reasons.push(format!(
            "UNION ALL: one person may contribute up to {k} rows, more than the limit"
        ));
        return None;
    }
    let mut columns: Vec<ColumnSpec> = branches[0].tables[0].2.columns.clone();
    for (i, c) in columns.iter_mut().enumerate() {
        c.name = u.schema.field(i).name().clone();
        for b in &branches[1..] {
            let other = &b.tables[0].2.columns[i];
            c.verified = c.verified && other.verified;
            match (c.bounds(), other.bounds()) {
                (Some((l1, h1)), Some((l2, h2))) => {
                    c.lower = Some(l1.min(l2));
                    c.upper = Some(h1.max(h2));
                }
                _ => {
                    c.lower = None;
                    c.upper = None;
                }
            }
            match (&mut c.domain, &other.domain) {
                (Some(d1), Some(d2)) => {
                    for v in d2 {
                        if !d1.contains(v) {
                            d1.push(v.clone());
                        }
                    }
                }
                (d1, _) => *d1 = None,
            }
        }
    }
    let unit_name = columns[unit_at].name.clone();
    let read = branches
        .iter()
        .flat_map(|b| b.read.iter().cloned())
        .collect::<Vec<_>>();
    Some(RowScope {
        tables: vec![(
            String::new(),
            read.join("+"),
            DatasetSchema {
                max_rows_per_unit: k as u32,
                id_space: branches[0]
                    .id_space
                    .clone()
                    .unwrap_or_else(|| "default".into()),
                columns,
            },
        )],
        read,
        unit: Some(Column::new_unqualified(unit_name)),
        id_space: branches[0].id_space.clone(),
        max_rows_per_unit: k,
        bound_verified: branches.iter().all(|b| b.bound_verified),
        public: false,
        public_keys: branches
            .iter()
            .flat_map(|b| b.public_keys.clone())
            .collect(),
    })
}
