use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

use sluice_testkit::learn::{Truth, bounds, normal};

/// Share of `test`'s rows that `model` classifies right.
fn accuracy(model: &Trained, test: &UnitRows) -> f64 {
    sluice_testkit::learn::accuracy(test, |x| {
        predict_original(ModelKind::Logistic, model.intercept, &model.coefficients, x)
    })
}

/// How far removing each of `units` moves a logistic step's gradient sum
/// over every unit (clipped when `clip` is given).
fn unit_effects(
    data: &Scaled,
    w: &[f64],
    clip: Option<f64>,
    custom: Option<&CustomGradient<'_>>,
    units: impl IntoIterator<Item = u32>,
) -> Vec<(u32, f64)> {
    sluice_testkit::learn::unit_effects(data.units() as u32, units, |some| {
        gradient_sum(data, ModelKind::Logistic, w, some, clip, custom)
    })
}

fn spec(model: ModelKind) -> TrainSpec {
    TrainSpec {
        model,
        feature_bounds: bounds(),
        label_bounds: (0.0, 1.0),
        hyper: Hyper::default(),
    }
}

fn rho(e: f64) -> f64 {
    sluice_dp::zcdp_budget(
        sluice_types::privacy::Epsilon::from_f64(e).unwrap(),
        sluice_types::privacy::Delta::from_f64(1e-6).unwrap(),
    )
    .unwrap()
}

/// The acceptance: 100k units, 20 features, a known logistic
/// model; at ε = 1 the DP model's accuracy is within 1 point of the
/// non-private model trained by the same code, at ε = 8 within 0.3 points,
/// on several seeds. Accuracy is measured on fresh rows from the truth.
#[test]
fn dp_logistic_regression_is_as_accurate_as_non_private_within_the_stated_points() {
    for seed in [1u64, 2, 3] {
        let mut rng = StdRng::seed_from_u64(seed);
        let truth = Truth::new(&mut rng);
        let rows = truth.sample(100_000, 1, &mut rng);
        let fresh = truth.sample(50_000, 1, &mut rng);
        let s = spec(ModelKind::Logistic);
        let plain = train(&rows, &s, None, &mut StdRng::seed_from_u64(seed)).unwrap();
        let plain_acc = accuracy(&plain, &fresh);
        assert!(plain_acc > 0.75, "seed {seed}: non-private {plain_acc}");
        for (e, points) in [(1.0, 0.01), (8.0, 0.003)] {
            let dp = train(&rows, &s, Some(rho(e)), &mut StdRng::seed_from_u64(seed)).unwrap();
            let dp_acc = accuracy(&dp, &fresh);
            assert!(
                dp_acc >= plain_acc - points,
                "seed {seed}, epsilon {e}: DP {dp_acc} vs non-private {plain_acc}"
            );
            // The released held-out accuracy is a noisy but close estimate.
            assert!(
                (dp.evaluation - dp_acc).abs() < 0.03,
                "seed {seed}, epsilon {e}: released {} vs {dp_acc}",
                dp.evaluation
            );
        }
    }
}

/// Each unit's contribution to a step's gradient sum is at most the clip
/// norm, including a unit with many extreme rows; without clipping that
/// unit's contribution exceeds it (so the check can fail).
#[test]
fn each_units_contribution_to_every_update_is_bounded_by_the_clip_norm() {
    let mut rng = StdRng::seed_from_u64(7);
    let truth = Truth::new(&mut rng);
    let mut rows = truth.sample(2_000, 2, &mut rng);
    // A heavy unit: 1,000 rows at the far corner with labels against the model.
    let b = bounds();
    for _ in 0..1000 {
        rows.values.extend(b.iter().map(|(_, hi)| hi * 10.0));
        rows.values.push(0.0);
    }
    rows.unit_starts.push(rows.values.len() / rows.width);
    let s = spec(ModelKind::Logistic);
    let data = Scaled::new(&rows, &s).unwrap();
    let clip = s.hyper.clip_norm;
    let heavy = data.units() as u32 - 1;
    for w in [
        vec![0.0; data.dim],
        vec![0.7; data.dim],
        vec![-3.0; data.dim],
    ] {
        let sample = (0..data.units() as u32).step_by(97).chain([heavy]);
        for (u, moved) in unit_effects(&data, &w, Some(clip), None, sample) {
            assert!(moved <= clip + 1e-9, "unit {u} moved the sum by {moved}");
        }
        if w[0] < 0.0 {
            // The model already predicts the heavy unit's labels.
            continue;
        }
        let (_, moved) = unit_effects(&data, &w, None, None, [heavy])[0];
        assert!(moved > clip, "the heavy unit must need clipping: {moved}");
    }
}

/// Each step's noise has the standard deviation the budget implies:
/// clip / sqrt(2 · rho · STEPS_SHARE / epochs).
#[test]
fn step_noise_follows_from_the_budget() {
    let mut rng = StdRng::seed_from_u64(3);
    let rows = Truth::new(&mut rng).sample(500, 1, &mut rng);
    let s = spec(ModelKind::Logistic);
    let r = rho(1.0);
    let t = train(&rows, &s, Some(r), &mut rng).unwrap();
    let ideal = s.hyper.clip_norm / (2.0 * r * STEPS_SHARE / f64::from(s.hyper.epochs)).sqrt();
    assert!((t.step_noise_std / ideal - 1.0).abs() < 1e-6);
    assert_eq!(t.steps, s.hyper.epochs);
    assert!((STEPS_SHARE + COUNT_SHARE + EVAL_SHARE - 1.0).abs() < 1e-12);
}

/// Linear regression recovers a known linear model (original units) and
/// reports a held-out mean absolute error near the noise's (sd · √(2/π)).
#[test]
fn dp_linear_regression_recovers_a_known_model() {
    let mut rng = StdRng::seed_from_u64(11);
    let b = vec![(0.0, 10.0), (-5.0, 5.0), (0.0, 100.0)];
    let (beta, intercept, sd) = ([2.0, -1.0, 0.05], 3.0, 1.0);
    let mut rows = UnitRows {
        width: 4,
        values: Vec::new(),
        unit_starts: vec![0],
    };
    for _ in 0..50_000 {
        let x: Vec<f64> = b
            .iter()
            .map(|(lo, hi)| rng.random_range(*lo..*hi))
            .collect();
        let y = intercept
            + beta.iter().zip(&x).map(|(b, v)| b * v).sum::<f64>()
            + sd * normal(&mut rng);
        rows.values.extend_from_slice(&x);
        rows.values.push(y);
        rows.unit_starts.push(rows.values.len() / 4);
    }
    let s = TrainSpec {
        model: ModelKind::Linear,
        feature_bounds: b,
        label_bounds: (-20.0, 40.0),
        hyper: Hyper {
            epochs: 200,
            learning_rate: 1.0,
            ..Hyper::default()
        },
    };
    let t = train(&rows, &s, Some(rho(8.0)), &mut rng).unwrap();
    for (got, want) in t.coefficients.iter().zip(beta) {
        assert!(
            (got - want).abs() < 0.1 * want.abs().max(0.5),
            "{:?}",
            t.coefficients
        );
    }
    assert!((t.intercept - intercept).abs() < 1.0, "{}", t.intercept);
    assert!(
        (t.evaluation - 0.80).abs() < 0.15,
        "mean absolute error {}",
        t.evaluation
    );
}

#[test]
fn bad_specs_are_refused_with_every_reason() {
    let rows = UnitRows::from_units(3, &[vec![1.0, 2.0, 1.0]]);
    let mut s = spec(ModelKind::Logistic);
    assert!(matches!(
        train(&rows, &s, None, &mut StdRng::seed_from_u64(1)),
        Err(LearnError::Spec(m)) if m.contains("columns")
    ));
    s.hyper.epochs = 0;
    s.hyper.holdout = 1.0;
    let Err(LearnError::Spec(m)) = check_hyper(&s.hyper) else {
        panic!("accepted")
    };
    assert!(m.contains("epochs") && m.contains("holdout"), "{m}");
}

/// The built-in logistic gradient written as a custom one: the mean over
/// the unit's rows of (sigmoid(w·x) - y) x.
fn logistic_as_custom(rows: &[f64], width: usize, w: &[f64]) -> Option<Vec<f64>> {
    let mut g = vec![0.0; w.len()];
    let n = rows.len() / width;
    for row in rows.chunks_exact(width) {
        let (x, y) = (&row[..width - 1], row[width - 1]);
        let z: f64 = w.iter().zip(x).map(|(a, b)| a * b).sum();
        let r = 1.0 / (1.0 + (-z).exp()) - y;
        g.iter_mut()
            .zip(x)
            .for_each(|(g, v)| *g += r * v / n as f64);
    }
    Some(g)
}

#[test]
fn a_custom_gradient_trains_the_same_model_as_the_built_in_one() {
    let mut rng = StdRng::seed_from_u64(5);
    let rows = Truth::new(&mut rng).sample(5_000, 2, &mut rng);
    let s = spec(ModelKind::Logistic);
    let built_in = train(&rows, &s, None, &mut StdRng::seed_from_u64(1)).unwrap();
    let custom = train_with(
        &rows,
        &s,
        None,
        &mut StdRng::seed_from_u64(1),
        Some(&logistic_as_custom),
    )
    .unwrap();
    for (a, b) in built_in.coefficients.iter().zip(&custom.coefficients) {
        assert!((a - b).abs() <= 1e-9 * a.abs().max(1e-6), "{a} vs {b}");
    }
}

/// A hostile gradient that writes the unit's raw rows into its output
/// (scaled by 1e9), or fails: each unit still moves a step's sum by at most
/// the clip norm, and a failure counts as a zero gradient.
#[test]
fn a_custom_gradient_encoding_raw_rows_is_clipped_per_unit() {
    let mut rng = StdRng::seed_from_u64(9);
    let rows = Truth::new(&mut rng).sample(1_000, 3, &mut rng);
    let s = spec(ModelKind::Logistic);
    let data = Scaled::new(&rows, &s).unwrap();
    let leak = |rows: &[f64], _width: usize, w: &[f64]| -> Option<Vec<f64>> {
        if rows[1] > 0.9 {
            return None;
        }
        if rows[1] < -0.9 {
            return Some(vec![f64::NAN; w.len()]);
        }
        Some(rows.iter().take(w.len()).map(|v| v * 1e9).collect())
    };
    let w = vec![0.1; data.dim];
    let clip = s.hyper.clip_norm;
    let mut largest: f64 = 0.0;
    for (u, moved) in unit_effects(&data, &w, Some(clip), Some(&leak), 0..data.units() as u32) {
        assert!(moved <= clip + 1e-6, "unit {u} moved the sum by {moved}");
        largest = largest.max(moved);
    }
    // Most units hit the clip exactly: the leak was there, and was cut.
    assert!(largest > clip * 0.999, "{largest}");
    // Trained under DP, the model comes out finite and noised.
    let t = train_with(&rows, &s, Some(rho(1.0)), &mut rng, Some(&leak)).unwrap();
    assert!(t.coefficients.iter().all(|c| c.is_finite()));
    assert!(t.step_noise_std > 0.0);
}
