//! The retry delay: base × 2^retry, ±10 % jitter, capped (SPEC §5).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The delay before a failed run's entry is claimable again.
///
/// `delay(retry) = min(base × 2^retry × jitter, cap)` with a jitter in `[0.9, 1.1]`: the
/// cap is applied after the jitter, so no delay exceeds it (SPEC §5, "capped at 300 s").
/// A base of zero retries at the next engine run, as the original did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Backoff {
    /// The delay after the first attempt (retry 0).
    pub base: Duration,
    /// The largest delay, jitter included.
    pub cap: Duration,
}

impl Backoff {
    /// The default cap: 300 s.
    pub const DEFAULT_CAP: Duration = Duration::from_secs(300);

    /// `base` seconds, capped at 300 s.
    pub fn from_secs(base: u64) -> Self {
        Self {
            base: Duration::from_secs(base),
            cap: Self::DEFAULT_CAP,
        }
    }

    /// No delay: retry at the next engine run.
    pub fn immediate() -> Self {
        Self {
            base: Duration::ZERO,
            cap: Duration::ZERO,
        }
    }

    /// The delay after run `retry` failed. `seed` picks the jitter (stores pass the run
    /// id, so the same run always gets the same delay and no RNG is needed).
    pub fn delay(&self, retry: i32, seed: i64) -> Duration {
        if self.base.is_zero() {
            return Duration::ZERO;
        }
        let exp = retry.clamp(0, 30) as u32;
        // Capped before the jitter too, so that the multiplication cannot overflow.
        let raw = self
            .base
            .checked_mul(1u32 << exp.min(31))
            .unwrap_or(self.cap)
            .min(self.cap);
        // splitmix64 of the seed -> a fraction in [0, 1).
        let mut z = (seed as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
        raw.mul_f64(0.9 + 0.2 * unit).min(self.cap)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::from_secs(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_within_jitter_and_caps() {
        let b = Backoff::from_secs(1);
        for (retry, nominal) in [(0, 1.0), (1, 2.0), (2, 4.0), (5, 32.0)] {
            for seed in 0..50 {
                let d = b.delay(retry, seed).as_secs_f64();
                assert!(
                    d >= nominal * 0.9 - 1e-9 && d <= nominal * 1.1 + 1e-9,
                    "retry {retry} seed {seed}: {d}"
                );
            }
        }
    }

    #[test]
    fn no_delay_exceeds_the_cap_jitter_included() {
        let b = Backoff::from_secs(1);
        let cap = Backoff::DEFAULT_CAP;
        for retry in [8, 9, 12, 30] {
            let delays: Vec<_> = (0..200).map(|seed| b.delay(retry, seed)).collect();
            assert!(
                delays.iter().all(|d| *d <= cap),
                "retry {retry}: {delays:?}"
            );
            // Jitter still spreads the delays below the cap.
            assert!(
                delays.iter().any(|d| *d < cap.mul_f64(0.95)),
                "retry {retry}"
            );
        }
        // 256 s nominal: jitter applies, then the cap.
        assert!((0..200).all(|s| b.delay(8, s) >= Duration::from_secs(256).mul_f64(0.9)));
    }

    #[test]
    fn zero_base_is_immediate() {
        assert_eq!(Backoff::immediate().delay(3, 7), Duration::ZERO);
        assert_eq!(Backoff::from_secs(0).delay(0, 1), Duration::ZERO);
    }

    #[test]
    fn jitter_varies_with_the_seed() {
        let b = Backoff::from_secs(10);
        let a = b.delay(0, 1);
        assert!((2..50).any(|s| b.delay(0, s) != a));
    }
}
