//! Canonical JSON, written here byte by byte rather than by serde_json's
//! printer, so that no dependency upgrade or feature flag can change the
//! bytes a signature or an audit hash covers. The form is specified
//! exactly in docs/releases-and-audit.md ("Canonical JSON"); in short:
//!
//! - no whitespace; object members sorted by the bytes of their UTF-8 keys;
//! - strings: `"` and `\` escaped as `\"` and `\\`; U+0008, U+0009, U+000A,
//!   U+000C, U+000D as `\b`, `\t`, `\n`, `\f`, `\r`; other characters
//!   below U+0020 as `\u00xx` (lowercase hex); everything else as raw UTF-8;
//! - integers (what serde_json holds as u64 or i64) in plain decimal;
//! - floats (f64) from their shortest round-trip decimal digits `d1 d2 … dn`
//!   and exponent `E` (value = d1.d2…dn × 10^E), see [`write_f64`];
//! - `null` for a float that is not finite (JSON has no NaN or infinity).
//!
//! These are the bytes serde_json 1.0.154 printed, so payloads signed
//! before this writer existed keep verifying.

use serde::Serialize;
use serde_json::Value;

pub fn canonical_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    canonical_json_string(value).into_bytes()
}

pub fn canonical_json_string<T: Serialize + ?Sized>(value: &T) -> String {
    let value = serde_json::to_value(value).expect("serialisable value");
    let mut out = String::new();
    write_value(&value, &mut out);
    out
}

/// The canonical bytes of an already-parsed JSON value.
pub fn canonical_value(value: &Value) -> Vec<u8> {
    let mut out = String::new();
    write_value(value, &mut out);
    out.into_bytes()
}

/// Parses `bytes` as JSON and returns the value if, and only if, `bytes`
/// are exactly its canonical form. Floats are parsed exactly (serde_json's
/// `float_roundtrip`), so every canonical payload passes.
pub fn parse_canonical(bytes: &[u8]) -> Option<Value> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    (canonical_value(&value) == bytes).then_some(value)
}

fn write_value(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else {
                write_f64(n.as_f64().expect("a JSON number is u64, i64 or f64"), out);
            }
        }
        Value::String(s) => write_str(s, out),
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(k, out);
                out.push(':');
                write_value(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
    }
}

fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A finite float: `-` if the sign bit is set (so `-0.0`), then, with the
/// shortest round-trip digits `d1…dn` and exponent `E` of its magnitude:
///
/// - zero: `0.0`;
/// - `-5 <= E <= 15`, fixed notation: if `E >= n - 1` the digits, `E-n+1`
///   zeros and `.0` (`1000.0`); else if `E >= 0` the first `E+1` digits, `.`,
///   the rest (`12.5`); else `0.`, `-E-1` zeros and the digits (`0.00015`);
/// - otherwise exponent notation: `d1`, then `.` and `d2…dn` if `n > 1`,
///   then `e`, the exponent's sign (`+` or `-`, always) and `|E|` in
///   decimal without leading zeros (`1e+16`, `2.5e-7`, `5e-324`).
///
/// A non-finite float never reaches here: serde_json maps it to `null`.
pub fn write_f64(x: f64, out: &mut String) {
    debug_assert!(x.is_finite());
    if x.is_sign_negative() {
        out.push('-');
    }
    let x = x.abs();
    if x == 0.0 {
        out.push_str("0.0");
        return;
    }
    let (digits, exp) = shortest_digits(x);
    let n = digits.len() as i32;
    if (-5..=15).contains(&exp) {
        if exp >= n - 1 {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', (exp - n + 1) as usize));
            out.push_str(".0");
        } else if exp >= 0 {
            let (int, frac) = digits.split_at(exp as usize + 1);
            out.push_str(int);
            out.push('.');
            out.push_str(frac);
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&exp.unsigned_abs().to_string());
    }
}

/// The shortest decimal digits that read back as `x` (> 0, finite) and
/// their exponent `E` (x ≈ d1.d2…dn × 10^E); of two equally short strings
/// the one nearer to `x`, and of two equally near the one whose last digit
/// is even (as Python's `repr` and serde_json choose).
fn shortest_digits(x: f64) -> (String, i32) {
    // `{:e}` prints the shortest round-trip digits, nearest to `x`, but it
    // resolves an exact tie upwards: 150676623248382.125 prints as
    // ...382.13 where ties-to-even gives ...382.12.
    let (digits, exp) = split_sci(&format!("{x:e}"));
    let last = digits.as_bytes()[digits.len() - 1] - b'0';
    if last.is_multiple_of(2) {
        return (digits, exp);
    }
    let stem = &digits[..digits.len() - 1];
    let lower = format!("{stem}{}", last - 1);
    let upper = (last < 9).then(|| format!("{stem}{}", last + 1));
    let reads_back = |d: &str| {
        let text = match d.split_at(1) {
            (first, "") => format!("{first}e{exp}"),
            (first, rest) => format!("{first}.{rest}e{exp}"),
        };
        text.parse::<f64>().ok() == Some(x)
    };
    let candidates: Vec<String> = [Some(lower.clone()), upper.clone()]
        .into_iter()
        .flatten()
        .filter(|d| reads_back(d))
        .collect();
    if candidates.is_empty() {
        return (digits, exp);
    }
    // A tie: `x` is exactly the midpoint between `digits` and a neighbour.
    for neighbour in candidates {
        let mid = if neighbour == lower {
            format!("{lower}5")
        } else {
            format!("{digits}5")
        };
        if equals_decimal(x, &mid, exp - digits.len() as i32) {
            return (neighbour, exp);
        }
    }
    (digits, exp)
}

/// Whether `x` (> 0) is exactly `mid × 10^k` (`mid`: at most 19 decimal
/// digits), in integers: x = m·2^q with m odd, and mid·10^k = o·2^a·5^k
/// with o odd, are equal only if their odd parts and powers of two are.
fn equals_decimal(x: f64, mid: &str, k: i32) -> bool {
    let Ok(mid) = mid.parse::<u128>() else {
        return false;
    };
    if mid == 0 {
        return false;
    }
    let bits = x.to_bits();
    let raw_exp = ((bits >> 52) & 0x7ff) as i32;
    let fraction = u128::from(bits & ((1 << 52) - 1));
    let (mut m, mut q) = if raw_exp == 0 {
        (fraction, -1074)
    } else {
        (fraction | 1 << 52, raw_exp - 1075)
    };
    let tz = m.trailing_zeros();
    m >>= tz;
    q += tz as i32;
    let a = mid.trailing_zeros() as i32;
    let o = mid >> a;
    // m < 2^53 and o < 10^19: a power of five beyond 5^27 fits neither.
    if k.unsigned_abs() > 27 {
        return false;
    }
    let five = 5u128.pow(k.unsigned_abs());
    if k >= 0 {
        m == o * five && q == a + k
    } else {
        m * five == o && q - k == a
    }
}

/// "d.ddde-7" → ("dddd", -7).
fn split_sci(sci: &str) -> (String, i32) {
    let (mantissa, exp) = sci.split_once('e').expect("exponent form");
    let digits = mantissa.chars().filter(|c| *c != '.').collect();
    (digits, exp.parse().expect("decimal exponent"))
}
