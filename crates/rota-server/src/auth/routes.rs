//! The permission each body-carrying route needs, decided from its method and path alone, so a
//! caller that may not make a request is refused before its body is read. Handlers still check
//! what only the body or the stored task can tell (kinds, the task's queue).

use super::Caller;
use crate::error::ApiResult;
use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request};
use axum::http::Method;
use rota_core::auth::{actions, queue_resource};
use rota_core::limits::validate_queue_name;

/// What a route's permission is checked on.
enum On {
    /// The queue named by the `{queue}` path parameter.
    Queue,
    /// Some queue: by-id task routes name a task whose queue is not known yet.
    SomeQueue,
    /// A fixed resource, or the `{name}` parameter under a prefix.
    Resource(&'static str),
    Named(&'static str),
    /// Tenant management: the admin role.
    Admin,
}

/// The one table of body-carrying routes and their permissions.
fn permission(method: &Method, route: &str) -> Option<(&'static str, On)> {
    use actions::*;
    let post = method == Method::POST;
    Some(match route {
        "/v1/queues/{queue}/tasks" if post => (TASKS_ENQUEUE, On::Queue),
        "/v1/queues/{queue}/claim" if post => (TASKS_CLAIM, On::Queue),
        "/v1/queues/{queue}" if method == Method::PATCH => (QUEUES_UPDATE, On::Queue),
        "/v1/queues/{queue}/groups/{group}" if method == Method::PUT => (QUEUES_UPDATE, On::Queue),
        "/v1/tasks/complete" | "/v1/tasks/{id}/complete" if post => (TASKS_COMPLETE, On::SomeQueue),
        "/v1/tasks/fail" | "/v1/tasks/{id}/fail" if post => (TASKS_FAIL, On::SomeQueue),
        "/v1/tasks/{id}/heartbeat" if post => (TASKS_HEARTBEAT, On::SomeQueue),
        "/v1/tasks/{id}/kill" if post => (TASKS_CANCEL, On::SomeQueue),
        "/v1/workflows" | "/v1/batches" if post => (TASKS_ENQUEUE, On::SomeQueue),
        "/v1/keys" if post => (KEYS_CREATE, On::Resource("keys/*")),
        "/v1/roles/{name}" if method == Method::PUT => (ROLES_WRITE, On::Named("roles/")),
        "/v1/schedules/{name}" if method == Method::PUT => {
            (SCHEDULES_WRITE, On::Named("schedules/"))
        }
        "/v1/webhooks" if post => (WEBHOOKS_WRITE, On::Resource("webhooks/*")),
        "/v1/admin/tenants" | "/v1/admin/tenants/{tenant}" if post || method == Method::PATCH => {
            (TENANTS_WRITE, On::Admin)
        }
        _ => return None,
    })
}

/// Refuses the request if the caller lacks the route's permission.
pub async fn precheck(caller: &Caller, req: &mut Request) -> ApiResult<()> {
    let Some(route) = req.extensions().get::<MatchedPath>().cloned() else {
        return Ok(());
    };
    let Some((action, on)) = permission(req.method(), route.as_str()) else {
        return Ok(());
    };
    let params = match on {
        On::Queue | On::Named(_) => {
            let (mut parts, body) = std::mem::take(req).into_parts();
            let params = RawPathParams::from_request_parts(&mut parts, &()).await;
            *req = Request::from_parts(parts, body);
            params.ok()
        }
        _ => None,
    };
    let param = |name: &str| {
        params.as_ref().and_then(|p| {
            p.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_owned())
        })
    };
    match on {
        On::Queue => match param("queue") {
            // A bad name is the handler's to report (400), not a permission matter.
            Some(q) if validate_queue_name(&q).is_ok() => {
                caller.require(action, &queue_resource(&q))
            }
            _ => Ok(()),
        },
        On::SomeQueue => caller.require_on_some_queue(action),
        On::Resource(r) => caller.require(action, r),
        On::Named(prefix) => match param("name") {
            Some(n) => caller.require(action, &format!("{prefix}{n}")),
            None => Ok(()),
        },
        On::Admin => caller.require_admin(action, "tenants/*"),
    }
}
