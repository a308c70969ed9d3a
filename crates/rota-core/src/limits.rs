//! Bounds on everything a client can send, and the checks that enforce them.

use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// Most busiest groups a queue's flow stats may list (`limits.max_flow_groups`).
pub const MAX_FLOW_GROUPS: usize = 1_000;

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
    /// Longest delay anything may ask for: `delay_ms`, `run_at` ahead of now, `retry_in_ms`,
    /// `backoff.max_ms`, `retention_ms`, key expiry. Keeps every stored time a real date.
    pub max_delay_ms: u64,
    /// Most queues one tenant may have; enqueueing into one more answers 409.
    pub max_queues_per_tenant: usize,
    /// Request body bytes being read at once, over all clients; a request that would pass it
    /// waits for room.
    pub max_body_bytes_in_flight: usize,
    /// Request body bytes being read at once for one credential, and for one tenant; a request
    /// that would pass it answers 503 with Retry-After.
    pub max_body_bytes_in_flight_per_client: usize,
    /// Most open connections from one client address. At this cap (or at `max_connections`) a
    /// new connection closes the address's (or the server's) oldest idle one.
    pub max_connections_per_address: usize,
    /// A client must send a request's headers within this time, or the connection closes.
    pub header_read_timeout_ms: u64,
    /// A connection with no request in progress closes after this long.
    pub idle_timeout_ms: u64,
    /// A request's body must arrive within this time (408 otherwise).
    pub body_read_timeout_ms: u64,
    /// Queues shown one by one in `/metrics` (the deepest ones); the rest are summed under
    /// `queue="_other"`, so a scrape costs the same with 100 queues or 100,000. 0 sums all.
    pub max_metrics_queues: usize,
    /// Busiest groups a queue's `flow` shows (`GET /v1/queues/{queue}`, the dashboard); the
    /// rest are counted, not listed. 0 lists none.
    pub max_flow_groups: usize,
    /// Limited queues (of the deepest `max_metrics_queues`) whose flow `/metrics` shows:
    /// the concurrency limit and the tasks held back per limit (reading a queue's groups
    /// costs a look at each, so this bounds a scrape's cost as well as its series). 0 shows
    /// none.
    pub max_metrics_flow_queues: usize,
    /// Event streams (`GET /v1/events/stream`) one tenant may hold open on one server; one more
    /// answers 503 with Retry-After.
    pub max_streams_per_tenant: usize,
    /// Event streams (SSE and WebSocket) all tenants together may hold open on one server;
    /// one more answers 503 with Retry-After. Each open stream is woken and reads the log
    /// when its tenant's events commit, so this bounds what idle streams can cost.
    pub max_streams: usize,
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
            max_body_bytes: 8 << 20,
            max_connections: 4_096,
            max_name_len: 256,
            max_tags: 32,
            max_error_len: 16 * 1024,
            max_list: 1_000,
            max_delay_ms: MAX_DELAY_CEILING_MS,
            max_queues_per_tenant: 10_000,
            max_body_bytes_in_flight: 256 << 20,
            max_body_bytes_in_flight_per_client: 64 << 20,
            max_connections_per_address: 1_024,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            body_read_timeout_ms: 30_000,
            max_metrics_queues: 1_000,
            max_flow_groups: 10,
            max_metrics_flow_queues: 20,
            max_streams_per_tenant: 100,
            max_streams: 1_000,
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
            ("max_queues_per_tenant", self.max_queues_per_tenant),
            (
                "max_connections_per_address",
                self.max_connections_per_address,
            ),
            (
                "header_read_timeout_ms",
                self.header_read_timeout_ms as usize,
            ),
            ("idle_timeout_ms", self.idle_timeout_ms as usize),
            ("body_read_timeout_ms", self.body_read_timeout_ms as usize),
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
        if self.max_delay_ms == 0 || self.max_delay_ms > MAX_DELAY_CEILING_MS {
            return Err(format!(
                "limits.max_delay_ms must be 1 to {MAX_DELAY_CEILING_MS} (about 10 years)"
            ));
        }
        if self.max_lease_ms > self.max_delay_ms {
            return Err("limits.max_lease_ms must not exceed limits.max_delay_ms".into());
        }
        if self.max_body_bytes_in_flight_per_client < self.max_body_bytes
            || self.max_body_bytes_in_flight < self.max_body_bytes_in_flight_per_client
        {
            return Err(format!(
                "limits must satisfy max_body_bytes ({}) <= max_body_bytes_in_flight_per_client ({}) <= max_body_bytes_in_flight ({})",
                self.max_body_bytes,
                self.max_body_bytes_in_flight_per_client,
                self.max_body_bytes_in_flight
            ));
        }
        if self.max_flow_groups > MAX_FLOW_GROUPS {
            return Err(format!(
                "limits.max_flow_groups is {}; use 0 to {MAX_FLOW_GROUPS}",
                self.max_flow_groups
            ));
        }
        Ok(())
    }

    /// 422-style message unless `ms` (named `field`) is within `max_delay_ms`.
    pub fn check_delay(&self, field: &str, ms: u64) -> Result<(), String> {
        if ms > self.max_delay_ms {
            return Err(format!(
                "{field} is {ms} ms; the limit is {} ms, about {} days (limits.max_delay_ms)",
                self.max_delay_ms,
                self.max_delay_ms / 86_400_000
            ));
        }
        Ok(())
    }

    /// Unless `t` (named `field`) lies within `max_delay_ms` of `now`, either way.
    pub fn check_time(&self, field: &str, t: Timestamp, now: Timestamp) -> Result<(), String> {
        if t.0.abs_diff(now.0) > self.max_delay_ms {
            return Err(format!(
                "{field} is {t}, more than {} days from now (limits.max_delay_ms)",
                self.max_delay_ms / 86_400_000
            ));
        }
        Ok(())
    }
}

/// The longest `limits.max_delay_ms` may be: ten years.
pub const MAX_DELAY_CEILING_MS: u64 = 10 * 365 * 24 * 3600 * 1000;

/// The longest queue name.
pub const MAX_QUEUE_NAME_LEN: usize = 128;

/// Queue names: 1 to [`MAX_QUEUE_NAME_LEN`] characters from `[A-Za-z0-9._-]`.
pub fn validate_queue_name(name: &str) -> Result<(), String> {
    validate_identifier("queue name", name, MAX_QUEUE_NAME_LEN)?;
    // `.` and `..` are path segments to every HTTP client, which would resolve them away.
    if name == "." || name == ".." {
        return Err(format!(
            "queue name `{name}` is invalid: `.` and `..` cannot appear in a URL path"
        ));
    }
    Ok(())
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
        for bad in [
            "",
            "has space",
            "slash/y",
            "ünï",
            ".",
            "..",
            &"q".repeat(129),
        ] {
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

    #[test]
    fn delays_and_times_are_bounded() {
        let l = Limits::default();
        assert!(l.check_delay("delay_ms", 3_600_000).is_ok());
        let e = l.check_delay("delay_ms", u64::MAX).unwrap_err();
        assert!(
            e.contains("delay_ms") && e.contains("limits.max_delay_ms"),
            "{e}"
        );
        let now = Timestamp(1_764_000_000_000);
        assert!(l.check_time("run_at", now.plus_ms(86_400_000), now).is_ok());
        assert!(l.check_time("run_at", Timestamp(i64::MAX), now).is_err());
        assert!(l.check_time("run_at", Timestamp(i64::MIN), now).is_err());
    }
}
