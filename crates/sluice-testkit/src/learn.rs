//! Synthetic data with a known logistic model, shared by sluice-learn's
//! tests, sluice-wasm's gradient tests, the training benchmark and the
//! end-to-end training test: 20 features uniform within declared bounds of
//! different widths and offsets, labels drawn from the model. What needs
//! sluice-learn (predicting, gradient sums) comes in as a closure.

use rand::Rng;
use rand::rngs::StdRng;
use sluice_types::rows::UnitRows;

pub const FEATURES: usize = 20;

pub fn bounds() -> Vec<(f64, f64)> {
    (0..FEATURES)
        .map(|j| (-(j as f64) * 3.0, 10.0 * (j as f64 + 1.0)))
        .collect()
}

/// Standard normal by Box–Muller.
pub fn normal(rng: &mut StdRng) -> f64 {
    let u: f64 = rng.random::<f64>().max(1e-300);
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// A known logistic model over features uniform within their declared
/// bounds: each unit has `rows_per_unit` rows (features then 0/1 label).
pub struct Truth {
    intercept: f64,
    weights: Vec<f64>,
}

impl Truth {
    pub fn new(rng: &mut StdRng) -> Truth {
        // Weights in the scaled space, mapped to original units.
        let b = bounds();
        let weights = b
            .iter()
            .map(|(lo, hi)| normal(rng) * 1.2 / ((hi - lo) / 2.0))
            .collect();
        Truth {
            intercept: 0.3,
            weights,
        }
    }

    pub fn logit(&self, x: &[f64]) -> f64 {
        let b = bounds();
        self.intercept
            + self
                .weights
                .iter()
                .zip(x)
                .zip(&b)
                .map(|((w, v), (lo, hi))| w * (v - (lo + hi) / 2.0))
                .sum::<f64>()
    }

    pub fn sample(&self, units: usize, rows_per_unit: usize, rng: &mut StdRng) -> UnitRows {
        let b = bounds();
        let mut out = UnitRows {
            width: FEATURES + 1,
            values: Vec::with_capacity(units * rows_per_unit * (FEATURES + 1)),
            unit_starts: vec![0],
        };
        for _ in 0..units {
            for _ in 0..rows_per_unit {
                let x: Vec<f64> = b
                    .iter()
                    .map(|(lo, hi)| rng.random_range(*lo..*hi))
                    .collect();
                let p = 1.0 / (1.0 + (-self.logit(&x)).exp());
                let y = f64::from(u8::from(rng.random::<f64>() < p));
                out.values.extend_from_slice(&x);
                out.values.push(y);
            }
            out.unit_starts.push(out.values.len() / (FEATURES + 1));
        }
        out
    }
}

/// Share of `test`'s rows that a model classifies right, given its
/// probability of label 1 for a row's features (`predict`).
pub fn accuracy(test: &UnitRows, predict: impl Fn(&[f64]) -> f64) -> f64 {
    let right = test
        .values
        .chunks_exact(test.width)
        .filter(|row| (predict(&row[..FEATURES]) >= 0.5) == (row[FEATURES] >= 0.5))
        .count();
    right as f64 / test.rows() as f64
}

/// Euclidean distance: how far one unit moved a gradient sum.
pub fn l2_distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// How far removing each of `units` moves a gradient sum over all `total`
/// units (`gradient_sum` of the units it is given): the per-unit
/// sensitivity the clipping tests bound.
pub fn unit_effects(
    total: u32,
    units: impl IntoIterator<Item = u32>,
    gradient_sum: impl Fn(&[u32]) -> Vec<f64>,
) -> Vec<(u32, f64)> {
    let all: Vec<u32> = (0..total).collect();
    let full = gradient_sum(&all);
    units
        .into_iter()
        .map(|u| {
            let without: Vec<u32> = all.iter().copied().filter(|x| *x != u).collect();
            (u, l2_distance(&full, &gradient_sum(&without)))
        })
        .collect()
}
