//! The fast exact sampler: the same outputs as a big-integer reference on
//! the same random stream, the exact pmf by chi-square and KS at
//! α = 1e-6 (with the power to reject a scale 30 % off), and the same
//! distribution as OpenDP's sampler.

use dashu::base::BitTest;
use dashu::integer::UBig;
use opendp::domains::{AtomDomain, VectorDomain};
use opendp::measurements::make_laplace;
use opendp::metrics::L1Distance;

use crate::sample::{
    ExactScale, OsRandom, RandomWords, add_saturating, discrete_laplace, uniform_below,
};

/// A seeded stream (splitmix64): both implementations read the same words.
#[derive(Clone)]
struct Seeded(u64);
impl RandomWords for Seeded {
    fn next_u64(&mut self) -> Result<u64, crate::DpError> {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Ok(z ^ (z >> 31))
    }
}

/// The reference: the same control flow with unbounded integers, so an
/// overflow or truncation in the fast path shows as a different output.
mod reference {
    use super::*;

    fn word(rng: &mut Seeded) -> UBig {
        UBig::from(rng.next_u64().unwrap())
    }

    pub fn uniform_below(rng: &mut Seeded, n: &UBig) -> UBig {
        if n == &UBig::ONE {
            return UBig::ZERO;
        }
        let two64 = UBig::ONE << 64;
        if n < &two64 {
            let mut m = word(rng) * n;
            if &(&m % &two64) < n {
                let threshold = (&two64 - n) % n;
                while &m % &two64 < threshold {
                    m = word(rng) * n;
                }
            }
            return m >> 64;
        }
        let bits = n.bit_len();
        loop {
            let draw = ((word(rng) << 64) | word(rng)) % (UBig::ONE << bits);
            if &draw < n {
                return draw;
            }
        }
    }

    fn bernoulli_exp1(rng: &mut Seeded, a: &UBig, b: &UBig) -> bool {
        let mut k = UBig::ONE;
        loop {
            if &uniform_below(rng, &(b * &k)) < a {
                k += UBig::ONE;
            } else {
                return &k % UBig::from(2u8) == UBig::ONE;
            }
        }
    }

    pub fn discrete_laplace(rng: &mut Seeded, num: &UBig, den: &UBig) -> dashu::integer::IBig {
        loop {
            let positive = rng.next_u64().unwrap() & 1 == 1;
            let mut u = uniform_below(rng, num);
            while !bernoulli_exp1(rng, &u, num) {
                u = uniform_below(rng, num);
            }
            let mut v = UBig::ZERO;
            while bernoulli_exp1(rng, &UBig::ONE, &UBig::ONE) {
                v += UBig::ONE;
            }
            let magnitude = (v * num + u) / den;
            if positive || magnitude != UBig::ZERO {
                let m = dashu::integer::IBig::from(magnitude);
                return if positive { m } else { -m };
            }
        }
    }
}

/// Scales the tests use: small and large, with long binary expansions.
const SCALES: [f64; 6] = [0.3, 1.0, 2.0 / 3.0, 3.7, 123.456, 1e6 + 0.1];

#[test]
fn scales_decompose_exactly_and_in_lowest_terms() {
    let mut rng = Seeded(7);
    let mut scales: Vec<f64> = SCALES.to_vec();
    for _ in 0..10_000 {
        let bits = rng.next_u64().unwrap();
        // Positive finite doubles across the whole exponent range.
        scales.push(f64::from_bits(bits >> 2 | 1));
    }
    let mut fast = 0;
    for scale in scales {
        let Some(ExactScale { num, den }) = ExactScale::of(scale) else {
            continue;
        };
        fast += 1;
        assert!(num <= u128::from(u64::MAX) && den <= u128::from(u64::MAX));
        assert!(
            den.is_power_of_two() && (num % 2 == 1 || den == 1),
            "{scale}"
        );
        // Both are exact in f64 (num has at most 53 significant bits).
        assert_eq!(num as f64 / den as f64, scale);
    }
    assert!(fast > 100);
    assert_eq!(ExactScale::of(2.0f64.powi(70)), None);
    assert_eq!(ExactScale::of(2.0f64.powi(-70)), None);
    assert_eq!(ExactScale::of(0.0), None);
    assert_eq!(ExactScale::of(f64::NAN), None);
}

#[test]
fn the_fast_sampler_equals_the_big_integer_reference_on_the_same_stream() {
    for (i, scale) in SCALES
        .into_iter()
        .chain([1.0 / 1024.0, 2.0f64.powi(40) + 1.0])
        .enumerate()
    {
        let exact = ExactScale::of(scale).unwrap();
        let (num, den) = (UBig::from(exact.num), UBig::from(exact.den));
        let mut fast_rng = Seeded(i as u64 * 1000 + 1);
        let mut ref_rng = fast_rng.clone();
        for _ in 0..3_000 {
            let fast = discrete_laplace(&mut fast_rng, exact).unwrap();
            let slow = reference::discrete_laplace(&mut ref_rng, &num, &den);
            assert_eq!(dashu::integer::IBig::from(fast), slow, "scale {scale}");
        }
        // Same number of words read: the same control flow.
        assert_eq!(fast_rng.0, ref_rng.0);
    }
    // Uniform draws above 2^64 take the masked path in both.
    let mut a = Seeded(99);
    let mut b = a.clone();
    for n in [u128::from(u64::MAX) + 1, 3 << 100, u128::MAX] {
        for _ in 0..200 {
            let fast = uniform_below(&mut a, n).unwrap();
            assert!(fast < n);
            assert_eq!(
                UBig::from(fast),
                reference::uniform_below(&mut b, &UBig::from(n))
            );
        }
    }
}

/// P(X = x) of the discrete Laplace at `scale`.
fn pmf(scale: f64, x: i64) -> f64 {
    let q = (-1.0 / scale).exp();
    (1.0 - q) / (1.0 + q) * q.powi(x.unsigned_abs() as i32)
}

/// The chi-square statistic and degrees of freedom of `samples` against
/// the pmf at `scale`: a bin per value whose expected count is at least
/// 20, the two tails pooled.
fn chi_square(samples: &[i64], scale: f64) -> (f64, usize) {
    let n = samples.len() as f64;
    let mut k = 0i64;
    while pmf(scale, k + 1) * n >= 20.0 {
        k += 1;
    }
    let mut counts = vec![0f64; (2 * k + 3) as usize];
    for &x in samples {
        let bin = if x < -k {
            0
        } else if x > k {
            2 * k + 2
        } else {
            x + k + 1
        };
        counts[bin as usize] += 1.0;
    }
    let inner: f64 = (-k..=k).map(|x| pmf(scale, x)).sum();
    let tail = (1.0 - inner) / 2.0;
    let mut stat = 0.0;
    for (bin, &observed) in counts.iter().enumerate() {
        let p = match bin as i64 {
            0 => tail,
            b if b == 2 * k + 2 => tail,
            b => pmf(scale, b - k - 1),
        };
        let expected = p * n;
        stat += (observed - expected).powi(2) / expected;
    }
    (stat, counts.len() - 1)
}

/// The chi-square quantile at 1 - 1e-6 (Wilson–Hilferty; z = 4.753).
fn chi_square_critical(df: usize) -> f64 {
    let df = df as f64;
    let h = 2.0 / (9.0 * df);
    df * (1.0 - h + 4.753 * h.sqrt()).powi(3)
}

/// The KS distance between the samples' CDF and the pmf's, over the
/// integers the samples reach.
fn ks_distance(samples: &mut [i64], scale: f64) -> f64 {
    samples.sort_unstable();
    let n = samples.len() as f64;
    let (lo, hi) = (samples[0], samples[samples.len() - 1]);
    // P(X < lo) in closed form: P(X <= -m) = q^m / (1 + q) for m >= 0.
    let q = (-1.0 / scale).exp();
    let mut model = if lo <= 0 {
        q.powi(lo.unsigned_abs() as i32 + 1) / (1.0 + q)
    } else {
        1.0 - q.powi(lo as i32) / (1.0 + q)
    };
    let (mut below, mut d) = (0usize, 0f64);
    for x in lo..=hi {
        model += pmf(scale, x);
        while below < samples.len() && samples[below] <= x {
            below += 1;
        }
        d = d.max((below as f64 / n - model).abs());
    }
    d
}

fn draw(scale: f64, n: usize) -> Vec<i64> {
    let exact = ExactScale::of(scale).unwrap();
    let mut rng = OsRandom::new();
    (0..n)
        .map(|_| add_saturating(0, discrete_laplace(&mut rng, exact).unwrap()))
        .collect()
}

#[test]
fn samples_follow_the_exact_pmf_and_a_scale_30_percent_off_is_caught() {
    const N: usize = 100_000;
    // Two-sided KS bound at α = 1e-6 (conservative for a discrete law).
    let ks_critical = ((2.0f64 / 1e-6).ln() / (2.0 * N as f64)).sqrt();
    for scale in [0.3, 1.0, 3.7, 123.456] {
        let mut samples = draw(scale, N);
        let (stat, df) = chi_square(&samples, scale);
        assert!(
            stat < chi_square_critical(df),
            "scale {scale}: chi-square {stat:.1} on {df} df"
        );
        let d = ks_distance(&mut samples, scale);
        assert!(d < ks_critical, "scale {scale}: KS {d:.5}");
        for wrong in [0.7, 1.3] {
            let mut off = draw(scale * wrong, N);
            let (stat, df) = chi_square(&off, scale);
            let d = ks_distance(&mut off, scale);
            assert!(
                stat > chi_square_critical(df) && d > ks_critical,
                "scale {scale} x {wrong} not told apart: chi-square {stat:.1} on {df} df, KS {d:.5}"
            );
        }
    }
}

#[test]
fn the_fast_sampler_and_opendps_agree_by_a_two_sample_test() {
    const N: usize = 20_000;
    for scale in [0.7, 5.5] {
        let mut ours = draw(scale, N);
        let mechanism = make_laplace(
            VectorDomain::new(AtomDomain::<i64>::default()),
            L1Distance::<i64>::default(),
            scale,
            None,
        )
        .unwrap();
        let mut theirs = mechanism.invoke(&vec![0i64; N]).unwrap();
        ours.sort_unstable();
        theirs.sort_unstable();
        let (lo, hi) = (ours[0].min(theirs[0]), ours[N - 1].max(theirs[N - 1]));
        let (mut i, mut j, mut d) = (0, 0, 0f64);
        for x in lo..=hi {
            while i < N && ours[i] <= x {
                i += 1;
            }
            while j < N && theirs[j] <= x {
                j += 1;
            }
            d = d.max((i as f64 - j as f64).abs() / N as f64);
        }
        // Two-sample KS at α = 1e-6.
        let critical = ((2.0f64 / 1e-6).ln() / 2.0).sqrt() * (2.0 / N as f64).sqrt();
        assert!(
            d < critical,
            "scale {scale}: two-sample KS {d:.4} ≥ {critical:.4}"
        );
    }
}

#[test]
fn noise_is_added_saturating_like_opendps() {
    assert_eq!(add_saturating(i64::MAX, 5), i64::MAX);
    assert_eq!(add_saturating(i64::MIN, -5), i64::MIN);
    assert_eq!(add_saturating(10, -3), 7);
    assert_eq!(add_saturating(0, i128::MAX), i64::MAX);
}
