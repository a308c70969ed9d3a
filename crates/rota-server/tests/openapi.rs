//! The served OpenAPI document states the rules the server enforces (bounds, patterns,
//! exclusive fields, batch sizes), names each operation once, links creations to their
//! objects, describes the event stream per event, and the WebSocket route answers a plain
//! request in the one JSON error shape.

mod helpers;

use helpers::{id, TestServer};
use rota_core::Limits;
use serde_json::{json, Value};
use std::collections::HashSet;

async fn document(s: &TestServer) -> Value {
    let doc = s.get("/openapi.json").await;
    assert_eq!(doc.status, 200);
    doc.body
}

/// Follows `$ref`s to the schema they name.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r
                .strip_prefix("#/components/schemas/")
                .expect("a local ref");
            resolve(doc, &doc["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// A property of an object schema, resolved, whether the property is nullable or not.
fn property<'a>(doc: &'a Value, object: &'a Value, name: &str) -> &'a Value {
    let p = &resolve(doc, object)["properties"][name];
    assert!(!p.is_null(), "no property {name} in {object}");
    match p["oneOf"].as_array() {
        // Option<T> of a component: {"oneOf": [{"type": "null"}, {"$ref": ...}]}.
        Some(alts) => resolve(
            doc,
            alts.iter()
                .find(|a| a["type"] != "null")
                .expect("a non-null alternative"),
        ),
        None => resolve(doc, p),
    }
}

fn request_body<'a>(doc: &'a Value, path: &str, method: &str) -> &'a Value {
    resolve(
        doc,
        &doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"],
    )
}

fn parameter<'a>(doc: &'a Value, path: &str, method: &str, name: &str) -> &'a Value {
    let p = doc["paths"][path][method]["parameters"]
        .as_array()
        .unwrap_or_else(|| panic!("{method} {path} has no parameters"))
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"));
    p
}

#[tokio::test]
async fn the_document_states_the_limits_the_server_enforces() {
    let s = TestServer::start().await;
    let doc = document(&s).await;
    let l = Limits::default();

    // A claim's bounds are the limits' defaults.
    let claim = request_body(&doc, "/v1/queues/{queue}/claim", "post");
    assert_eq!(property(&doc, claim, "max")["minimum"], 1);
    assert_eq!(property(&doc, claim, "max")["maximum"], l.max_claim);
    assert_eq!(property(&doc, claim, "wait_ms")["maximum"], l.max_wait_ms);
    let lease = property(&doc, claim, "lease_ms");
    assert_eq!(
        (&lease["minimum"], &lease["maximum"]),
        (&json!(l.min_lease_ms), &json!(l.max_lease_ms))
    );
    assert_eq!(
        property(&doc, claim, "kinds")["maxItems"],
        l.max_claim_kinds
    );
    let worker = property(&doc, claim, "worker");
    assert_eq!(
        (&worker["minLength"], &worker["maxLength"]),
        (&json!(1), &json!(l.max_name_len))
    );
    assert_eq!(claim["required"], json!(["worker"]));

    // Enqueue: one task or a batch of 1 to max_batch, never both; run_at or delay_ms.
    let enqueue = request_body(&doc, "/v1/queues/{queue}/tasks", "post");
    let forms = enqueue["oneOf"].as_array().expect("one task or a batch");
    assert_eq!(forms.len(), 2);
    let task = resolve(&doc, &forms[0]);
    assert_eq!(task["additionalProperties"], false, "{task}");
    assert!(
        task["properties"]["tasks"].is_null(),
        "a task has no `tasks`"
    );
    assert_eq!(task["not"]["required"], json!(["run_at", "delay_ms"]));
    assert_eq!(property(&doc, task, "tags")["maxItems"], l.max_tags);
    assert_eq!(property(&doc, task, "max_attempts")["maximum"], 10_000);
    assert_eq!(property(&doc, task, "delay_ms")["maximum"], l.max_delay_ms);
    let batch = &forms[1]["properties"]["tasks"];
    assert_eq!(
        (&batch["minItems"], &batch["maxItems"]),
        (&json!(1), &json!(l.max_batch))
    );
    for path in ["/v1/tasks/complete", "/v1/tasks/fail"] {
        let items = &request_body(&doc, path, "post")["properties"]["items"];
        assert_eq!(items["maxItems"], l.max_batch, "{path}");
        assert_eq!(items["minItems"], 1, "{path}");
    }

    // Path parameters carry their forms: the queue name's, the task id's.
    let queue = resolve(
        &doc,
        &parameter(&doc, "/v1/queues/{queue}/claim", "post", "queue")["schema"],
    );
    assert_eq!(queue["maxLength"], 128);
    let task_id = resolve(
        &doc,
        &parameter(&doc, "/v1/tasks/{id}", "get", "id")["schema"],
    );
    let real = id(&s.enqueue("q", json!({})).await);
    let pattern = task_id["pattern"].as_str().expect("a task id pattern");
    assert!(
        regex::Regex::new(pattern).unwrap().is_match(&real),
        "{real} !~ {pattern}"
    );
    let purge_state = parameter(&doc, "/v1/queues/{queue}/tasks", "delete", "state");
    assert_eq!(purge_state["required"], true);
    assert_eq!(
        resolve(&doc, &purge_state["schema"])["enum"],
        json!(["succeeded", "dead", "cancelled"])
    );
    s.stop().await;
}

#[tokio::test]
async fn operations_are_named_once_and_creations_link_to_their_objects() {
    let s = TestServer::start().await;
    let doc = document(&s).await;
    let mut ids = HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .expect("every operation has an id");
            assert!(
                ids.insert(id.to_owned()),
                "{method} {path}: {id} is used twice"
            );
        }
    }
    let links = &doc["paths"]["/v1/webhooks"]["post"]["responses"]["201"]["links"];
    assert_eq!(links["GetWebhook"]["operationId"], "webhooks_get");
    assert_eq!(
        links["GetWebhook"]["parameters"]["id"],
        "$response.body#/id"
    );
    assert_eq!(links["DeleteWebhook"]["operationId"], "webhooks_delete");
    let task_links = &doc["paths"]["/v1/queues/{queue}/tasks"]["post"]["responses"]["201"]["links"];
    assert_eq!(task_links["GetTask"]["operationId"], "tasks_get");
    // Every link names an operation the document has.
    for (_, item) in doc["paths"].as_object().unwrap() {
        for (_, op) in item.as_object().unwrap() {
            for (_, answer) in op["responses"].as_object().unwrap() {
                for (name, link) in answer["links"].as_object().into_iter().flatten() {
                    let target = link["operationId"].as_str().unwrap();
                    assert!(ids.contains(target), "link {name} names {target}");
                }
            }
        }
    }
    s.stop().await;
}

/// What the stream sends is what the document says an event is: `id` the cursor, `event` one
/// of the listed types, `data` the event as JSON with the documented fields.
#[tokio::test]
async fn the_event_stream_sends_what_the_document_describes() {
    let s = TestServer::start().await;
    let doc = document(&s).await;
    let event = &doc["paths"]["/v1/events/stream"]["get"]["responses"]["200"]["content"]
        ["text/event-stream"]["schema"];
    assert_eq!(event["required"], json!(["id", "event", "data"]));
    let data = &event["properties"]["data"];
    assert_eq!(data["contentMediaType"], "application/json");
    assert_eq!(
        data["contentSchema"]["$ref"],
        "#/components/schemas/EventBody"
    );
    let types: Vec<&str> = event["properties"]["event"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let body = resolve(&doc, &data["contentSchema"]);
    let required: Vec<&str> = body["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();

    s.enqueue("q", json!({"kind": "x"})).await;
    let mut resp = s
        .http
        .get(format!("{}/v1/events/stream", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Blocks end with a blank line; the first one holding `data:` is the first event (the
    // stream opens with a comment).
    let mut text = String::new();
    let block = loop {
        let done = text.rfind("\n\n").map_or("", |end| &text[..end]);
        if let Some(b) = done.split("\n\n").find(|b| b.contains("data:")) {
            break b.to_owned();
        }
        let chunk = resp.chunk().await.unwrap().expect("the stream goes on");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    };
    let field = |name: &str| {
        block
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} in {block}"))
    };
    assert!(field("id").chars().all(|c| c.is_ascii_digit()), "{block}");
    assert!(types.contains(&field("event")), "{block}");
    let sent: Value = serde_json::from_str(field("data")).unwrap();
    for f in required {
        assert!(!sent[f].is_null(), "the event lacks {f}: {sent}");
    }
    s.stop().await;
}

#[tokio::test]
async fn the_websocket_route_refuses_a_plain_request_in_json() {
    let s = TestServer::start().await;
    let (answer, headers) = s
        .send_full(Some(helpers::ADMIN), &[], "GET", "/v1/events/ws", None)
        .await;
    let msg = answer.assert_error(426, "upgrade_required");
    assert!(msg.contains("/v1/events/stream"), "{msg}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["upgrade"], "websocket");
    let doc = document(&s).await;
    assert!(doc["paths"]["/v1/events/ws"]["get"]["responses"]["426"].is_object());
    s.stop().await;
}

/// Requests schemathesis found the server taking though the document forbids them: arrays
/// where objects belong (serde reads a struct from its fields in order), a grace beyond
/// `limits.max_delay_ms` on the first callback secret, a schedule interval no date can follow.
#[tokio::test]
async fn requests_the_document_forbids_are_refused() {
    let s = TestServer::start().await;
    for (method, path, body) in [
        (
            "POST",
            "/v1/admin/tenants",
            r#"{"name": "t", "limits": [null, null]}"#,
        ),
        ("PATCH", "/v1/admin/tenants/default", r#"[null, null]"#),
        ("POST", "/v1/queues/q/tasks", r#"{"tasks": [[null]]}"#),
        ("POST", "/v1/queues/q/tasks", r#"{"tasks": null}"#),
        (
            "POST",
            "/v1/tasks/complete",
            r#"{"items": [["019ab8f0-2c4e-7000-8000-000000000000", "l"]]}"#,
        ),
        ("PATCH", "/v1/queues/q", r#"{"backoff": [1, 2]}"#),
        (
            "POST",
            "/v1/callbacks/rotate-secret",
            r#"{"grace_ms": 315360000001}"#,
        ),
        (
            "PUT",
            "/v1/schedules/s",
            r#"{"queue": "q", "every_ms": 9223372036854775808}"#,
        ),
    ] {
        let a = s.send(method, path, Some(body)).await;
        a.assert_error(422, "invalid_field");
    }
    // Nothing of it was written.
    assert_eq!(s.get("/v1/admin/tenants/t").await.status, 404);
    assert_eq!(s.get("/v1/schedules/s").await.status, 404);
    assert_eq!(s.get("/v1/callbacks").await.body["configured"], false);
    s.stop().await;
}

/// Debounce is in the document: `on_duplicate` with its two values on a new task, `replaced`
/// on every enqueue answer, and `task.replaced` among the event types.
#[tokio::test]
async fn the_document_describes_on_duplicate_and_replaced() {
    let s = TestServer::start().await;
    let doc = document(&s).await;
    let input = &doc["components"]["schemas"]["TaskInput"];
    let mode = property(&doc, input, "on_duplicate");
    assert_eq!(mode["enum"], json!(["keep", "replace"]), "{mode}");
    let answer = &doc["components"]["schemas"]["EnqueuedTask"];
    let required = resolve(&doc, answer).to_string();
    assert!(required.contains("\"replaced\""), "{required}");
    assert!(
        doc.to_string().contains("task.replaced"),
        "task.replaced is an event type of the document"
    );
    s.stop().await;
}
