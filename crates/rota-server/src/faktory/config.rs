//! `[faktory]` in the config file: the Faktory door's own bounds. Where a bound means the same
//! as the HTTP door's it is that one (`limits.max_connections`, `limits.max_connections_per_address`,
//! `limits.header_read_timeout_ms` for HELLO, `limits.body_read_timeout_ms` for a command line,
//! `limits.max_body_bytes` and the body budgets); these are the ones that differ.

use serde::{Deserialize, Serialize};

/// Every key is `[faktory] <name>` in the config file and `ROTA_FAKTORY_<NAME>` in the
/// environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaktoryConfig {
    /// Longest line before HELLO succeeds (HELLO itself is a few hundred bytes); a longer one
    /// closes the connection, so no one holds memory without a password.
    pub max_hello_bytes: usize,
    /// Failed HELLOs (and commands before HELLO) one connection may send before it is closed.
    pub max_failed_hellos: u32,
    /// An authenticated connection with no command in progress closes after this long. Longer
    /// than `limits.idle_timeout_ms`: Faktory clients keep pools of connections open between
    /// jobs (workers send BEAT every 15 s; producers may push rarely), and they reconnect.
    pub idle_timeout_ms: u64,
    /// Most queues one FETCH may name (each is a read of the store and a record `rota doctor`
    /// keeps).
    pub max_fetch_queues: usize,
    /// Longest `MUTATE` filter pattern (`regexp`), in bytes.
    pub max_mutate_pattern_bytes: usize,
    /// Longest time one `MUTATE` may scan for; past it the command stops with an error (what
    /// it changed so far stays changed).
    pub mutate_budget_ms: u64,
}

impl Default for FaktoryConfig {
    fn default() -> Self {
        FaktoryConfig {
            max_hello_bytes: 8 * 1024,
            max_failed_hellos: 3,
            idle_timeout_ms: 300_000,
            max_fetch_queues: 64,
            max_mutate_pattern_bytes: 256,
            mutate_budget_ms: 5_000,
        }
    }
}

impl FaktoryConfig {
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("max_hello_bytes", self.max_hello_bytes as u64),
            ("max_failed_hellos", u64::from(self.max_failed_hellos)),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("max_fetch_queues", self.max_fetch_queues as u64),
            (
                "max_mutate_pattern_bytes",
                self.max_mutate_pattern_bytes as u64,
            ),
            ("mutate_budget_ms", self.mutate_budget_ms),
        ];
        for (k, v) in positive {
            if v == 0 {
                return Err(format!("faktory.{k} must be at least 1"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_a_zero_names_its_key() {
        assert!(FaktoryConfig::default().validate().is_ok());
        let c = FaktoryConfig {
            max_fetch_queues: 0,
            ..Default::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .contains("faktory.max_fetch_queues"));
    }
}
