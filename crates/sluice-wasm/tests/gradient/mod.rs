//! The `gradient` mode of DP training: a guest computes each unit's
//! gradient from its rows and the public parameters; the host clips and
//! noises it (sluice-learn). A Rust example guest trains the same model as
//! the same logic in native code, and a guest that writes raw rows into its
//! gradient is cut to the clip norm per unit.

use rand::SeedableRng;
use rand::rngs::StdRng;
use sluice_learn::{ModelKind, Scaled, TrainSpec, gradient_sum, train_with};
use sluice_testkit::learn::{Truth, bounds, unit_effects};
use sluice_wasm::{Entry, Guest, Limits, WasmError};

fn spec() -> TrainSpec {
    TrainSpec {
        model: ModelKind::Logistic,
        feature_bounds: bounds(),
        label_bounds: (0.0, 1.0),
        hyper: sluice_learn::Hyper {
            epochs: 10,
            ..Default::default()
        },
    }
}

/// examples/wasm/logistic_gradient in native Rust.
fn native_hinge(rows: &[f64], width: usize, w: &[f64]) -> Option<Vec<f64>> {
    let mut g = vec![0.0; w.len()];
    let n = rows.len() / width;
    for row in rows.chunks_exact(width) {
        let (x, y) = row.split_at(w.len());
        let z: f64 = w.iter().zip(x).map(|(a, b)| a * b).sum();
        let r = 1.0 / (1.0 + (-z).exp()) - y[0];
        if r.abs() < 0.05 {
            continue;
        }
        g.iter_mut()
            .zip(x)
            .for_each(|(g, v)| *g += r * v / n as f64);
    }
    Some(g)
}

#[test]
fn the_example_gradient_guest_trains_the_model_its_native_twin_trains() {
    let guest = Guest::compile_entry(
        &crate::example_guest("logistic_gradient"),
        Limits::default(),
        Entry::Gradient,
    )
    .unwrap();
    let mut rng = StdRng::seed_from_u64(4);
    let rows = Truth::new(&mut rng).sample(2_000, 2, &mut rng);
    let wasm = |rows: &[f64], width: usize, w: &[f64]| guest.gradient_unit(rows, width, w, w.len());
    let from_guest = train_with(
        &rows,
        &spec(),
        None,
        &mut StdRng::seed_from_u64(1),
        Some(&wasm),
    )
    .unwrap();
    let native = train_with(
        &rows,
        &spec(),
        None,
        &mut StdRng::seed_from_u64(1),
        Some(&native_hinge),
    )
    .unwrap();
    for (a, b) in from_guest.coefficients.iter().zip(&native.coefficients) {
        assert!((a - b).abs() <= 1e-9 * a.abs().max(1e-6), "{a} vs {b}");
    }
    assert!(from_guest.coefficients.iter().any(|c| *c != 0.0));
}

/// Copies the unit's rows, times 1e9, into its gradient; traps on units
/// whose first feature is high.
const LEAKING_GUEST: &str = include_str!("../fixtures/leaking_gradient.wat");

#[test]
fn a_gradient_guest_that_copies_raw_rows_is_clipped_and_noised() {
    let guest = Guest::compile_entry(
        &wat::parse_str(LEAKING_GUEST).unwrap(),
        Limits::default(),
        Entry::Gradient,
    )
    .unwrap();
    let mut rng = StdRng::seed_from_u64(8);
    let rows = Truth::new(&mut rng).sample(300, 2, &mut rng);
    let s = spec();
    let data = Scaled::new(&rows, &s).unwrap();
    let leak = |rows: &[f64], width: usize, w: &[f64]| guest.gradient_unit(rows, width, w, w.len());
    let w = vec![0.2; data.dim];
    let clip = s.hyper.clip_norm;
    let mut clipped = 0;
    let units = data.units() as u32;
    let effects = unit_effects(units, 0..units, |some| {
        gradient_sum(
            &data,
            ModelKind::Logistic,
            &w,
            some,
            Some(clip),
            Some(&leak),
        )
    });
    for (u, moved) in effects {
        assert!(moved <= clip + 1e-6, "unit {u} moved the sum by {moved}");
        clipped += usize::from(moved > 0.999 * clip);
    }
    assert!(
        clipped > 100,
        "the leak reached the clip for {clipped} units"
    );
    let trained = train_with(
        &rows,
        &s,
        Some(
            sluice_dp::zcdp_budget(
                sluice_types::privacy::Epsilon::from_f64(1.0).unwrap(),
                sluice_types::privacy::Delta::from_f64(1e-6).unwrap(),
            )
            .unwrap(),
        ),
        &mut rng,
        Some(&leak),
    )
    .unwrap();
    assert!(trained.coefficients.iter().all(|c| c.is_finite()));
    assert!(trained.step_noise_std > 0.0);
}

#[test]
fn a_gradient_job_needs_a_gradient_export() {
    let map_only =
        wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "map")))"#).unwrap();
    match Guest::compile_entry(&map_only, Limits::default(), Entry::Gradient) {
        Err(WasmError::Rejected(r)) => assert!(r.contains("exports no function gradient"), "{r}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("accepted"),
    }
}
