//! Maintenance mode at the HTTP door: while it is on, every write and claim answers 503 with
//! the banner's message and a `Retry-After`; reads keep working. Work already handed out may
//! still finish (heartbeat, complete, fail), so workers drain instead of losing their leases,
//! and an admin can still end maintenance. The Faktory door refuses the same operations
//! (`faktory/commands.rs`), and the scheduler fires nothing while it is on (missed ticks follow
//! each schedule's `catch_up` afterwards).

use crate::error::{ApiError, ErrorKind};
use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rota_core::maintenance::Maintenance;
use rota_core::Timestamp;

/// The code of a refusal during maintenance.
pub const MAINTENANCE_CODE: &str = "maintenance";

/// Routes that change something and still work during maintenance.
const ALLOWED: &[&str] = &[
    "/v1/tasks/{id}/heartbeat",
    "/v1/tasks/{id}/complete",
    "/v1/tasks/{id}/fail",
    "/v1/tasks/complete",
    "/v1/tasks/fail",
    "/v1/events/tickets",
    "/v1/admin/maintenance",
];

/// The refusal of a write or claim during `m`.
pub fn refusal(m: &Maintenance, now: Timestamp) -> ApiError {
    let until = m.until.map(|u| format!(" until {u}")).unwrap_or_default();
    ApiError::new(
        ErrorKind::Unavailable,
        MAINTENANCE_CODE,
        format!(
            "maintenance{until}: {}; writes and claims are refused, reads work",
            m.message
        ),
    )
    .retry_after(m.retry_after_s(now))
}

pub async fn refuse_writes(
    State(st): State<AppState>,
    path: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    let now = st.clock.now();
    let refusing = st.auth.maintenance(now).filter(|m| m.refuses(now));
    match refusing {
        Some(m) if !path.is_some_and(|p| ALLOWED.contains(&p.as_str())) => {
            refusal(&m, now).into_response()
        }
        _ => next.run(req).await,
    }
}
