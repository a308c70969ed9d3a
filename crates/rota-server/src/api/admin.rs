//! Tenants (admin only), API keys and custom roles (per tenant), and `whoami`.

use crate::auth::{Caller, NewKey};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::JsonBody;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rota_core::auth::{
    actions, builtin_rules, ClientLimits, KeyRecord, RoleRecord, Rule, TenantRecord, BUILTIN_ROLES,
};
use rota_core::Timestamp;
use serde::{Deserialize, Serialize};

// ---- tenants ----------------------------------------------------------------------------------

#[derive(Serialize, utoipa::ToSchema)]
pub struct TenantList {
    pub tenants: Vec<TenantRecord>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-'.
    pub name: String,
    #[serde(default)]
    pub limits: ClientLimits,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    /// Replaces the tenant's limits; a field left out falls back to the configured default.
    pub limits: ClientLimits,
}

#[utoipa::path(get, path = "/v1/admin/tenants", tag = "admin",
    responses((status = 200, body = TenantList), (status = 403, body = ErrorBody)))]
pub async fn list_tenants(caller: Caller) -> ApiResult<axum::Json<TenantList>> {
    caller.require_admin(actions::TENANTS_READ, "tenants/*")?;
    Ok(axum::Json(TenantList {
        tenants: caller.auth().tenants(),
    }))
}

#[utoipa::path(post, path = "/v1/admin/tenants", tag = "admin", request_body = NewTenant,
    responses((status = 201, body = TenantRecord), (status = 403, body = ErrorBody),
        (status = 409, description = "exists", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_tenant(
    caller: Caller,
    JsonBody(body): JsonBody<NewTenant>,
) -> ApiResult<Response> {
    caller.require_admin(actions::TENANTS_WRITE, &format!("tenants/{}", body.name))?;
    let t = caller.auth().create_tenant(&body.name, body.limits).await?;
    tracing::info!(tenant = %t.name, by = %caller.principal.label, "tenant created");
    Ok((StatusCode::CREATED, axum::Json(t)).into_response())
}

#[utoipa::path(get, path = "/v1/admin/tenants/{tenant}", tag = "admin", params(("tenant" = String, Path)),
    responses((status = 200, body = TenantRecord), (status = 404, body = ErrorBody)))]
pub async fn get_tenant(
    caller: Caller,
    Path(tenant): Path<String>,
) -> ApiResult<axum::Json<TenantRecord>> {
    caller.require_admin(actions::TENANTS_READ, &format!("tenants/{tenant}"))?;
    Ok(axum::Json(caller.auth().tenant(&tenant)?))
}

#[utoipa::path(patch, path = "/v1/admin/tenants/{tenant}", tag = "admin", params(("tenant" = String, Path)),
    request_body = TenantPatch,
    responses((status = 200, body = TenantRecord), (status = 404, body = ErrorBody)))]
pub async fn update_tenant(
    caller: Caller,
    Path(tenant): Path<String>,
    JsonBody(body): JsonBody<TenantPatch>,
) -> ApiResult<axum::Json<TenantRecord>> {
    caller.require_admin(actions::TENANTS_WRITE, &format!("tenants/{tenant}"))?;
    Ok(axum::Json(
        caller.auth().update_tenant(&tenant, body.limits).await?,
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Deleted {
    pub deleted: String,
}

#[utoipa::path(delete, path = "/v1/admin/tenants/{tenant}", tag = "admin", params(("tenant" = String, Path)),
    responses((status = 200, description = "deleted with its queues, tasks, keys and roles", body = Deleted),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_tenant(
    caller: Caller,
    Path(tenant): Path<String>,
) -> ApiResult<axum::Json<Deleted>> {
    caller.require_admin(actions::TENANTS_WRITE, &format!("tenants/{tenant}"))?;
    caller
        .auth()
        .delete_tenant(&caller.principal, &tenant)
        .await?;
    tracing::info!(tenant = %tenant, by = %caller.principal.label, "tenant deleted");
    Ok(axum::Json(Deleted { deleted: tenant }))
}

// ---- keys -------------------------------------------------------------------------------------

/// An API key as the API shows it: everything but the hash.
#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub id: String,
    pub tenant: String,
    pub name: Option<String>,
    pub roles: Vec<String>,
    pub queues: Vec<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Precise to about a second.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
    pub limits: ClientLimits,
}

impl From<KeyRecord> for KeyView {
    fn from(k: KeyRecord) -> Self {
        KeyView {
            id: k.id,
            tenant: k.tenant,
            name: k.name,
            roles: k.roles,
            queues: k.queues,
            expires_at: k.expires_at,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
            limits: k.limits,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: KeyView,
    /// The bearer token. Shown this once; Rota keeps only its SHA-256.
    pub token: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyView>,
}

#[utoipa::path(post, path = "/v1/keys", tag = "admin", request_body = NewKey,
    responses((status = 201, body = CreatedKey), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_key(caller: Caller, JsonBody(body): JsonBody<NewKey>) -> ApiResult<Response> {
    caller.require(actions::KEYS_CREATE, "keys/*")?;
    let (key, token) = caller
        .auth()
        .create_key(&caller.principal, &caller.tenant, body)
        .await?;
    tracing::info!(key = %key.id, tenant = %key.tenant, roles = ?key.roles, by = %caller.principal.label, "API key created");
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedKey {
            key: key.into(),
            token,
        }),
    )
        .into_response())
}

#[utoipa::path(get, path = "/v1/keys", tag = "admin",
    responses((status = 200, body = KeyList), (status = 403, body = ErrorBody)))]
pub async fn list_keys(caller: Caller) -> ApiResult<axum::Json<KeyList>> {
    caller.require(actions::KEYS_READ, "keys/*")?;
    let keys = caller.auth().keys(&caller.tenant);
    Ok(axum::Json(KeyList {
        keys: keys
            .into_iter()
            .filter(|k| caller.can(actions::KEYS_READ, &format!("keys/{}", k.id)))
            .map(KeyView::from)
            .collect(),
    }))
}

#[utoipa::path(get, path = "/v1/keys/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = KeyView), (status = 404, body = ErrorBody)))]
pub async fn get_key(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<KeyView>> {
    let key = caller.auth().key(&caller.tenant, &id)?;
    caller.require(actions::KEYS_READ, &format!("keys/{id}"))?;
    Ok(axum::Json(key.into()))
}

#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, description = "revoked; the next request with it answers 401", body = KeyView),
        (status = 404, body = ErrorBody)))]
pub async fn revoke_key(caller: Caller, Path(id): Path<String>) -> ApiResult<axum::Json<KeyView>> {
    caller.auth().key(&caller.tenant, &id)?;
    caller.require(actions::KEYS_REVOKE, &format!("keys/{id}"))?;
    let key = caller.auth().revoke_key(&caller.tenant, &id).await?;
    tracing::info!(key = %id, by = %caller.principal.label, "API key revoked");
    Ok(axum::Json(key.into()))
}

// ---- roles ------------------------------------------------------------------------------------

#[derive(Serialize, utoipa::ToSchema)]
pub struct RoleView {
    pub name: String,
    pub builtin: bool,
    pub rules: Vec<Rule>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<Timestamp>,
}

impl From<RoleRecord> for RoleView {
    fn from(r: RoleRecord) -> Self {
        RoleView {
            name: r.name,
            builtin: false,
            rules: r.rules,
            updated_at: Some(r.updated_at),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RoleList {
    pub roles: Vec<RoleView>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// `{"resource", "action", "effect": "allow" | "deny"}`; deny wins.
    pub rules: Vec<Rule>,
}

fn builtin_view(name: &str) -> Option<RoleView> {
    builtin_rules(name).map(|rules| RoleView {
        name: name.to_owned(),
        builtin: true,
        rules: rules.to_vec(),
        updated_at: None,
    })
}

#[utoipa::path(get, path = "/v1/roles", tag = "admin",
    responses((status = 200, description = "built-in roles, then the tenant's own", body = RoleList)))]
pub async fn list_roles(caller: Caller) -> ApiResult<axum::Json<RoleList>> {
    caller.require(actions::ROLES_READ, "roles/*")?;
    let mut roles: Vec<RoleView> = BUILTIN_ROLES
        .iter()
        .filter_map(|n| builtin_view(n))
        .collect();
    roles.extend(
        caller
            .auth()
            .roles(&caller.tenant)
            .into_iter()
            .map(RoleView::from),
    );
    Ok(axum::Json(RoleList { roles }))
}

#[utoipa::path(get, path = "/v1/roles/{name}", tag = "admin", params(("name" = String, Path)),
    responses((status = 200, body = RoleView), (status = 404, body = ErrorBody)))]
pub async fn get_role(caller: Caller, Path(name): Path<String>) -> ApiResult<axum::Json<RoleView>> {
    caller.require(actions::ROLES_READ, &format!("roles/{name}"))?;
    if let Some(v) = builtin_view(&name) {
        return Ok(axum::Json(v));
    }
    caller
        .auth()
        .roles(&caller.tenant)
        .into_iter()
        .find(|r| r.name == name)
        .map(|r| axum::Json(r.into()))
        .ok_or_else(|| {
            crate::error::ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("role `{name}` does not exist"),
            )
        })
}

#[utoipa::path(put, path = "/v1/roles/{name}", tag = "admin", params(("name" = String, Path)),
    request_body = RoleBody,
    responses((status = 201, description = "created", body = RoleView), (status = 200, description = "replaced; applies to the next request", body = RoleView),
        (status = 409, description = "a built-in role", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_role(
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<RoleBody>,
) -> ApiResult<Response> {
    caller.require(actions::ROLES_WRITE, &format!("roles/{name}"))?;
    let (role, created) = caller
        .auth()
        .put_role(&caller.tenant, &name, body.rules)
        .await?;
    tracing::info!(role = %name, tenant = %caller.tenant, by = %caller.principal.label, "role written");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(RoleView::from(role))).into_response())
}

#[utoipa::path(delete, path = "/v1/roles/{name}", tag = "admin", params(("name" = String, Path)),
    responses((status = 200, body = Deleted), (status = 404, body = ErrorBody),
        (status = 409, description = "still held by a key", body = ErrorBody)))]
pub async fn delete_role(
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Deleted>> {
    caller.require(actions::ROLES_WRITE, &format!("roles/{name}"))?;
    caller.auth().delete_role(&caller.tenant, &name).await?;
    Ok(axum::Json(Deleted { deleted: name }))
}

// ---- whoami -----------------------------------------------------------------------------------

#[derive(Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// How the server names this credential: `key <id>`, `jwt subject <sub>`, `admin token`.
    pub principal: String,
    /// The credential's own tenant.
    pub tenant: String,
    /// The tenant this request acted in (differs for an admin using `Rota-Tenant`).
    pub acting_tenant: String,
    pub roles: Vec<String>,
    pub queues: Vec<String>,
    pub kinds: Option<Vec<String>>,
}

#[utoipa::path(get, path = "/v1/whoami", tag = "admin",
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)))]
pub async fn whoami(caller: Caller) -> axum::Json<WhoAmI> {
    let p = &caller.principal;
    axum::Json(WhoAmI {
        principal: p.label.clone(),
        tenant: p.tenant.clone(),
        acting_tenant: caller.tenant.clone(),
        roles: p.roles.clone(),
        queues: p.queues.clone(),
        kinds: p.kinds.clone(),
    })
}
