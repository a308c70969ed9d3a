//! OAuth 2.0 client credentials (RFC 6749 §4.4): a key's id and whole token are exchanged for
//! a short-lived access token, a JWT that Rota signs (EdDSA) and every server checks without
//! a round trip.
//!
//! The signing key is derived from the session secret (HKDF-SHA256), so every server sharing
//! a PostgreSQL store already holds it, nothing new is stored, and rotating the session secret
//! (with `session_secret_previous` for the overlap) rotates it: `/.well-known/jwks.json`
//! lists both public keys while the previous secret is configured, and tokens signed by
//! either are accepted.
//!
//! A token is only as good as its key is now: each request looks the key up in memory, so a
//! revoked, expired or deleted key ends its tokens at once, and a token records which of the
//! key's secrets it was issued against, so rotating the key ends the old secret's tokens when
//! the rotation's grace ends. Nothing here fails open: a key the server cannot find refuses.

use super::*;
use hmac::{Hmac, Mac};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rota_core::auth::Scope;
use sha2::{Digest, Sha256};

/// Who issues and who accepts the tokens (`iss` and `aud`).
const ISSUER: &str = "rota";
/// Key ids of Rota's own signing keys start with this, so a bearer JWT is told from an
/// identity provider's by its header.
const KID_PREFIX: &str = "rota-";

/// One signing key: the private half as jsonwebtoken takes it, the public half as a JWK.
struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
}

/// HKDF-SHA256 (RFC 5869) of `secret` for one 32-byte output: extract, then one expand step.
fn derive_seed(secret: &[u8]) -> [u8; 32] {
    let mut extract = Hmac::<Sha256>::new_from_slice(b"rota oauth").expect("any key length");
    extract.update(secret);
    let prk = extract.finalize().into_bytes();
    let mut expand = Hmac::<Sha256>::new_from_slice(&prk).expect("any key length");
    expand.update(b"access token signing key v1");
    expand.update(&[1]);
    expand.finalize().into_bytes().into()
}

impl SigningKey {
    fn from_secret(secret: &[u8]) -> SigningKey {
        // A PKCS#8 v1 document holding an Ed25519 seed: a fixed 16-byte header, then the seed.
        const PKCS8_ED25519: [u8; 16] = [
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        let der = [&PKCS8_ED25519[..], &derive_seed(secret)].concat();
        let encoding = EncodingKey::from_ed_der(&der);
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::EdDSA)
            .expect("an Ed25519 seed makes a key");
        let public = match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(p) => p.x.clone(),
            _ => unreachable!("an Ed25519 key is an octet key pair"),
        };
        let digest = Sha256::digest(public.as_bytes());
        let kid = format!("{KID_PREFIX}{}", token::hex(&digest[..8]));
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        let decoding = DecodingKey::from_jwk(&jwk).expect("a JWK made from the key reads back");
        SigningKey {
            kid,
            encoding,
            decoding,
            jwk,
        }
    }
}

/// Failed token requests one address, and one client id, may make per minute; past it they
/// are refused before the secret is checked.
pub const FAILURES_PER_ADDRESS_PER_MINUTE: u32 = 30;
pub const FAILURES_PER_CLIENT_PER_MINUTE: u32 = 10;

/// Failed token requests by address and by client id.
pub(super) struct Attempts {
    by_address: limits::Throttle<std::net::IpAddr>,
    by_client: limits::Throttle<String>,
}

impl Default for Attempts {
    fn default() -> Self {
        Attempts {
            by_address: limits::Throttle::new(10_000),
            by_client: limits::Throttle::new(10_000),
        }
    }
}

/// The signing keys: the current secret's first, then the previous secret's while configured.
pub(super) struct TokenKeys(Vec<SigningKey>);

impl TokenKeys {
    pub(super) fn new(signing: &tickets::Signing) -> TokenKeys {
        let (current, previous) = signing.secrets();
        TokenKeys(
            std::iter::once(current)
                .chain(previous)
                .map(SigningKey::from_secret)
                .collect(),
        )
    }

    fn find(&self, kid: &str) -> Option<&SigningKey> {
        self.0.iter().find(|k| k.kid == kid)
    }
}

/// What a token says.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    /// The key's id.
    sub: String,
    /// The key's tenant.
    tid: String,
    iat: i64,
    /// On the server's clock, in seconds.
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<Scope>,
    /// Which of the key's secrets the token was issued against ([`secret_mark`]).
    sm: String,
}

/// A short mark of a key's stored hash: a token carries it, so the secret it was issued
/// against can be told from a later one without putting the hash itself in the token.
fn secret_mark(stored_hash: &str) -> String {
    token::hex(&Sha256::digest(stored_hash.as_bytes())[..8])
}

/// An access token issued.
pub struct Issued {
    pub access_token: String,
    pub expires_in: u64,
    pub scope: String,
}

/// Why no token was issued, as RFC 6749 §5.2 names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub error: &'static str,
    pub description: String,
}

fn oauth_error(error: &'static str, description: impl Into<String>) -> OAuthError {
    OAuthError {
        error,
        description: description.into(),
    }
}

impl Auth {
    /// Whether `token` is one of this server's access tokens (by its header), not an identity
    /// provider's JWT.
    pub(super) fn is_access_token(&self, token: &str) -> bool {
        token.split('.').count() == 3
            && jsonwebtoken::decode_header(token)
                .ok()
                .and_then(|h| h.kid)
                .is_some_and(|kid| kid.starts_with(KID_PREFIX))
    }

    /// The public keys access tokens are signed with.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.tokens.0.iter().map(|k| k.jwk.clone()).collect(),
        }
    }

    /// Exchanges a key's id and token for an access token, narrowed to `scope` when given;
    /// `addr` is where the request came from. Failures are counted per address and per client
    /// id, and past [`FAILURES_PER_ADDRESS_PER_MINUTE`] or [`FAILURES_PER_CLIENT_PER_MINUTE`]
    /// refused unchecked (`Err` with the seconds to wait).
    pub async fn issue_token(
        &self,
        addr: std::net::IpAddr,
        client_id: &str,
        client_secret: &str,
        scope: Option<&str>,
    ) -> Result<Issued, (OAuthError, Option<u64>)> {
        let now_s = self.clock.now().0.div_euclid(1000);
        let a = &self.oauth_attempts;
        let client = client_id.to_owned();
        let wait = a
            .by_address
            .wait(&addr, now_s, FAILURES_PER_ADDRESS_PER_MINUTE)
            .or_else(|| {
                a.by_client
                    .wait(&client, now_s, FAILURES_PER_CLIENT_PER_MINUTE)
            });
        if let Some(wait) = wait {
            let e = oauth_error(
                "invalid_client",
                format!("too many failed attempts; retry in {wait} s"),
            );
            return Err((e, Some(wait)));
        }
        let issued = self.issue(client_id, client_secret, scope).await;
        if matches!(&issued, Err(e) if e.error == "invalid_client") {
            a.by_address.record(&addr, now_s);
            a.by_client.record(&client, now_s);
        }
        issued.map_err(|e| (e, None))
    }

    async fn issue(
        &self,
        client_id: &str,
        client_secret: &str,
        scope: Option<&str>,
    ) -> Result<Issued, OAuthError> {
        let invalid = || {
            oauth_error(
                "invalid_client",
                "the client id and secret are not a valid API key's id and token",
            )
        };
        if token::key_id(client_secret) != Some(client_id) {
            return Err(invalid());
        }
        let scope = match scope.map(Scope::parse).transpose() {
            Ok(s) => s.flatten(),
            Err(e) => return Err(oauth_error("invalid_scope", e)),
        };
        let (principal, _) = match self.authenticate_token(client_secret).await {
            Ok(a) => a,
            Err(e) if e.kind == ErrorKind::Unavailable => {
                return Err(oauth_error("temporarily_unavailable", e.message))
            }
            Err(_) => return Err(invalid()),
        };
        let now = self.clock.now();
        let (record, mark, secret_ends) = {
            let st = self.read();
            let entry = st.keys.get(client_id).ok_or_else(invalid)?;
            let rec = entry.record.clone();
            // The secret it proved: the current one, or the one before a rotation.
            if entry.secrets.hash.matches(client_secret) {
                let mark = secret_mark(&rec.hash);
                (rec, mark, None)
            } else {
                let hash = rec.previous_hash.clone().ok_or_else(invalid)?;
                let until = rec.previous_until;
                (rec, secret_mark(&hash), until)
            }
        };
        if let Some(s) = &scope {
            for a in &s.actions {
                if !self.may_on_some_resource(&principal, a) {
                    return Err(oauth_error(
                        "invalid_scope",
                        format!("the key's roles allow no action `{a}` asks for"),
                    ));
                }
            }
        }
        let ttl_ms = self.config.token_ttl_s as i64 * 1_000;
        let ends = [Some(now.plus_ms(ttl_ms)), record.expires_at, secret_ends]
            .into_iter()
            .flatten()
            .min()
            .expect("one end at least");
        let claims = Claims {
            iss: ISSUER.into(),
            aud: ISSUER.into(),
            sub: record.id.clone(),
            tid: record.tenant.clone(),
            iat: now.0.div_euclid(1000),
            exp: ends.0.div_euclid(1000),
            scope: scope.clone(),
            sm: mark,
        };
        let key = &self.tokens.0[0];
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        let access_token = jsonwebtoken::encode(&header, &claims, &key.encoding)
            .map_err(|e| oauth_error("server_error", format!("cannot sign the token: {e}")))?;
        metrics::counter!("rota_oauth_tokens_issued_total").increment(1);
        let scope = match &scope {
            Some(s) => s.render(),
            None => self.granted_actions(&principal).join(" "),
        };
        Ok(Issued {
            access_token,
            expires_in: ((ends.0 - now.0).max(0) / 1_000) as u64,
            scope,
        })
    }

    /// The principal an access token stands for: its key as the key is now, narrowed by the
    /// token's scope. Refused when the signature, the issuer or the time is wrong, or the key
    /// no longer holds (revoked, expired, deleted, or the secret the token was issued against
    /// replaced and its grace over).
    pub(super) async fn authenticate_access_token(&self, token: &str) -> ApiResult<Authenticated> {
        let refused = |why: &str| unauthorized(format!("the access token is not valid: {why}"));
        let header = jsonwebtoken::decode_header(token).map_err(|_| refused("malformed"))?;
        let kid = header.kid.unwrap_or_default();
        let key = self
            .tokens
            .find(&kid)
            .ok_or_else(|| refused("signed with a key this server does not hold"))?;
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_issuer(&[ISSUER]);
        v.set_audience(&[ISSUER]);
        // Expiry is checked on the server's clock below, like every other time here.
        v.validate_exp = false;
        v.set_required_spec_claims(&["iss", "aud", "sub", "exp"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &v)
            .map_err(|e| refused(&e.to_string()))?
            .claims;
        let now = self.clock.now();
        if now.0.div_euclid(1000) >= claims.exp {
            return Err(refused("it has expired; ask for a new one"));
        }
        if !self.learn_key(&claims.sub).await? {
            return Err(refused("its API key no longer exists"));
        }
        let st = self.read();
        let entry = st
            .keys
            .get(&claims.sub)
            .filter(|e| e.record.tenant == claims.tid)
            .ok_or_else(|| refused("its API key no longer exists"))?;
        let rec = &entry.record;
        let current = secret_mark(&rec.hash) == claims.sm;
        let previous = rec
            .previous_hash
            .as_deref()
            .is_some_and(|h| secret_mark(h) == claims.sm)
            && rec.previous_until.is_some_and(|until| now < until);
        if !current && !previous {
            return Err(refused(
                "its API key's secret was rotated and the grace has ended",
            ));
        }
        let (mut principal, clients) = self.key_principal(&st, entry)?;
        principal.label = format!("key {} (access token)", rec.id);
        principal.scope = claims.scope;
        let exp = Timestamp(claims.exp.saturating_mul(1000));
        principal.expires_at = Some(principal.expires_at.map_or(exp, |e| e.min(exp)));
        Ok((principal, clients))
    }

    /// Whether some rule of the principal's roles allows `action` (a pattern) on anything.
    fn may_on_some_resource(&self, p: &Principal, action: &str) -> bool {
        let st = self.read();
        let custom = st.roles.get(&p.tenant);
        p.roles.iter().any(|role| {
            builtin_rules(role)
                .or_else(|| custom.and_then(|m| m.get(role)).map(|r| r.rules.as_slice()))
                .unwrap_or(&[])
                .iter()
                .any(|r| {
                    r.effect == rota_core::auth::Effect::Allow
                        && rota_core::auth::actions::ALL
                            .iter()
                            .any(|a| glob_match(action, a) && glob_match(&r.action, a))
                })
        })
    }

    /// The actions the principal's roles allow on something, for a token's `scope` when the
    /// client asked for none.
    fn granted_actions(&self, p: &Principal) -> Vec<&'static str> {
        rota_core::auth::actions::ALL
            .iter()
            .copied()
            .filter(|a| self.may_on_some_resource(p, a))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signing_key_follows_the_secret() {
        let a = SigningKey::from_secret(b"first secret, at least 32 characters long");
        let again = SigningKey::from_secret(b"first secret, at least 32 characters long");
        let b = SigningKey::from_secret(b"second secret, at least 32 characters long");
        assert_eq!(a.kid, again.kid);
        assert_ne!(a.kid, b.kid);
        assert!(a.kid.starts_with(KID_PREFIX));
        // A token signed with one verifies with its own public key only.
        let claims =
            serde_json::json!({"iss": "rota", "aud": "rota", "sub": "k", "exp": 4_000_000_000i64});
        let t = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &a.encoding).unwrap();
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_audience(&["rota"]);
        assert!(jsonwebtoken::decode::<serde_json::Value>(&t, &a.decoding, &v).is_ok());
        assert!(jsonwebtoken::decode::<serde_json::Value>(&t, &b.decoding, &v).is_err());
    }
}
