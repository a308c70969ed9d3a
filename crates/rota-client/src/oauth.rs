//! OAuth 2.0 client credentials (`POST /oauth/token`): exchanging an API key's id and token for
//! a short-lived access token, and a client that does so by itself. Such a client fetches a
//! token on first use, a new one a minute before it expires (or at half its life, when that is
//! shorter), and once more after a 401 (the key rotated, say), then gives up; one fetch at a
//! time however many requests are waiting.

use crate::{Client, Error, Result};
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An access token, as the token endpoint answers.
#[derive(Clone, Deserialize)]
pub struct AccessToken {
    /// Send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: String,
    /// Seconds it lasts from when it was issued.
    pub expires_in: u64,
    /// What it may do.
    pub scope: String,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// RFC 6749's error answer.
#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
    #[serde(default)]
    error_description: String,
}

/// A key's id and token, and the access token they last fetched with when to renew it.
pub(crate) struct Credentials {
    id: String,
    secret: String,
    scope: Option<String>,
    current: tokio::sync::Mutex<Option<(String, Instant)>>,
}

impl Client {
    /// A client that authenticates with OAuth 2.0 client credentials: `client_id` is an API
    /// key's id and `client_secret` its whole token; `scope` (space-separated actions and
    /// `queues/<pattern>`s) narrows the tokens it fetches.
    pub fn with_client_credentials(
        base_url: &str,
        client_id: &str,
        client_secret: &str,
        scope: Option<&str>,
    ) -> Result<Self> {
        let mut c = Client::with_token(base_url, None)?;
        c.credentials = Some(Arc::new(Credentials {
            id: client_id.to_owned(),
            secret: client_secret.to_owned(),
            scope: scope.map(str::to_owned),
            current: tokio::sync::Mutex::new(None),
        }));
        Ok(c)
    }

    /// Exchanges an API key's id and token for an access token (`POST /oauth/token`). An OAuth
    /// error (`invalid_client`, `invalid_scope`, ...) is the [`Error`] of its status, its
    /// message starting with the OAuth code.
    pub async fn fetch_token(
        &self,
        client_id: &str,
        client_secret: &str,
        scope: Option<&str>,
    ) -> Result<AccessToken> {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", client_secret),
        ];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        let resp = reqwest::Client::new()
            .post(format!("{}/oauth/token", self.base))
            .timeout(Duration::from_secs(30))
            .form(&form)
            .send()
            .await
            .map_err(Error::Transport)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(Error::Transport)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| Error::Api {
                status: status.as_u16(),
                code: "unreadable".into(),
                message: format!("the token answer is not what the API documents: {e}"),
            });
        }
        let detail = match serde_json::from_slice::<OAuthErrorBody>(&bytes) {
            Ok(b) => crate::error::ErrorDetail {
                message: format!("{}: {}", b.error, b.error_description),
                code: b.error,
            },
            Err(_) => crate::error::ErrorDetail {
                code: "unknown".into(),
                message: String::from_utf8_lossy(&bytes).chars().take(500).collect(),
            },
        };
        Err(Error::from_answer(status, detail))
    }

    /// The access token a client built with [`Client::with_client_credentials`] sends now
    /// (fetched if it has none or it is due for renewal); `None` for any other client.
    pub async fn access_token(&self) -> Result<Option<String>> {
        self.bearer(None).await
    }

    /// The bearer token to send: the client's credentials' current access token, fetched when
    /// there is none or it is due for renewal, or when the server refused `refused` and no
    /// other request has fetched a new one since; none for a client without credentials.
    pub(crate) async fn bearer(&self, refused: Option<&str>) -> Result<Option<String>> {
        let Some(c) = &self.credentials else {
            return Ok(None);
        };
        let mut current = c.current.lock().await;
        if let Some((token, renew_at)) = current.as_ref() {
            let usable = match refused {
                None => Instant::now() < *renew_at,
                Some(r) => r != token,
            };
            if usable {
                return Ok(Some(token.clone()));
            }
        }
        let fetched = self
            .fetch_token(&c.id, &c.secret, c.scope.as_deref())
            .await?;
        let life = Duration::from_secs(fetched.expires_in);
        let early = Duration::from_secs(60).min(life / 2);
        *current = Some((fetched.access_token.clone(), Instant::now() + life - early));
        Ok(Some(fetched.access_token))
    }
}
