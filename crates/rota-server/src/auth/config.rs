//! `[auth]` in the config file: whether access control is on, the admin token, the secret that
//! signs dashboard sessions and event tickets, default limits and the identity provider.

use super::*;

/// A secret that never shows in `Debug` output (nor when a config is written out).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

/// The shortest secret accepted: a token or signing secret shorter than this is guessable.
pub const MIN_SECRET_CHARS: usize = 32;

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Default limits for a kind of client; 0 is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitDefaults {
    pub requests_per_minute: u32,
    pub max_in_flight: u32,
}

impl LimitDefaults {
    pub(super) fn with(self, o: ClientLimits) -> Effective {
        Effective {
            requests_per_minute: o.requests_per_minute.unwrap_or(self.requests_per_minute),
            max_in_flight: o.max_in_flight.unwrap_or(self.max_in_flight),
        }
    }
}

/// `[auth]` in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Off makes every request an admin of tenant `default`: only for a trusted machine.
    pub enabled: bool,
    /// `ROTA_ADMIN_TOKEN`: an admin credential held only in memory. Never read from a file.
    #[serde(skip)]
    pub admin_token: Option<Secret>,
    /// Signs dashboard sessions and event-stream tickets (`ROTA_SESSION_SECRET`); every server
    /// sharing a PostgreSQL store needs the same one. Unset, `rota serve` keeps one in
    /// `<data-dir>/session-secret`; a server started as a library makes one per process.
    #[serde(skip_serializing)]
    pub session_secret: Option<Secret>,
    /// A secret sessions and tickets signed before a rotation are still accepted with
    /// (`ROTA_SESSION_SECRET_PREVIOUS`); new ones are signed with `session_secret`.
    #[serde(skip_serializing)]
    pub session_secret_previous: Option<Secret>,
    /// Limits of each API key and JWT subject, unless the key sets its own.
    pub key_limits: LimitDefaults,
    /// Limits of each tenant as a whole, unless the tenant sets its own.
    pub tenant_limits: LimitDefaults,
    /// Accept JWTs from an identity provider.
    pub jwt: Option<jwt::JwtConfig>,
    /// How long an OAuth access token (`POST /oauth/token`) lasts, in seconds.
    pub token_ttl_s: u64,
    /// How long before a key expires its `key.expiring` event is logged.
    pub key_expiry_warning_ms: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: true,
            admin_token: None,
            session_secret: None,
            session_secret_previous: None,
            key_limits: LimitDefaults {
                requests_per_minute: 0,
                max_in_flight: 256,
            },
            tenant_limits: LimitDefaults {
                requests_per_minute: 0,
                max_in_flight: 1_024,
            },
            jwt: None,
            token_ttl_s: 3_600,
            key_expiry_warning_ms: 7 * 24 * 3_600_000,
        }
    }
}

impl AuthConfig {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(t) = &self.admin_token {
            if t.0.len() < MIN_SECRET_CHARS {
                return Err(format!(
                    "ROTA_ADMIN_TOKEN must be at least {MIN_SECRET_CHARS} characters"
                ));
            }
        }
        for (name, s) in [
            ("session_secret (ROTA_SESSION_SECRET)", &self.session_secret),
            (
                "session_secret_previous (ROTA_SESSION_SECRET_PREVIOUS)",
                &self.session_secret_previous,
            ),
        ] {
            if s.as_ref()
                .is_some_and(|s| s.0.trim().len() < MIN_SECRET_CHARS)
            {
                return Err(format!(
                    "auth.{name} must be at least {MIN_SECRET_CHARS} characters \
                     (e.g. `openssl rand -hex 32`)"
                ));
            }
        }
        if self.session_secret.is_none() && self.session_secret_previous.is_some() {
            return Err(
                "auth.session_secret_previous is set without auth.session_secret; a previous \
                 secret is only accepted beside the current one"
                    .into(),
            );
        }
        if let Some(j) = &self.jwt {
            j.validate()?;
        }
        if !(60_000..=365 * 86_400_000).contains(&self.key_expiry_warning_ms) {
            return Err(
                "auth.key_expiry_warning_ms must be a minute to a year (60000 to 31536000000)"
                    .into(),
            );
        }
        if !(60..=86_400).contains(&self.token_ttl_s) {
            return Err("auth.token_ttl_s must be 60 to 86400 (a day)".into());
        }
        Ok(())
    }
}
