//! Inbound webhooks ("hooks"): a public endpoint, `POST /hooks/{id}`, that turns a provider's
//! signed request into a task of one queue and kind. A hook is a credential (its secret proves
//! the request), so it is kept with the tenant's keys and roles and every server holds it in
//! memory. How each provider's signature is checked is the server's (`rota_server::hooks`).

use crate::auth::validate_name;
use crate::limits::validate_queue_name;
use crate::webhooks::WebhookOwner;
use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// How a hook checks that a request comes from whoever holds its secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Verify {
    /// GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`.
    Github,
    /// GitLab: `X-Gitlab-Token` is the secret itself.
    Gitlab,
    /// `Rota-Timestamp: <unix seconds>` and `Rota-Signature: v1=<hex HMAC-SHA256(secret,
    /// "<timestamp>.<body>")>` (what Rota's own webhooks send), within the replay window.
    HmacSha256,
    /// Stripe: `Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
    /// "<t>.<body>")>`, within the replay window.
    Stripe,
}

impl Verify {
    pub const ALL: [Verify; 4] = [
        Verify::Github,
        Verify::Gitlab,
        Verify::HmacSha256,
        Verify::Stripe,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verify::Github => "github",
            Verify::Gitlab => "gitlab",
            Verify::HmacSha256 => "hmac-sha256",
            Verify::Stripe => "stripe",
        }
    }

    pub fn parse(s: &str) -> Result<Verify, String> {
        Verify::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                format!("verify `{s}` is not one of github, gitlab, hmac-sha256, stripe")
            })
    }
}

impl std::fmt::Display for Verify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A hook as stored. The secret checks signatures, so it is kept (not only a hash), like a
/// webhook's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookRecord {
    /// `hk_<hex>`: the public part of the hook's URL.
    pub id: String,
    pub tenant: String,
    /// Unique in the tenant.
    pub name: String,
    /// Where its tasks are enqueued, and their kind.
    pub queue: String,
    pub kind: String,
    pub verify: Verify,
    pub secret: String,
    /// The secret before the last rotation, still accepted until `previous_until`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_until: Option<Timestamp>,
    pub enabled: bool,
    #[serde(default)]
    pub description: Option<String>,
    /// The credential that last wrote it: each request enqueues as this credential is then
    /// (a revoked key, a changed role or a deny rule apply at once), like a webhook's owner.
    pub owner: Option<WebhookOwner>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Most hooks one tenant may have.
pub const MAX_HOOKS_PER_TENANT: usize = 1_000;
/// A given secret's length bounds (a made one is 64 hex characters).
pub const MIN_SECRET_LEN: usize = 16;
pub const MAX_SECRET_LEN: usize = 256;
/// How far a signed timestamp may be from the server's clock (either way).
pub const REPLAY_WINDOW_S: i64 = 300;
/// The longest delivery id taken as a unique key; longer ones are refused.
pub const MAX_DELIVERY_ID_LEN: usize = 200;

impl HookRecord {
    /// The secrets that prove a request at `now`: the current one, and the previous one while
    /// the rotation's grace lasts (the end excluded).
    pub fn secrets(&self, now: Timestamp) -> Vec<&str> {
        crate::webhooks::live_secrets(
            &self.secret,
            self.previous_secret.as_deref(),
            self.previous_until,
            now,
        )
    }

    /// The unique key of the task a delivery becomes: one per hook and delivery, so a
    /// redelivery finds the task the first one made.
    pub fn unique_key(&self, delivery_id: &str) -> String {
        format!("hook:{}:{delivery_id}", self.id)
    }
}

/// Checks what a hook's creator chooses: its name, queue, kind and given secret.
pub fn validate(
    name: &str,
    queue: &str,
    kind: &str,
    secret: Option<&str>,
    max_kind_len: usize,
) -> Result<(), String> {
    validate_name("hook name", name)?;
    validate_queue_name(queue)?;
    if kind.is_empty() || kind.len() > max_kind_len {
        return Err(format!(
            "kind has {} bytes; use 1 to {max_kind_len}",
            kind.len()
        ));
    }
    if let Some(s) = secret {
        validate_secret(s)?;
    }
    Ok(())
}

/// A given secret: [`MIN_SECRET_LEN`] to [`MAX_SECRET_LEN`] printable ASCII characters,
/// spaces inside allowed (GitLab sends it as a header value, which cannot hold other bytes or
/// keep spaces at its ends).
pub fn validate_secret(s: &str) -> Result<(), String> {
    if s.len() < MIN_SECRET_LEN
        || s.len() > MAX_SECRET_LEN
        || !s.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
        || s.starts_with(' ')
        || s.ends_with(' ')
    {
        return Err(format!(
            "secret must be {MIN_SECRET_LEN} to {MAX_SECRET_LEN} printable ASCII characters, \
             not starting or ending with a space (leave it out to have one made)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook() -> HookRecord {
        HookRecord {
            id: "hk_1".into(),
            tenant: "default".into(),
            name: "github".into(),
            queue: "mirror".into(),
            kind: "push".into(),
            verify: Verify::Github,
            secret: "new-secret-0123456789".into(),
            previous_secret: Some("old-secret-0123456789".into()),
            previous_until: Some(Timestamp(1_000)),
            enabled: true,
            description: None,
            owner: None,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    #[test]
    fn the_previous_secret_proves_until_the_grace_ends() {
        let h = hook();
        assert_eq!(h.secrets(Timestamp(999)).len(), 2);
        assert_eq!(h.secrets(Timestamp(1_000)), vec!["new-secret-0123456789"]);
    }

    #[test]
    fn verify_names_round_trip() {
        for v in Verify::ALL {
            assert_eq!(Verify::parse(v.as_str()), Ok(v));
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        }
        assert!(Verify::parse("svix").unwrap_err().contains("github"));
    }

    #[test]
    fn choices_are_checked() {
        assert!(validate("gh", "mirror", "push", None, 128).is_ok());
        assert!(validate("g h", "mirror", "push", None, 128).is_err());
        assert!(validate("gh", "a/b", "push", None, 128).is_err());
        assert!(validate("gh", "mirror", "", None, 128).is_err());
        assert!(validate("gh", "mirror", "push", Some("short"), 128).is_err());
        assert!(validate(
            "gh",
            "mirror",
            "push",
            Some("It's a Secret to Everybody"),
            128
        )
        .is_ok());
        assert!(validate("gh", "mirror", "push", Some(" leading space 0123"), 128).is_err());
        assert!(validate("gh", "mirror", "push", Some("tab\tinside-0123456"), 128).is_err());
        assert!(validate("gh", "mirror", "push", Some("0123456789abcdef"), 128).is_ok());
    }
}
