//! DP model training inside the sandbox: linear and logistic regression by
//! full-batch DP gradient descent (DP-GD) with per-unit clipping.
//!
//! Privacy (docs/learn.md): at each step every privacy unit contributes the
//! mean gradient of its rows, clipped to L2 norm `clip_norm`, so adding or
//! removing a unit moves the summed gradient by at most `clip_norm` whatever
//! its number of rows. The sum gets Gaussian noise from `sluice-dp`; steps
//! compose in zCDP (ρ adds up), and the total converts to the (ε, δ) the
//! manifest asked for. Nothing the data decides changes the number of steps
//! or what is released. Non-private training (no clipping, no noise, exact
//! counts) runs the very same code, for comparison.
//!
//! Features are clamped to their declared bounds and scaled to [-1, 1]; the
//! learned coefficients are mapped back to the original units.

use rand::Rng;
use sluice_dp::{DpError, Gaussian};
use sluice_types::rows::UnitRows;

#[cfg(test)]
mod tests;
// The test data module is shared with the benchmark and names this crate.
#[cfg(test)]
extern crate self as sluice_learn;

/// The model and hyperparameters are the manifest's own types.
pub use sluice_types::manifest::{TrainHyper as Hyper, TrainModel as ModelKind};

/// Everything `train` needs besides the rows. `rows` columns are the
/// features in order, then the label.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSpec {
    pub model: ModelKind,
    /// Declared bounds of each feature.
    pub feature_bounds: Vec<(f64, f64)>,
    /// Declared bounds of the label (linear); logistic labels are 0/1,
    /// anything above 0.5 being 1.
    pub label_bounds: (f64, f64),
    pub hyper: Hyper,
}

/// Shares of the zCDP budget: the gradient steps, the training-set size
/// (the step's divisor), and the held-out evaluation.
pub const STEPS_SHARE: f64 = 0.9;
pub const COUNT_SHARE: f64 = 0.02;
pub const EVAL_SHARE: f64 = 0.08;

#[derive(Debug, Clone, PartialEq)]
pub struct Trained {
    /// Intercept and coefficients in the features' original units.
    pub intercept: f64,
    pub coefficients: Vec<f64>,
    /// Held-out accuracy (logistic) or mean absolute error in label units
    /// (linear), noised under DP.
    pub evaluation: f64,
    /// Standard deviation of the noise added to each step's gradient sum
    /// (0 without privacy).
    pub step_noise_std: f64,
    /// Steps actually run (always `epochs`: never data-dependent).
    pub steps: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    #[error("{0}")]
    Spec(String),
    #[error(transparent)]
    Dp(#[from] DpError),
}

/// The rows in the learner's space: features clamped and scaled to
/// [-1, 1] after a constant 1 (the intercept), labels as 0/1 (logistic) or
/// scaled to [-1, 1] (linear).
pub struct Scaled {
    /// Features per row including the intercept.
    pub dim: usize,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    /// 1 / L2 norm of each row's features, computed once: a one-row unit's
    /// gradient is residual · x, so clipping it to norm c is clamping the
    /// residual to ±c / ‖x‖, with no pass over x.
    inv_row_norm: Vec<f64>,
    /// Unit i owns rows `unit_starts[i]..unit_starts[i+1]`.
    pub unit_starts: Vec<usize>,
    centre: Vec<f64>,
    half: Vec<f64>,
    label_centre: f64,
    label_half: f64,
}

fn centre_half((lo, hi): (f64, f64)) -> (f64, f64) {
    ((lo + hi) / 2.0, (hi - lo) / 2.0)
}

fn scale_value(v: f64, lo: f64, hi: f64, centre: f64, half: f64) -> f64 {
    if v.is_nan() || half <= 0.0 {
        0.0
    } else {
        (v.clamp(lo, hi) - centre) / half
    }
}

impl Scaled {
    pub fn new(rows: &UnitRows, spec: &TrainSpec) -> Result<Scaled, LearnError> {
        let features = spec.feature_bounds.len();
        if rows.width != features + 1 {
            return Err(LearnError::Spec(format!(
                "rows have {} columns where {} features and a label were declared",
                rows.width, features
            )));
        }
        for (i, (lo, hi)) in spec.feature_bounds.iter().enumerate() {
            if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                return Err(LearnError::Spec(format!(
                    "feature {i} has no finite declared bounds"
                )));
            }
        }
        let dim = features + 1;
        let (centre, half): (Vec<f64>, Vec<f64>) =
            spec.feature_bounds.iter().map(|b| centre_half(*b)).unzip();
        let (label_lo, label_hi) = spec.label_bounds;
        let (label_centre, label_half) = centre_half(spec.label_bounds);
        let n = rows.rows();
        let mut x = Vec::with_capacity(n * dim);
        let mut y = Vec::with_capacity(n);
        for row in rows.values.chunks_exact(rows.width) {
            x.push(1.0);
            for j in 0..features {
                let (lo, hi) = spec.feature_bounds[j];
                x.push(scale_value(row[j], lo, hi, centre[j], half[j]));
            }
            let label = row[features];
            y.push(match spec.model {
                ModelKind::Logistic => f64::from(u8::from(label > 0.5)),
                ModelKind::Linear => {
                    scale_value(label, label_lo, label_hi, label_centre, label_half)
                }
            });
        }
        let inv_row_norm = x
            .chunks_exact(dim)
            .map(|r| 1.0 / r.iter().map(|v| v * v).sum::<f64>().sqrt())
            .collect();
        Ok(Scaled {
            dim,
            x,
            y,
            inv_row_norm,
            unit_starts: rows.unit_starts.clone(),
            centre,
            half,
            label_centre,
            label_half,
        })
    }

    pub fn units(&self) -> usize {
        self.unit_starts.len().saturating_sub(1)
    }

    fn row(&self, r: usize) -> &[f64] {
        &self.x[r * self.dim..(r + 1) * self.dim]
    }
}

fn predict(model: ModelKind, w: &[f64], x: &[f64]) -> f64 {
    let z: f64 = w.iter().zip(x).map(|(a, b)| a * b).sum();
    match model {
        ModelKind::Linear => z,
        ModelKind::Logistic => 1.0 / (1.0 + (-z).exp()),
    }
}

/// A user's per-unit gradient (a WASM guest in `gradient` mode): given one
/// unit's rows in the learner's space (row-major: the intercept's 1, the
/// scaled features, the label) and the parameters, a vector of the
/// parameters' length. None, or anything malformed, counts as a zero
/// gradient for that unit; the host clips whatever comes back.
pub type CustomGradient<'a> = dyn Fn(&[f64], usize, &[f64]) -> Option<Vec<f64>> + Sync + 'a;

/// One unit's gradient from a custom function: its rows with the label
/// appended (in `buf`, reused across units), the output checked for length
/// and finiteness.
fn custom_unit_gradient(
    data: &Scaled,
    f: &CustomGradient<'_>,
    w: &[f64],
    rows: std::ops::Range<usize>,
    buf: &mut Vec<f64>,
    out: &mut [f64],
) {
    let width = data.dim + 1;
    buf.clear();
    for r in rows {
        buf.extend_from_slice(data.row(r));
        buf.push(data.y[r]);
    }
    match f(buf, width, w) {
        Some(g) if g.len() == out.len() && g.iter().all(|v| v.is_finite()) => {
            out.copy_from_slice(&g)
        }
        _ => out.iter_mut().for_each(|g| *g = 0.0),
    }
}

/// Σ over `units` of each unit's mean row gradient (or its `custom`
/// gradient), clipped to `clip` when given: the quantity whose sensitivity
/// is `clip`. Units are summed in parallel chunks and the chunks added in a
/// fixed order.
pub fn gradient_sum(
    data: &Scaled,
    model: ModelKind,
    w: &[f64],
    units: &[u32],
    clip: Option<f64>,
    custom: Option<&CustomGradient<'_>>,
) -> Vec<f64> {
    let dim = data.dim;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = units.len().div_ceil(threads).max(1);
    let partial = |part: &[u32]| {
        let mut total = vec![0.0; dim];
        let mut unit_grad = vec![0.0; dim];
        let mut custom_rows = Vec::new();
        for &u in part {
            let (start, end) = (
                data.unit_starts[u as usize],
                data.unit_starts[u as usize + 1],
            );
            if end == start {
                continue;
            }
            if let Some(f) = custom {
                custom_unit_gradient(data, f, w, start..end, &mut custom_rows, &mut unit_grad);
            } else if end - start == 1 {
                let x = data.row(start);
                let residual = predict(model, w, x) - data.y[start];
                let s = match clip {
                    Some(c) => {
                        let cap = c * data.inv_row_norm[start];
                        residual.clamp(-cap, cap)
                    }
                    None => residual,
                };
                total.iter_mut().zip(x).for_each(|(t, v)| *t += s * v);
                continue;
            } else {
                unit_grad.iter_mut().for_each(|g| *g = 0.0);
                let inv = 1.0 / (end - start) as f64;
                for r in start..end {
                    let x = data.row(r);
                    let s = (predict(model, w, x) - data.y[r]) * inv;
                    unit_grad.iter_mut().zip(x).for_each(|(g, v)| *g += s * v);
                }
            }
            let factor = clip.map_or(1.0, |c| {
                let norm = unit_grad.iter().map(|g| g * g).sum::<f64>().sqrt();
                if norm > c { c / norm } else { 1.0 }
            });
            total
                .iter_mut()
                .zip(&unit_grad)
                .for_each(|(t, g)| *t += factor * g);
        }
        total
    };
    let parts: Vec<Vec<f64>> = if threads < 2 || units.len() < 4096 {
        vec![partial(units)]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = units
                .chunks(chunk)
                .map(|part| s.spawn(move || partial(part)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("gradient thread panicked"))
                .collect()
        })
    };
    let mut sum = vec![0.0; dim];
    for p in parts {
        sum.iter_mut().zip(p).for_each(|(a, b)| *a += b);
    }
    sum
}

/// Per-unit evaluation in [0, 1] (so that its sum has sensitivity 1): the
/// fraction of the unit's rows classified right (logistic), or its mean
/// absolute error in scaled units over its largest value 2 (linear). The
/// absolute error keeps the metric well above the noise when the declared
/// label range is wide; a squared error would shrink with its square.
fn evaluation_sum(data: &Scaled, model: ModelKind, w: &[f64], units: &[u32]) -> f64 {
    units
        .iter()
        .map(|&u| {
            let (start, end) = (
                data.unit_starts[u as usize],
                data.unit_starts[u as usize + 1],
            );
            if end == start {
                return 0.0;
            }
            let total: f64 = (start..end)
                .map(|r| {
                    let p = predict(model, w, data.row(r));
                    match model {
                        ModelKind::Logistic => {
                            f64::from(u8::from((p >= 0.5) == (data.y[r] >= 0.5)))
                        }
                        ModelKind::Linear => ((p - data.y[r]).abs() / 2.0).min(1.0),
                    }
                })
                .sum();
            total / (end - start) as f64
        })
        .sum()
}

/// The Gaussian mechanism of one gradient step of a model with `dim`
/// parameters, under the zCDP budget `rho`: sensitivity the clip norm, the
/// steps' share of `rho` split evenly over the epochs. Also what the
/// sandbox states in a training job's plan, before any data.
pub fn step_noise(h: &Hyper, rho: f64, dim: usize) -> Result<Gaussian, DpError> {
    Gaussian::calibrate(h.clip_norm, rho * STEPS_SHARE / f64::from(h.epochs), dim)
}

/// Trains on `rows` (features then label per row, grouped by unit). With
/// `rho`, under that zCDP budget; without, the same loop without clipping
/// or noise. The held-out units are drawn with `rng`.
pub fn train(
    rows: &UnitRows,
    spec: &TrainSpec,
    rho: Option<f64>,
    rng: &mut impl Rng,
) -> Result<Trained, LearnError> {
    train_with(rows, spec, rho, rng, None)
}

/// As [`train`], with each unit's gradient from `custom` when given.
pub fn train_with(
    rows: &UnitRows,
    spec: &TrainSpec,
    rho: Option<f64>,
    rng: &mut impl Rng,
    custom: Option<&CustomGradient<'_>>,
) -> Result<Trained, LearnError> {
    let h = &spec.hyper;
    check_hyper(h)?;
    let data = Scaled::new(rows, spec)?;
    let (mut train_units, mut test_units) = (Vec::new(), Vec::new());
    for u in 0..data.units() as u32 {
        if rng.random::<f64>() < h.holdout {
            test_units.push(u);
        } else {
            train_units.push(u);
        }
    }
    let dim = data.dim;
    let mechanisms = match rho {
        Some(rho) => {
            let step = step_noise(h, rho, dim)?;
            let count = Gaussian::calibrate(1.0, rho * COUNT_SHARE, 1)?;
            // Adding a unit moves the metric sum and the count by ≤ 1 each.
            let eval = Gaussian::calibrate(std::f64::consts::SQRT_2, rho * EVAL_SHARE, 2)?;
            Some((step, count, eval))
        }
        None => None,
    };
    let n_train = match &mechanisms {
        Some((_, count, _)) => count.release(&[train_units.len() as f64])?[0],
        None => train_units.len() as f64,
    }
    // A noisy count can come out tiny; the divisor only sets the step size.
    .max(1.0);
    let mut w = vec![0.0; dim];
    let mut velocity = vec![0.0; dim];
    for _ in 0..h.epochs {
        let clip = mechanisms.as_ref().map(|_| h.clip_norm);
        let mut g = gradient_sum(&data, spec.model, &w, &train_units, clip, custom);
        if let Some((step, _, _)) = &mechanisms {
            g = step.release(&g)?;
        }
        for j in 0..dim {
            let reg = if j == 0 { 0.0 } else { h.l2 * w[j] };
            velocity[j] = h.momentum * velocity[j] + g[j] / n_train + reg;
            w[j] -= h.learning_rate * velocity[j];
        }
    }
    let metric_sum = evaluation_sum(&data, spec.model, &w, &test_units);
    let (metric_sum, n_test) = match &mechanisms {
        Some((_, _, eval)) => {
            let v = eval.release(&[metric_sum, test_units.len() as f64])?;
            (v[0], v[1])
        }
        None => (metric_sum, test_units.len() as f64),
    };
    let mean = (metric_sum / n_test.max(1.0)).clamp(0.0, 1.0);
    let evaluation = match spec.model {
        ModelKind::Logistic => mean,
        ModelKind::Linear => mean * 2.0 * data.label_half,
    };
    let (intercept, coefficients) = to_original_units(&data, spec.model, &w);
    Ok(Trained {
        intercept,
        coefficients,
        evaluation,
        step_noise_std: mechanisms.as_ref().map_or(0.0, |(s, _, _)| s.scale()),
        steps: h.epochs,
    })
}

/// Maps weights over scaled features back to the original units.
fn to_original_units(data: &Scaled, model: ModelKind, w: &[f64]) -> (f64, Vec<f64>) {
    let mut intercept = w[0];
    let mut coefficients = Vec::with_capacity(w.len() - 1);
    for ((wj, centre), half) in w[1..].iter().zip(&data.centre).zip(&data.half) {
        let beta = if *half > 0.0 { wj / half } else { 0.0 };
        intercept -= beta * centre;
        coefficients.push(beta);
    }
    if model == ModelKind::Linear {
        intercept = data.label_centre + data.label_half * intercept;
        coefficients.iter_mut().for_each(|b| *b *= data.label_half);
    }
    (intercept, coefficients)
}

pub fn check_hyper(h: &Hyper) -> Result<(), LearnError> {
    let problems = h.problems();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(LearnError::Spec(problems.join("; ")))
    }
}

/// Predicted probability (logistic) or value (linear) of a row of original
/// feature values under released parameters: for evaluating a model at
/// home, outside the sandbox.
pub fn predict_original(model: ModelKind, intercept: f64, coefficients: &[f64], x: &[f64]) -> f64 {
    let z = intercept + coefficients.iter().zip(x).map(|(b, v)| b * v).sum::<f64>();
    match model {
        ModelKind::Linear => z,
        ModelKind::Logistic => 1.0 / (1.0 + (-z).exp()),
    }
}
