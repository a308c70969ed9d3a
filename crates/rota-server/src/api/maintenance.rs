//! Maintenance mode (admin only): turn it on, announce it, end it, read it.

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::JsonBody;
use crate::AppState;
use axum::extract::State;
use rota_core::auth::actions;
use rota_core::maintenance::Maintenance;
use rota_core::Timestamp;
use serde::{Deserialize, Serialize};

const RESOURCE: &str = "maintenance";

#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Writes and claims answer 503 with the message.
    On,
    /// Only the banner.
    Announce,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceRequest {
    pub mode: Mode,
    /// What the banner says.
    #[schema(value_type = crate::api::schema::BannerMessage)]
    pub message: String,
    /// When it ends by itself (RFC 3339); absent: when it is turned off.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub until: Option<Timestamp>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MaintenanceState {
    /// Absent when neither on nor announced.
    pub maintenance: Option<Maintenance>,
}

#[utoipa::path(get, path = "/v1/admin/maintenance", tag = "admin",
    responses((status = 200, body = MaintenanceState)))]
pub async fn get(caller: Caller, State(st): State<AppState>) -> axum::Json<MaintenanceState> {
    axum::Json(MaintenanceState {
        maintenance: caller.auth().maintenance(st.clock.now()),
    })
}

#[utoipa::path(put, path = "/v1/admin/maintenance", tag = "admin",
    request_body = MaintenanceRequest,
    responses((status = 200, body = MaintenanceState), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn put(
    caller: Caller,
    State(st): State<AppState>,
    JsonBody(body): JsonBody<MaintenanceRequest>,
) -> ApiResult<axum::Json<MaintenanceState>> {
    caller.require_admin(actions::MAINTENANCE_WRITE, RESOURCE)?;
    let m = Maintenance {
        message: body.message,
        refusing: matches!(body.mode, Mode::On),
        until: body.until,
        since: st.clock.now(),
        by: caller.principal.label.clone(),
    };
    let action = if m.refusing {
        "maintenance.on"
    } else {
        "maintenance.announce"
    };
    let entry = crate::audit::with(caller.audit(action, RESOURCE), None, crate::audit::json(&m));
    crate::audit::audited(entry, caller.auth().set_maintenance(Some(m.clone()))).await?;
    tracing::warn!(by = %m.by, refusing = m.refusing, message = %m.message, "maintenance set");
    Ok(axum::Json(MaintenanceState {
        maintenance: Some(m),
    }))
}

#[utoipa::path(delete, path = "/v1/admin/maintenance", tag = "admin",
    responses((status = 200, body = MaintenanceState), (status = 403, body = ErrorBody)))]
pub async fn delete(caller: Caller) -> ApiResult<axum::Json<MaintenanceState>> {
    caller.require_admin(actions::MAINTENANCE_WRITE, RESOURCE)?;
    let entry = caller.audit("maintenance.off", RESOURCE);
    crate::audit::audited(entry, caller.auth().set_maintenance(None)).await?;
    tracing::warn!(by = %caller.principal.label, "maintenance ended");
    Ok(axum::Json(MaintenanceState { maintenance: None }))
}
