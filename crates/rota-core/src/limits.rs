//! Bounds on everything a client can send, and the checks that enforce them.

use serde::{Deserialize, Serialize};

/// Every bound has a config key of the same name (`[limits]` in the config file,
/// `ROTA_LIMITS_<NAME>` in the environment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest `payload` (and `result`, `progress`) in bytes of JSON.
    pub max_payload_bytes: usize,
    /// Most tasks in one enqueue request, and items in one batch complete/fail.
    pub max_batch: usize,
    /// Most tasks one claim may return.
    pub max_claim: usize,
    /// Most entries in a claim's `kinds` filter (each is one index read).
    pub max_claim_kinds: usize,
    /// Longest long-poll a claim may ask for.
    pub max_wait_ms: u64,
    pub min_lease_ms: u64,
    pub max_lease_ms: u64,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Most open client connections; more wait in the accept queue.
    pub max_connections: usize,
    /// Longest `kind`, `unique_key`, tag and worker name.
    pub max_name_len: usize,
    pub max_tags: usize,
    /// Longest error message kept per failed attempt (longer ones are truncated, not refused).
    pub max_error_len: usize,
    /// Most tasks a list request returns.
    pub max_list: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_payload_bytes: 1 << 20,
            max_batch: 10_000,
            max_claim: 1_000,
            max_claim_kinds: 64,
            max_wait_ms: 60_000,
            min_lease_ms: 1_000,
            max_lease_ms: 24 * 3600 * 1000,
            max_body_bytes: 64 << 20,
            max_connections: 4_096,
            max_name_len: 256,
            max_tags: 32,
            max_error_len: 16 * 1024,
            max_list: 1_000,
        }
    }
}

impl Limits {
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("max_payload_bytes", self.max_payload_bytes),
            ("max_batch", self.max_batch),
            ("max_claim", self.max_claim),
            ("max_claim_kinds", self.max_claim_kinds),
            ("max_body_bytes", self.max_body_bytes),
            ("max_connections", self.max_connections),
            ("max_name_len", self.max_name_len),
            ("max_list", self.max_list),
        ];
        for (k, v) in positive {
            if v == 0 {
                return Err(format!("limits.{k} must be at least 1"));
            }
        }
        if self.min_lease_ms == 0 || self.min_lease_ms > self.max_lease_ms {
            return Err(format!(
                "limits.min_lease_ms ({}) must be at least 1 and at most limits.max_lease_ms ({})",
                self.min_lease_ms, self.max_lease_ms
            ));
        }
        Ok(())
    }
}

/// Queue names: 1 to 128 characters from `[A-Za-z0-9._-]`.
pub fn validate_queue_name(name: &str) -> Result<(), String> {
    validate_identifier("queue name", name, 128)
}

/// Names (`what` says which) of 1 to `max_len` characters from `[A-Za-z0-9._-]`.
pub fn validate_identifier(what: &str, name: &str, max_len: usize) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > max_len || !name.chars().all(ok_char) {
        let shown: String = name.chars().take(max_len + 12).collect();
        return Err(format!(
            "{what} `{shown}` is invalid: use 1 to {max_len} characters from A-Z, a-z, 0-9, '.', '_' and '-'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names() {
        for ok in ["a", "emails", "sync.hourly", "A_b-9", &"q".repeat(128)] {
            assert!(validate_queue_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "has space", "slash/y", "ünï", &"q".repeat(129)] {
            assert!(validate_queue_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_are_valid_and_bad_limits_name_the_key() {
        assert!(Limits::default().validate().is_ok());
        let l = Limits {
            max_batch: 0,
            ..Limits::default()
        };
        assert!(l.validate().unwrap_err().contains("limits.max_batch"));
    }
}
