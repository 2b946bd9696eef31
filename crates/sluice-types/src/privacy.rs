//! Privacy parameters in exact integer units.
//!
//! The ledger never adds floats: ε is held in units of 1e-9 (nano-ε) and δ in
//! units of 1e-18. A request given as a float is converted through its
//! shortest decimal representation (the one Rust prints, e.g. `0.1` for the
//! float nearest 0.1), so `0.1` is exactly 100_000_000 units; digits beyond the
//! unit are rounded up, against the user.

use std::fmt;

use serde::{Deserialize, Serialize};

pub const EPSILON_UNITS_PER_ONE: u64 = 1_000_000_000;
pub const DELTA_UNITS_PER_ONE: u64 = 1_000_000_000_000_000_000;
/// Largest ε a single request may ask for.
pub const MAX_EPSILON: f64 = 1_000.0;

#[derive(Debug, Clone, PartialEq)]
pub enum PrivacyError {
    NotPositiveFinite { what: &'static str },
    Subnormal { what: &'static str },
    TooLarge { what: &'static str, max: f64 },
    BelowUnit { what: &'static str },
}

impl fmt::Display for PrivacyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivacyError::NotPositiveFinite { what } => {
                write!(f, "{what} must be a positive finite number")
            }
            PrivacyError::Subnormal { what } => {
                write!(f, "{what} is a subnormal float, too small to account for")
            }
            PrivacyError::TooLarge { what, max } => write!(f, "{what} must be at most {max}"),
            PrivacyError::BelowUnit { what } => write!(f, "{what} is below the ledger's unit"),
        }
    }
}

impl std::error::Error for PrivacyError {}

/// Converts a positive float to integer units of `1/units_per_one`.
/// Uses the float's shortest round-trip decimal form so that decimal inputs
/// written by people (0.1, 1e-7) convert exactly.
fn to_units(x: f64, units_per_one: u64, round_up: bool) -> u128 {
    // `{:e}` prints the shortest decimal that round-trips, e.g. "1.5e-7".
    let s = format!("{x:e}");
    let (mantissa, exp) = s.split_once('e').expect("float exponent form");
    let exp: i32 = exp.parse().expect("float exponent");
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: u128 = format!("{int_part}{frac_part}")
        .parse()
        .expect("float mantissa digits");
    // value = digits * 10^(exp - frac_len); units = value * units_per_one
    let scale_exp = exp - frac_part.len() as i32 + units_per_one.ilog10() as i32;
    if scale_exp >= 0 {
        digits.saturating_mul(10u128.saturating_pow(scale_exp as u32))
    } else {
        let div = 10u128.checked_pow((-scale_exp) as u32);
        match (div, round_up) {
            (Some(d), true) => digits.div_ceil(d),
            (Some(d), false) => digits / d,
            (None, true) => 1, // far below one unit: still costs one unit
            (None, false) => 0,
        }
    }
}

fn check_positive(x: f64, what: &'static str, max: f64) -> Result<(), PrivacyError> {
    if !x.is_finite() || x <= 0.0 {
        return Err(PrivacyError::NotPositiveFinite { what });
    }
    if x.is_subnormal() {
        return Err(PrivacyError::Subnormal { what });
    }
    if x > max {
        return Err(PrivacyError::TooLarge { what, max });
    }
    Ok(())
}

/// An ε in nano-units. Always positive.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct Epsilon(u64);

impl Epsilon {
    /// A requested ε: rounded up to the next unit.
    pub fn from_f64(x: f64) -> Result<Self, PrivacyError> {
        check_positive(x, "epsilon", MAX_EPSILON)?;
        Ok(Epsilon(to_units(x, EPSILON_UNITS_PER_ONE, true) as u64))
    }
    /// A granted budget: rounded down (against the user), zero is refused.
    pub fn grant_from_f64(x: f64) -> Result<Self, PrivacyError> {
        check_positive(x, "epsilon", 1e9)?;
        let units = to_units(x, EPSILON_UNITS_PER_ONE, false) as u64;
        if units == 0 {
            return Err(PrivacyError::BelowUnit { what: "epsilon" });
        }
        Ok(Epsilon(units))
    }
    pub const fn from_units(units: u64) -> Self {
        Epsilon(units)
    }
    pub const fn units(self) -> u64 {
        self.0
    }
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / EPSILON_UNITS_PER_ONE as f64
    }
}

impl fmt::Display for Epsilon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_units(f, self.0, EPSILON_UNITS_PER_ONE, 9)
    }
}

/// A δ in units of 1e-18. Zero means pure DP.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct Delta(u64);

impl Delta {
    pub const ZERO: Delta = Delta(0);
    pub fn from_f64(x: f64) -> Result<Self, PrivacyError> {
        check_positive(x, "delta", 1e-2)?;
        Ok(Delta(to_units(x, DELTA_UNITS_PER_ONE, true) as u64))
    }
    pub const fn from_units(units: u64) -> Self {
        Delta(units)
    }
    pub const fn units(self) -> u64 {
        self.0
    }
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / DELTA_UNITS_PER_ONE as f64
    }
}

impl fmt::Display for Delta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_units(f, self.0, DELTA_UNITS_PER_ONE, 18)
    }
}

fn fmt_units(f: &mut fmt::Formatter<'_>, units: u64, per_one: u64, digits: usize) -> fmt::Result {
    let int = units / per_one;
    let frac = units % per_one;
    if frac == 0 {
        write!(f, "{int}")
    } else {
        let frac = format!("{frac:0digits$}");
        write!(f, "{int}.{}", frac.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_inputs_convert_exactly() {
        for (x, units) in [
            (0.1, 100_000_000),
            (1.0, 1_000_000_000),
            (1e-7, 100),
            (0.6, 600_000_000),
            (1e-9, 1),
            (2.5e-10, 1),
            (123.456789123, 123_456_789_123),
        ] {
            assert_eq!(Epsilon::from_f64(x).unwrap().units(), units, "{x}");
        }
        assert_eq!(
            Epsilon::from_f64(1.0000000001).unwrap().units(),
            1_000_000_001
        );
        assert_eq!(Delta::from_f64(1e-6).unwrap().units(), 1_000_000_000_000);
    }

    #[test]
    fn million_small_spends_sum_exactly() {
        let e = Epsilon::from_f64(1e-7).unwrap();
        let total: u64 = (0..1_000_000).map(|_| e.units()).sum();
        assert_eq!(Epsilon::from_units(total), Epsilon::from_f64(0.1).unwrap());
    }

    #[test]
    fn rejects_bad_values() {
        for x in [
            0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e-310,
            5000.0,
        ] {
            assert!(Epsilon::from_f64(x).is_err(), "{x}");
            assert!(Delta::from_f64(x).is_err(), "{x}");
        }
    }

    #[test]
    fn grants_round_down() {
        assert_eq!(
            Epsilon::grant_from_f64(1.0000000009).unwrap().units(),
            1_000_000_000
        );
        assert_eq!(Epsilon::grant_from_f64(2.0).unwrap().units(), 2_000_000_000);
        assert!(Epsilon::grant_from_f64(1e-10).is_err());
    }

    #[test]
    fn displays_decimal() {
        assert_eq!(Epsilon::from_f64(0.1).unwrap().to_string(), "0.1");
        assert_eq!(Epsilon::from_f64(2.0).unwrap().to_string(), "2");
        assert_eq!(Delta::from_f64(1e-6).unwrap().to_string(), "0.000001");
    }
}
