//! Worker tokens from an identity provider: JWTs verified against the provider's JWKS.
//!
//! Keys are fetched from `jwks_url` and cached by `kid`. The provider is asked at most once per
//! `refresh_min_interval_ms` whatever happens (unknown kids, an expired cache, a provider that
//! fails or hangs), and one fetch at a time: requests that need the fetch's answer (an unknown
//! kid) wait for that one fetch; a request whose kid is already cached never waits, even when
//! the set is older than `cache_ttl_s` (the refresh then runs in the background). A failed fetch
//! keeps the keys already known. Only `https` URLs unless `allow_http`; redirects are not
//! followed; a key set larger than `max_jwks_bytes` is refused.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// `[auth.jwt]`: how to verify worker tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// Where the provider publishes its keys (`https://.../.well-known/jwks.json`).
    pub jwks_url: String,
    /// The required `iss`.
    pub issuer: String,
    /// The required `aud` (one of the token's audiences).
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_s: u64,
    /// The claim naming the tenant.
    pub tenant_claim: String,
    /// The claim with the role (a string) or roles (an array).
    pub roles_claim: String,
    /// The claim with the task kinds the token may enqueue and claim (an array); absent means any.
    pub kinds_claim: String,
    pub refresh_min_interval_ms: u64,
    pub cache_ttl_s: u64,
    pub fetch_timeout_ms: u64,
    /// Largest key set accepted from the provider, in bytes.
    pub max_jwks_bytes: usize,
    /// Accept an `http://` jwks_url (a provider on a trusted network only).
    pub allow_http: bool,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            jwks_url: String::new(),
            issuer: String::new(),
            audience: String::new(),
            leeway_s: 60,
            tenant_claim: "tenant".into(),
            roles_claim: "roles".into(),
            kinds_claim: "kinds".into(),
            refresh_min_interval_ms: 10_000,
            cache_ttl_s: 3_600,
            fetch_timeout_ms: 5_000,
            max_jwks_bytes: 256 * 1024,
            allow_http: false,
        }
    }
}

impl JwtConfig {
    pub fn validate(&self) -> Result<(), String> {
        let http = self.jwks_url.starts_with("http://");
        if !(self.jwks_url.starts_with("https://") || http) {
            return Err(format!(
                "auth.jwt.jwks_url must be an https URL, not `{}`",
                self.jwks_url
            ));
        }
        if http && !self.allow_http {
            return Err(format!(
                "auth.jwt.jwks_url `{}` is plain http, where keys can be replaced in transit; use https, or set auth.jwt.allow_http = true for a provider on a trusted network",
                self.jwks_url
            ));
        }
        if self.max_jwks_bytes == 0 {
            return Err("auth.jwt.max_jwks_bytes must be at least 1".into());
        }
        if self.issuer.is_empty() {
            return Err("auth.jwt.issuer must be set: tokens from any issuer would pass".into());
        }
        if self.audience.is_empty() {
            return Err(
                "auth.jwt.audience must be set: tokens meant for other services would pass".into(),
            );
        }
        for (name, v) in [
            ("tenant_claim", &self.tenant_claim),
            ("roles_claim", &self.roles_claim),
            ("kinds_claim", &self.kinds_claim),
        ] {
            if v.is_empty() {
                return Err(format!("auth.jwt.{name} must not be empty"));
            }
        }
        if self.fetch_timeout_ms == 0 {
            return Err("auth.jwt.fetch_timeout_ms must be at least 1".into());
        }
        Ok(())
    }
}

/// What a verified token says about its bearer.
#[derive(Debug, Clone)]
pub struct JwtIdentity {
    pub subject: String,
    pub tenant: String,
    pub roles: Vec<String>,
    pub kinds: Option<Vec<String>>,
    /// The last second (Unix time, the leeway included) the token is accepted.
    pub expires_unix_s: i64,
}

struct CachedKey {
    key: DecodingKey,
    alg: Algorithm,
}

struct KeySet {
    keys: HashMap<String, Arc<CachedKey>>,
    fetched_at: Option<Instant>,
}

pub struct JwtVerifier {
    cfg: JwtConfig,
    http: reqwest::Client,
    set: RwLock<KeySet>,
    fetch: Mutex<FetchState>,
    /// Wakes the requests waiting for the fetch in flight.
    fetched: tokio::sync::Notify,
}

#[derive(Default)]
struct FetchState {
    in_flight: bool,
    /// When the provider was last asked: bounds how often it is asked, in every state.
    last_attempt: Option<Instant>,
}

const ACCEPTED: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

/// The algorithm a JWK is for: its `alg` if it names one, else what its key type implies.
fn algorithm_of(jwk: &Jwk) -> Option<Algorithm> {
    if let Some(a) = jwk.common.key_algorithm {
        return a.to_string().parse().ok();
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            Some(Algorithm::ES256)
        }
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Some(Algorithm::EdDSA)
        }
        _ => None,
    }
}

impl JwtVerifier {
    pub fn new(cfg: JwtConfig) -> Result<Self, String> {
        cfg.validate()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.fetch_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(JwtVerifier {
            cfg,
            http,
            set: RwLock::new(KeySet {
                keys: HashMap::new(),
                fetched_at: None,
            }),
            fetch: Mutex::new(FetchState::default()),
            fetched: tokio::sync::Notify::new(),
        })
    }

    /// Reads the key set, refusing one over `max_jwks_bytes` without reading it all.
    async fn download(&self) -> Result<Vec<u8>, String> {
        let mut resp = self
            .http
            .get(&self.cfg.jwks_url)
            .send()
            .await
            .map_err(|e| format!("cannot fetch the JWKS: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!(
                "the JWKS answered {} (redirects are not followed)",
                resp.status()
            ));
        }
        let max = self.cfg.max_jwks_bytes;
        let too_big = || format!("the JWKS is larger than {max} bytes (auth.jwt.max_jwks_bytes)");
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("cannot read the JWKS: {e}"))?
        {
            if body.len() + chunk.len() > max {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    async fn fetch_now(&self) -> Result<(), String> {
        let bytes = self.download().await?;
        let body: Value =
            serde_json::from_slice(&bytes).map_err(|e| format!("the JWKS is not JSON: {e}"))?;
        let entries = body
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("the JWKS has no `keys` array")?;
        let mut keys = HashMap::new();
        for entry in entries {
            // One key of an unsupported kind does not make the others unusable.
            let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
                continue;
            };
            let (Some(kid), Some(alg)) = (jwk.common.key_id.clone(), algorithm_of(&jwk)) else {
                continue;
            };
            if !ACCEPTED.contains(&alg) {
                continue;
            }
            if let Ok(key) = DecodingKey::from_jwk(&jwk) {
                keys.insert(kid, Arc::new(CachedKey { key, alg }));
            }
        }
        let mut set = self.set.write().unwrap_or_else(|e| e.into_inner());
        set.keys = keys;
        set.fetched_at = Some(Instant::now());
        Ok(())
    }

    fn cached(&self, kid: &str) -> (Option<Arc<CachedKey>>, bool) {
        let set = self.set.read().unwrap_or_else(|e| e.into_inner());
        let stale = set
            .fetched_at
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(self.cfg.cache_ttl_s));
        (set.keys.get(kid).cloned(), stale)
    }

    /// Starts a fetch if none is in flight and the provider was not asked within
    /// `refresh_min_interval_ms`. Returns whether the caller now owns that fetch.
    fn start_fetch(&self) -> bool {
        let mut st = self.fetch.lock().unwrap_or_else(|e| e.into_inner());
        let min = Duration::from_millis(self.cfg.refresh_min_interval_ms);
        if st.in_flight || st.last_attempt.is_some_and(|t| t.elapsed() < min) {
            return false;
        }
        st.in_flight = true;
        st.last_attempt = Some(Instant::now());
        true
    }

    /// Runs the fetch this caller owns, then wakes everyone waiting for it.
    async fn run_fetch(&self) {
        if let Err(e) = self.fetch_now().await {
            tracing::warn!(error = %e, url = %self.cfg.jwks_url, "JWKS refresh failed; keeping the keys already known");
        }
        self.fetch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .in_flight = false;
        self.fetched.notify_waiters();
    }

    async fn key(self: &Arc<Self>, kid: &str) -> Result<Arc<CachedKey>, String> {
        let (found, stale) = self.cached(kid);
        if let Some(k) = found {
            if stale && self.start_fetch() {
                let me = self.clone();
                tokio::spawn(async move { me.run_fetch().await });
            }
            return Ok(k);
        }
        // An unknown kid: the key set may have rotated. Ask once, or wait for the fetch in
        // flight; never more often than the throttle allows.
        let waiting = self.fetched.notified();
        tokio::pin!(waiting);
        waiting.as_mut().enable();
        if self.start_fetch() {
            self.run_fetch().await;
        } else if self
            .fetch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .in_flight
        {
            let limit = Duration::from_millis(self.cfg.fetch_timeout_ms);
            let _ = tokio::time::timeout(limit, waiting).await;
        }
        self.cached(kid).0.ok_or_else(|| {
            format!("the JWT's key `{kid}` is not in the identity provider's key set")
        })
    }

    pub async fn verify(self: &Arc<Self>, token: &str) -> Result<JwtIdentity, String> {
        use jsonwebtoken::errors::ErrorKind;
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| "the token is not a valid JWT")?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(format!(
                "JWT algorithm {:?} is not accepted; use RS256, ES256 or EdDSA",
                header.alg
            ));
        }
        let kid = header.kid.ok_or("the JWT has no `kid` header")?;
        let key = self.key(&kid).await?;
        if key.alg != header.alg {
            return Err(format!(
                "the JWT says {:?} but its key `{kid}` is for {:?}",
                header.alg, key.alg
            ));
        }
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&self.cfg.issuer]);
        v.set_audience(&[&self.cfg.audience]);
        v.leeway = self.cfg.leeway_s;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &v).map_err(|e| match e
                .kind()
            {
                ErrorKind::ExpiredSignature => "the JWT has expired".to_owned(),
                ErrorKind::ImmatureSignature => "the JWT is not valid yet (nbf)".to_owned(),
                ErrorKind::InvalidIssuer => {
                    format!("the JWT's issuer is not `{}`", self.cfg.issuer)
                }
                ErrorKind::InvalidAudience => {
                    format!(
                        "the JWT's audience does not include `{}`",
                        self.cfg.audience
                    )
                }
                ErrorKind::InvalidSignature => "the JWT's signature does not verify".to_owned(),
                ErrorKind::MissingRequiredClaim(c) => format!("the JWT has no `{c}` claim"),
                _ => format!("the JWT is not valid: {e}"),
            })?;
        let claims = data.claims;
        let string_claim = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let subject = string_claim("sub").ok_or("the JWT's `sub` is not a string")?;
        let tenant = string_claim(&self.cfg.tenant_claim).ok_or_else(|| {
            format!(
                "the JWT has no `{}` claim naming its tenant",
                self.cfg.tenant_claim
            )
        })?;
        let strings = |name: &str| -> Result<Option<Vec<String>>, String> {
            match claims.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .map(Some)
                    .ok_or_else(|| format!("the JWT's `{name}` claim must hold strings")),
                Some(_) => Err(format!(
                    "the JWT's `{name}` claim must be a string or an array of strings"
                )),
            }
        };
        let roles = strings(&self.cfg.roles_claim)?.unwrap_or_default();
        if roles.is_empty() {
            return Err(format!(
                "the JWT has no roles in its `{}` claim",
                self.cfg.roles_claim
            ));
        }
        let kinds = strings(&self.cfg.kinds_claim)?;
        // Required and checked by `decode`, so a number.
        let exp = claims.get("exp").and_then(Value::as_f64).unwrap_or(0.0) as i64;
        Ok(JwtIdentity {
            subject,
            tenant,
            roles,
            kinds,
            expires_unix_s: exp.saturating_add(self.cfg.leeway_s as i64),
        })
    }
}
