//! What the derived OpenAPI document cannot say by itself: one unique `operationId` per
//! operation (generators name methods after it), the rules that join two fields, the event
//! stream's schema per event, and links from each operation that creates something to the
//! ones that read and remove it (so a stateful fuzzer, or a reader, reaches real objects).

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{OpenApi, RefOr, Schema};

/// Each operation's id is `<tag>_<handler>` (`tasks_get`, `webhooks_get`), so none repeats.
pub struct OperationIds;

impl utoipa::Modify for OperationIds {
    fn modify(&self, doc: &mut OpenApi) {
        for item in doc.paths.paths.values_mut() {
            for op in operations(item) {
                let tag = op.tags.as_ref().and_then(|t| t.first()).cloned();
                if let (Some(tag), Some(id)) = (tag, op.operation_id.as_mut()) {
                    *id = format!("{tag}_{id}");
                }
            }
        }
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// Fields that exclude each other (`into_new_task`, `Registry::create_key`): a schema may not
/// have them both set, said with `not` (which utoipa has no attribute for).
pub struct ExclusiveFields;

const EXCLUSIVE: [(&str, [&str; 2]); 2] = [
    ("TaskInput", ["run_at", "delay_ms"]),
    ("NewKey", ["expires_at", "expires_in_s"]),
];

impl utoipa::Modify for ExclusiveFields {
    fn modify(&self, doc: &mut OpenApi) {
        let Some(components) = doc.components.as_mut() else {
            return;
        };
        for (name, fields) in EXCLUSIVE {
            let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(name) else {
                panic!("the document has no object schema {name} to add `not` to");
            };
            object
                .extensions
                .get_or_insert_with(Default::default)
                .insert("not".into(), both_set(fields));
        }
    }
}

/// `{"not": ...}` of two fields both present and not null (a null field is absent to serde).
fn both_set([a, b]: [&str; 2]) -> serde_json::Value {
    let set = serde_json::json!({"not": {"type": "null"}});
    serde_json::json!({"required": [a, b], "properties": {a: set, b: set}})
}

/// The event stream's 200 answer, one schema per event as OpenAPI 3.1 tools read
/// `text/event-stream` (`id`, `event`, and `data` holding the event as JSON).
pub struct StreamEvents;

pub const STREAM_PATH: &str = "/v1/events/stream";

impl utoipa::Modify for StreamEvents {
    fn modify(&self, doc: &mut OpenApi) {
        let types: Vec<&str> = rota_core::events::EventType::ALL
            .iter()
            .map(|t| t.as_str())
            .collect();
        let mut data = ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type("application/json")
            .description(Some("the event as GET /v1/events shows it"))
            .build();
        data.extensions.get_or_insert_with(Default::default).insert(
            "contentSchema".into(),
            serde_json::json!({"$ref": "#/components/schemas/EventBody"}),
        );
        let event = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "one Server-Sent Event: `id` is the event's cursor (send it back as \
                 Last-Event-ID), `event` its type",
            ))
            .property(
                "id",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[0-9]+$")),
            )
            .property(
                "event",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(types)),
            )
            .property("data", data)
            .required("id")
            .required("event")
            .required("data");
        let op = doc
            .paths
            .paths
            .get_mut(STREAM_PATH)
            .and_then(|i| i.get.as_mut())
            .expect("the event stream is documented");
        let Some(RefOr::T(ok)) = op.responses.responses.get_mut("200") else {
            panic!("the event stream documents its 200 answer");
        };
        let content = ok
            .content
            .get_mut("text/event-stream")
            .expect("the event stream's 200 is text/event-stream");
        content.schema = Some(event.into());
    }
}

/// Where an operation's answer leads: (from path, method, status, link name, to path, method,
/// the `to` path parameter and the answer's field that fills it).
type LinkRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

const LINKS: &[LinkRow] = &[
    (
        "/v1/queues/{queue}/tasks",
        "post",
        "201",
        "GetTask",
        "/v1/tasks/{id}",
        "get",
        "id",
        "/id",
    ),
    (
        "/v1/queues/{queue}/tasks",
        "post",
        "201",
        "CancelTask",
        "/v1/tasks/{id}/cancel",
        "post",
        "id",
        "/id",
    ),
    (
        "/v1/queues/{queue}/tasks",
        "post",
        "201",
        "KillTask",
        "/v1/tasks/{id}/kill",
        "post",
        "id",
        "/id",
    ),
    (
        "/v1/queues/{queue}/tasks",
        "post",
        "201",
        "DeleteTask",
        "/v1/tasks/{id}",
        "delete",
        "id",
        "/id",
    ),
    (
        "/v1/queues/{queue}/claim",
        "post",
        "200",
        "HeartbeatTask",
        "/v1/tasks/{id}/heartbeat",
        "post",
        "id",
        "/tasks/0/id",
    ),
    (
        "/v1/queues/{queue}/claim",
        "post",
        "200",
        "CompleteTask",
        "/v1/tasks/{id}/complete",
        "post",
        "id",
        "/tasks/0/id",
    ),
    (
        "/v1/queues/{queue}/claim",
        "post",
        "200",
        "FailTask",
        "/v1/tasks/{id}/fail",
        "post",
        "id",
        "/tasks/0/id",
    ),
    (
        "/v1/tasks/{id}/cancel",
        "post",
        "200",
        "RetryTask",
        "/v1/tasks/{id}/retry",
        "post",
        "id",
        "/id",
    ),
    (
        "/v1/webhooks",
        "post",
        "201",
        "GetWebhook",
        "/v1/webhooks/{id}",
        "get",
        "id",
        "/id",
    ),
    (
        "/v1/webhooks",
        "post",
        "201",
        "UpdateWebhook",
        "/v1/webhooks/{id}",
        "patch",
        "id",
        "/id",
    ),
    (
        "/v1/webhooks",
        "post",
        "201",
        "WebhookDeliveries",
        "/v1/webhooks/{id}/deliveries",
        "get",
        "id",
        "/id",
    ),
    (
        "/v1/webhooks",
        "post",
        "201",
        "RotateWebhookSecret",
        "/v1/webhooks/{id}/rotate-secret",
        "post",
        "id",
        "/id",
    ),
    (
        "/v1/webhooks",
        "post",
        "201",
        "DeleteWebhook",
        "/v1/webhooks/{id}",
        "delete",
        "id",
        "/id",
    ),
    (
        "/v1/schedules/{name}",
        "put",
        "201",
        "GetSchedule",
        "/v1/schedules/{name}",
        "get",
        "name",
        "/name",
    ),
    (
        "/v1/schedules/{name}",
        "put",
        "201",
        "TriggerSchedule",
        "/v1/schedules/{name}/trigger",
        "post",
        "name",
        "/name",
    ),
    (
        "/v1/schedules/{name}",
        "put",
        "201",
        "PauseSchedule",
        "/v1/schedules/{name}/pause",
        "post",
        "name",
        "/name",
    ),
    (
        "/v1/schedules/{name}",
        "put",
        "201",
        "ResumeSchedule",
        "/v1/schedules/{name}/resume",
        "post",
        "name",
        "/name",
    ),
    (
        "/v1/schedules/{name}",
        "put",
        "201",
        "DeleteSchedule",
        "/v1/schedules/{name}",
        "delete",
        "name",
        "/name",
    ),
    (
        "/v1/hooks",
        "post",
        "201",
        "GetHook",
        "/v1/hooks/{id}",
        "get",
        "id",
        "/id",
    ),
    (
        "/v1/hooks",
        "post",
        "201",
        "UpdateHook",
        "/v1/hooks/{id}",
        "patch",
        "id",
        "/id",
    ),
    (
        "/v1/hooks",
        "post",
        "201",
        "DeleteHook",
        "/v1/hooks/{id}",
        "delete",
        "id",
        "/id",
    ),
    (
        "/v1/hooks",
        "post",
        "201",
        "RotateHookSecret",
        "/v1/hooks/{id}/rotate-secret",
        "post",
        "id",
        "/id",
    ),
    (
        "/v1/hooks",
        "post",
        "201",
        "HookRequests",
        "/v1/hooks/{id}/requests",
        "get",
        "id",
        "/id",
    ),
    (
        "/v1/hooks",
        "post",
        "201",
        "SendToHook",
        "/hooks/{id}",
        "post",
        "id",
        "/id",
    ),
    (
        "/v1/admin/tenants",
        "post",
        "201",
        "GetTenant",
        "/v1/admin/tenants/{tenant}",
        "get",
        "tenant",
        "/name",
    ),
    (
        "/v1/admin/tenants",
        "post",
        "201",
        "UpdateTenant",
        "/v1/admin/tenants/{tenant}",
        "patch",
        "tenant",
        "/name",
    ),
    (
        "/v1/admin/tenants",
        "post",
        "201",
        "DeleteTenant",
        "/v1/admin/tenants/{tenant}",
        "delete",
        "tenant",
        "/name",
    ),
    (
        "/v1/keys",
        "post",
        "201",
        "GetKey",
        "/v1/keys/{id}",
        "get",
        "id",
        "/id",
    ),
    (
        "/v1/keys",
        "post",
        "201",
        "RevokeKey",
        "/v1/keys/{id}",
        "delete",
        "id",
        "/id",
    ),
    (
        "/v1/roles/{name}",
        "put",
        "201",
        "GetRole",
        "/v1/roles/{name}",
        "get",
        "name",
        "/name",
    ),
    (
        "/v1/roles/{name}",
        "put",
        "201",
        "DeleteRole",
        "/v1/roles/{name}",
        "delete",
        "name",
        "/name",
    ),
];

pub struct Links;

fn operation<'a>(doc: &'a mut OpenApi, path: &str, method: &str) -> &'a mut Operation {
    let item = doc
        .paths
        .paths
        .get_mut(path)
        .unwrap_or_else(|| panic!("a link names {path}, which is not documented"));
    match method {
        "get" => item.get.as_mut(),
        "put" => item.put.as_mut(),
        "post" => item.post.as_mut(),
        "delete" => item.delete.as_mut(),
        "patch" => item.patch.as_mut(),
        _ => None,
    }
    .unwrap_or_else(|| panic!("a link names {method} {path}, which is not documented"))
}

impl utoipa::Modify for Links {
    fn modify(&self, doc: &mut OpenApi) {
        for &(from, method, status, name, to, to_method, param, field) in LINKS {
            let target = operation(doc, to, to_method)
                .operation_id
                .clone()
                .expect("every operation has an id");
            // Written as JSON: utoipa 5.5 serializes its `Link` with snake_case keys
            // (`operation_id`), which no tool reads.
            let link = serde_json::json!({
                "operationId": target,
                "parameters": { param: format!("$response.body#{field}") },
            });
            let op = operation(doc, from, method);
            let Some(RefOr::T(answer)) = op.responses.responses.get_mut(status) else {
                panic!("a link starts at {method} {from} {status}, which is not documented");
            };
            let links = answer
                .extensions
                .get_or_insert_with(Default::default)
                .entry("links".to_owned())
                .or_insert_with(|| serde_json::json!({}));
            links[name] = link;
        }
    }
}
