//! The client's errors: what the server answered, as variants a caller can branch on.

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not found: {message}")]
    NotFound { message: String },
    #[error("lease lost: {message}")]
    LeaseLost { message: String },
    /// The task was cancelled while this worker held it (409 `task_cancelled`): stop working
    /// on it; there is nothing to report and nothing is retried.
    #[error("cancelled: {message}")]
    Cancelled { message: String },
    #[error("invalid request: {message}")]
    Invalid { message: String },
    #[error("conflict: {message}")]
    Conflict { message: String },
    #[error("too large: {message}")]
    TooLarge { message: String },
    #[error("server unavailable: {message}")]
    Unavailable { message: String },
    /// No, bad, expired or revoked credentials (401).
    #[error("unauthorized: {message}")]
    Unauthorized { message: String },
    /// The credential lacks a permission (403); the message names it.
    #[error("forbidden: {message}")]
    Forbidden { message: String },
    /// Over a rate limit (429); retry after the server's `Retry-After`.
    #[error("rate limited: {message}")]
    RateLimited { message: String },
    /// Any other error answer from the server.
    #[error("server answered {status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The request did not get an answer (connection refused, timeout, reset).
    #[error("cannot reach the Rota server")]
    Transport(#[source] reqwest::Error),
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Deserialize)]
pub(crate) struct ErrorBody {
    pub(crate) error: ErrorDetail,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl Error {
    pub(crate) fn from_answer(status: StatusCode, detail: ErrorDetail) -> Self {
        let ErrorDetail { code, message } = detail;
        match (status.as_u16(), code.as_str()) {
            (404, _) => Error::NotFound { message },
            (409, "lease_lost") => Error::LeaseLost { message },
            (409, "task_cancelled") => Error::Cancelled { message },
            (409, _) => Error::Conflict { message },
            (400 | 422, _) => Error::Invalid { message },
            (413, _) => Error::TooLarge { message },
            (401, _) => Error::Unauthorized { message },
            (403, _) => Error::Forbidden { message },
            (429, _) => Error::RateLimited { message },
            (503, _) => Error::Unavailable { message },
            (s, _) => Error::Api {
                status: s,
                code,
                message,
            },
        }
    }
}
