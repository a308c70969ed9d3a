//! Worker processes connected through the Faktory door, and asking one to stop.

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::ApiPath;
use crate::faktory::workers::{Signal, Worker};
use crate::AppState;
use axum::extract::State;
use serde::Serialize;

#[derive(Serialize, utoipa::ToSchema)]
pub struct WorkerList {
    pub workers: Vec<Worker>,
}

#[utoipa::path(get, path = "/v1/workers", tag = "workers",
    responses((status = 200, description = "the tenant's worker processes connected to this server over the Faktory protocol", body = WorkerList)))]
pub async fn list(State(st): State<AppState>, caller: Caller) -> ApiResult<axum::Json<WorkerList>> {
    let workers = st.service.workers(&caller)?;
    Ok(axum::Json(WorkerList { workers }))
}

#[utoipa::path(post, path = "/v1/workers/{wid}/quiet", tag = "workers",
    params(("wid" = String, Path, description = "the worker process's id (its HELLO `wid`)")),
    responses((status = 200, description = "asked: its next BEAT is answered `quiet` (fetch no more jobs)", body = Worker),
        (status = 404, body = ErrorBody)))]
pub async fn quiet(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(wid): ApiPath<String>,
) -> ApiResult<axum::Json<Worker>> {
    let w = st.service.signal_worker(&caller, &wid, Signal::Quiet)?;
    record(&st, caller.audit("worker.quiet", format!("workers/{wid}"))).await;
    Ok(axum::Json(w))
}

#[utoipa::path(post, path = "/v1/workers/{wid}/terminate", tag = "workers",
    params(("wid" = String, Path, description = "the worker process's id (its HELLO `wid`)")),
    responses((status = 200, description = "asked: its next BEAT is answered `terminate` (fail back the jobs in hand and exit)", body = Worker),
        (status = 404, body = ErrorBody)))]
pub async fn terminate(
    State(st): State<AppState>,
    caller: Caller,
    ApiPath(wid): ApiPath<String>,
) -> ApiResult<axum::Json<Worker>> {
    let w = st.service.signal_worker(&caller, &wid, Signal::Terminate)?;
    record(
        &st,
        caller.audit("worker.terminate", format!("workers/{wid}")),
    )
    .await;
    Ok(axum::Json(w))
}

/// Records a signal in the audit log. A signal lives in this server's memory, not in the
/// store, so its entry is a write of its own, after it: one that fails is logged, and the
/// signal stands.
async fn record(st: &AppState, entry: rota_core::audit::AuditEntry) {
    if let Err(e) = st.store.record_audit(entry).await {
        tracing::error!(error = %e, "a worker signal was sent but the audit log could not record it");
    }
}
