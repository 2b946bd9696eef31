//! Row expressions: everything a job computes on one row (WHERE, the
//! arguments of aggregates, group keys, join conditions, subquery and CTE
//! columns, training features). Two promises rest here, and this module is
//! where they are kept:
//!
//! - **Total.** A row expression cannot fail on any row: once a job has
//!   read data, its outcome must not depend on it. Casts behave like
//!   TRY_CAST (NULL when the value does not convert); integer `+ - * / %`
//!   give NULL on overflow or a zero divisor; `abs`, `sqrt` and `power` are
//!   Sluice's total versions (NULL where DataFusion's fail); functions with
//!   control arguments (counts, positions, patterns) take literals checked
//!   before any data is read. Anything else is refused with a reason.
//! - **Bounded cost.** No row can make a job much slower than any other
//!   row: text a row produces is bounded from declared limits (the longest
//!   stored cell, literal counts), so that one person's rows can move a
//!   job's duration only a little (docs/threat-model.md).
//!
//! Two passes decide what a row expression may compute. [`check_shape`]
//! runs on the plan as written, while the row scope is built: it refuses
//! what is no row expression at all (a subquery outside the supported IN
//! forms, a parameter, an aggregate) with the reason users see. [`verify`]
//! then checks the whole plan (after DataFusion's type coercion, which adds
//! implicit casts, and after [`totalize`]) against the rules; [`collect`]
//! runs a plan with the same rewrites applied after optimisation.
//!
//! This module imports only `crate::error`: every other module may use it.

mod functions;
mod udf;

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, DFSchemaRef, Result};
use datafusion::logical_expr::{
    BinaryExpr, Cast, Expr, ExprSchemable, LogicalPlan, Operator, TryCast,
};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

pub use functions::{MAX_PAD, MAX_REPEAT};
pub(crate) use udf::replacements;

use crate::error::Rejection;

/// Longest text cell a stored version holds (ingest refuses longer ones).
pub const MAX_CELL_BYTES: u64 = sluice_types::schema::MAX_CELL_BYTES as u64;
/// Most bytes of text any one row expression may produce for one row.
pub const MAX_TEXT_BYTES: u64 = 256 * 1024;
/// Most bytes of text all string-building steps of one expression may
/// produce for one row, and most bytes regexes may scan per row.
pub const MAX_ROW_WORK_BYTES: u64 = 1024 * 1024;
/// Longest IN list.
pub const MAX_IN_LIST: usize = 10_000;

/// The schema an expression of `node` is evaluated against: its input's,
/// both sides' for a join, the source table's for a scan's filters.
fn expr_schema(node: &LogicalPlan) -> Result<DFSchemaRef> {
    Ok(match node {
        LogicalPlan::TableScan(scan) => Arc::new(DFSchema::try_from_qualified_schema(
            scan.table_name.clone(),
            &scan.source.schema(),
        )?),
        LogicalPlan::Join(j) => Arc::new(j.left.schema().join(j.right.schema())?),
        other => match other.inputs().as_slice() {
            [one] => Arc::clone(one.schema()),
            _ => Arc::clone(other.schema()),
        },
    })
}

/// Casts that cannot fail on any value: to the same type, to text, and
/// widening numeric ones.
fn infallible_cast(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let rank = |t: &DataType| match t {
        Int8 => Some((true, 1)),
        Int16 => Some((true, 2)),
        Int32 => Some((true, 4)),
        Int64 => Some((true, 8)),
        UInt8 => Some((false, 1)),
        UInt16 => Some((false, 2)),
        UInt32 => Some((false, 4)),
        UInt64 => Some((false, 8)),
        _ => None,
    };
    if from == to || matches!(from, Null) {
        return true;
    }
    match (from, to) {
        (_, Utf8 | LargeUtf8 | Utf8View) => {
            from.is_numeric() || matches!(from, Boolean | Utf8 | LargeUtf8 | Utf8View)
        }
        (Float32, Float64) => true,
        (Boolean, t) if t.is_integer() || t.is_floating() => true,
        (f, Float32 | Float64) if f.is_integer() => true,
        (f, t) => match (rank(f), rank(t)) {
            (Some((fs, fw)), Some((ts, tw))) => (fs == ts && tw >= fw) || (!fs && ts && tw > fw),
            _ => false,
        },
    }
}

fn is_arithmetic(op: Operator) -> bool {
    matches!(
        op,
        Operator::Plus | Operator::Minus | Operator::Multiply | Operator::Divide | Operator::Modulo
    )
}

/// One node made total: a fallible cast becomes TRY_CAST, integer
/// arithmetic becomes its checked version.
fn total_node(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    match e {
        Expr::Cast(Cast { expr, field }) => {
            let from = expr.get_type(schema)?;
            if infallible_cast(&from, field.data_type()) {
                Ok(Transformed::no(Expr::Cast(Cast { expr, field })))
            } else {
                Ok(Transformed::yes(Expr::TryCast(TryCast { expr, field })))
            }
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if is_arithmetic(op) => {
            let (lt, rt) = (left.get_type(schema)?, right.get_type(schema)?);
            match udf::checked_arithmetic(op) {
                Some(checked) if lt.is_integer() && rt.is_integer() => {
                    let (l, r) = if lt == rt {
                        (*left, *right)
                    } else {
                        let wide =
                            |e: Expr| Expr::TryCast(TryCast::new(Box::new(e), DataType::Int64));
                        (wide(*left), wide(*right))
                    };
                    Ok(Transformed::yes(checked.call(vec![l, r])))
                }
                _ => Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
                    left,
                    op,
                    right,
                }))),
            }
        }
        // -MIN overflows (and fails when folded as a constant).
        Expr::Negative(inner) if inner.get_type(schema)?.is_integer() => {
            let ty = inner.get_type(schema)?;
            let zero = ScalarValue::new_zero(&ty)?;
            let checked = udf::checked_arithmetic(Operator::Minus).expect("minus is arithmetic");
            Ok(Transformed::yes(
                checked.call(vec![Expr::Literal(zero, None), *inner]),
            ))
        }
        other => Ok(Transformed::no(other)),
    }
}

/// Rewrites every row expression of `plan` (subqueries included) into its
/// total form. Types do not change. `plan` must be type-coerced.
pub(crate) fn totalize(plan: LogicalPlan) -> Result<LogicalPlan> {
    let out = plan.transform_up_with_subqueries(|node| {
        let schema = expr_schema(&node)?;
        let rewritten = node.map_expressions(|e| e.transform_up(|x| total_node(x, &schema)))?;
        if rewritten.transformed {
            rewritten.map_data(|n| n.recompute_schema())
        } else {
            Ok(rewritten)
        }
    })?;
    Ok(out.data)
}

/// DataFusion's type coercion (the implicit casts it would add when the
/// plan runs), applied now so that [`totalize`] sees them.
pub(crate) fn coerce(ctx: &SessionContext, plan: LogicalPlan) -> Result<LogicalPlan> {
    let state = ctx.state();
    state
        .analyzer()
        .execute_and_check(plan, state.config_options(), |_, _| {})
}

/// `plan`, coerced and made total, or every reason some row expression in
/// it is refused. Reads no data.
pub(crate) fn checked(ctx: &SessionContext, plan: LogicalPlan) -> Result<LogicalPlan, Rejection> {
    let internal = |e: datafusion::error::DataFusionError| Rejection::planning(&e);
    let plan = totalize(coerce(ctx, plan).map_err(internal)?).map_err(internal)?;
    let reasons = verify(&plan);
    if !reasons.is_empty() {
        return Err(Rejection(reasons));
    }
    // What the optimiser folds (constants) fails now, not while data is read.
    ctx.state().optimize(&plan).map_err(internal)?;
    Ok(plan)
}

/// The first pass, on an expression as written: pushes onto `reasons` why
/// it is no row expression at all, if it is not (a row's value must be
/// deterministic and depend on the row alone). Stops at the first node
/// refused.
pub(crate) fn check_shape(e: &Expr, reasons: &mut Vec<String>) {
    let _ = e.apply(|node| {
        let before = reasons.len();
        check_shape_node(node, reasons);
        Ok(if reasons.len() > before {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
}

/// [`check_shape`] of one node (not its children), for walks that treat
/// some nodes (IN subqueries) themselves.
pub(crate) fn check_shape_node(node: &Expr, reasons: &mut Vec<String>) {
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

/// Checks the row-level plan `rows` and the expressions `exprs` computed
/// on its rows (aggregate arguments, group keys, training columns).
pub(crate) fn check_rows(
    ctx: &SessionContext,
    rows: &LogicalPlan,
    exprs: &[Expr],
) -> Result<(), Rejection> {
    let mut projection: Vec<Expr> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| e.clone().alias(format!("__v{i}")))
        .collect();
    if projection.is_empty() {
        projection.push(datafusion::prelude::lit(1i64).alias("__v"));
    }
    let plan = datafusion::logical_expr::LogicalPlanBuilder::from(rows.clone())
        .project(projection)
        .and_then(|b| b.build())
        .map_err(|e| Rejection::planning(&e))?;
    checked(ctx, plan).map(|_| ())
}

/// Runs `plan` with every row expression made total, also those the
/// optimiser rewrote, and collects its output.
pub(crate) async fn collect(ctx: &SessionContext, plan: LogicalPlan) -> Result<Vec<RecordBatch>> {
    let state = ctx.state();
    let plan = totalize(coerce(ctx, plan)?)?;
    let plan = totalize(state.optimize(&plan)?)?;
    let physical = state
        .query_planner()
        .create_physical_plan(&plan, &state)
        .await?;
    datafusion::physical_plan::collect(physical, ctx.task_ctx()).await
}

/// Every reason a row expression of `plan` (subqueries included) is not
/// known to be total and cheap. `plan` must be coerced and totalized.
pub(crate) fn verify(plan: &LogicalPlan) -> Vec<String> {
    let mut reasons: Vec<String> = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        match expr_schema(node) {
            Ok(schema) => {
                let _ = node.apply_expressions(|e| {
                    let mut cx = Cx {
                        schema: &schema,
                        reasons: Vec::new(),
                        work: 0,
                    };
                    visit(e, &mut cx);
                    if cx.work > MAX_ROW_WORK_BYTES {
                        cx.reasons.push(format!(
                            "{}: its string functions and regexes could process up to {} bytes per row, more than the limit of {MAX_ROW_WORK_BYTES}",
                            shown(e),
                            cx.work
                        ));
                    }
                    for r in cx.reasons {
                        if !reasons.contains(&r) {
                            reasons.push(r);
                        }
                    }
                    Ok(TreeNodeRecursion::Continue)
                });
            }
            Err(e) => reasons.push(format!("the query could not be checked: {e}")),
        }
        Ok(TreeNodeRecursion::Continue)
    });
    reasons
}

struct Cx<'a> {
    schema: &'a DFSchema,
    reasons: Vec<String>,
    /// Bytes of text built, or scanned by regexes, for one row so far.
    work: u64,
}

impl Cx<'_> {
    fn refuse(&mut self, reason: String) {
        if !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }
}

/// An expression as users wrote it, without the casts and checked
/// functions that coercion and [`totalize`] added.
fn shown(e: &Expr) -> String {
    let plain = e
        .clone()
        .transform_up(|x| {
            Ok(match x {
                Expr::Cast(Cast { expr, .. }) | Expr::TryCast(TryCast { expr, .. }) => {
                    Transformed::yes(*expr)
                }
                other => Transformed::no(other),
            })
        })
        .map(|t| t.data)
        .unwrap_or_else(|_| e.clone());
    let text = plain.to_string();
    if text.len() > 200 {
        format!("{}...", &text[..text.floor_char_boundary(200)])
    } else {
        text
    }
}

fn allowed_type(t: &DataType) -> bool {
    use DataType::*;
    matches!(
        t,
        Null | Boolean
            | Int8
            | Int16
            | Int32
            | Int64
            | UInt8
            | UInt16
            | UInt32
            | UInt64
            | Float32
            | Float64
            | Utf8
            | LargeUtf8
            | Utf8View
    )
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn literal_text(v: &ScalarValue) -> Option<&str> {
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s),
        _ => None,
    }
}

/// `e` without the aliases around it.
pub(crate) fn strip_alias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => strip_alias(&a.expr),
        other => other,
    }
}

/// A numeric literal as f64.
pub(crate) fn literal_f64(v: &ScalarValue) -> Option<f64> {
    match v {
        ScalarValue::Int8(Some(x)) => Some(f64::from(*x)),
        ScalarValue::Int16(Some(x)) => Some(f64::from(*x)),
        ScalarValue::Int32(Some(x)) => Some(f64::from(*x)),
        ScalarValue::Int64(Some(x)) => Some(*x as f64),
        ScalarValue::UInt8(Some(x)) => Some(f64::from(*x)),
        ScalarValue::UInt16(Some(x)) => Some(f64::from(*x)),
        ScalarValue::UInt32(Some(x)) => Some(f64::from(*x)),
        ScalarValue::UInt64(Some(x)) => Some(*x as f64),
        ScalarValue::Float32(Some(x)) => Some(f64::from(*x)),
        ScalarValue::Float64(Some(x)) => Some(*x),
        _ => None,
    }
}

/// The literal behind `e` (through casts and a sign), if it is one.
fn literal_of(e: &Expr) -> Option<ScalarValue> {
    match e {
        Expr::Literal(v, _) => Some(v.clone()),
        Expr::Alias(a) => literal_of(&a.expr),
        Expr::Cast(Cast { expr, .. }) | Expr::TryCast(TryCast { expr, .. }) => literal_of(expr),
        Expr::Negative(inner) => literal_of(inner)?.arithmetic_negate().ok(),
        // A negative integer literal, as totalize writes it.
        Expr::ScalarFunction(f) if f.func.name() == "sluice_sub" => match f.args.as_slice() {
            [zero, x] if literal_of(zero).is_some_and(|z| literal_f64(&z) == Some(0.0)) => {
                literal_of(x)?.arithmetic_negate().ok()
            }
            _ => None,
        },
        _ => None,
    }
}

/// Bytes of text a regex over `input` bytes may scan: linear in the input
/// (the regex engine has no backtracking), with a factor for large patterns.
fn regex_work(input: u64, pattern: &str) -> u64 {
    input.saturating_mul(1 + pattern.len() as u64 / 16)
}

/// Checks one expression and returns the most bytes its value can hold.
fn visit(e: &Expr, cx: &mut Cx) -> u64 {
    let ty = e.get_type(cx.schema).ok();
    if let Some(t) = &ty
        && !allowed_type(t)
    {
        let hint = if matches!(
            t,
            DataType::Decimal32(..)
                | DataType::Decimal64(..)
                | DataType::Decimal128(..)
                | DataType::Decimal256(..)
        ) {
            "; write numbers as integers or floats (decimal arithmetic can overflow)"
        } else {
            ""
        };
        cx.refuse(format!(
            "{}: values of type {t} are not supported in row expressions (numbers, text and booleans are){hint}",
            shown(e)
        ));
        return 8;
    }
    let text = ty.as_ref().is_some_and(is_text);
    let scalar = 8;
    match e {
        Expr::Alias(a) => visit(&a.expr, cx),
        Expr::Column(_) => {
            if text {
                MAX_CELL_BYTES
            } else {
                scalar
            }
        }
        Expr::Literal(v, _) => literal_text(v).map_or(scalar, |s| s.len() as u64),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let l = visit(left, cx);
            let r = visit(right, cx);
            match op {
                Operator::Eq
                | Operator::NotEq
                | Operator::Lt
                | Operator::LtEq
                | Operator::Gt
                | Operator::GtEq
                | Operator::And
                | Operator::Or
                | Operator::IsDistinctFrom
                | Operator::IsNotDistinctFrom
                | Operator::BitwiseAnd
                | Operator::BitwiseOr
                | Operator::BitwiseXor => scalar,
                op if is_arithmetic(*op) => {
                    if ty.as_ref().is_some_and(DataType::is_integer) {
                        cx.refuse(format!(
                            "{}: integer arithmetic was not made total (internal error; please report it)",
                            shown(e)
                        ));
                    }
                    scalar
                }
                Operator::StringConcat => {
                    let out = l.saturating_add(r);
                    cx.work = cx.work.saturating_add(out);
                    out
                }
                Operator::RegexMatch
                | Operator::RegexIMatch
                | Operator::RegexNotMatch
                | Operator::RegexNotIMatch
                | Operator::LikeMatch
                | Operator::ILikeMatch
                | Operator::NotLikeMatch
                | Operator::NotILikeMatch => {
                    let regex = matches!(
                        op,
                        Operator::RegexMatch
                            | Operator::RegexIMatch
                            | Operator::RegexNotMatch
                            | Operator::RegexNotIMatch
                    );
                    let pattern = literal_of(right);
                    match pattern.as_ref().and_then(literal_text) {
                        Some(p) if regex => {
                            if let Some(why) = functions::check_literal(
                                functions::Lit::Regex,
                                pattern.as_ref().expect("a literal"),
                            ) {
                                cx.refuse(format!("{}: the pattern must be {why}", shown(e)));
                            }
                            cx.work = cx.work.saturating_add(regex_work(l, p));
                        }
                        Some(p) => cx.work = cx.work.saturating_add(regex_work(l, p)),
                        None => cx.refuse(format!(
                            "{}: the pattern must be a literal text, so that it is checked before any data is read",
                            shown(e)
                        )),
                    }
                    scalar
                }
                other => {
                    cx.refuse(format!(
                        "{}: the operator {other} is not supported in row expressions",
                        shown(e)
                    ));
                    scalar
                }
            }
        }
        Expr::Like(like) => {
            let input = visit(&like.expr, cx);
            let pattern = literal_of(&like.pattern);
            match pattern.as_ref().and_then(literal_text) {
                Some(p) if p.len() <= functions::MAX_PATTERN => {
                    cx.work = cx.work.saturating_add(regex_work(input, p));
                }
                Some(_) => cx.refuse(format!(
                    "{}: a LIKE pattern may have at most {} bytes",
                    shown(e),
                    functions::MAX_PATTERN
                )),
                None => cx.refuse(format!(
                    "{}: the LIKE pattern must be a literal text, so that it is checked before any data is read",
                    shown(e)
                )),
            }
            scalar
        }
        Expr::SimilarTo(_) => {
            cx.refuse(format!(
                "{}: SIMILAR TO is not supported; use LIKE or regexp_like with a literal pattern",
                shown(e)
            ));
            scalar
        }
        Expr::Not(x)
        | Expr::IsNull(x)
        | Expr::IsNotNull(x)
        | Expr::IsTrue(x)
        | Expr::IsFalse(x)
        | Expr::IsUnknown(x)
        | Expr::IsNotTrue(x)
        | Expr::IsNotFalse(x)
        | Expr::IsNotUnknown(x)
        | Expr::Negative(x) => {
            visit(x, cx);
            scalar
        }
        Expr::Between(b) => {
            visit(&b.expr, cx);
            visit(&b.low, cx);
            visit(&b.high, cx);
            scalar
        }
        Expr::Case(c) => {
            if let Some(x) = &c.expr {
                visit(x, cx);
            }
            let mut out = 0;
            for (when, then) in &c.when_then_expr {
                visit(when, cx);
                out = out.max(visit(then, cx));
            }
            if let Some(x) = &c.else_expr {
                out = out.max(visit(x, cx));
            }
            if text { out } else { scalar }
        }
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
            let inner = visit(expr, cx);
            if let Expr::Cast(_) = e
                && let Ok(from) = expr.get_type(cx.schema)
                && !infallible_cast(&from, field.data_type())
            {
                cx.refuse(format!(
                    "{}: a cast that can fail was not made total (internal error; please report it)",
                    shown(e)
                ));
            }
            if !text {
                scalar
            } else if expr.get_type(cx.schema).ok().as_ref().is_some_and(is_text) {
                inner
            } else {
                // A number or boolean printed as text.
                let out = 64;
                cx.work = cx.work.saturating_add(out);
                out
            }
        }
        Expr::ScalarFunction(f) => {
            let name = f.func.name();
            let sizes: Vec<u64> = f.args.iter().map(|a| visit(a, cx)).collect();
            if e.is_volatile_node() {
                cx.refuse(format!(
                    "{}: {name}() is not deterministic, so a row's value would not depend on the row alone",
                    shown(e)
                ));
                return scalar;
            }
            let Some(function) = functions::lookup(name) else {
                cx.refuse(format!(
                    "{}: the function {name} is not allowed in row expressions (WHERE, aggregate arguments, group keys, joins, subqueries, training features); only functions that cannot fail on any row and whose cost per row is bounded are (docs/dp-sql.md lists them)",
                    shown(e)
                ));
                return scalar;
            };
            let owned: Vec<Option<ScalarValue>> = f.args.iter().map(literal_of).collect();
            let literals: Vec<Option<&ScalarValue>> = owned.iter().map(Option::as_ref).collect();
            for (i, rule) in function.literals {
                let Some(arg) = f.args.get(*i) else { continue };
                let why = match literal_of(arg) {
                    Some(v) if !v.is_null() => functions::check_literal(*rule, &v),
                    Some(_) => None,
                    None => Some(functions::describe(*rule)),
                };
                if let Some(why) = why {
                    cx.refuse(format!(
                        "{}: argument {} of {name} must be {why}, given as a literal so that it is checked before any data is read",
                        shown(e),
                        i + 1
                    ));
                }
            }
            if matches!(name, "regexp_like" | "regexp_replace")
                && let Some(p) = literals.get(1).copied().flatten().and_then(literal_text)
            {
                cx.work = cx
                    .work
                    .saturating_add(regex_work(sizes.first().copied().unwrap_or(0), p));
            }
            if text {
                let out = functions::output_size(function, &sizes, &literals);
                cx.work = cx.work.saturating_add(out);
                if out > MAX_TEXT_BYTES {
                    cx.refuse(format!(
                        "{}: one row could produce up to {out} bytes of text, more than the limit of {MAX_TEXT_BYTES} (text is bounded so that no row can slow a job down)",
                        shown(e)
                    ));
                }
                out.min(MAX_TEXT_BYTES)
            } else {
                scalar
            }
        }
        Expr::InList(list) => {
            visit(&list.expr, cx);
            if list.list.len() > MAX_IN_LIST {
                cx.refuse(format!(
                    "IN list with {} values: at most {MAX_IN_LIST} are allowed",
                    list.list.len()
                ));
            }
            for item in &list.list {
                visit(item, cx);
            }
            scalar
        }
        // The subquery's own plan is checked as a node of its own.
        Expr::InSubquery(s) => {
            visit(&s.expr, cx);
            scalar
        }
        Expr::AggregateFunction(_) | Expr::WindowFunction(_) => {
            cx.refuse(format!(
                "{}: aggregates and window functions are not row expressions",
                shown(e)
            ));
            scalar
        }
        other => {
            cx.refuse(format!(
                "{}: this kind of expression is not supported in row expressions",
                shown(other)
            ));
            scalar
        }
    }
}

#[cfg(test)]
mod tests;
