//! Request extractors that turn every kind of bad input into a clear [`ApiError`].

use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use rota_core::TaskId;
use serde::de::DeserializeOwned;

/// A JSON body: malformed JSON is 400, a wrong field type or value is 422 naming the field, a
/// body over `limits.max_body_bytes` is 413. The content type is not checked, so
/// `curl -d '{...}'` works as is.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + Send + 'static> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let limits = &state.config.limits;
        let declared = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limits.max_body_bytes) {
            return Err(too_large(limits.max_body_bytes));
        }
        // Budgets and the tenant's parse slot, taken before a byte of the body is read (the
        // caller's permission to make this request was checked before that, in `auth`).
        let caller = req.extensions().get::<Caller>().cloned();
        let (_budget, _slot) = match &caller {
            Some(c) => {
                let charge = declared.unwrap_or(limits.max_body_bytes);
                let budget = state
                    .bodies
                    .admit(c.body_clients(), &c.principal.label, charge)
                    .await?;
                (Some(budget), c.parse_slot().await)
            }
            None => (None, None),
        };
        let read = Bytes::from_request(req, state);
        let wait = std::time::Duration::from_millis(limits.body_read_timeout_ms);
        let bytes = tokio::time::timeout(wait, read)
            .await
            .map_err(|_| crate::bodies::read_timeout(limits.body_read_timeout_ms))?
            .map_err(|rej| {
                if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large(limits.max_body_bytes)
                } else {
                    ApiError::bad_request(format!("cannot read the request body: {rej}"))
                }
            })?;
        // Every body is a JSON object, never an array of its fields. A large body is parsed
        // on the blocking pool: the runtime's threads (one per core) stay free for other
        // tenants' small requests meanwhile, and the tenant's parse slot is held until it is
        // done, so its large bodies still take turns with each other.
        if bytes.len() < BLOCKING_PARSE_BYTES {
            return parse_json::<rota_core::objects::Obj<T>>(&bytes).map(|o| JsonBody(o.0));
        }
        tokio::task::spawn_blocking(move || parse_json::<rota_core::objects::Obj<T>>(&bytes))
            .await
            .map_err(|e| {
                ApiError::new(
                    crate::error::ErrorKind::Internal,
                    "internal",
                    format!("parsing the body failed: {e}"),
                )
            })?
            .map(|o| JsonBody(o.0))
    }
}

/// Bodies at least this large are parsed off the runtime's threads (a 2,000-task batch is
/// about 100 KiB and a millisecond or more of parsing; a single task is a few hundred bytes).
const BLOCKING_PARSE_BYTES: usize = 64 * 1024;

fn too_large(max: usize) -> ApiError {
    ApiError::too_large(format!(
        "the request body is larger than {max} bytes (limits.max_body_bytes); send fewer tasks per request"
    ))
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request body is empty; send a JSON object",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let at = if path == "." || path.is_empty() {
            String::new()
        } else {
            format!("field `{path}`: ")
        };
        match inner.classify() {
            serde_json::error::Category::Data => {
                // A type error can come before a syntax error later in the body; malformed JSON
                // is reported as such. Checked only on failure, so valid requests parse once.
                match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                    Err(syntax) => ApiError::bad_request(format!("malformed JSON: {syntax}")),
                    Ok(_) => ApiError::invalid(format!("{at}{inner}")),
                }
            }
            _ => ApiError::bad_request(format!("malformed JSON: {inner}")),
        }
    })?;
    // One JSON value per body: anything after it (a second object, stray text) is refused
    // rather than silently dropped.
    de.end().map_err(|e| {
        ApiError::bad_request(format!(
            "malformed JSON: {e}; send exactly one JSON value (a batch is {{\"tasks\": [...]}})"
        ))
    })?;
    Ok(value)
}

/// Path parameters; one that does not decode (not UTF-8, say) is a 400 in the API's JSON shape.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| {
                ApiError::bad_request(format!("the URL path is invalid: {}", e.body_text()))
            })
    }
}

/// Query-string parameters; anything that does not parse (an unknown parameter, a wrong type)
/// is a 400 naming it.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

pub fn task_id(s: &str) -> Result<TaskId, ApiError> {
    s.parse()
        .map_err(|e: rota_core::id::InvalidTaskId| ApiError::bad_request(e.to_string()))
}
