//! `GET /v1/audit`: the audit log, newest first (docs/audit.md).

use crate::api::schema;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiQuery;
use crate::AppState;
use axum::extract::State;
use rota_core::audit::{AuditCursor, AuditEntry, AuditFilter, MAX_AUDIT_PAGE};
use rota_core::Timestamp;
use serde::{Deserialize, Serialize};

/// Longest text a filter may be.
const MAX_FILTER_LEN: usize = 256;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Only this tenant's entries. An admin sees every tenant's without it; anyone else sees
    /// only its own tenant's.
    #[param(value_type = Option<schema::ShortName>)]
    pub tenant: Option<String>,
    /// Only changes by this actor (`key:<id>`, `jwt:<subject>`).
    #[param(value_type = Option<schema::AuditText>)]
    pub actor: Option<String>,
    /// Only this action (`key.create`), or every action of an object (`key.`).
    #[param(value_type = Option<schema::AuditText>)]
    pub action: Option<String>,
    /// Only changes to this target (`queues/emails`, `keys/<id>`).
    #[param(value_type = Option<schema::AuditText>)]
    pub target: Option<String>,
    /// Only entries at or after this time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<Timestamp>,
    /// Only entries before this time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<Timestamp>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<schema::AuditCursorText>)]
    pub cursor: Option<String>,
    /// Page size. Default 100, at most 500.
    #[param(value_type = Option<schema::AuditLimit>)]
    pub limit: Option<usize>,
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditList {
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/audit", tag = "admin",
    params(AuditParams),
    responses((status = 200, body = AuditList),
        (status = 400, description = "a parameter that is not of its type", body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> ApiResult<axum::Json<AuditList>> {
    let limit = p.limit.unwrap_or(100);
    if !(1..=MAX_AUDIT_PAGE).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit is {limit}; use 1 to {MAX_AUDIT_PAGE}"
        )));
    }
    if let Some(t) = &p.tenant {
        rota_core::auth::validate_name("tenant", t).map_err(ApiError::invalid)?;
    }
    for (name, v) in [
        ("actor", &p.actor),
        ("action", &p.action),
        ("target", &p.target),
    ] {
        if let Some(v) = v {
            let n = v.chars().count();
            if n == 0 || n > MAX_FILTER_LEN {
                return Err(ApiError::invalid(format!(
                    "{name} must be 1 to {MAX_FILTER_LEN} characters"
                )));
            }
        }
    }
    let after = p
        .cursor
        .as_deref()
        .map(AuditCursor::parse)
        .transpose()
        .map_err(ApiError::invalid)?;
    let filter = AuditFilter {
        tenant: p.tenant,
        actor: p.actor,
        action: p.action,
        target: p.target,
        since: p.since,
        until: p.until,
        after,
        limit,
    };
    let page = crate::audit::read(&st.store, &caller, filter).await?;
    let next_cursor = page
        .more
        .then(|| page.entries.last().map(|e| AuditCursor::of(e).encode()))
        .flatten();
    Ok(axum::Json(AuditList {
        entries: page.entries,
        next_cursor,
    }))
}
