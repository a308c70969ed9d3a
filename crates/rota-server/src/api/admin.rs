//! Tenants (admin only), API keys and custom roles (per tenant), and `whoami`.

use crate::api::schema;
use crate::audit;
use crate::auth::{Caller, NewKey};
use crate::error::ErrorKind;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiPath, JsonBody};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rota_core::auth::{
    actions, ClientLimits, CreatedKey, KeyInfo, RoleInfo, RotateKey, Rule, TenantPatch,
    TenantRecord, WhoAmI, BUILTIN_ROLES,
};
use serde::{Deserialize, Serialize};

// ---- tenants ----------------------------------------------------------------------------------

#[derive(Serialize, utoipa::ToSchema)]
pub struct TenantList {
    pub tenants: Vec<TenantRecord>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    #[schema(value_type = schema::ShortName)]
    pub name: String,
    #[serde(default, deserialize_with = "rota_core::objects::object")]
    pub limits: ClientLimits,
    /// How long its events are kept, in milliseconds; absent: the server's
    /// `events.retention_ms`.
    #[serde(default)]
    #[schema(value_type = Option<schema::EventRetentionMs>)]
    pub event_retention_ms: Option<u64>,
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
    let entry = tenant_entry(&caller, "tenant.create", &body.name);
    let after =
        serde_json::json!({"limits": body.limits, "event_retention_ms": body.event_retention_ms});
    let entry = audit::with(entry, None, Some(after));
    let created = caller
        .auth()
        .create_tenant(&body.name, body.limits, body.event_retention_ms);
    let t = audit::audited(entry, created).await?;
    tracing::info!(tenant = %t.name, by = %caller.principal.label, "tenant created");
    Ok((StatusCode::CREATED, axum::Json(t)).into_response())
}

#[utoipa::path(get, path = "/v1/admin/tenants/{tenant}", tag = "admin", params(("tenant" = schema::ShortName, Path)),
    responses((status = 200, body = TenantRecord), (status = 404, body = ErrorBody)))]
pub async fn get_tenant(
    caller: Caller,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<axum::Json<TenantRecord>> {
    caller.require_admin(actions::TENANTS_READ, &format!("tenants/{tenant}"))?;
    Ok(axum::Json(caller.auth().tenant(&tenant)?))
}

#[utoipa::path(patch, path = "/v1/admin/tenants/{tenant}", tag = "admin", params(("tenant" = schema::ShortName, Path)),
    request_body = TenantPatch,
    responses((status = 200, body = TenantRecord), (status = 404, body = ErrorBody)))]
pub async fn update_tenant(
    caller: Caller,
    ApiPath(tenant): ApiPath<String>,
    JsonBody(body): JsonBody<TenantPatch>,
) -> ApiResult<axum::Json<TenantRecord>> {
    caller.require_admin(actions::TENANTS_WRITE, &format!("tenants/{tenant}"))?;
    let before = caller.auth().tenant(&tenant).ok();
    let entry = audit::with(
        tenant_entry(&caller, "tenant.update", &tenant),
        before.as_ref().and_then(audit::json),
        audit::json(&body),
    );
    let updated = caller.auth().update_tenant(&tenant, &body);
    Ok(axum::Json(audit::audited(entry, updated).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Deleted {
    pub deleted: String,
}

#[utoipa::path(delete, path = "/v1/admin/tenants/{tenant}", tag = "admin", params(("tenant" = schema::ShortName, Path)),
    responses((status = 200, description = "deleted with its queues, tasks, keys and roles", body = Deleted),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_tenant(
    caller: Caller,
    ApiPath(tenant): ApiPath<String>,
) -> ApiResult<axum::Json<Deleted>> {
    caller.require_admin(actions::TENANTS_WRITE, &format!("tenants/{tenant}"))?;
    let entry = tenant_entry(&caller, "tenant.delete", &tenant);
    let deleted = caller.auth().delete_tenant(&caller.principal, &tenant);
    audit::audited(entry, deleted).await?;
    tracing::info!(tenant = %tenant, by = %caller.principal.label, "tenant deleted");
    Ok(axum::Json(Deleted { deleted: tenant }))
}

// ---- keys -------------------------------------------------------------------------------------

#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyInfo>,
}

#[utoipa::path(post, path = "/v1/keys", tag = "admin", request_body = NewKey,
    responses((status = 201, body = CreatedKey), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_key(caller: Caller, JsonBody(body): JsonBody<NewKey>) -> ApiResult<Response> {
    caller.require(actions::KEYS_CREATE, "keys/*")?;
    let entry = caller.audit("key.create", "keys/*");
    let created = caller
        .auth()
        .create_key(&caller.principal, &caller.tenant, body);
    let (key, token) = audit::audited(entry, created).await?;
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
            .map(KeyInfo::from)
            .collect(),
    }))
}

#[utoipa::path(get, path = "/v1/keys/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = KeyInfo), (status = 404, body = ErrorBody)))]
pub async fn get_key(
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<KeyInfo>> {
    let key = caller.auth().key(&caller.tenant, &id)?;
    caller.require(actions::KEYS_READ, &format!("keys/{id}"))?;
    Ok(axum::Json(key.into()))
}

#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, description = "revoked; the next request with it answers 401", body = KeyInfo),
        (status = 404, body = ErrorBody)))]
pub async fn revoke_key(
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<KeyInfo>> {
    caller.auth().key(&caller.tenant, &id)?;
    caller.require(actions::KEYS_REVOKE, &format!("keys/{id}"))?;
    let entry = caller.audit("key.revoke", format!("keys/{id}"));
    let revoked = caller.auth().revoke_key(&caller.tenant, &id);
    let key = audit::audited(entry, revoked).await?;
    tracing::info!(key = %id, by = %caller.principal.label, "API key revoked");
    Ok(axum::Json(key.into()))
}

#[utoipa::path(post, path = "/v1/keys/{id}/rotate", tag = "admin", params(("id" = String, Path)),
    request_body = RotateKey,
    responses((status = 200, description = "the key with a new secret (its token shown this once); the old secret is accepted until `previous_secret_until`", body = CreatedKey),
        (status = 404, body = ErrorBody),
        (status = 409, description = "the key is revoked or expired", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn rotate_key(
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<RotateKey>,
) -> ApiResult<axum::Json<CreatedKey>> {
    caller.auth().key(&caller.tenant, &id)?;
    // A new secret is a new credential: the right to create keys.
    caller.require(actions::KEYS_CREATE, &format!("keys/{id}"))?;
    let entry = caller.audit("key.rotate", format!("keys/{id}"));
    let rotated = caller.auth().rotate_key(&caller.tenant, &id, body);
    let (key, token) = audit::audited(entry, rotated).await?;
    tracing::info!(key = %id, grace_until = ?key.previous_until, by = %caller.principal.label, "API key rotated");
    Ok(axum::Json(CreatedKey {
        key: key.into(),
        token,
    }))
}

#[utoipa::path(post, path = "/v1/keys/{id}/sessions/revoke", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, description = "every dashboard session of the key signed in before now is refused, on every server; the key itself keeps working", body = KeyInfo),
        (status = 404, body = ErrorBody)))]
pub async fn revoke_key_sessions(
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<KeyInfo>> {
    caller.auth().key(&caller.tenant, &id)?;
    caller.require(actions::KEYS_REVOKE, &format!("keys/{id}"))?;
    let entry = caller.audit("key.end_sessions", format!("keys/{id}"));
    audit::audited(entry, caller.auth().end_key_sessions(&id)).await?;
    tracing::info!(key = %id, by = %caller.principal.label, "dashboard sessions of an API key ended");
    Ok(axum::Json(caller.auth().key(&caller.tenant, &id)?.into()))
}

// ---- roles ------------------------------------------------------------------------------------

#[derive(Serialize, utoipa::ToSchema)]
pub struct RoleList {
    pub roles: Vec<RoleInfo>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// `{"resource", "action", "effect": "allow" | "deny"}`; deny wins. 1 to 100 rules, each
    /// naming a known action (or a pattern matching one) and a known kind of resource.
    #[schema(min_items = 1, max_items = 100)]
    #[serde(deserialize_with = "rota_core::objects::objects")]
    pub rules: Vec<Rule>,
}

#[utoipa::path(get, path = "/v1/roles", tag = "admin",
    responses((status = 200, description = "built-in roles, then the tenant's own", body = RoleList)))]
pub async fn list_roles(caller: Caller) -> ApiResult<axum::Json<RoleList>> {
    caller.require(actions::ROLES_READ, "roles/*")?;
    let mut roles: Vec<RoleInfo> = BUILTIN_ROLES
        .iter()
        .filter_map(|n| RoleInfo::builtin(n))
        .collect();
    roles.extend(
        caller
            .auth()
            .roles(&caller.tenant)
            .into_iter()
            .map(RoleInfo::from),
    );
    Ok(axum::Json(RoleList { roles }))
}

#[utoipa::path(get, path = "/v1/roles/{name}", tag = "admin", params(("name" = schema::ShortName, Path)),
    responses((status = 200, body = RoleInfo), (status = 404, body = ErrorBody)))]
pub async fn get_role(
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<axum::Json<RoleInfo>> {
    caller.require(actions::ROLES_READ, &format!("roles/{name}"))?;
    if let Some(v) = RoleInfo::builtin(&name) {
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
                ErrorKind::NotFound,
                "not_found",
                format!("role `{name}` does not exist"),
            )
        })
}

#[utoipa::path(put, path = "/v1/roles/{name}", tag = "admin", params(("name" = schema::ShortName, Path)),
    request_body = RoleBody,
    responses((status = 201, description = "created", body = RoleInfo), (status = 200, description = "replaced; applies to the next request", body = RoleInfo),
        (status = 409, description = "a built-in role", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_role(
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    JsonBody(body): JsonBody<RoleBody>,
) -> ApiResult<Response> {
    caller.require(actions::ROLES_WRITE, &format!("roles/{name}"))?;
    let before = caller
        .auth()
        .roles(&caller.tenant)
        .into_iter()
        .find(|r| r.name == name)
        .map(|r| serde_json::json!({ "rules": r.rules }));
    let entry = audit::with(
        caller.audit("role.put", format!("roles/{name}")),
        before,
        Some(serde_json::json!({ "rules": body.rules })),
    );
    let put = caller.auth().put_role(&caller.tenant, &name, body.rules);
    let (role, created) = audit::audited(entry, put).await?;
    tracing::info!(role = %name, tenant = %caller.tenant, by = %caller.principal.label, "role written");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(RoleInfo::from(role))).into_response())
}

#[utoipa::path(delete, path = "/v1/roles/{name}", tag = "admin", params(("name" = schema::ShortName, Path)),
    responses((status = 200, body = Deleted), (status = 404, body = ErrorBody),
        (status = 409, description = "still held by a key", body = ErrorBody)))]
pub async fn delete_role(
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<axum::Json<Deleted>> {
    caller.require(actions::ROLES_WRITE, &format!("roles/{name}"))?;
    let entry = caller.audit("role.delete", format!("roles/{name}"));
    let deleted = caller.auth().delete_role(&caller.tenant, &name);
    audit::audited(entry, deleted).await?;
    Ok(axum::Json(Deleted { deleted: name }))
}

// ---- whoami -----------------------------------------------------------------------------------

#[utoipa::path(get, path = "/v1/whoami", tag = "admin",
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)))]
pub async fn whoami(
    caller: Caller,
    axum::extract::State(st): axum::extract::State<crate::AppState>,
) -> axum::Json<WhoAmI> {
    let p = &caller.principal;
    axum::Json(WhoAmI {
        maintenance: caller.auth().maintenance(st.clock.now()),
        principal: p.label.clone(),
        tenant: p.tenant.clone(),
        acting_tenant: caller.tenant.clone(),
        roles: p.roles.clone(),
        queues: p.queues.clone(),
        kinds: p.kinds.clone(),
    })
}

/// An entry for a change to tenant `name`, kept in that tenant's part of the log.
fn tenant_entry(caller: &Caller, action: &str, name: &str) -> rota_core::audit::AuditEntry {
    let mut entry = caller.audit(action, format!("tenants/{name}"));
    entry.tenant = name.to_owned();
    entry
}
