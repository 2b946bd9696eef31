//! The functions a row expression may call, each with what makes it safe:
//! it cannot fail on any row (DataFusion's own version where it is total,
//! Sluice's replacement where it is not), its control arguments (counts,
//! positions, patterns) are literals checked here, and the text it can
//! produce for one row is bounded, so that no row can make a job fail or
//! run long. Everything else is refused before any data is read.

use datafusion::scalar::ScalarValue;

/// What a literal argument must be.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lit {
    /// An integer in `min..=max`.
    Int { min: i64, max: i64 },
    /// A non-zero integer of magnitude at most `max`.
    NonZeroInt { max: i64 },
    /// A text of at most `max` bytes.
    Text { max: usize },
    /// A regular expression (compiled here with the engine's own crate).
    Regex,
    /// Regex flags: a combination of `i`, `m` and `s`.
    RegexFlags,
    /// `regexp_replace` flags: also `g` (replace every match).
    ReplaceFlags,
}

/// How long (in bytes) the text a function returns can be, given its
/// arguments' bounds and its literal arguments.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Size {
    /// A number or a boolean.
    Scalar,
    /// At most the longest argument (coalesce, nullif, greatest, ...).
    MaxOfArgs,
    /// At most `factor` times the first argument (case mapping may widen).
    Times(u64),
    /// The sum of the arguments (concat) plus separators (concat_ws).
    Sum,
    /// Padding to a literal count of characters (4 bytes each at most).
    Pad,
    /// The first argument repeated a literal number of times.
    Repeat,
    /// The first argument with each match replaced by a literal text.
    Replace,
}

pub(crate) struct RowFunction {
    /// The function's name in the plan.
    pub name: &'static str,
    /// Literal arguments by position; a missing optional one is fine.
    pub literals: &'static [(usize, Lit)],
    pub size: Size,
}

const fn f(name: &'static str, literals: &'static [(usize, Lit)], size: Size) -> RowFunction {
    RowFunction {
        name,
        literals,
        size,
    }
}

const POSITION: Lit = Lit::Int {
    min: -1_000_000_000,
    max: 1_000_000_000,
};
const DIGITS: Lit = Lit::Int { min: -30, max: 30 };
const SHORT_TEXT: Lit = Lit::Text { max: 1024 };

/// Longest padding (in characters) lpad and rpad may ask for.
pub const MAX_PAD: i64 = 65_536;
/// Most repetitions `repeat` may ask for (its output is bounded as well).
pub const MAX_REPEAT: i64 = 1024;

/// The allow-list. Names are DataFusion's canonical names (aliases such as
/// `length` or `substring` plan to these), or `sluice_*` for Sluice's total
/// replacements of partial builtins (`abs`, `sqrt`, `power`).
pub(crate) static ROW_FUNCTIONS: &[RowFunction] = &[
    // Integer arithmetic, checked: NULL on overflow or a zero divisor.
    f("sluice_add", &[], Size::Scalar),
    f("sluice_sub", &[], Size::Scalar),
    f("sluice_mul", &[], Size::Scalar),
    f("sluice_div", &[], Size::Scalar),
    f("sluice_mod", &[], Size::Scalar),
    // Numbers: IEEE results (NaN, infinities) instead of errors.
    f("sluice_abs", &[], Size::Scalar),
    f("sluice_sqrt", &[], Size::Scalar),
    f("sluice_power", &[], Size::Scalar),
    f("ceil", &[], Size::Scalar),
    f("floor", &[], Size::Scalar),
    f("round", &[(1, DIGITS)], Size::Scalar),
    f("trunc", &[(1, DIGITS)], Size::Scalar),
    f("signum", &[], Size::Scalar),
    f("cbrt", &[], Size::Scalar),
    f("exp", &[], Size::Scalar),
    f("ln", &[], Size::Scalar),
    f("log", &[], Size::Scalar),
    f("log2", &[], Size::Scalar),
    f("log10", &[], Size::Scalar),
    f("sin", &[], Size::Scalar),
    f("cos", &[], Size::Scalar),
    f("tan", &[], Size::Scalar),
    f("asin", &[], Size::Scalar),
    f("acos", &[], Size::Scalar),
    f("atan", &[], Size::Scalar),
    f("atan2", &[], Size::Scalar),
    f("sinh", &[], Size::Scalar),
    f("cosh", &[], Size::Scalar),
    f("tanh", &[], Size::Scalar),
    f("asinh", &[], Size::Scalar),
    f("acosh", &[], Size::Scalar),
    f("atanh", &[], Size::Scalar),
    f("degrees", &[], Size::Scalar),
    f("radians", &[], Size::Scalar),
    f("pi", &[], Size::Scalar),
    f("isnan", &[], Size::Scalar),
    f("iszero", &[], Size::Scalar),
    f("nanvl", &[], Size::Scalar),
    // Choices between values.
    f("coalesce", &[], Size::MaxOfArgs),
    f("nullif", &[], Size::MaxOfArgs),
    f("nvl", &[], Size::MaxOfArgs),
    f("nvl2", &[], Size::MaxOfArgs),
    f("greatest", &[], Size::MaxOfArgs),
    f("least", &[], Size::MaxOfArgs),
    // Text to numbers and booleans.
    f("character_length", &[], Size::Scalar),
    f("octet_length", &[], Size::Scalar),
    f("bit_length", &[], Size::Scalar),
    f("strpos", &[], Size::Scalar),
    f("starts_with", &[], Size::Scalar),
    f("ends_with", &[], Size::Scalar),
    f("contains", &[], Size::Scalar),
    f("ascii", &[], Size::Scalar),
    f(
        "regexp_like",
        &[(1, Lit::Regex), (2, Lit::RegexFlags)],
        Size::Scalar,
    ),
    // Text to text, bounded by the input or by literals.
    f("lower", &[], Size::Times(3)),
    f("upper", &[], Size::Times(3)),
    f("initcap", &[], Size::Times(3)),
    f("btrim", &[(1, SHORT_TEXT)], Size::Times(1)),
    f("ltrim", &[(1, SHORT_TEXT)], Size::Times(1)),
    f("rtrim", &[(1, SHORT_TEXT)], Size::Times(1)),
    f("reverse", &[], Size::Times(1)),
    f(
        "substr",
        &[
            (1, POSITION),
            (
                2,
                Lit::Int {
                    min: 0,
                    max: 1_000_000_000,
                },
            ),
        ],
        Size::Times(1),
    ),
    f("left", &[(1, POSITION)], Size::Times(1)),
    f("right", &[(1, POSITION)], Size::Times(1)),
    f(
        "split_part",
        &[(1, SHORT_TEXT), (2, Lit::NonZeroInt { max: 1_000_000 })],
        Size::Times(1),
    ),
    f(
        "translate",
        &[(1, SHORT_TEXT), (2, SHORT_TEXT)],
        Size::Times(4),
    ),
    f("concat", &[], Size::Sum),
    f("concat_ws", &[(0, SHORT_TEXT)], Size::Sum),
    f(
        "lpad",
        &[
            (
                1,
                Lit::Int {
                    min: 0,
                    max: MAX_PAD,
                },
            ),
            (2, SHORT_TEXT),
        ],
        Size::Pad,
    ),
    f(
        "rpad",
        &[
            (
                1,
                Lit::Int {
                    min: 0,
                    max: MAX_PAD,
                },
            ),
            (2, SHORT_TEXT),
        ],
        Size::Pad,
    ),
    f(
        "repeat",
        &[(
            1,
            Lit::Int {
                min: 0,
                max: MAX_REPEAT,
            },
        )],
        Size::Repeat,
    ),
    f(
        "replace",
        &[(1, SHORT_TEXT), (2, SHORT_TEXT)],
        Size::Replace,
    ),
    f(
        "regexp_replace",
        &[(1, Lit::Regex), (2, SHORT_TEXT), (3, Lit::ReplaceFlags)],
        Size::Replace,
    ),
    f("to_hex", &[], Size::Scalar),
];

pub(crate) fn lookup(name: &str) -> Option<&'static RowFunction> {
    ROW_FUNCTIONS.iter().find(|f| f.name == name)
}

/// Longest regex pattern accepted, in bytes.
pub const MAX_PATTERN: usize = 256;

/// What `rule` asks for, in words.
pub(crate) fn describe(rule: Lit) -> String {
    match rule {
        Lit::Int { min, max } => format!("an integer from {min} to {max}"),
        Lit::NonZeroInt { max } => format!("a non-zero integer from -{max} to {max}"),
        Lit::Text { max } => format!("a text of at most {max} bytes"),
        Lit::Regex => format!("a valid regular expression of at most {MAX_PATTERN} bytes"),
        Lit::RegexFlags => "flags made of i, m and s".into(),
        Lit::ReplaceFlags => "flags made of g, i, m and s".into(),
    }
}

/// Why `value` does not satisfy `rule`, if it does not.
pub(crate) fn check_literal(rule: Lit, value: &ScalarValue) -> Option<String> {
    let int = super::literal_f64(value)
        .filter(|v| v.fract() == 0.0)
        .map(|v| v as i64);
    let text = match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s.as_str()),
        _ => None,
    };
    let fits = match rule {
        Lit::Int { min, max } => int.is_some_and(|v| (min..=max).contains(&v)),
        Lit::NonZeroInt { max } => int.is_some_and(|v| v != 0 && v.abs() <= max),
        Lit::Text { max } => text.is_some_and(|s| s.len() <= max),
        Lit::Regex => match text {
            Some(p) if p.len() <= MAX_PATTERN => {
                if let Err(e) = regex::Regex::new(p) {
                    let detail = e.to_string();
                    let last = detail.lines().last().unwrap_or("invalid").trim().to_owned();
                    return Some(format!("a valid regular expression ({last})"));
                }
                true
            }
            _ => false,
        },
        Lit::RegexFlags => {
            text.is_some_and(|f| !f.is_empty() && f.chars().all(|c| "ims".contains(c)))
        }
        Lit::ReplaceFlags => {
            text.is_some_and(|f| !f.is_empty() && f.chars().all(|c| "gims".contains(c)))
        }
    };
    (!fits).then(|| describe(rule))
}

/// The most bytes `function` can return for one row, given the most each
/// argument can hold and the literal arguments.
pub(crate) fn output_size(
    function: &RowFunction,
    args: &[u64],
    literals: &[Option<&ScalarValue>],
) -> u64 {
    let arg = |i: usize| args.get(i).copied().unwrap_or(0);
    let lit_int = |i: usize| {
        literals
            .get(i)
            .copied()
            .flatten()
            .and_then(super::literal_f64)
            .map_or(0, |v| v.max(0.0) as u64)
    };
    let lit_len = |i: usize| match literals.get(i).copied().flatten() {
        Some(ScalarValue::Utf8(Some(s)))
        | Some(ScalarValue::LargeUtf8(Some(s)))
        | Some(ScalarValue::Utf8View(Some(s))) => s.len() as u64,
        _ => 0,
    };
    match function.size {
        Size::Scalar => 8,
        Size::MaxOfArgs => args.iter().copied().max().unwrap_or(0),
        Size::Times(k) => arg(0).saturating_mul(k),
        Size::Sum => args
            .iter()
            .fold(0u64, |a, b| a.saturating_add(*b))
            .saturating_add((args.len() as u64).saturating_mul(arg(0))),
        Size::Pad => lit_int(1).saturating_mul(4),
        Size::Repeat => arg(0).saturating_mul(lit_int(1)),
        Size::Replace => {
            // Every match (at most one per byte, and one more at the end
            // for an empty pattern) becomes the replacement.
            let replacement = lit_len(2).max(1);
            arg(0)
                .saturating_add(1)
                .saturating_mul(replacement)
                .saturating_add(arg(0))
        }
    }
}
