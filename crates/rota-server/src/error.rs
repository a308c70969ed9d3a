//! The one error shape of the API, `{"error": {"code", "message"}}`, and the single mapping
//! from every error to a status and code.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use rota_store::StoreError;
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for `Retry-After` (429 and 503).
    pub retry_after: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case code to branch on.
    pub code: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }
    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            code: self.code.to_owned(),
            message: self.message.clone(),
        }
    }
}

/// The one message a client sees when storage fails; the cause goes to the server's log.
pub const STORAGE_UNAVAILABLE: &str =
    "the server could not read or write its storage; the request changed nothing and can be retried (the cause is in the server's log)";

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let message = e.to_string();
        match e {
            StoreError::TaskNotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "task_not_found", message)
            }
            StoreError::TenantNotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "tenant_not_found", message)
            }
            StoreError::LimitReached(_) => {
                Self::new(StatusCode::CONFLICT, "limit_reached", message)
            }
            StoreError::QueueNotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "queue_not_found", message)
            }
            StoreError::LeaseLost(..) => Self::new(StatusCode::CONFLICT, "lease_lost", message),
            StoreError::InvalidState { .. } => {
                Self::new(StatusCode::CONFLICT, "invalid_state", message)
            }
            StoreError::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", message),
            StoreError::Invalid(_) => Self::new(StatusCode::BAD_REQUEST, "bad_request", message),
            StoreError::Unavailable(detail) => {
                // The engine's own words (SQL errors, file names, another tenant's data) stay
                // in the log; the client gets a stable message.
                tracing::error!(error = %detail, "storage unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    STORAGE_UNAVAILABLE,
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.detail(),
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        let retry_after = self
            .retry_after
            .or((self.status == StatusCode::SERVICE_UNAVAILABLE).then_some(1));
        if let Some(s) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(s.max(1)));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"rota\""),
            );
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
