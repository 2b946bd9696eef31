//! Bounds of numeric row expressions, derived from declared column bounds by
//! interval arithmetic, and public domains of key expressions, derived from
//! declared domains and bounds. A derived bound is what the executed plan
//! clamps the expression to, so the sensitivity holds whatever the stored
//! values are; a value outside a derived domain is never a released key.

use datafusion::common::Column;
use datafusion::logical_expr::{BinaryExpr, Case, Cast, Expr, Operator, TryCast};
use sluice_types::schema::{ColumnSpec, ColumnType, DomainValue};

use crate::rowexpr::literal_f64;

/// The declared column behind a column reference of a plan: what bounds
/// are derived from. The row scope (`crate::rows`) is the one implementation;
/// the trait keeps this module below it.
pub trait DeclaredColumns {
    fn column(&self, c: &Column) -> Result<&ColumnSpec, String>;
}

/// Largest magnitude a bound may have; beyond it, sums lose exactness.
const MAX_MAGNITUDE: f64 = 1e15;

/// Whether every column `e` reads holds only values within its declared
/// bounds and domain (verified at ingest): then `e` lies within its derived
/// bounds and clamping it changes nothing.
pub fn within_bounds_verified(e: &Expr, scope: &dyn DeclaredColumns) -> bool {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut verified = true;
    let _ = e.apply(|node| {
        if let Expr::Column(c) = node
            && !scope.column(c).is_ok_and(|s| s.verified)
        {
            verified = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    verified
}

pub fn bounds_of(e: &Expr, scope: &dyn DeclaredColumns) -> Result<(f64, f64), String> {
    let (lo, hi) = derive(e, scope)?;
    if !lo.is_finite() || !hi.is_finite() || lo.abs().max(hi.abs()) > MAX_MAGNITUDE {
        return Err(format!("the bounds of {e} are too wide to sum exactly"));
    }
    Ok((lo, hi))
}

fn hull(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    (a.0.min(b.0), a.1.max(b.1))
}

fn derive(e: &Expr, scope: &dyn DeclaredColumns) -> Result<(f64, f64), String> {
    match e {
        Expr::Alias(a) => derive(&a.expr, scope),
        Expr::Column(c) => {
            let spec = scope.column(c)?;
            if !spec.ty.is_numeric() || spec.role.is_pseudonymised() {
                return Err(format!(
                    "column \"{}\" is {} and cannot be summed",
                    spec.name,
                    if spec.role.is_pseudonymised() {
                        "an identifier"
                    } else {
                        spec.ty.as_str()
                    }
                ));
            }
            // An integer column with a declared domain is bounded by it.
            let from_domain = spec.domain.as_ref().and_then(|d| {
                let ints: Vec<i64> = d
                    .iter()
                    .filter_map(|v| match v {
                        sluice_types::schema::DomainValue::Int(i) => Some(*i),
                        _ => None,
                    })
                    .collect();
                Some((*ints.iter().min()? as f64, *ints.iter().max()? as f64))
            });
            spec.bounds().or(from_domain).ok_or_else(|| {
                format!(
                    "column \"{name}\" has no declared bounds, so a sum over it has unbounded sensitivity",
                    name = spec.name
                )
            })
        }
        Expr::Literal(v, _) => literal_f64(v)
            .map(|x| (x, x))
            .ok_or_else(|| format!("literal {v} is not a number")),
        Expr::Negative(inner) => derive(inner, scope).map(|(l, h)| (-h, -l)),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (a, b) = (derive(left, scope)?, derive(right, scope)?);
            match op {
                Operator::Plus => Ok((a.0 + b.0, a.1 + b.1)),
                Operator::Minus => Ok((a.0 - b.1, a.1 - b.0)),
                Operator::Multiply => {
                    let p = [a.0 * b.0, a.0 * b.1, a.1 * b.0, a.1 * b.1];
                    Ok((
                        p.iter().copied().fold(f64::INFINITY, f64::min),
                        p.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    ))
                }
                Operator::Divide if b.0 > 0.0 || b.1 < 0.0 => {
                    let p = [a.0 / b.0, a.0 / b.1, a.1 / b.0, a.1 / b.1];
                    let (lo, hi) = (
                        p.iter().copied().fold(f64::INFINITY, f64::min),
                        p.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    );
                    // Integer division truncates toward zero, which is monotone.
                    if is_integer_valued(left, scope) && is_integer_valued(right, scope) {
                        Ok((lo.trunc(), hi.trunc()))
                    } else {
                        Ok((lo, hi))
                    }
                }
                Operator::Divide => Err(format!("{e}: the divisor's bounds include 0")),
                other => Err(format!("{e}: operator {other} has no derived bounds")),
            }
        }
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field })
            if field.data_type().is_numeric() =>
        {
            let data_type = field.data_type();
            let (l, h) = derive(expr, scope)?;
            // Casting to an integer truncates toward zero, which is monotone.
            if data_type.is_integer() {
                Ok((l.trunc(), h.trunc()))
            } else {
                Ok((l, h))
            }
        }
        Expr::Case(Case {
            when_then_expr,
            else_expr,
            ..
        }) => {
            let mut acc: Option<(f64, f64)> = None;
            for (_, then) in when_then_expr {
                let b = derive(then, scope)?;
                acc = Some(acc.map_or(b, |a| hull(a, b)));
            }
            if let Some(e) = else_expr
                && !matches!(**e, Expr::Literal(ref v, _) if v.is_null())
            {
                let b = derive(e, scope)?;
                acc = Some(acc.map_or(b, |a| hull(a, b)));
            }
            acc.ok_or_else(|| format!("{e} has no numeric branch"))
        }
        Expr::ScalarFunction(f) if matches!(f.func.name(), "coalesce" | "least" | "greatest") => {
            let mut acc: Option<(f64, f64)> = None;
            for a in &f.args {
                let b = derive(a, scope)?;
                acc = Some(acc.map_or(b, |x| hull(x, b)));
            }
            acc.ok_or_else(|| format!("{e} has no arguments"))
        }
        Expr::ScalarFunction(f)
            if matches!(f.func.name(), "floor" | "ceil" | "round" | "trunc")
                && f.args.len() == 1 =>
        {
            // Monotone: the rounded bounds bound the rounded values.
            let (l, h) = derive(&f.args[0], scope)?;
            let g = match f.func.name() {
                "floor" => f64::floor,
                "ceil" => f64::ceil,
                "round" => f64::round,
                _ => f64::trunc,
            };
            Ok((g(l), g(h)))
        }
        Expr::ScalarFunction(f)
            if matches!(f.func.name(), "abs" | "sluice_abs") && f.args.len() == 1 =>
        {
            let (l, h) = derive(&f.args[0], scope)?;
            Ok(if l >= 0.0 {
                (l, h)
            } else if h <= 0.0 {
                (-h, -l)
            } else {
                (0.0, (-l).max(h))
            })
        }
        other => Err(format!(
            "{other}: no bounds can be derived for this expression"
        )),
    }
}

/// Whether `e` takes only integer values: integer columns and literals
/// combined by `+ - * /` (integer division truncates), casts to an integer
/// type, FLOOR, CEIL, ROUND and TRUNC of anything, and CASE, COALESCE,
/// LEAST, GREATEST and ABS of such values. The
/// rules are DataFusion's typing of these expressions; integer-valued
/// expressions are summed exactly, with integer sensitivity and noise.
pub fn is_integer_valued(e: &Expr, scope: &dyn DeclaredColumns) -> bool {
    use datafusion::common::ScalarValue;
    let int = |e: &Expr| is_integer_valued(e, scope);
    match e {
        Expr::Alias(a) => int(&a.expr),
        Expr::Column(c) => scope.column(c).is_ok_and(|s| s.ty == ColumnType::Int),
        Expr::Literal(v, _) => matches!(
            v,
            ScalarValue::Int8(Some(_))
                | ScalarValue::Int16(Some(_))
                | ScalarValue::Int32(Some(_))
                | ScalarValue::Int64(Some(_))
                | ScalarValue::UInt8(Some(_))
                | ScalarValue::UInt16(Some(_))
                | ScalarValue::UInt32(Some(_))
                | ScalarValue::UInt64(Some(_))
        ),
        Expr::Negative(inner) => int(inner),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            matches!(
                op,
                Operator::Plus | Operator::Minus | Operator::Multiply | Operator::Divide
            ) && int(left)
                && int(right)
        }
        Expr::Cast(Cast { field, .. }) | Expr::TryCast(TryCast { field, .. }) => {
            field.data_type().is_integer()
        }
        Expr::Case(Case {
            when_then_expr,
            else_expr,
            ..
        }) => {
            when_then_expr.iter().all(|(_, then)| int(then))
                && else_expr
                    .as_deref()
                    .is_none_or(|e| int(e) || matches!(e, Expr::Literal(v, _) if v.is_null()))
        }
        Expr::ScalarFunction(f)
            if matches!(
                f.func.name(),
                "coalesce" | "least" | "greatest" | "abs" | "sluice_abs"
            ) =>
        {
            f.args.iter().all(int)
        }
        // Typed as floats, but whole numbers of any argument.
        Expr::ScalarFunction(f)
            if matches!(f.func.name(), "floor" | "ceil" | "round" | "trunc")
                && f.args.len() == 1 =>
        {
            true
        }
        _ => false,
    }
}

/// Most values a derived domain may have (an integer range); the product
/// of a query's domains is limited separately (`MAX_CELLS`).
pub const MAX_DERIVED_DOMAIN: usize = 10_000;

/// The public domain of a row expression of type `ty`, when one follows
/// from the schema: a literal; a column with a declared domain; CASE and
/// COALESCE over such expressions (the union of their results'; a NULL
/// result is never a key); any boolean expression ({false, true}); an
/// integer-valued expression with derived bounds (every integer between
/// them). Ok(None): no domain follows; Err: the derived domain is larger
/// than `MAX_DERIVED_DOMAIN`.
pub fn domain_of(
    e: &Expr,
    scope: &dyn DeclaredColumns,
    ty: ColumnType,
) -> Result<Option<Vec<DomainValue>>, String> {
    if ty == ColumnType::Bool {
        return Ok(Some(vec![
            DomainValue::Bool(false),
            DomainValue::Bool(true),
        ]));
    }
    if let Some(mut domain) = finite_domain(e, scope, ty) {
        domain.sort();
        domain.dedup();
        return Ok(Some(domain));
    }
    if ty != ColumnType::Int || !is_integer_valued(e, scope) {
        return Ok(None);
    }
    let Ok((lo, hi)) = bounds_of(e, scope) else {
        return Ok(None);
    };
    let (lo, hi) = (lo.ceil() as i64, hi.floor() as i64);
    let size = (hi as i128 - lo as i128 + 1).max(0);
    if size > MAX_DERIVED_DOMAIN as i128 {
        return Err(format!(
            "its derived domain is every integer from {lo} to {hi}, {size} values, more than the limit of {MAX_DERIVED_DOMAIN}; divide it into wider bins"
        ));
    }
    Ok(Some((lo..=hi).map(DomainValue::Int).collect()))
}

/// The values `e` can take, when they are finitely many literals and
/// declared domain values of type `ty`.
fn finite_domain(
    e: &Expr,
    scope: &dyn DeclaredColumns,
    ty: ColumnType,
) -> Option<Vec<DomainValue>> {
    use datafusion::common::ScalarValue;
    let of_type = |v: &DomainValue| {
        matches!(
            (v, ty),
            (DomainValue::Int(_), ColumnType::Int)
                | (DomainValue::Text(_), ColumnType::Text)
                | (DomainValue::Bool(_), ColumnType::Bool)
        )
    };
    let union = |parts: Vec<&Expr>| {
        let mut out = Vec::new();
        for p in parts {
            out.extend(finite_domain(p, scope, ty)?);
        }
        Some(out)
    };
    match e {
        Expr::Alias(a) => finite_domain(&a.expr, scope, ty),
        Expr::Literal(v, _) if v.is_null() => Some(Vec::new()),
        Expr::Literal(v, _) => {
            let value = match v {
                ScalarValue::Utf8(Some(s))
                | ScalarValue::LargeUtf8(Some(s))
                | ScalarValue::Utf8View(Some(s)) => DomainValue::Text(s.clone()),
                ScalarValue::Boolean(Some(b)) => DomainValue::Bool(*b),
                other => DomainValue::Int(i64::try_from(other.clone()).ok()?),
            };
            of_type(&value).then(|| vec![value])
        }
        Expr::Column(c) => {
            let domain = scope.column(c).ok()?.domain.clone()?;
            domain.iter().all(of_type).then_some(domain)
        }
        Expr::Case(Case {
            when_then_expr,
            else_expr,
            ..
        }) => union(
            when_then_expr
                .iter()
                .map(|(_, t)| t.as_ref())
                .chain(else_expr.as_deref())
                .collect(),
        ),
        Expr::ScalarFunction(f) if f.func.name() == "coalesce" => union(f.args.iter().collect()),
        _ => None,
    }
}
