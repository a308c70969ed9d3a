//! Retry delays: exponential backoff with full jitter, capped.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Backoff {
    /// The first retry's ceiling, at least 1.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub base_ms: u64,
    /// The longest ceiling: at least `base_ms`, at most limits.max_delay_ms (default and
    /// ceiling: ten years).
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 1, maximum = 315_360_000_000_u64)
    )]
    pub max_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base_ms: 1_000,
            max_ms: 3_600_000,
        }
    }
}

impl Backoff {
    /// The cap for the retry after failed attempt number `attempt` (1-based):
    /// `min(max_ms, base_ms * 2^(attempt-1))`.
    pub fn ceiling_ms(&self, attempt: u32) -> u64 {
        let shift = attempt.saturating_sub(1).min(62);
        self.base_ms.saturating_mul(1u64 << shift).min(self.max_ms)
    }

    /// "Full jitter": a delay drawn uniformly from `[0, ceiling]`. `unit` is a random number in
    /// `[0, 1)` supplied by the caller, so the rule stays deterministic and testable.
    pub fn delay_ms(&self, attempt: u32, unit: f64) -> u64 {
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        (self.ceiling_ms(attempt) as f64 * unit).round() as u64
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.base_ms == 0 {
            return Err("backoff.base_ms must be at least 1".into());
        }
        if self.max_ms < self.base_ms {
            return Err(format!(
                "backoff.max_ms ({}) must be at least backoff.base_ms ({})",
                self.max_ms, self.base_ms
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_then_caps() {
        let b = Backoff {
            base_ms: 1_000,
            max_ms: 10_000,
        };
        let got: Vec<u64> = (1..=6).map(|a| b.ceiling_ms(a)).collect();
        assert_eq!(got, [1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
        assert_eq!(b.ceiling_ms(200), 10_000, "no overflow on huge attempts");
    }

    #[test]
    fn jitter_spans_zero_to_ceiling() {
        let b = Backoff::default();
        assert_eq!(b.delay_ms(3, 0.0), 0);
        assert_eq!(b.delay_ms(3, 0.5), 2_000);
        assert_eq!(b.delay_ms(3, 0.999_999), 4_000);
        assert_eq!(b.delay_ms(3, f64::NAN), 0);
    }

    #[test]
    fn validation_names_the_field() {
        let bad = Backoff {
            base_ms: 10,
            max_ms: 5,
        };
        assert!(bad.validate().unwrap_err().contains("backoff.max_ms"));
        assert!(Backoff {
            base_ms: 0,
            max_ms: 5
        }
        .validate()
        .unwrap_err()
        .contains("base_ms"));
    }
}
