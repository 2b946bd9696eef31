/// Knuth's MMIX linear congruential generator: the same data from the same
/// seed on every machine, with no crate behind it. Each draw uses the high
/// bits, which are the well-mixed ones in an LCG. For tests and benchmarks,
/// never for secrets.
#[derive(Clone, Debug)]
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Lcg {
        Lcg(seed)
    }

    /// The next state.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0
    }

    /// A number in `0..n` (`n` small against 2^31).
    pub fn below(&mut self, n: u64) -> u64 {
        (self.next_u64() >> 33) % n
    }

    /// A number in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }
}

/// The seed of a randomised test: the value of `var` when set, so that a
/// failure printed with its seed can be replayed, otherwise one from the
/// clock. Panics on a value that is not a number rather than running
/// another seed.
pub fn seed_from_env(var: &str) -> u64 {
    match std::env::var(var) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{var} must be a number, not {v:?}")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stream the copies this generator replaced produced, so data
    /// generated from a seed stays the same.
    #[test]
    fn the_stream_is_fixed_by_the_seed() {
        let mut a = Lcg::new(42);
        assert_eq!([a.below(3), a.below(2), a.below(1500)], [1, 0, 538]);
        assert_eq!(Lcg::new(7).unit(), 0.4932122668392295);
    }
}
