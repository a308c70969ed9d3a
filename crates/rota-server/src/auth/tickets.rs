//! Event-stream tickets: a browser's `EventSource` cannot send an `Authorization` header, so it
//! opens `GET /v1/events/stream?ticket=...` with a ticket from `POST /v1/events/tickets`.
//!
//! A ticket is `rtk_<key>_<expires ms>_<mac>_<tenant>`: `key` is the API key's id (or `admin`
//! for the admin token), `tenant` the tenant it acts in, and `mac` is HMAC-SHA256 over those,
//! keyed by the credential's stored hash. So any server sharing the store checks it without
//! keeping state, it dies with its key (revoked, expired, deleted) and after
//! [`TICKET_TTL_MS`], and it opens nothing but the event stream. JWT callers get none: a ticket
//! could not carry the token's claims past its own check; they stream with their header.

use super::*;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const PREFIX: &str = "rtk_";
/// How long a ticket opens a stream (the stream then lives on while its key stays valid).
pub const TICKET_TTL_MS: i64 = 60_000;
const ADMIN_KEY: &str = "admin";
/// A dashboard session, `rds_<key>_<expires ms>_<mac>`: the same scheme, for the dashboard's
/// cookie (it names no tenant; an admin picks one per request).
const SESSION_PREFIX: &str = "rds_";
/// How long a dashboard session lasts before signing in again.
pub const SESSION_TTL_MS: i64 = 8 * 3_600_000;

fn mac(secret: &[u8; 32], key: &str, tenant: &str, expires: i64) -> [u8; 32] {
    sign(
        secret,
        &format!("rota-events-ticket\n{key}\n{tenant}\n{expires}"),
    )
}

fn sign(secret: &[u8; 32], what: &str) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(what.as_bytes());
    m.finalize().into_bytes().into()
}

fn session_mac(secret: &[u8; 32], key: &str, expires: i64) -> [u8; 32] {
    sign(secret, &format!("rota-dashboard-session\n{key}\n{expires}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl token::Stored {
    fn bytes(&self) -> &[u8; 32] {
        match self {
            token::Stored::Plain(b) | token::Stored::Verifier(b) => b,
        }
    }
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

impl Auth {
    /// The name and secret a ticket or session of `p` is signed with: its key's stored hash,
    /// or the admin token's; `None` for a JWT, which has neither.
    fn signer(&self, p: &Principal) -> ApiResult<Option<(String, [u8; 32])>> {
        Ok(Some(match (&p.key_id, self.enabled()) {
            (_, false) => (ADMIN_KEY.to_owned(), [0u8; 32]),
            (Some(id), true) => {
                let st = self.read();
                let entry = st
                    .keys
                    .get(id)
                    .ok_or_else(|| unauthorized("the API key is not valid"))?;
                (id.clone(), *entry.hash.bytes())
            }
            (None, true) => match self.env_admin.filter(|_| p.label == ADMIN_TOKEN_LABEL) {
                Some(h) => (ADMIN_KEY.to_owned(), *h.bytes()),
                None => return Ok(None),
            },
        }))
    }

    /// The principal named `key` in a ticket or session and the secret that signed it (the
    /// inverse of [`Auth::signer`]); `None` when no such credential exists.
    fn signed_by(&self, key: &str) -> Option<ApiResult<(Authenticated, [u8; 32])>> {
        if key == ADMIN_KEY {
            let h = self.env_admin?;
            return Some(Ok((self.env_admin_principal(), *h.bytes())));
        }
        let st = self.read();
        let entry = st.keys.get(key)?;
        Some(
            self.key_principal(&st, entry)
                .map(|a| (a, *entry.hash.bytes())),
        )
    }

    /// A dashboard session for `caller`'s credential and when it expires.
    pub fn issue_session(&self, caller: &Caller) -> ApiResult<(String, Timestamp)> {
        let (key, secret) = self.signer(&caller.principal)?.ok_or_else(|| {
            unauthorized(format!(
                "the dashboard signs in with an API key or the admin token, not {}",
                caller.principal.label
            ))
        })?;
        let expires = Timestamp(self.clock.now().0 + SESSION_TTL_MS);
        let m = hex(&session_mac(&secret, &key, expires.0));
        Ok((format!("{SESSION_PREFIX}{key}_{}_{m}", expires.0), expires))
    }

    /// The principal a dashboard session was issued to.
    pub(super) fn authenticate_session(&self, session: &str) -> ApiResult<Authenticated> {
        let bad = || unauthorized("the dashboard session is not valid; sign in again");
        let mut parts = session
            .strip_prefix(SESSION_PREFIX)
            .ok_or_else(bad)?
            .splitn(3, '_');
        let (key, expires, m) = (|| {
            let key = parts.next()?;
            let expires: i64 = parts.next()?.parse().ok()?;
            Some((key, expires, token::parse_hex32(parts.next()?)?))
        })()
        .ok_or_else(bad)?;
        let (authenticated, secret) = self.signed_by(key).ok_or_else(bad)??;
        if !token::same(&session_mac(&secret, key, expires), &m) {
            return Err(bad());
        }
        if expires <= self.clock.now().0 {
            return Err(unauthorized("the dashboard session expired; sign in again"));
        }
        Ok(authenticated)
    }

    /// A ticket for `caller`'s event stream and when it expires.
    pub fn issue_ticket(&self, caller: &Caller) -> ApiResult<(String, Timestamp)> {
        let p = &caller.principal;
        let (key, secret) = self.signer(p)?.ok_or_else(|| {
            ApiError::invalid(format!(
                "event tickets are issued to API keys and the admin token, not to {}; \
                 send the Authorization header to GET /v1/events/stream instead",
                p.label
            ))
        })?;
        let expires = Timestamp(self.clock.now().0 + TICKET_TTL_MS);
        let m = hex(&mac(&secret, &key, &caller.tenant, expires.0));
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
        let (authenticated, secret) = self.signed_by(key).ok_or_else(bad)??;
        if !token::same(&mac(&secret, key, tenant, expires), &m) {
            return Err(bad());
        }
        if expires <= self.clock.now().0 {
            return Err(unauthorized(
                "the event ticket expired; get a new one from POST /v1/events/tickets",
            ));
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
