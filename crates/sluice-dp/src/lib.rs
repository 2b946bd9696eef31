//! Differential privacy for Sluice: noise, budget splitting and accuracy.
//!
//! This is the only crate that names OpenDP. OpenDP calibrates every
//! mechanism and states its privacy loss. Discrete Laplace noise is drawn by
//! `sample.rs`, the same exact algorithm as OpenDP's on machine integers
//! (checked against a big-integer reference and OpenDP's own sampler),
//! falling back to OpenDP's sampler for scales it does not cover; every
//! other sample comes from OpenDP. Randomness is OpenSSL's CSPRNG (OpenDP
//! is built with `use-openssl`); no floating-point sampling is written here.
//! The crate never sees rows: it receives exact integer aggregates whose
//! sensitivity the caller computed from declared bounds, and it must not be
//! handed anything else.

use opendp::core::Measurement;
use opendp::domains::{AtomDomain, VectorDomain};
use opendp::measurements::{make_laplace, make_private_quantile};
use opendp::measures::MaxDivergence;
use opendp::metrics::{L1Distance, SymmetricDistance};
use sluice_types::privacy::{Delta, Epsilon};
use sluice_types::release::CONFIDENCE_LEVEL;

mod gaussian;
mod sample;
pub use gaussian::{Gaussian, zcdp_budget, zcdp_epsilon};
use sample::{ExactScale, OsRandom};

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

/// The mechanism `fitting(scale)` builds at the smallest scale, from
/// `start` upwards, at which it returns one: OpenDP rounds its privacy maps
/// up, so the scale a closed formula gives may be a hair too small. Each
/// step raises the scale by about 2^-40 of itself, 64 steps at most.
fn calibrate_scale<M>(
    start: f64,
    mut fitting: impl FnMut(f64) -> Result<Option<M>, DpError>,
) -> Result<(M, f64), DpError> {
    let mut scale = start;
    for _ in 0..64 {
        if let Some(meas) = fitting(scale)? {
            return Ok((meas, scale));
        }
        scale = f64::from_bits(scale.to_bits() + 1 + (scale.to_bits() >> 40));
    }
    Err(DpError::Calibration)
}

/// Fixed point for summing reals with integer noise: the scale (1 for
/// integers up to 2^30, else a power of two that puts `magnitude` at most
/// 2^30 units) and `magnitude` in units, at least 1. A sum of up to 2^33
/// such values stays exact in i64.
pub fn fixed_point(magnitude: f64, integers: bool) -> (f64, u64) {
    let limit = (1u64 << 30) as f64;
    let scale = if (integers && magnitude <= limit) || magnitude == 0.0 {
        1.0
    } else {
        let exp = 30 - magnitude.log2().ceil() as i32;
        2f64.powi(exp.clamp(-60, 60))
    };
    (scale, ((magnitude * scale).ceil() as u64).max(1))
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

type LaplaceMeasurement =
    Measurement<VectorDomain<AtomDomain<i64>>, L1Distance<i64>, MaxDivergence, Vec<i64>>;

/// OpenDP's discrete Laplace mechanism on integer vectors at `scale`.
fn laplace_of_scale(scale: f64) -> Result<LaplaceMeasurement, DpError> {
    make_laplace(
        VectorDomain::new(AtomDomain::<i64>::default()),
        L1Distance::<i64>::default(),
        scale,
        None,
    )
    .map_err(opendp_err)
}

/// Vectors at least this long are noised on all cores.
const PARALLEL_NOISE_MIN: usize = 1 << 14;

/// A calibrated discrete Laplace mechanism over integer vectors.
pub struct DiscreteLaplace {
    scale: f64,
    /// The scale as an exact fraction, when the fast sampler covers it.
    exact: Option<ExactScale>,
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
        let ((), scale) = calibrate_scale(l1_sensitivity as f64 / budget, |scale| {
            let loss: f64 = laplace_of_scale(scale)?.map(&d_in).map_err(opendp_err)?;
            Ok((loss <= budget).then_some(()))
        })?;
        Ok(DiscreteLaplace {
            scale,
            exact: ExactScale::of(scale),
        })
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Adds independent discrete Laplace noise of exactly this scale to
    /// every element (saturating at the i64 range, as OpenDP does). Long
    /// vectors are noised in chunks on all cores, each thread with its own
    /// random stream: the same distribution as noising the whole vector.
    pub fn release(&self, mut values: Vec<i64>) -> Result<Vec<i64>, DpError> {
        // Asking for the core count reads cgroup files: only for long vectors.
        let threads = if values.len() < PARALLEL_NOISE_MIN {
            1
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        };
        if threads < 2 {
            self.noise_in_place(&mut values)?;
            return Ok(values);
        }
        let chunk = values.len().div_ceil(threads);
        let parts: Vec<Result<(), DpError>> = std::thread::scope(|s| {
            let handles: Vec<_> = values
                .chunks_mut(chunk)
                .map(|part| s.spawn(move || self.noise_in_place(part)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(DpError::Mechanism("noise thread panicked".into())))
                })
                .collect()
        });
        for part in parts {
            part?;
        }
        Ok(values)
    }

    fn noise_in_place(&self, values: &mut [i64]) -> Result<(), DpError> {
        match self.exact {
            Some(exact) => {
                let mut rng = OsRandom::new();
                for v in values.iter_mut() {
                    *v = sample::add_saturating(*v, sample::discrete_laplace(&mut rng, exact)?);
                }
            }
            // OpenDP's measurements are not `Send`: each thread builds its
            // own at the same scale.
            None => {
                let noised = laplace_of_scale(self.scale)?
                    .invoke(&values.to_vec())
                    .map_err(opendp_err)?;
                values.copy_from_slice(&noised);
            }
        }
        Ok(())
    }

    /// Half-width `t` (integer units) such that the noise lies in `[-t, t]`
    /// with probability at least `CONFIDENCE_LEVEL`.
    pub fn ci_halfwidth(&self) -> f64 {
        discrete_laplace_halfwidth(self.scale, 1.0 - CONFIDENCE_LEVEL)
    }

    /// Standard deviation of the noise, in integer units.
    pub fn std_dev(&self) -> f64 {
        // Var of discrete Laplace with q = e^{-1/b}: 2q / (1-q)^2.
        let q = (-1.0 / self.scale).exp();
        (2.0 * q).sqrt() / (1.0 - q)
    }
}

/// A DP quantile (MIN, MAX, MEDIAN, percentiles) by OpenDP's exponential
/// mechanism (permute-and-flip) over a public grid of candidates: Smith's
/// score `|(1-α)·#(x<c) - α·#(x>c)|`, in row units. The release is always a
/// candidate. Its error is stated in rank: with probability at least
/// `CONFIDENCE_LEVEL`, the released candidate's score is within `rank_error95` of
/// the best candidate's score.
pub struct Quantile {
    meas: Measurement<VectorDomain<AtomDomain<f64>>, SymmetricDistance, MaxDivergence, f64>,
    scale: f64,
    candidates: usize,
}

impl Quantile {
    /// Calibrates so that releasing the quantile of one cell in which a
    /// privacy unit has at most `max_rows` rows costs at most `epsilon`.
    /// The privacy loss is linear in the number of rows changed (OpenDP's
    /// map is `2·d·max(α, 1-α)/scale`), so a unit whose `max_rows` rows are
    /// spread over several disjoint cells also costs at most `epsilon`.
    pub fn calibrate(
        candidates: Vec<f64>,
        alpha: f64,
        max_rows: u64,
        epsilon: Epsilon,
    ) -> Result<Self, DpError> {
        if max_rows == 0 {
            return Err(DpError::ZeroSensitivity);
        }
        if !(0.0..=1.0).contains(&alpha) || candidates.is_empty() {
            return Err(DpError::Mechanism(
                "a quantile needs alpha in [0, 1] and at least one candidate".into(),
            ));
        }
        let budget = epsilon.as_f64();
        let n_candidates = candidates.len();
        let start = 2.0 * max_rows as f64 * alpha.max(1.0 - alpha) / budget;
        let domain = VectorDomain::new(AtomDomain::<f64>::new_non_nan());
        let (meas, scale) = calibrate_scale(start, |scale| {
            let meas = make_private_quantile(
                domain.clone(),
                SymmetricDistance,
                MaxDivergence,
                candidates.clone(),
                alpha,
                scale,
            )
            .map_err(opendp_err)?;
            let d_in = u32::try_from(max_rows).map_err(|_| DpError::Calibration)?;
            let loss: f64 = meas.map(&d_in).map_err(opendp_err)?;
            let one: f64 = meas.map(&1).map_err(opendp_err)?;
            // Both the whole bound in one cell and row by row across cells.
            Ok((loss <= budget && one * max_rows as f64 <= budget).then_some(meas))
        })?;
        Ok(Quantile {
            meas,
            scale,
            candidates: n_candidates,
        })
    }

    /// The scale of the selection noise, in rows.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Releases one cell's quantile from its values (NaN is not allowed).
    pub fn release(&self, values: &[f64]) -> Result<f64, DpError> {
        self.meas.invoke(&values.to_vec()).map_err(opendp_err)
    }

    /// With probability at least `CONFIDENCE_LEVEL`, the released candidate's
    /// score exceeds the best candidate's by at most this many rows:
    /// permute-and-flip picks a candidate whose score is worse by `g` with
    /// probability at most `exp(-g/scale)`; a union bound over candidates.
    pub fn rank_error95(&self) -> f64 {
        (self.scale * (self.candidates as f64 / (1.0 - CONFIDENCE_LEVEL)).ln()).ceil()
    }
}

/// The threshold for releasing group keys that are not public: a key found
/// in the data is released only if its noisy row count (discrete Laplace of
/// `scale`) exceeds the returned `τ`. One privacy unit has at most
/// `max_rows` rows, so it creates at most `max_rows` keys of its own, with
/// row counts `c_i` adding up to at most `max_rows`. Such a key is released
/// with probability `P(Z ≥ τ - c_i + 1) = q^(τ-c_i+1)/(1+q)`, `q = e^(-1/scale)`;
/// the sum over the unit's keys is largest at an extreme split (the function
/// is convex in each `c_i`), so `δ(τ) = q^(τ+1)/(1+q) · max_m [(m-1)/q + q^-(k-m+1)]`.
/// Returns the smallest `τ ≥ max_rows` with `δ(τ) ≤ delta`. Every noised
/// value of the other keys is covered by the measurements' ε, so the
/// release is (ε, δ)-DP.
pub fn key_threshold(scale: f64, max_rows: u64, delta: Delta) -> Result<u64, DpError> {
    if max_rows == 0 {
        return Err(DpError::ZeroSensitivity);
    }
    let delta = delta.as_f64();
    if !(delta > 0.0 && delta < 1.0 && scale > 0.0 && scale.is_finite()) {
        return Err(DpError::Mechanism(
            "a key threshold needs a delta in (0, 1) and a positive scale".into(),
        ));
    }
    let k = max_rows;
    let tau = (1..=k.min(1_000_000))
        .map(|m| {
            // ln[(m-1)/q + q^-(k-m+1)] with ln q = -1/scale, by log-sum-exp.
            let a = if m > 1 {
                ((m - 1) as f64).ln() + 1.0 / scale
            } else {
                f64::NEG_INFINITY
            };
            let b = (k - m + 1) as f64 / scale;
            let hi = a.max(b);
            hi + ((a - hi).exp() + (b - hi).exp()).ln()
        })
        .fold(f64::NEG_INFINITY, f64::max);
    let ln_1q = (1.0 + (-1.0 / scale).exp()).ln();
    let ln_delta_at = |t: u64| -((t + 1) as f64) / scale - ln_1q + tau;
    // Solve for the real root, then step to the smallest integer that fits.
    let root = ((tau - ln_1q - delta.ln()) * scale - 1.0)
        .ceil()
        .max(k as f64);
    if !root.is_finite() || root > 1e15 {
        return Err(DpError::Calibration);
    }
    let mut t = root as u64;
    while t > k && ln_delta_at(t - 1) <= delta.ln() {
        t -= 1;
    }
    while ln_delta_at(t) > delta.ln() {
        t += 1;
    }
    Ok(t)
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
mod sample_tests;
#[cfg(test)]
mod tests;
