//! Total replacements for the operations that DataFusion makes fail on
//! data: integer arithmetic that overflows or divides by zero, `abs` of the
//! smallest integer, `sqrt` of a negative number and zero to a negative
//! power. Each gives NULL instead, so a row's value never turns into a job
//! failure.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, ArrowNativeTypeOp, ArrowPrimitiveType, AsArray, PrimitiveArray,
};
use datafusion::arrow::datatypes::{
    DataType, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Operator, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// Integer `+ - * / %` that gives NULL where the exact result does not fit
/// the type or the divisor is zero.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct CheckedArithmetic {
    op: ArithOp,
    name: &'static str,
    signature: Signature,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl CheckedArithmetic {
    fn new(op: ArithOp, name: &'static str) -> Self {
        CheckedArithmetic {
            op,
            name,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

/// The checked function for an integer arithmetic operator, if it is one.
pub(crate) fn checked_arithmetic(op: Operator) -> Option<Arc<ScalarUDF>> {
    static ADD: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| udf(ArithOp::Add, "sluice_add"));
    static SUB: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| udf(ArithOp::Sub, "sluice_sub"));
    static MUL: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| udf(ArithOp::Mul, "sluice_mul"));
    static DIV: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| udf(ArithOp::Div, "sluice_div"));
    static REM: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| udf(ArithOp::Rem, "sluice_mod"));
    fn udf(op: ArithOp, name: &'static str) -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::from(CheckedArithmetic::new(op, name)))
    }
    Some(Arc::clone(match op {
        Operator::Plus => &ADD,
        Operator::Minus => &SUB,
        Operator::Multiply => &MUL,
        Operator::Divide => &DIV,
        Operator::Modulo => &REM,
        _ => return None,
    }))
}

fn checked<T: ArrowNativeTypeOp>(op: ArithOp, a: T, b: T) -> Option<T> {
    match op {
        ArithOp::Add => a.add_checked(b).ok(),
        ArithOp::Sub => a.sub_checked(b).ok(),
        ArithOp::Mul => a.mul_checked(b).ok(),
        ArithOp::Div => a.div_checked(b).ok(),
        ArithOp::Rem => {
            if b.is_zero() {
                None
            } else {
                // MIN % -1 overflows in the hardware division; its value is 0.
                a.mod_checked(b).ok().or(Some(T::ZERO))
            }
        }
    }
}

fn elementwise<T: ArrowPrimitiveType>(op: ArithOp, l: &dyn Array, r: &dyn Array) -> ArrayRef {
    let (l, r) = (l.as_primitive::<T>(), r.as_primitive::<T>());
    let out: PrimitiveArray<T> = l
        .iter()
        .zip(r.iter())
        .map(|(a, b)| checked(op, a?, b?))
        .collect();
    Arc::new(out)
}

impl ScalarUDFImpl for CheckedArithmetic {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [a, b] if a == b && a.is_integer() => Ok(a.clone()),
            _ => plan_err!("{} takes two integers of the same type", self.name),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (l, r) = (arrays[0].as_ref(), arrays[1].as_ref());
        let out = match l.data_type() {
            DataType::Int8 => elementwise::<Int8Type>(self.op, l, r),
            DataType::Int16 => elementwise::<Int16Type>(self.op, l, r),
            DataType::Int32 => elementwise::<Int32Type>(self.op, l, r),
            DataType::Int64 => elementwise::<Int64Type>(self.op, l, r),
            DataType::UInt8 => elementwise::<UInt8Type>(self.op, l, r),
            DataType::UInt16 => elementwise::<UInt16Type>(self.op, l, r),
            DataType::UInt32 => elementwise::<UInt32Type>(self.op, l, r),
            DataType::UInt64 => elementwise::<UInt64Type>(self.op, l, r),
            other => return exec_err!("{} of {other}", self.name),
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// A total function of one or two `f64`s replacing a DataFusion builtin of
/// the same SQL name (given as an alias, so that the plan names the total
/// version and the allow-list can tell them apart).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct TotalFloat {
    name: &'static str,
    aliases: Vec<String>,
    signature: Signature,
    kind: FloatKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum FloatKind {
    /// NULL for negative inputs (DataFusion errors).
    Sqrt,
    /// NULL for zero to a negative power (DataFusion errors).
    Power,
}

impl ScalarUDFImpl for TotalFloat {
    fn name(&self) -> &str {
        self.name
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let x = arrays[0].as_primitive::<Float64Type>();
        let out: PrimitiveArray<Float64Type> = match self.kind {
            FloatKind::Sqrt => x
                .iter()
                // NaN stays NaN (as IEEE sqrt gives); negatives are NULL.
                .map(|v| v.filter(|v| v.is_nan() || *v >= 0.0).map(f64::sqrt))
                .collect(),
            FloatKind::Power => {
                let y = arrays[1].as_primitive::<Float64Type>();
                x.iter()
                    .zip(y.iter())
                    .map(|(b, e)| {
                        let (b, e) = (b?, e?);
                        (!(b == 0.0 && e < 0.0)).then(|| b.powf(e))
                    })
                    .collect()
            }
        };
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `abs` that gives NULL for the smallest integer (whose absolute value
/// does not fit) instead of failing.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct TotalAbs {
    aliases: Vec<String>,
    signature: Signature,
}

fn abs_of<T: ArrowPrimitiveType>(a: &dyn Array) -> ArrayRef
where
    T::Native: PartialOrd,
{
    let a = a.as_primitive::<T>();
    let out: PrimitiveArray<T> = a
        .iter()
        .map(|v| {
            let v = v?;
            if v < T::Native::ZERO {
                v.neg_checked().ok()
            } else {
                Some(v)
            }
        })
        .collect();
    Arc::new(out)
}

impl ScalarUDFImpl for TotalAbs {
    fn name(&self) -> &str {
        "sluice_abs"
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [t] if t.is_integer() || t.is_floating() || t.is_null() => Ok(t.clone()),
            _ => plan_err!("abs takes one number"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let a = arrays[0].as_ref();
        let out = match a.data_type() {
            DataType::Int8 => abs_of::<Int8Type>(a),
            DataType::Int16 => abs_of::<Int16Type>(a),
            DataType::Int32 => abs_of::<Int32Type>(a),
            DataType::Int64 => abs_of::<Int64Type>(a),
            DataType::Float32 => abs_of::<datafusion::arrow::datatypes::Float32Type>(a),
            DataType::Float64 => abs_of::<Float64Type>(a),
            DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Null => Arc::clone(&arrays[0]),
            other => return exec_err!("abs of {other}"),
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// The total replacements, registered in every job's session under the
/// builtins' SQL names.
pub(crate) fn replacements() -> Vec<ScalarUDF> {
    let float = |name, aliases: &[&str], arity, kind| {
        ScalarUDF::from(TotalFloat {
            name,
            aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
            signature: Signature::uniform(arity, vec![DataType::Float64], Volatility::Immutable),
            kind,
        })
    };
    vec![
        float("sluice_sqrt", &["sqrt"], 1, FloatKind::Sqrt),
        float("sluice_power", &["power", "pow"], 2, FloatKind::Power),
        ScalarUDF::from(TotalAbs {
            aliases: vec!["abs".to_owned()],
            signature: Signature::any(1, Volatility::Immutable),
        }),
    ]
}
