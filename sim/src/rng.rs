//! The simulator's one seeded generator.

use rand_pcg::rand_core::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

/// A PCG generator (a fixed, documented algorithm): the same seed gives the
/// same numbers on every machine and release.
#[derive(Debug, Clone)]
pub(crate) struct SimRng(Pcg64Mcg);

impl SimRng {
    pub(crate) fn new(seed: u64) -> SimRng {
        SimRng(Pcg64Mcg::seed_from_u64(seed))
    }

    pub(crate) fn u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (`0` when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Lemire's multiply-shift: bias below 2^-64 * n, fine here.
        ((u128::from(self.u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        (self.u64() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }

    /// Index into a slice of `len` (`None` when empty).
    pub(crate) fn pick(&mut self, len: usize) -> Option<usize> {
        (len > 0).then(|| self.below(len as u64) as usize)
    }
}
