//! Event-stream tickets and dashboard sessions: signed, expiring credentials that any server
//! holding the session secret checks without state.
//!
//! A browser's `EventSource` cannot send an `Authorization` header, so it opens
//! `GET /v1/events/stream?ticket=...` with a ticket from `POST /v1/events/tickets`. A ticket is
//! `rtk_<key>_<expires ms>_<mac>_<tenant>`: `key` is the API key's id (or `admin` for the
//! admin token), `tenant` the tenant it acts in. A dashboard session is
//! `rds_<key>_<issued ms>_<expires ms>_<mac>` (it names no tenant; an admin picks one per
//! request). Both MACs are HMAC-SHA256 keyed by the server's session secret
//! (`auth.session_secret`, or `<data-dir>/session-secret`), which is not in the store: a leaked
//! database or backup holds only key hashes, from which nobody can sign either. Both die with
//! their key (revoked, expired, deleted), and are refused when `expires` lies further ahead
//! than their lifetime allows, so no signer can make one that outlives it. A session is also
//! refused when it was issued at or before its key's `sessions_valid_from`, which signing out
//! moves to now: sign-out ends every session of that key, on every server. A ticket opens
//! nothing but the event stream and lives a minute, so it has no such epoch. JWT callers get
//! neither: a ticket could not carry the token's claims past its own check.

use super::*;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const PREFIX: &str = "rtk_";
/// How long a ticket opens a stream (the stream then lives on while its key stays valid).
pub const TICKET_TTL_MS: i64 = 60_000;
const ADMIN_KEY: &str = "admin";
const SESSION_PREFIX: &str = "rds_";
/// How long a dashboard session lasts before signing in again.
pub const SESSION_TTL_MS: i64 = 8 * 3_600_000;
/// How far apart the clocks of servers sharing a store may be: a ticket issued by a server
/// whose clock runs ahead still opens a stream on another, and no more than this is allowed
/// past a ticket's or session's lifetime.
pub const CLOCK_SKEW_MS: i64 = 5_000;

/// The secrets sessions and tickets are signed with: the current one signs and checks, the
/// previous one (during a rotation) only checks.
pub(super) struct Signing {
    current: Vec<u8>,
    previous: Option<Vec<u8>>,
}

impl Signing {
    /// From the configured secrets; without one, a random secret of this process (sessions
    /// and tickets then work only on this server, until it stops).
    pub fn new(config: &AuthConfig) -> Signing {
        let bytes = |s: &Secret| s.0.trim().as_bytes().to_vec();
        Signing {
            current: config
                .session_secret
                .as_ref()
                .map(bytes)
                .unwrap_or_else(|| token::random_secret().into_bytes()),
            previous: config.session_secret_previous.as_ref().map(bytes),
        }
    }

    /// The current secret and the previous one, if configured.
    pub(super) fn secrets(&self) -> (&[u8], Option<&[u8]>) {
        (&self.current, self.previous.as_deref())
    }

    fn sign(secret: &[u8], what: &str) -> [u8; 32] {
        let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        m.update(what.as_bytes());
        m.finalize().into_bytes().into()
    }

    fn mac(&self, what: &str) -> String {
        Self::sign(&self.current, what)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `mac` signs `what` under the current or the previous secret.
    fn verify(&self, what: &str, mac: &[u8; 32]) -> bool {
        let current = token::same(&Self::sign(&self.current, what), mac);
        let previous = self
            .previous
            .as_ref()
            .is_some_and(|p| token::same(&Self::sign(p, what), mac));
        current | previous
    }
}

fn ticket_text(key: &str, tenant: &str, expires: i64) -> String {
    format!("rota-events-ticket\n{key}\n{tenant}\n{expires}")
}

fn session_text(key: &str, issued: i64, expires: i64) -> String {
    format!("rota-dashboard-session\n{key}\n{issued}\n{expires}")
}

/// A ticket's parts, unchecked.
pub(super) struct Ticket<'a> {
    key: &'a str,
    expires: i64,
    mac: [u8; 32],
    pub tenant: &'a str,
}

impl<'a> Ticket<'a> {
    pub fn parse(ticket: &'a str) -> Option<Ticket<'a>> {
        let mut parts = ticket.strip_prefix(PREFIX)?.splitn(4, '_');
        Some(Ticket {
            key: parts.next()?,
            expires: parts.next()?.parse().ok()?,
            mac: token::parse_hex32(parts.next()?)?,
            tenant: parts.next()?,
        })
    }
}

/// A session's parts, unchecked.
struct Session<'a> {
    key: &'a str,
    issued: i64,
    expires: i64,
    mac: [u8; 32],
}

impl<'a> Session<'a> {
    fn parse(session: &'a str) -> Option<Session<'a>> {
        let mut parts = session.strip_prefix(SESSION_PREFIX)?.splitn(4, '_');
        Some(Session {
            key: parts.next()?,
            issued: parts.next()?.parse().ok()?,
            expires: parts.next()?.parse().ok()?,
            mac: token::parse_hex32(parts.next()?)?,
        })
    }
}

impl Auth {
    /// The name a ticket or session of `p` carries, and when its sessions begin to be valid;
    /// `None` for a JWT, which has no name the server could find again.
    fn signer(&self, p: &Principal) -> ApiResult<Option<(String, i64)>> {
        Ok(Some(match (&p.key_id, self.enabled()) {
            (_, false) => (ADMIN_KEY.to_owned(), 0),
            (Some(id), true) => {
                let st = self.read();
                let entry = st
                    .keys
                    .get(id)
                    .ok_or_else(|| unauthorized("the API key is not valid"))?;
                (id.clone(), valid_from(&entry.record))
            }
            (None, true) if self.env_admin.is_some() && p.label == ADMIN_TOKEN_LABEL => (
                ADMIN_KEY.to_owned(),
                self.admin_sessions_from.load(Ordering::Relaxed),
            ),
            (None, true) => return Ok(None),
        }))
    }

    /// The principal named `key` in a ticket or session and when its sessions begin to be
    /// valid; `None` when no such credential exists.
    fn signed_by(&self, key: &str) -> Option<ApiResult<(Authenticated, i64)>> {
        if key == ADMIN_KEY {
            self.env_admin?;
            let from = self.admin_sessions_from.load(Ordering::Relaxed);
            return Some(Ok((self.env_admin_principal(), from)));
        }
        let st = self.read();
        let entry = st.keys.get(key)?;
        Some(
            self.key_principal(&st, entry)
                .map(|a| (a, valid_from(&entry.record))),
        )
    }

    /// A dashboard session for `caller`'s credential and when it expires.
    pub fn issue_session(&self, caller: &Caller) -> ApiResult<(String, Timestamp)> {
        let (key, from) = self.signer(&caller.principal)?.ok_or_else(|| {
            unauthorized(format!(
                "the dashboard signs in with an API key or the admin token, not {}",
                caller.principal.label
            ))
        })?;
        // After a sign-out in this very millisecond (or on a server whose clock is ahead),
        // a new session must still be newer than the sessions it ended.
        let issued = self.clock.now().0.max(from + 1);
        let expires = Timestamp(issued + SESSION_TTL_MS);
        let m = self.signing.mac(&session_text(&key, issued, expires.0));
        Ok((
            format!("{SESSION_PREFIX}{key}_{issued}_{}_{m}", expires.0),
            expires,
        ))
    }

    /// The principal a dashboard session was issued to, valid until the session ends (or its
    /// key expires, if sooner): streams opened with it end then.
    pub(super) fn authenticate_session(&self, session: &str) -> ApiResult<Authenticated> {
        let bad = || unauthorized("the dashboard session is not valid; sign in again");
        let s = Session::parse(session).ok_or_else(bad)?;
        let (authenticated, from) = self.signed_by(s.key).ok_or_else(bad)??;
        if !self
            .signing
            .verify(&session_text(s.key, s.issued, s.expires), &s.mac)
        {
            return Err(bad());
        }
        let now = self.clock.now().0;
        if s.expires <= now {
            return Err(unauthorized("the dashboard session expired; sign in again"));
        }
        // Only a server signs, but none signs past a session's lifetime: a session claiming
        // more is refused whoever made it.
        if s.expires > now + SESSION_TTL_MS + CLOCK_SKEW_MS
            || s.issued > now + CLOCK_SKEW_MS
            || s.expires - s.issued > SESSION_TTL_MS
        {
            return Err(bad());
        }
        if s.issued <= from {
            return Err(unauthorized(
                "the dashboard session was signed out; sign in again",
            ));
        }
        let (mut principal, clients) = authenticated;
        let end = Timestamp(s.expires);
        principal.expires_at = Some(principal.expires_at.map_or(end, |e| e.min(end)));
        Ok((principal, clients))
    }

    /// Ends every dashboard session of `p`'s credential, on every server: its key's
    /// `sessions_valid_from` moves to now (the admin token's is kept by this server alone).
    pub async fn end_sessions(&self, p: &Principal) -> ApiResult<()> {
        match &p.key_id {
            Some(id) => self.end_key_sessions(id).await,
            None => {
                let now = self.clock.now().0;
                self.admin_sessions_from.fetch_max(now, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// Ends every dashboard session of key `id` issued until now, on every server (sign-out,
    /// or `POST /v1/keys/{id}/sessions/revoke`); the key itself keeps working.
    pub async fn end_key_sessions(&self, id: &str) -> ApiResult<()> {
        let now = self.clock.now();
        let _one = self.changes.lock().await;
        self.store
            .change_auth(AuthChange::EndSessions {
                key: id.to_owned(),
                at: now,
            })
            .await?;
        let old = self.read().keys.get(id).map(|e| e.record.clone());
        if let Some(mut record) = old {
            record.sessions_valid_from = record.sessions_valid_from.max(Some(now));
            self.remember_key(record);
        }
        Ok(())
    }

    /// A ticket for `caller`'s event stream and when it expires.
    pub fn issue_ticket(&self, caller: &Caller) -> ApiResult<(String, Timestamp)> {
        let p = &caller.principal;
        let (key, _) = self.signer(p)?.ok_or_else(|| {
            ApiError::invalid(format!(
                "event tickets are issued to API keys and the admin token, not to {}; \
                 send the Authorization header to GET /v1/events/stream instead",
                p.label
            ))
        })?;
        let expires = Timestamp(self.clock.now().0 + TICKET_TTL_MS);
        let m = self
            .signing
            .mac(&ticket_text(&key, &caller.tenant, expires.0));
        Ok((
            format!("{PREFIX}{key}_{}_{m}_{}", expires.0, caller.tenant),
            expires,
        ))
    }

    /// The principal a ticket was issued to and the tenant it acts in.
    pub(super) fn authenticate_ticket(&self, ticket: &str) -> ApiResult<(Authenticated, String)> {
        let bad = || unauthorized("the event ticket is not valid; get a new one");
        let Ticket {
            key,
            expires,
            mac: m,
            tenant,
        } = Ticket::parse(ticket).ok_or_else(bad)?;
        let (authenticated, _) = self.signed_by(key).ok_or_else(bad)??;
        if !self.signing.verify(&ticket_text(key, tenant, expires), &m) {
            return Err(bad());
        }
        let now = self.clock.now().0;
        if expires <= now {
            return Err(unauthorized(
                "the event ticket expired; get a new one from POST /v1/events/tickets",
            ));
        }
        if expires > now + TICKET_TTL_MS + CLOCK_SKEW_MS {
            return Err(bad());
        }
        Ok((authenticated, tenant.to_owned()))
    }

    /// Whether `principal`'s credential still holds (a key not revoked, expired or deleted, its
    /// tenant still there): long-lived streams end when it does not.
    pub fn still_valid(&self, principal: &Principal) -> bool {
        let Some(id) = &principal.key_id else {
            return true;
        };
        let st = self.read();
        st.keys
            .get(id)
            .is_some_and(|e| self.key_principal(&st, e).is_ok())
    }
}

/// The key id a ticket or session names (unchecked), unless it is the admin token's.
pub(super) fn signer_of(credential: &str) -> Option<&str> {
    let rest = credential
        .strip_prefix(PREFIX)
        .or_else(|| credential.strip_prefix(SESSION_PREFIX))?;
    rest.split('_').next().filter(|k| *k != ADMIN_KEY)
}

/// When a key's sessions begin to be valid (ms; sessions issued at or before are refused).
fn valid_from(k: &KeyRecord) -> i64 {
    k.sessions_valid_from.map_or(i64::MIN, |t| t.0)
}
