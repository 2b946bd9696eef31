//! Gaussian noise accounted in zero-concentrated DP (zCDP), for DP training:
//! many adaptive releases of one bounded vector compose by adding their ρ,
//! and the total converts to (ε, δ) by OpenDP's conversion (the tight bound
//! of Canonne, Kamath and Steinke 2020). The ledger charges ε and δ exactly
//! as the manifest asked; the ρ spent is the largest whose conversion fits.

use opendp::combinators::ConcentratedMeasure;
use opendp::core::Measurement;
use opendp::domains::{AtomDomain, VectorDomain};
use opendp::measurements::make_gaussian;
use opendp::measures::ZeroConcentratedDivergence;
use opendp::metrics::L2Distance;
use sluice_types::privacy::{Delta, Epsilon};

use sluice_types::release::CONFIDENCE_LEVEL;

use crate::{DpError, calibrate_scale, opendp_err};

type GaussianMeasurement = Measurement<
    VectorDomain<AtomDomain<f64>>,
    L2Distance<f64>,
    ZeroConcentratedDivergence,
    Vec<f64>,
>;

/// Noise granularity 2^-40: far below any model parameter's resolution and
/// keeps OpenDP's exact sampler fast.
const GRANULARITY_EXP: i32 = -40;

/// A calibrated Gaussian mechanism over real vectors of bounded L2 norm.
pub struct Gaussian {
    pub(crate) meas: GaussianMeasurement,
    scale: f64,
    dim: usize,
}

impl Gaussian {
    /// Smallest scale (up to float rounding) such that releasing a vector
    /// of `dim` coordinates whose L2 sensitivity is `l2_sensitivity` costs at
    /// most `rho`, as checked by OpenDP's own privacy map (which includes
    /// the rounding to the noise grid).
    pub fn calibrate(l2_sensitivity: f64, rho: f64, dim: usize) -> Result<Self, DpError> {
        if !(l2_sensitivity > 0.0 && l2_sensitivity.is_finite()) {
            return Err(DpError::ZeroSensitivity);
        }
        if !(rho > 0.0 && rho.is_finite()) {
            return Err(DpError::Calibration);
        }
        // ρ = Δ² / (2σ²).
        let (meas, scale) = calibrate_scale(l2_sensitivity / (2.0 * rho).sqrt(), |scale| {
            let meas = gaussian_of_scale(scale, dim)?;
            let loss: f64 = meas.map(&l2_sensitivity).map_err(opendp_err)?;
            Ok((loss <= rho).then_some(meas))
        })?;
        Ok(Gaussian { meas, scale, dim })
    }

    /// Standard deviation of the noise on every coordinate.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Adds independent Gaussian noise to every coordinate; `values` has the
    /// calibrated dimension.
    pub fn release(&self, values: &[f64]) -> Result<Vec<f64>, DpError> {
        // OpenDP's invoke does not check the size the noise was calibrated for.
        if values.len() != self.dim {
            return Err(DpError::Mechanism(format!(
                "a vector of {} values where {} were calibrated",
                values.len(),
                self.dim
            )));
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(DpError::Mechanism("a value to noise is not finite".into()));
        }
        self.meas.invoke(&values.to_vec()).map_err(opendp_err)
    }

    /// Half-width of every coordinate's interval at `CONFIDENCE_LEVEL`, by
    /// OpenDP's accuracy function.
    pub fn ci_halfwidth(&self) -> f64 {
        opendp::accuracy::gaussian_scale_to_accuracy(self.scale, 1.0 - CONFIDENCE_LEVEL)
            .unwrap_or(f64::INFINITY)
    }
}

fn gaussian_of_scale(scale: f64, dim: usize) -> Result<GaussianMeasurement, DpError> {
    make_gaussian(
        VectorDomain::new(AtomDomain::<f64>::new_non_nan()).with_size(dim),
        L2Distance::default(),
        scale,
        Some(GRANULARITY_EXP),
    )
    .map_err(opendp_err)
}

/// ε of a ρ-zCDP release at `delta`, by OpenDP's conversion.
pub fn zcdp_epsilon(rho: f64, delta: Delta) -> Result<f64, DpError> {
    let profile = ZeroConcentratedDivergence::convert(rho).map_err(opendp_err)?;
    profile.epsilon(delta.as_f64()).map_err(opendp_err)
}

/// The largest ρ whose conversion at `delta` costs at most `epsilon`: the
/// zCDP budget of a job that asked for (ε, δ).
pub fn zcdp_budget(epsilon: Epsilon, delta: Delta) -> Result<f64, DpError> {
    if delta.as_f64() <= 0.0 {
        return Err(DpError::Mechanism(
            "zCDP noise needs a positive delta".into(),
        ));
    }
    let eps = epsilon.as_f64();
    // ε(ρ) ≥ ρ, so ρ ≤ ε brackets the answer; ε(ρ) is increasing in ρ.
    let (mut lo, mut hi) = (0.0f64, eps);
    if zcdp_epsilon(hi, delta)? <= eps {
        return Ok(hi);
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if zcdp_epsilon(mid, delta)? <= eps {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    if lo > 0.0 {
        Ok(lo)
    } else {
        Err(DpError::Calibration)
    }
}
