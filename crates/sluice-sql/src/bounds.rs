//! Bounds of numeric row expressions, derived from declared column bounds by
//! interval arithmetic. A derived bound is what the executed plan clamps the
//! expression to, so the sensitivity holds whatever the stored values are.

use datafusion::common::Column;
use datafusion::logical_expr::{BinaryExpr, Case, Cast, Expr, Operator, TryCast};
use sluice_types::schema::{ColumnSpec, ColumnType};

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
                    Ok((
                        p.iter().copied().fold(f64::INFINITY, f64::min),
                        p.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    ))
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

/// Whether an expression is a plain reference to an integer column (summed exactly).
pub fn is_int_column(e: &Expr, scope: &dyn DeclaredColumns) -> bool {
    match e {
        Expr::Alias(a) => is_int_column(&a.expr, scope),
        Expr::Column(c) => scope.column(c).is_ok_and(|s| s.ty == ColumnType::Int),
        _ => false,
    }
}
