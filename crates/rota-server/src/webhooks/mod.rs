//! Webhook delivery: where a webhook may point ([`target`]), how a delivery is signed
//! ([`sign`]) and the deliverer that sends them ([`deliver`]).

pub mod deliver;
pub mod slots;
pub mod target;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// `[webhooks]` in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Allow targets on private, loopback and link-local addresses.
    pub allow_private: bool,
    /// How long one attempt may take (connect, send, answer).
    pub timeout_ms: u64,
    /// Attempts in flight to one webhook at once.
    pub concurrency_per_endpoint: usize,
    /// How long the old secret keeps signing after a rotation, unless the rotation says.
    pub rotation_grace_ms: u64,
    /// Ports a webhook or callback URL may use: ports and `low-high` ranges, comma-separated.
    pub allowed_ports: String,
    /// An HTTP proxy every delivery goes through (empty: none). Without it the environment's
    /// `HTTP_PROXY`/`ALL_PROXY` are ignored, so the resolver's guard sees every target.
    pub proxy: String,
    /// Attempts in flight at once across all tenants (each holds a socket).
    pub max_in_flight: usize,
    /// Attempts in flight at once for one tenant, webhooks and callbacks together.
    pub max_in_flight_per_tenant: usize,
    /// File descriptors kept free: no attempt starts while fewer than this many are left
    /// below the process's limit (RLIMIT_NOFILE), so the database and the API keep theirs.
    pub fd_reserve: usize,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            allow_private: false,
            timeout_ms: 10_000,
            concurrency_per_endpoint: 8,
            rotation_grace_ms: 24 * 3_600_000,
            allowed_ports: "80,443,1024-65535".into(),
            proxy: String::new(),
            max_in_flight: 256,
            max_in_flight_per_tenant: 128,
            fd_reserve: 256,
        }
    }
}

impl WebhooksConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.timeout_ms == 0 || self.timeout_ms > 300_000 {
            return Err("webhooks.timeout_ms must be 1 to 300000".into());
        }
        if self.concurrency_per_endpoint == 0 || self.concurrency_per_endpoint > 1_000 {
            return Err("webhooks.concurrency_per_endpoint must be 1 to 1000".into());
        }
        target::Ports::parse(&self.allowed_ports)?;
        if !self.proxy.is_empty() {
            reqwest::Proxy::all(&self.proxy)
                .map_err(|e| format!("webhooks.proxy `{}` is not a proxy URL: {e}", self.proxy))?;
        }
        if self.max_in_flight == 0 || self.max_in_flight > 100_000 {
            return Err("webhooks.max_in_flight must be 1 to 100000".into());
        }
        if self.max_in_flight_per_tenant == 0 || self.max_in_flight_per_tenant > self.max_in_flight
        {
            return Err(format!(
                "webhooks.max_in_flight_per_tenant must be 1 to webhooks.max_in_flight ({})",
                self.max_in_flight
            ));
        }
        // Beyond any system's limit on open files: it would stop every delivery.
        if self.fd_reserve > 1 << 30 {
            return Err("webhooks.fd_reserve must be at most 1073741824".into());
        }
        Ok(())
    }
}

fn hex_hmac(secret: &str, parts: &[&[u8]]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a delivery's signature covers.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    pub timestamp: i64,
    pub delivery_id: i64,
    /// The webhook's id, or `callbacks` for a task result.
    pub webhook_id: &'a str,
    /// The URL it is sent to, exactly as registered (the webhook's `url`, the task's
    /// `callback_url`).
    pub url: &'a str,
    pub body: &'a [u8],
}

/// `v1`: `hex(HMAC-SHA256(secret, "<timestamp>.<body>"))`, kept for receivers that have not
/// moved to `v2`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    hex_hmac(secret, &[timestamp.to_string().as_bytes(), b".", body])
}

/// `v2`: `hex(HMAC-SHA256(secret, "<timestamp>\n<delivery id>\n<webhook id>\n<url>\n<body>"))`.
/// It also binds the delivery id (what receivers deduplicate by), the webhook and the
/// destination, so a signed request cannot be replayed as another delivery or to another
/// endpoint sharing the secret. A URL holds no raw newline, so the parts cannot run together.
pub fn sign_v2(secret: &str, s: &Signed) -> String {
    let head = format!(
        "{}\n{}\n{}\n{}\n",
        s.timestamp, s.delivery_id, s.webhook_id, s.url
    );
    hex_hmac(secret, &[head.as_bytes(), s.body])
}

/// The `Rota-Signature` header: per signing secret `v1=<hex>,v2=<hex>`, comma-separated.
pub fn signature_header(secrets: &[&str], s: &Signed) -> String {
    secrets
        .iter()
        .map(|k| format!("v1={},v2={}", sign(k, s.timestamp, s.body), sign_v2(k, s)))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(body: &[u8]) -> Signed<'_> {
        Signed {
            timestamp: 1_700_000_000,
            delivery_id: 42,
            webhook_id: "wh_1",
            url: "https://example.com/hook",
            body,
        }
    }

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_dot_body() {
        // Python: hmac.new(b"whsec_test", b"1700000000.{}", hashlib.sha256).hexdigest()
        let s = sign("whsec_test", 1_700_000_000, b"{}");
        assert_eq!(s.len(), 64);
        assert_eq!(s, sign("whsec_test", 1_700_000_000, b"{}"));
        assert_ne!(s, sign("whsec_test", 1_700_000_001, b"{}"));
        let h = signature_header(&["a", "b"], &signed(b"x"));
        assert_eq!(h.matches("v1=").count(), 2);
        assert_eq!(h.matches("v2=").count(), 2);
    }

    #[test]
    fn v2_covers_the_delivery_the_webhook_and_the_url() {
        let base = signed(b"{}");
        let v2 = sign_v2("k", &base);
        // As a receiver computes it.
        let mut m = Hmac::<Sha256>::new_from_slice(b"k").unwrap();
        m.update(b"1700000000\n42\nwh_1\nhttps://example.com/hook\n{}");
        let want: String = m
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(v2, want);
        for other in [
            Signed {
                delivery_id: 43,
                ..base
            },
            Signed {
                webhook_id: "wh_2",
                ..base
            },
            Signed {
                url: "https://example.com/other",
                ..base
            },
            Signed {
                timestamp: 1_700_000_001,
                ..base
            },
            Signed {
                body: b"{ }",
                ..base
            },
        ] {
            assert_ne!(sign_v2("k", &other), v2, "{other:?}");
        }
        // v1 does not see the delivery: the reason v2 exists.
        assert_eq!(
            sign("k", 1_700_000_000, b"{}"),
            sign("k", 1_700_000_000, b"{}")
        );
    }
}
