//! Exact discrete Laplace noise at machine-integer speed.
//!
//! OpenDP's sampler is exact but costs ~5.7 µs per sample, almost all of it
//! about ten separate OpenSSL calls per sample. This is the same algorithm
//! (Canonne, Kamath, Steinke 2020, Algorithms 1 and 2, in OpenDP's
//! arrangement, so both give the same distribution for the same scale) on
//! integers: the scale's f64 value is decomposed exactly into `num / den`,
//! every step is integer arithmetic in u128 with exact bounded draws
//! (Lemire's method), and the random bytes come from OpenSSL's private RNG
//! (the one OpenDP uses) in 64 KiB blocks. Nothing is approximated: a scale
//! whose exact form does not fit goes to OpenDP's own sampler, and an
//! arithmetic overflow (a draw with probability below 2^-64) is an error,
//! never a rounded value.

use crate::DpError;

/// Where the samplers get their random words: OpenSSL in production, a
/// seeded stream in the differential test.
pub trait RandomWords {
    fn next_u64(&mut self) -> Result<u64, DpError>;
}

/// Random words from OpenSSL's private RNG (`RAND_priv_bytes`, through
/// OpenDP), fetched in blocks: one call per up to 8,192 words instead of
/// several per sample. Blocks start small and double, so that noising a
/// few cells does not fetch (and clear) 64 KiB.
pub struct OsRandom {
    block: Vec<u8>,
    used: usize,
}

const FIRST_BLOCK_BYTES: usize = 256;
const BLOCK_BYTES: usize = 64 * 1024;

impl OsRandom {
    pub fn new() -> OsRandom {
        OsRandom {
            block: Vec::new(),
            used: 0,
        }
    }
}

impl Default for OsRandom {
    fn default() -> Self {
        Self::new()
    }
}

impl RandomWords for OsRandom {
    fn next_u64(&mut self) -> Result<u64, DpError> {
        if self.used + 8 > self.block.len() {
            let size = (self.block.len() * 2).clamp(FIRST_BLOCK_BYTES, BLOCK_BYTES);
            self.block.resize(size, 0);
            opendp::traits::samplers::fill_bytes(&mut self.block)
                .map_err(|e| DpError::Mechanism(format!("no system entropy: {e}")))?;
            self.used = 0;
        }
        let word = u64::from_le_bytes(self.block[self.used..self.used + 8].try_into().unwrap());
        // Each byte is used once and then cleared: a used word kept in
        // memory would let anyone who read it undo the noise it made.
        self.block[self.used..self.used + 8].fill(0);
        self.used += 8;
        Ok(word)
    }
}

fn overflow() -> DpError {
    DpError::Mechanism("exact noise arithmetic overflowed (probability below 2^-64)".into())
}

/// A uniform integer in `[0, n)`, exactly: Lemire's multiply-and-reject
/// for n below 2^64, rejection of masked 128-bit draws above.
pub fn uniform_below<R: RandomWords>(rng: &mut R, n: u128) -> Result<u128, DpError> {
    debug_assert!(n > 0);
    if n == 1 {
        return Ok(0);
    }
    if let Ok(n) = u64::try_from(n) {
        let mut m = u128::from(rng.next_u64()?) * u128::from(n);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(rng.next_u64()?) * u128::from(n);
            }
        }
        return Ok(m >> 64);
    }
    let mask = u128::MAX >> n.leading_zeros();
    loop {
        let draw = (u128::from(rng.next_u64()?) << 64 | u128::from(rng.next_u64()?)) & mask;
        if draw < n {
            return Ok(draw);
        }
    }
}

/// Bernoulli(a / b), a ≤ b.
fn bernoulli_ratio<R: RandomWords>(rng: &mut R, a: u128, b: u128) -> Result<bool, DpError> {
    Ok(uniform_below(rng, b)? < a)
}

/// Bernoulli(exp(-a/b)) for 0 ≤ a/b ≤ 1 (CKS20 Algorithm 1).
fn bernoulli_exp1<R: RandomWords>(rng: &mut R, a: u128, b: u128) -> Result<bool, DpError> {
    let mut k: u128 = 1;
    loop {
        let bk = b.checked_mul(k).ok_or_else(overflow)?;
        if bernoulli_ratio(rng, a, bk)? {
            k += 1;
        } else {
            return Ok(k % 2 == 1);
        }
    }
}

/// Geometric(1 - exp(-1)): the number of Bernoulli(exp(-1)) successes
/// before the first failure.
fn geometric_exp1<R: RandomWords>(rng: &mut R) -> Result<u128, DpError> {
    let mut k: u128 = 0;
    while bernoulli_exp1(rng, 1, 1)? {
        k += 1;
    }
    Ok(k)
}

/// An f64 scale as an exact fraction `num / den` in lowest terms, when both
/// fit the fast path (below 2^64, so every intermediate fits u128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExactScale {
    pub num: u128,
    pub den: u128,
}

impl ExactScale {
    pub fn of(scale: f64) -> Option<ExactScale> {
        if !(scale.is_finite() && scale > 0.0) {
            return None;
        }
        let bits = scale.to_bits();
        let raw_exp = ((bits >> 52) & 0x7ff) as i32;
        let frac = bits & ((1 << 52) - 1);
        // value = mantissa · 2^exp exactly (subnormals have no implicit bit).
        let (mut mantissa, mut exp) = if raw_exp == 0 {
            (frac, -1074)
        } else {
            (frac | 1 << 52, raw_exp - 1075)
        };
        let zeros = mantissa.trailing_zeros();
        mantissa >>= zeros;
        exp += zeros as i32;
        let (num, den) = if exp >= 0 {
            if exp > 63 || (mantissa as u128) << exp > u128::from(u64::MAX) {
                return None;
            }
            ((mantissa as u128) << exp, 1)
        } else {
            if -exp > 63 {
                return None;
            }
            (mantissa as u128, 1u128 << -exp)
        };
        Some(ExactScale { num, den })
    }
}

/// One discrete Laplace sample at `scale` (P(x) ∝ exp(-|x| / scale)),
/// CKS20 Algorithm 2 as OpenDP arranges it: a sign, a magnitude
/// ⌊(V·num + U) / den⌋ with U uniform below num accepted with probability
/// exp(-U/num) and V ~ Geometric(1 - e⁻¹); −0 rejected.
pub fn discrete_laplace<R: RandomWords>(rng: &mut R, scale: ExactScale) -> Result<i128, DpError> {
    let ExactScale { num, den } = scale;
    loop {
        let positive = rng.next_u64()? & 1 == 1;
        let mut u = uniform_below(rng, num)?;
        while !bernoulli_exp1(rng, u, num)? {
            u = uniform_below(rng, num)?;
        }
        let v = geometric_exp1(rng)?;
        let magnitude = v
            .checked_mul(num)
            .and_then(|x| x.checked_add(u))
            .ok_or_else(overflow)?
            / den;
        if positive || magnitude != 0 {
            let magnitude = i128::try_from(magnitude).map_err(|_| overflow())?;
            return Ok(if positive { magnitude } else { -magnitude });
        }
    }
}

/// `value + noise`, saturated to i64 as OpenDP's integer mechanism does.
pub fn add_saturating(value: i64, noise: i128) -> i64 {
    (i128::from(value).saturating_add(noise)).clamp(i128::from(i64::MIN), i128::from(i64::MAX))
        as i64
}
