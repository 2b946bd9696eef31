use super::*;

fn eps(x: f64) -> Epsilon {
    Epsilon::from_f64(x).unwrap()
}

#[test]
fn split_adds_up_exactly() {
    for (total, parts) in [(1.0, 3), (0.7, 7), (1e-9, 4), (2.0, 1)] {
        let shares = split_epsilon(eps(total), parts);
        assert_eq!(shares.len(), parts);
        let sum: u64 = shares.iter().map(|s| s.units()).sum();
        assert_eq!(sum, eps(total).units());
    }
}

#[test]
fn calibrated_loss_fits_budget_and_scale_is_tight() {
    for (sens, e) in [(1u64, 1.0), (3, 0.1), (500_000, 0.5), (1, 0.333_333_333)] {
        let m = DiscreteLaplace::calibrate(sens, eps(e)).unwrap();
        let ideal = sens as f64 / eps(e).as_f64();
        assert!(
            m.scale() >= ideal && m.scale() <= ideal * (1.0 + 1e-9),
            "{sens} {e}"
        );
        let loss: f64 = crate::laplace_of_scale(m.scale())
            .unwrap()
            .map(&(sens as i64))
            .unwrap();
        assert!(loss <= eps(e).as_f64());
    }
}

#[test]
fn zero_sensitivity_is_refused() {
    assert!(DiscreteLaplace::calibrate(0, eps(1.0)).is_err());
}

/// The exact discrete Laplace CDF at integer k, for scale b.
fn dlap_cdf(k: i64, b: f64) -> f64 {
    let q = (-1.0 / b).exp();
    if k < 0 {
        q.powi((-k) as i32) / (1.0 + q)
    } else {
        1.0 - q.powi((k + 1) as i32) / (1.0 + q)
    }
}

/// Kolmogorov–Smirnov statistic of integer samples against the discrete
/// Laplace of scale `b` (evaluated at every integer step, where a discrete
/// CDF's sup distance is attained).
fn ks_stat(samples: &mut [i64], b: f64) -> f64 {
    samples.sort_unstable();
    let n = samples.len() as f64;
    let mut d: f64 = 0.0;
    let mut i = 0;
    while i < samples.len() {
        let v = samples[i];
        let below = i as f64 / n;
        while i < samples.len() && samples[i] == v {
            i += 1;
        }
        let upto = i as f64 / n;
        d = d.max((upto - dlap_cdf(v, b)).abs());
        d = d.max((below - dlap_cdf(v - 1, b)).abs());
    }
    d
}

/// KS critical value at alpha = 1e-6: sqrt(-ln(alpha/2)/2)/sqrt(n). For a
/// discrete distribution the test is conservative, so false failures are rarer still.
fn ks_critical(n: usize) -> f64 {
    ((-(1e-6f64 / 2.0).ln()) / 2.0).sqrt() / (n as f64).sqrt()
}

#[test]
fn noise_matches_declared_distribution_and_detects_wrong_scale() {
    let n = 200_000;
    // A count (sensitivity 1) and a sum (sensitivity 100) at eps 0.5.
    for sens in [1u64, 100] {
        let m = DiscreteLaplace::calibrate(sens, eps(0.5)).unwrap();
        let noisy = m.release(vec![0; n]).unwrap();
        let crit = ks_critical(n);
        let d = ks_stat(&mut noisy.clone(), m.scale());
        assert!(d < crit, "sens {sens}: KS {d} >= {crit}");
        for wrong in [0.7, 1.3] {
            let d = ks_stat(&mut noisy.clone(), m.scale() * wrong);
            assert!(
                d > crit,
                "sens {sens}: scale x{wrong} not detected (KS {d} < {crit})"
            );
        }
    }
}

#[test]
fn ci_covers_at_least_95_percent_and_not_much_more() {
    let m = DiscreteLaplace::calibrate(10, eps(1.0)).unwrap();
    let t = m.ci_halfwidth();
    let n = 100_000;
    let inside = m
        .release(vec![0; n])
        .unwrap()
        .iter()
        .filter(|z| (**z as f64).abs() <= t)
        .count() as f64
        / n as f64;
    assert!((0.945..0.96).contains(&inside), "coverage {inside}");
    // The exact tail at t must be <= 5% and at t-1 above it (tightness).
    let tail =
        |t: f64| 1.0 - (dlap_cdf(t as i64, m.scale()) - dlap_cdf(-(t as i64) - 1, m.scale()));
    assert!(tail(t) <= 0.05 && tail(t - 1.0) > 0.05);
}

#[test]
fn std_dev_matches_samples() {
    let m = DiscreteLaplace::calibrate(4, eps(1.0)).unwrap();
    let xs = m.release(vec![0; 100_000]).unwrap();
    let var = xs.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / xs.len() as f64;
    let rel = (var.sqrt() - m.std_dev()).abs() / m.std_dev();
    assert!(rel < 0.03, "sd {} vs {}", var.sqrt(), m.std_dev());
}

#[test]
fn weighted_split_is_proportional_and_exact() {
    let shares = split_epsilon_weighted(eps(1.0), &[1.0, 3.0]).unwrap();
    assert_eq!(shares, vec![eps(0.25), eps(0.75)]);
    for (total, w) in [
        (0.7, vec![1.0, 1.0, 1.0]),
        (1e-6, vec![0.1, 5.0, 2.5]),
        (3.3, vec![1e-3, 1e3]),
    ] {
        let shares = split_epsilon_weighted(eps(total), &w).unwrap();
        assert_eq!(
            shares.iter().map(|s| s.units()).sum::<u64>(),
            eps(total).units()
        );
    }
    assert!(split_epsilon_weighted(eps(1e-9), &[1.0, 1.0]).is_err());
    assert!(split_epsilon_weighted(eps(1.0), &[1.0, 0.0]).is_err());
}

#[test]
fn quantile_calibration_fits_budget_and_is_tight() {
    let grid: Vec<f64> = (0..=100).map(f64::from).collect();
    for (alpha, rows, e) in [
        (0.5, 1u64, 1.0),
        (0.9, 3, 0.5),
        (0.0, 2, 0.1),
        (1.0, 1, 2.0),
    ] {
        let q = Quantile::calibrate(grid.clone(), alpha, rows, eps(e)).unwrap();
        let ideal = 2.0 * rows as f64 * f64::max(alpha, 1.0 - alpha) / e;
        assert!(q.scale() >= ideal && q.scale() <= ideal * (1.0 + 1e-9));
        let loss: f64 = q.meas.map(&(rows as u32)).unwrap();
        assert!(loss <= eps(e).as_f64(), "{alpha} {rows} {e}: {loss}");
    }
    assert!(Quantile::calibrate(grid.clone(), 0.5, 0, eps(1.0)).is_err());
    assert!(Quantile::calibrate(vec![], 0.5, 1, eps(1.0)).is_err());
    assert!(Quantile::calibrate(grid, 1.5, 1, eps(1.0)).is_err());
}

/// Smith's score of `c` on `x`, in rows.
fn quantile_score(x: &[f64], c: f64, alpha: f64) -> f64 {
    let lt = x.iter().filter(|v| **v < c).count() as f64;
    let gt = x.iter().filter(|v| **v > c).count() as f64;
    ((1.0 - alpha) * lt - alpha * gt).abs()
}

#[test]
fn quantile_lands_within_its_rank_error_and_the_error_scales_with_epsilon() {
    let grid: Vec<f64> = (0..=1000).map(f64::from).collect();
    // Skewed data with ties.
    let x: Vec<f64> = (0..2000).map(|i| f64::from((i * i) % 997 / 3)).collect();
    for alpha in [0.0, 0.25, 0.5, 0.9, 1.0] {
        let best = grid
            .iter()
            .map(|c| quantile_score(&x, *c, alpha))
            .fold(f64::INFINITY, f64::min);
        let q = Quantile::calibrate(grid.clone(), alpha, 1, eps(0.5)).unwrap();
        let t = q.rank_error95();
        let draws = 300;
        let mut within = 0;
        let mut worst: f64 = 0.0;
        for _ in 0..draws {
            let v = q.release(&x).unwrap();
            assert!(grid.contains(&v));
            let gap = quantile_score(&x, v, alpha) - best;
            worst = worst.max(gap);
            within += usize::from(gap <= t);
        }
        assert!(
            within as f64 >= 0.95 * draws as f64,
            "{alpha}: {within}/{draws}"
        );
        assert!(worst <= t, "{alpha}: {worst} vs {t}");
        // Inside (0, 1) the bound is a union bound but not a vacuous one:
        // errors of the order of the scale occur. (At 0 and 1 every
        // candidate beyond the data scores 0, so MIN and MAX land anywhere
        // between the extreme value and the declared bound.)
        if alpha > 0.0 && alpha < 1.0 {
            assert!(
                worst >= q.scale() / 4.0,
                "{alpha}: {worst} vs {}",
                q.scale()
            );
        }
    }
    // Halving epsilon doubles the rank error bound (up to the ceiling).
    let a = Quantile::calibrate(grid.clone(), 0.5, 1, eps(1.0)).unwrap();
    let b = Quantile::calibrate(grid, 0.5, 1, eps(0.5)).unwrap();
    assert!((b.rank_error95() - 2.0 * a.rank_error95()).abs() <= 2.0);
}

#[test]
fn quantile_of_no_values_is_still_a_candidate() {
    let grid = vec![1.0, 2.0, 3.0];
    let q = Quantile::calibrate(grid.clone(), 0.5, 1, eps(1.0)).unwrap();
    assert!(grid.contains(&q.release(&[]).unwrap()));
}

/// P(Z ≥ j) for discrete Laplace noise of scale b.
fn dlap_tail(j: i64, b: f64) -> f64 {
    1.0 - dlap_cdf(j - 1, b)
}

/// Largest chance, over every way one unit's `k` rows can form keys of its
/// own, that any of those keys passes threshold `t`: brute force over the
/// partitions of at most `k` rows.
fn worst_key_leak(t: u64, k: u64, b: f64) -> f64 {
    fn partitions(left: u64, max_part: u64, parts: &mut Vec<u64>, out: &mut Vec<Vec<u64>>) {
        if !parts.is_empty() {
            out.push(parts.clone());
        }
        for p in (1..=left.min(max_part)).rev() {
            parts.push(p);
            partitions(left - p, p, parts, out);
            parts.pop();
        }
    }
    let mut all = Vec::new();
    partitions(k, k, &mut Vec::new(), &mut all);
    all.iter()
        .map(|parts| {
            parts
                .iter()
                .map(|c| dlap_tail(t as i64 - *c as i64 + 1, b))
                .sum::<f64>()
        })
        .fold(0.0, f64::max)
}

#[test]
fn key_threshold_is_the_smallest_that_bounds_the_leak_by_delta() {
    for (scale, k, delta) in [
        (2.0, 1u64, 1e-6),
        (2.0, 3, 1e-6),
        (10.0, 5, 1e-5),
        (0.5, 4, 1e-9),
        (1.0, 1, 0.01),
    ] {
        let d = Delta::from_f64(delta).unwrap();
        let t = key_threshold(scale, k, d).unwrap();
        assert!(t >= k);
        let leak = worst_key_leak(t, k, scale);
        assert!(
            leak <= delta * (1.0 + 1e-9),
            "{scale} {k}: {leak} > {delta}"
        );
        if t > k {
            let below = worst_key_leak(t - 1, k, scale);
            assert!(
                below > delta,
                "{scale} {k} {delta}: {t} is not the smallest"
            );
        }
    }
    assert!(key_threshold(1.0, 0, Delta::from_f64(1e-6).unwrap()).is_err());
    assert!(key_threshold(1.0, 1, Delta::ZERO).is_err());
}

#[test]
fn a_key_of_one_unit_passes_the_threshold_no_more_often_than_delta() {
    // delta = 0.01 (the largest allowed) so that the rate is measurable.
    let m = DiscreteLaplace::calibrate(1, eps(0.5)).unwrap();
    let t = key_threshold(m.scale(), 1, Delta::from_f64(0.01).unwrap()).unwrap() as i64;
    let n = 40_000;
    let passed = m
        .release(vec![1; n])
        .unwrap()
        .iter()
        .filter(|v| **v > t)
        .count();
    let rate = passed as f64 / n as f64;
    // Binomial sd at 0.01 over 40,000 draws is 0.0005.
    assert!(rate <= 0.01 + 0.003, "{rate}");
    // And the threshold is not loose: one lower would leak more than delta.
    // With P(noise = x) proportional to a^|x|, P(noise >= k) = a^k / (1 + a)
    // for k >= 1; a value of 1 passes t - 1 when the noise is >= t - 1.
    let a = (-1.0 / m.scale()).exp();
    let leak_one_lower = a.powi(t as i32 - 1) / (1.0 + a);
    assert!(leak_one_lower > 0.01, "{leak_one_lower}");
    // The sampler's tail there is that probability (within 5 sd), so the
    // analytic bound is the one the released keys face. (Comparing the
    // sample with 0.01 instead would fail whenever the true rate is only
    // just above it.)
    let lower = m
        .release(vec![1; n])
        .unwrap()
        .iter()
        .filter(|v| **v > t - 1)
        .count();
    let sd = (leak_one_lower * (1.0 - leak_one_lower) / n as f64).sqrt();
    let rate = lower as f64 / n as f64;
    assert!(
        (rate - leak_one_lower).abs() <= 5.0 * sd,
        "{rate} vs {leak_one_lower}"
    );
}

#[test]
fn long_vectors_are_noised_in_place_on_all_cores() {
    // Each element keeps its own position: the noise is small next to the
    // gaps between inputs (P(|noise| > 500) at scale 2 is about e^-250).
    let m = DiscreteLaplace::calibrate(1, eps(0.5)).unwrap();
    let n = 100_003;
    let input: Vec<i64> = (0..n).map(|i| i * 1000).collect();
    let out = m.release(input.clone()).unwrap();
    assert_eq!(out.len(), input.len());
    for (o, i) in out.iter().zip(&input) {
        assert!((o - i).abs() < 500, "{o} vs {i}");
    }
    // Not the identity: noise was added to (nearly) every element.
    let unchanged = out.iter().zip(&input).filter(|(o, i)| o == i).count();
    assert!(unchanged < n as usize / 2, "{unchanged}");
}

fn normal_cdf(x: f64) -> f64 {
    // Abramowitz–Stegun 7.1.26 on erf: error < 1.5e-7, far below the KS
    // critical value used here.
    let z = x / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    0.5 * (1.0 + if z >= 0.0 { erf } else { -erf })
}

fn gaussian_ks(samples: &mut [f64], sigma: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let n = samples.len() as f64;
    samples
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let f = normal_cdf(x / sigma);
            (f - i as f64 / n).abs().max(((i + 1) as f64 / n - f).abs())
        })
        .fold(0.0, f64::max)
}

#[test]
fn gaussian_calibration_fits_rho_and_is_tight() {
    for (sens, rho) in [(1.0, 0.5), (3.0, 0.01), (0.25, 2.0)] {
        let g = Gaussian::calibrate(sens, rho, 21).unwrap();
        let ideal = sens / (2.0f64 * rho).sqrt();
        assert!(g.scale() >= ideal && g.scale() <= ideal * (1.0 + 1e-9));
        let loss: f64 = g.meas.map(&sens).unwrap();
        assert!(loss <= rho);
    }
    assert!(Gaussian::calibrate(0.0, 1.0, 1).is_err());
    assert!(Gaussian::calibrate(1.0, 0.0, 1).is_err());
}

/// Samples follow N(0, σ²) at the calibrated σ; a KS test at α = 1e-6 also
/// rejects σ off by ±10%, so the test can fail.
#[test]
fn gaussian_noise_has_the_declared_scale() {
    let n = 40_000;
    let g = Gaussian::calibrate(1.0, 0.02, n).unwrap();
    let mut noise = g.release(&vec![0.0; n]).unwrap();
    let crit = ks_critical(n);
    assert!(gaussian_ks(&mut noise, g.scale()) < crit);
    assert!(gaussian_ks(&mut noise, g.scale() * 1.1) > crit);
    assert!(gaussian_ks(&mut noise, g.scale() * 0.9) > crit);
    assert!(g.release(&vec![f64::NAN; n]).is_err());
    assert!(g.release(&[0.0]).is_err(), "a vector of the wrong size");
}

/// The budget is the largest ρ whose conversion fits ε: converting back
/// gives ε to within rounding, never more, and it is tighter than the
/// classic ρ + 2√(ρ ln 1/δ) bound.
#[test]
fn zcdp_budget_converts_back_to_the_epsilon_asked() {
    for (e, d) in [(1.0, 1e-6), (8.0, 1e-6), (0.1, 1e-9), (3.0, 1e-5)] {
        let delta = Delta::from_f64(d).unwrap();
        let rho = zcdp_budget(eps(e), delta).unwrap();
        let back = zcdp_epsilon(rho, delta).unwrap();
        assert!(back <= e && back > e * (1.0 - 1e-9), "{e} {d}: {back}");
        let classic = ((d.recip().ln() + e).sqrt() - d.recip().ln().sqrt()).powi(2);
        assert!(rho >= classic, "{rho} < {classic}");
    }
    assert!(zcdp_budget(eps(1.0), Delta::ZERO).is_err());
}
