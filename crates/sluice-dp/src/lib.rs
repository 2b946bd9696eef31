//! Differential privacy for Sluice: noise, budget splitting and accuracy.
//!
//! This is the only crate that names OpenDP. Every noise sample comes from
//! OpenDP's exact discrete samplers (built with `use-openssl`, so randomness
//! comes from OpenSSL's CSPRNG); no floating-point sampling is written here.
//! The crate never sees rows: it receives exact integer aggregates whose
//! sensitivity the caller computed from declared bounds, and it must not be
//! handed anything else.

use opendp::core::Measurement;
use opendp::domains::{AtomDomain, VectorDomain};
use opendp::measurements::make_laplace;
use opendp::measures::MaxDivergence;
use opendp::metrics::L1Distance;
use sluice_types::privacy::Epsilon;

/// Confidence level of every interval Sluice reports.
pub const CONFIDENCE: f64 = 0.95;

#[derive(Debug, thiserror::Error)]
pub enum DpError {
    #[error("noise mechanism could not be built: {0}")]
    Mechanism(String),
    #[error("sensitivity must be positive")]
    ZeroSensitivity,
    #[error("no scale found whose privacy loss fits the budget share")]
    Calibration,
}

fn opendp_err(e: opendp::error::Error) -> DpError {
    DpError::Mechanism(e.to_string())
}

/// Splits `total` into `parts` shares that add up to it exactly (to the
/// ledger's unit); the first `total % parts` shares get one extra unit.
pub fn split_epsilon(total: Epsilon, parts: usize) -> Vec<Epsilon> {
    assert!(parts > 0, "split into at least one part");
    let parts_u = parts as u64;
    let base = total.units() / parts_u;
    let extra = total.units() % parts_u;
    (0..parts_u)
        .map(|i| Epsilon::from_units(base + u64::from(i < extra)))
        .collect()
}

/// Splits `total` in proportion to `weights`, exactly: shares are rounded
/// down and the leftover units go one each to the first shares, so they add
/// up to `total`. Every share must get at least one unit.
pub fn split_epsilon_weighted(total: Epsilon, weights: &[f64]) -> Result<Vec<Epsilon>, String> {
    if weights.is_empty() || weights.iter().any(|w| !w.is_finite() || *w <= 0.0) {
        return Err("weights must be positive".into());
    }
    let sum: f64 = weights.iter().sum();
    let units = total.units();
    let mut shares: Vec<u64> = weights
        .iter()
        .map(|w| ((units as f64) * (w / sum)).floor() as u64)
        .collect();
    let assigned: u64 = shares.iter().sum();
    // Float rounding can only leave a few units over (never assign too many).
    let mut left = units
        .checked_sub(assigned)
        .ok_or("weights overflow the budget")?;
    for s in shares.iter_mut() {
        if left == 0 {
            break;
        }
        *s += 1;
        left -= 1;
    }
    if left > 0 {
        let n = shares.len() as u64;
        for (i, s) in shares.iter_mut().enumerate() {
            *s += left / n + u64::from((i as u64) < left % n);
        }
    }
    if shares.contains(&0) {
        return Err(
            "a weight is too small: its share of epsilon would be below the ledger's unit".into(),
        );
    }
    Ok(shares.into_iter().map(Epsilon::from_units).collect())
}

/// A calibrated discrete Laplace mechanism over integer vectors.
pub struct DiscreteLaplace {
    meas: Measurement<VectorDomain<AtomDomain<i64>>, L1Distance<i64>, MaxDivergence, Vec<i64>>,
    scale: f64,
}

impl DiscreteLaplace {
    /// Smallest scale (up to float rounding) such that releasing a vector
    /// whose L1 sensitivity is `l1_sensitivity` costs at most `epsilon`, as
    /// checked by OpenDP's own privacy map.
    pub fn calibrate(l1_sensitivity: u64, epsilon: Epsilon) -> Result<Self, DpError> {
        if l1_sensitivity == 0 {
            return Err(DpError::ZeroSensitivity);
        }
        let budget = epsilon.as_f64();
        let d_in = i64::try_from(l1_sensitivity).map_err(|_| DpError::Calibration)?;
        let mut scale = l1_sensitivity as f64 / budget;
        // OpenDP rounds its privacy map up; nudge the scale until the loss fits.
        for _ in 0..64 {
            let meas = make_laplace(
                VectorDomain::new(AtomDomain::<i64>::default()),
                L1Distance::<i64>::default(),
                scale,
                None,
            )
            .map_err(opendp_err)?;
            let loss: f64 = meas.map(&d_in).map_err(opendp_err)?;
            if loss <= budget {
                return Ok(DiscreteLaplace { meas, scale });
            }
            scale = f64::from_bits(scale.to_bits() + 1 + (scale.to_bits() >> 40));
        }
        Err(DpError::Calibration)
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Adds independent discrete Laplace noise to every element.
    pub fn release(&self, values: Vec<i64>) -> Result<Vec<i64>, DpError> {
        self.meas.invoke(&values).map_err(opendp_err)
    }

    /// Half-width `t` (integer units) such that the noise lies in `[-t, t]`
    /// with probability at least `CONFIDENCE`.
    pub fn ci_halfwidth(&self) -> f64 {
        discrete_laplace_halfwidth(self.scale, 1.0 - CONFIDENCE)
    }

    /// Standard deviation of the noise, in integer units.
    pub fn std_dev(&self) -> f64 {
        // Var of discrete Laplace with q = e^{-1/b}: 2q / (1-q)^2.
        let q = (-1.0 / self.scale).exp();
        (2.0 * q).sqrt() / (1.0 - q)
    }
}

/// Smallest integer `t` with `P(|Z| > t) <= alpha` for discrete Laplace noise
/// `Z` of scale `scale`, through OpenDP's accuracy function (whose result may
/// be floored without losing coverage).
pub fn discrete_laplace_halfwidth(scale: f64, alpha: f64) -> f64 {
    opendp::accuracy::discrete_laplacian_scale_to_accuracy(scale, alpha)
        .map(f64::floor)
        .unwrap_or(f64::INFINITY)
}

#[cfg(test)]
mod tests;
