//! `[auth]` in the config file: whether access control is on, the admin token, default limits
//! and the identity provider.

use super::*;

/// A secret that never shows in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

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
    /// Limits of each API key and JWT subject, unless the key sets its own.
    pub key_limits: LimitDefaults,
    /// Limits of each tenant as a whole, unless the tenant sets its own.
    pub tenant_limits: LimitDefaults,
    /// Accept JWTs from an identity provider.
    pub jwt: Option<jwt::JwtConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: true,
            admin_token: None,
            key_limits: LimitDefaults {
                requests_per_minute: 0,
                max_in_flight: 256,
            },
            tenant_limits: LimitDefaults {
                requests_per_minute: 0,
                max_in_flight: 1_024,
            },
            jwt: None,
        }
    }
}

impl AuthConfig {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(t) = &self.admin_token {
            if t.0.len() < 32 {
                return Err("ROTA_ADMIN_TOKEN must be at least 32 characters".into());
            }
        }
        if let Some(j) = &self.jwt {
            j.validate()?;
        }
        Ok(())
    }
}
