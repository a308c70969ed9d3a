//! The one error shape of the API, `{"error": {"code", "message"}}`, and the single mapping
//! from every error to a status and code.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use rota_core::lifecycle::LeaseLoss;
use rota_core::TaskState;
use rota_store::StoreError;
use serde::Serialize;

/// What kind of failure an error is, whichever front door reports it: HTTP maps each kind to a
/// status code in [`ErrorKind::http_status`] (the one place), and other protocols to their own
/// error replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed.
    BadRequest,
    /// A field's value breaks a rule.
    Invalid,
    TooLarge,
    /// No valid credential.
    Unauthenticated,
    /// A valid credential without the permission.
    Forbidden,
    NotFound,
    /// The current state does not allow it (a lost lease, a taken unique key, a limit).
    Conflict,
    /// Over a rate limit; `retry_after` says when to come back.
    RateLimited,
    /// Cannot serve it now (storage, an in-flight limit, shutting down); retry later.
    Unavailable,
    /// The request took too long to arrive.
    Timeout,
    MethodNotAllowed,
    /// The route speaks another protocol (a WebSocket) and the request did not ask to switch.
    UpgradeRequired,
    Internal,
}

impl ErrorKind {
    pub fn http_status(self) -> StatusCode {
        match self {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Timeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::UpgradeRequired => StatusCode::UPGRADE_REQUIRED,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error of the service layer: its kind, a stable code and a message that names the
/// problem.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: ErrorKind,
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
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            kind,
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
        Self::new(ErrorKind::BadRequest, "bad_request", message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, "invalid_field", message)
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::TooLarge, "too_large", message)
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
                Self::new(ErrorKind::NotFound, "task_not_found", message)
            }
            StoreError::TenantNotFound(_) => {
                Self::new(ErrorKind::NotFound, "tenant_not_found", message)
            }
            StoreError::LimitReached(_) => Self::new(ErrorKind::Conflict, "limit_reached", message),
            StoreError::QueueNotFound(_) => {
                Self::new(ErrorKind::NotFound, "queue_not_found", message)
            }
            StoreError::ScheduleNotFound(_) => {
                Self::new(ErrorKind::NotFound, "schedule_not_found", message)
            }
            StoreError::WebhookNotFound(_) => {
                Self::new(ErrorKind::NotFound, "webhook_not_found", message)
            }
            StoreError::WorkflowNotFound(_) => {
                Self::new(ErrorKind::NotFound, "workflow_not_found", message)
            }
            StoreError::DeliveryNotFound(_) => {
                Self::new(ErrorKind::NotFound, "delivery_not_found", message)
            }
            // A cancel is the one way a running task becomes final without its worker: it gets
            // its own code, so the worker stops the handler rather than treating it as a race.
            StoreError::LeaseLost(id, LeaseLoss::Final(TaskState::Cancelled)) => Self::new(
                ErrorKind::Conflict,
                "task_cancelled",
                format!("task {id} was cancelled; stop working on it (the attempt is not retried)"),
            ),
            StoreError::LeaseLost(..) => Self::new(ErrorKind::Conflict, "lease_lost", message),
            StoreError::InvalidState { .. } => {
                Self::new(ErrorKind::Conflict, "invalid_state", message)
            }
            StoreError::Conflict(_) => Self::new(ErrorKind::Conflict, "conflict", message),
            StoreError::Invalid(_) => Self::new(ErrorKind::BadRequest, "bad_request", message),
            StoreError::Unavailable(detail) => {
                // The engine's own words (SQL errors, file names, another tenant's data) stay
                // in the log; the client gets a stable message.
                tracing::error!(error = %detail, "storage unavailable");
                Self::new(
                    ErrorKind::Unavailable,
                    STORAGE_UNAVAILABLE_CODE,
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
        let note = ErrorNote {
            code: self.code,
            message: self.message.clone(),
        };
        let mut resp = (self.kind.http_status(), axum::Json(body)).into_response();
        resp.extensions_mut().insert(note);
        let retry_after = self
            .retry_after
            .or((self.kind == ErrorKind::Unavailable).then_some(1));
        if let Some(s) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(s.max(1)));
        }
        if self.kind == ErrorKind::UpgradeRequired {
            // RFC 9110 §15.5.22: a 426 names the protocol to switch to.
            resp.headers_mut().insert(
                header::UPGRADE,
                header::HeaderValue::from_static("websocket"),
            );
        }
        if self.kind == ErrorKind::Unauthenticated {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"rota\""),
            );
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The code of an answer the store could not give (a failed commit or read).
pub const STORAGE_UNAVAILABLE_CODE: &str = "storage_unavailable";

/// An error answer's code and message, kept on the response for the layers around the handler
/// (the doctor's record of refusals reads it).
#[derive(Debug, Clone)]
pub struct ErrorNote {
    pub code: &'static str,
    pub message: String,
}
