//! Access control against a real server: tenant isolation on every endpoint, the role and
//! policy matrix, key expiry and revocation, 401s, and per-client limits.

mod helpers;

use helpers::*;
use serde_json::{json, Value};

impl TestServer {
    async fn admin(&self, method: &str, path: &str, body: Value) -> Answer {
        self.send(method, path, Some(&body.to_string())).await
    }

    async fn new_tenant(&self, name: &str) {
        let a = self
            .admin("POST", "/v1/admin/tenants", json!({ "name": name }))
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
    }

    /// Creates a key in `tenant` (as the admin acting there) and returns (id, token).
    async fn new_key(&self, tenant: &str, spec: Value) -> (String, String) {
        let (a, _) = self
            .send_full(
                Some(ADMIN),
                &[("rota-tenant", tenant)],
                "POST",
                "/v1/keys",
                Some(&spec.to_string()),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        assert_eq!(a.body["tenant"], tenant);
        (
            a.body["id"].as_str().unwrap().to_owned(),
            a.body["token"].as_str().unwrap().to_owned(),
        )
    }

    async fn as_(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> Answer {
        let body = body.map(|b| b.to_string());
        self.send_as(Some(token), method, path, body.as_deref())
            .await
    }
}

/// What one tenant holds, to aim the other tenant's requests at.
struct Holdings {
    token: String,
    key_id: String,
    ready: String,
    running: Value,
    dead: String,
}

async fn fill(s: &TestServer, tenant: &str) -> Holdings {
    s.new_tenant(tenant).await;
    let (key_id, token) = s
        .new_key(tenant, json!({"roles": ["tenant-admin"], "name": "ops"}))
        .await;
    let put = s
        .as_(
            &token,
            "PUT",
            "/v1/roles/custom",
            Some(json!({"rules": [{"resource": "queues/*", "action": "tasks:read", "effect": "allow"}]})),
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.body);
    let enq = |kind: &str| {
        let token = token.clone();
        let kind = kind.to_owned();
        async move {
            let a = s
                .as_(
                    &token,
                    "POST",
                    "/v1/queues/jobs/tasks",
                    Some(json!({"kind": kind, "max_attempts": 1})),
                )
                .await;
            assert_eq!(a.status, 201, "{}", a.body);
            a.body
        }
    };
    let dead = enq("d").await;
    let claimed = s
        .as_(
            &token,
            "POST",
            "/v1/queues/jobs/claim",
            Some(json!({"worker": "w"})),
        )
        .await;
    let dead_task = &claimed.body["tasks"][0];
    assert_eq!(dead_task["id"], dead["id"]);
    let fail = s
        .as_(
            &token,
            "POST",
            &format!("/v1/tasks/{}/fail", id(dead_task)),
            Some(json!({"lease": lease(dead_task), "error": "boom"})),
        )
        .await;
    assert_eq!(fail.body["state"], "dead", "{}", fail.body);
    enq("r").await;
    let running = s
        .as_(
            &token,
            "POST",
            "/v1/queues/jobs/claim",
            Some(json!({"worker": "w"})),
        )
        .await
        .body["tasks"][0]
        .clone();
    let ready = id(&enq("r2").await);
    let own = s
        .as_(
            &token,
            "POST",
            &format!("/v1/queues/only-{tenant}/tasks"),
            Some(json!({})),
        )
        .await;
    assert_eq!(own.status, 201);
    Holdings {
        token,
        key_id,
        ready,
        running,
        dead: id(dead_task),
    }
}

/// Two tenants, each with a tenant-admin key, aim every endpoint at the other's queue, tasks,
/// leases, keys and roles: every answer is a 404 (or an empty result in the caller's own
/// namespace), never a 403, and nothing of the other tenant changes.
#[tokio::test]
async fn nothing_crosses_between_tenants() {
    let s = TestServer::start().await;
    let acme = fill(&s, "acme").await;
    let globex = fill(&s, "globex").await;
    let snapshot = |h: &Holdings| {
        let (token, ids) = (
            h.token.clone(),
            [h.ready.clone(), id(&h.running), h.dead.clone()],
        );
        let s = &s;
        async move {
            let mut out = vec![];
            for i in ids {
                out.push(
                    s.as_(&token, "GET", &format!("/v1/tasks/{i}"), None)
                        .await
                        .body,
                );
            }
            out.push(s.as_(&token, "GET", "/v1/queues/jobs", None).await.body["counts"].clone());
            out.push(s.as_(&token, "GET", "/v1/queues", None).await.body);
            out.push(s.as_(&token, "GET", "/v1/keys", None).await.body);
            out.push(s.as_(&token, "GET", "/v1/roles/custom", None).await.body);
            out
        }
    };
    for (me, other, other_name) in [(&acme, &globex, "globex"), (&globex, &acme, "acme")] {
        let before = snapshot(other).await;
        let t = &me.token;
        let lease_body = json!({"lease": lease(&other.running), "error": "x"});
        let complete_body = json!({"lease": lease(&other.running)});
        let run = id(&other.running);
        let not_found: Vec<(&str, String, Option<Value>)> = vec![
            ("GET", format!("/v1/tasks/{}", other.ready), None),
            ("POST", format!("/v1/tasks/{}/cancel", other.ready), None),
            ("POST", format!("/v1/tasks/{}/retry", other.dead), None),
            (
                "POST",
                format!("/v1/tasks/{run}/heartbeat"),
                Some(complete_body.clone()),
            ),
            (
                "POST",
                format!("/v1/tasks/{run}/complete"),
                Some(complete_body.clone()),
            ),
            (
                "POST",
                format!("/v1/tasks/{run}/fail"),
                Some(lease_body.clone()),
            ),
            ("GET", format!("/v1/keys/{}", other.key_id), None),
            ("DELETE", format!("/v1/keys/{}", other.key_id), None),
            // The other tenant's role of the same name is not this tenant's.
            ("GET", "/v1/roles/nothere".into(), None),
            // Queues that exist only in the other tenant.
            ("GET", format!("/v1/queues/only-{other_name}"), None),
            ("GET", format!("/v1/queues/only-{other_name}/tasks"), None),
            ("POST", format!("/v1/queues/only-{other_name}/pause"), None),
            ("POST", format!("/v1/queues/only-{other_name}/resume"), None),
            (
                "DELETE",
                format!("/v1/queues/only-{other_name}/tasks?state=dead"),
                None,
            ),
            ("DELETE", "/v1/roles/nothere".into(), None),
        ];
        for (m, path, body) in &not_found {
            let a = s.as_(t, m, path, body.clone()).await;
            assert_eq!(a.status, 404, "{m} {path}: {}", a.body);
        }
        // Naming the other tenant outright is answered as if it did not exist.
        let (a, _) = s
            .send_full(
                Some(t),
                &[("rota-tenant", other_name)],
                "GET",
                "/v1/queues",
                None,
            )
            .await;
        a.assert_error(404, "not_found");
        let (a, _) = s
            .send_full(
                Some(t),
                &[("rota-tenant", "no-such-tenant")],
                "GET",
                "/v1/queues",
                None,
            )
            .await;
        a.assert_error(404, "not_found");
        let empty = s
            .as_(
                t,
                "POST",
                &format!("/v1/queues/only-{other_name}/claim"),
                Some(json!({"worker": "x"})),
            )
            .await;
        assert_eq!(empty.body["tasks"], json!([]), "{}", empty.body);
        // Batches answer per item.
        for (path, items) in [
            (
                "/v1/tasks/complete",
                json!({"items": [{"id": run, "lease": lease(&other.running)}]}),
            ),
            (
                "/v1/tasks/fail",
                json!({"items": [{"id": run, "lease": lease(&other.running), "error": "x"}]}),
            ),
        ] {
            let a = s.as_(t, "POST", path, Some(items)).await;
            assert_eq!(a.status, 200);
            assert_eq!(
                a.body["items"][0]["error"]["code"], "task_not_found",
                "{}",
                a.body
            );
        }
        // Same-named queue: this tenant's own, separate one.
        let q = s.as_(t, "GET", "/v1/queues", None).await;
        let names: Vec<&str> = q.body["queues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["name"].as_str().unwrap())
            .collect();
        let mine = if other_name == "acme" {
            "only-globex"
        } else {
            "only-acme"
        };
        assert_eq!(names, ["jobs", mine]);
        let c = s.as_(t, "GET", "/v1/queues/jobs", None).await;
        assert_eq!(c.body["counts"]["ready"], 1, "only its own ready task");
        // Claims take only this tenant's own task, never the other's.
        let claimed = s
            .as_(
                t,
                "POST",
                "/v1/queues/jobs/claim",
                Some(json!({"worker": "x", "max": 10})),
            )
            .await;
        let got: Vec<String> = claimed.body["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(id)
            .collect();
        assert_eq!(got, vec![me.ready.clone()]);
        // Listing the other's keys and roles shows only this tenant's.
        let keys = s.as_(t, "GET", "/v1/keys", None).await;
        assert!(keys.body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["id"] != other.key_id.as_str()));
        // Tenant management is an admin permission: 403 for a tenant admin.
        s.as_(t, "GET", "/v1/admin/tenants", None)
            .await
            .assert_error(403, "forbidden");
        s.as_(
            t,
            "DELETE",
            &format!("/v1/admin/tenants/{other_name}"),
            None,
        )
        .await
        .assert_error(403, "forbidden");
        assert_eq!(snapshot(other).await, before, "{other_name} changed");
    }
    // A 404 for another tenant's task reads like one for a task that never existed.
    let purged = s
        .as_(
            &acme.token,
            "DELETE",
            "/v1/queues/jobs/tasks?state=dead",
            None,
        )
        .await;
    assert_eq!(purged.body["deleted"], 1);
    let missing = s
        .as_(
            &acme.token,
            "GET",
            &format!("/v1/tasks/{}", acme.dead),
            None,
        )
        .await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    let crossing = s
        .as_(
            &acme.token,
            "GET",
            &format!("/v1/tasks/{}", globex.ready),
            None,
        )
        .await;
    assert_eq!(
        missing.body["error"]["code"],
        crossing.body["error"]["code"]
    );
    s.stop().await;
}

/// Which built-in role may do what: each request is refused with 403 exactly when the role
/// lacks the permission.
#[tokio::test]
async fn built_in_roles_allow_what_they_say_and_nothing_else() {
    let s = TestServer::start().await;
    s.new_tenant("t").await;
    let (_, ta) = s.new_key("t", json!({"roles": ["tenant-admin"]})).await;
    let task = s
        .as_(
            &ta,
            "POST",
            "/v1/queues/q/tasks",
            Some(json!({"kind": "k"})),
        )
        .await
        .body;
    let tid = id(&task);
    let ops: Vec<(&str, String, Option<Value>, &[&str])> = vec![
        (
            "POST",
            "/v1/queues/q/tasks".into(),
            Some(json!({})),
            &["producer", "tenant-admin"],
        ),
        (
            "POST",
            "/v1/queues/q/claim".into(),
            Some(json!({"worker": "w"})),
            &["worker", "tenant-admin"],
        ),
        (
            "POST",
            format!("/v1/tasks/{tid}/heartbeat"),
            Some(json!({"lease": "1"})),
            &["worker", "tenant-admin"],
        ),
        (
            "POST",
            format!("/v1/tasks/{tid}/complete"),
            Some(json!({"lease": "1"})),
            &["worker", "tenant-admin"],
        ),
        (
            "POST",
            format!("/v1/tasks/{tid}/fail"),
            Some(json!({"lease": "1", "error": "e"})),
            &["worker", "tenant-admin"],
        ),
        (
            "GET",
            format!("/v1/tasks/{tid}"),
            None,
            &["producer", "worker", "reader", "tenant-admin"],
        ),
        (
            "GET",
            "/v1/queues/q/tasks".into(),
            None,
            &["producer", "worker", "reader", "tenant-admin"],
        ),
        (
            "GET",
            "/v1/queues/q".into(),
            None,
            &["producer", "worker", "reader", "tenant-admin"],
        ),
        (
            "PATCH",
            "/v1/queues/q".into(),
            Some(json!({})),
            &["tenant-admin"],
        ),
        ("POST", "/v1/queues/q/pause".into(), None, &["tenant-admin"]),
        (
            "DELETE",
            "/v1/queues/q/tasks?state=dead".into(),
            None,
            &["tenant-admin"],
        ),
        (
            "POST",
            format!("/v1/tasks/{tid}/retry"),
            None,
            &["tenant-admin"],
        ),
        (
            "POST",
            format!("/v1/tasks/{tid}/run-now"),
            None,
            &["tenant-admin"],
        ),
        (
            "POST",
            format!("/v1/tasks/{tid}/kill"),
            Some(json!({"reason": 7})),
            &["tenant-admin"],
        ),
        (
            "DELETE",
            format!("/v1/tasks/{tid}"),
            None,
            &["tenant-admin"],
        ),
        ("GET", "/v1/keys".into(), None, &["tenant-admin"]),
        (
            "POST",
            "/v1/keys".into(),
            Some(json!({"roles": ["reader"]})),
            &["tenant-admin"],
        ),
        ("GET", "/v1/roles".into(), None, &["tenant-admin"]),
        (
            "PUT",
            "/v1/roles/r".into(),
            Some(json!({"rules": [{"resource": "*", "action": "*", "effect": "deny"}]})),
            &["tenant-admin"],
        ),
        ("GET", "/v1/admin/tenants".into(), None, &[]),
        (
            "POST",
            "/v1/admin/tenants".into(),
            Some(json!({"name": "x"})),
            &[],
        ),
    ];
    for role in ["producer", "worker", "reader", "tenant-admin"] {
        let (_, token) = s.new_key("t", json!({"roles": [role]})).await;
        for (m, path, body, allowed) in &ops {
            let a = s.as_(&token, m, path, body.clone()).await;
            if allowed.contains(&role) {
                assert_ne!(a.status, 403, "{role} {m} {path}: {}", a.body);
                assert!(a.status < 500, "{role} {m} {path}: {}", a.body);
            } else {
                let msg = a.assert_error(403, "forbidden");
                assert!(msg.contains("lacks permission `"), "{msg}");
            }
        }
    }
    // The message names the permission and the resource.
    let (_, reader) = s.new_key("t", json!({"roles": ["reader"]})).await;
    let msg = s
        .as_(
            &reader,
            "POST",
            "/v1/queues/q/claim",
            Some(json!({"worker": "w"})),
        )
        .await
        .assert_error(403, "forbidden")
        .to_owned();
    assert!(msg.contains("`tasks:claim` on `queues/q`"), "{msg}");
    // Granting admin takes an admin.
    let (_, ta2) = s.new_key("t", json!({"roles": ["tenant-admin"]})).await;
    s.as_(&ta2, "POST", "/v1/keys", Some(json!({"roles": ["admin"]})))
        .await
        .assert_error(403, "forbidden");
    s.stop().await;
}

/// Custom roles: rules with wildcards, deny over allow (also across roles), queue patterns on
/// keys, and a changed or deleted role applying to the very next request.
#[tokio::test]
async fn custom_policies_deny_wins_and_changes_apply_at_once() {
    let s = TestServer::start().await;
    s.new_tenant("t").await;
    let (_, ta) = s.new_key("t", json!({"roles": ["tenant-admin"]})).await;
    let put = |rules: Value| {
        let ta = ta.clone();
        let s = &s;
        async move {
            let a = s
                .as_(
                    &ta,
                    "PUT",
                    "/v1/roles/mailer",
                    Some(json!({ "rules": rules })),
                )
                .await;
            assert!(a.status == 200 || a.status == 201, "{}", a.body);
        }
    };
    put(json!([
        {"resource": "queues/emails-*", "action": "tasks:*", "effect": "allow"},
        {"resource": "queues/*", "action": "queues:read", "effect": "allow"},
        {"resource": "queues/emails-secret", "action": "tasks:claim", "effect": "deny"},
    ]))
    .await;
    let (_, mailer) = s.new_key("t", json!({"roles": ["mailer"]})).await;
    let enqueue = |token: &str, q: &str| {
        let (token, q) = (token.to_owned(), q.to_owned());
        let s = &s;
        async move {
            s.as_(
                &token,
                "POST",
                &format!("/v1/queues/{q}/tasks"),
                Some(json!({"kind": "k"})),
            )
            .await
        }
    };
    assert_eq!(enqueue(&mailer, "emails-eu").await.status, 201);
    assert_eq!(enqueue(&mailer, "emails-secret").await.status, 201);
    let msg = enqueue(&mailer, "billing")
        .await
        .assert_error(403, "forbidden")
        .to_owned();
    assert!(msg.contains("`tasks:enqueue` on `queues/billing`"), "{msg}");
    let claim = |q: &str| {
        let q = q.to_owned();
        let (s, mailer) = (&s, mailer.clone());
        async move {
            s.as_(
                &mailer,
                "POST",
                &format!("/v1/queues/{q}/claim"),
                Some(json!({"worker": "w"})),
            )
            .await
        }
    };
    let msg = claim("emails-secret")
        .await
        .assert_error(403, "forbidden")
        .to_owned();
    assert!(msg.contains("denies"), "{msg}");
    let claimed = claim("emails-eu").await;
    assert_eq!(claimed.status, 200);
    let task = claimed.body["tasks"][0].clone();
    // Deny wins across roles too: producer allows enqueue, a second role denies it on one queue.
    let put2 = s
        .as_(
            &ta,
            "PUT",
            "/v1/roles/no-billing",
            Some(json!({"rules": [
            {"resource": "queues/billing", "action": "*", "effect": "deny"}]})),
        )
        .await;
    assert_eq!(put2.status, 201, "{}", put2.body);
    let (_, both) = s
        .new_key("t", json!({"roles": ["producer", "no-billing"]}))
        .await;
    assert_eq!(enqueue(&both, "orders").await.status, 201);
    enqueue(&both, "billing")
        .await
        .assert_error(403, "forbidden");
    // A key limited to queue patterns: other queues are refused and not listed.
    let (_, scoped) = s
        .new_key(
            "t",
            json!({"roles": ["tenant-admin"], "queues": ["emails-*"]}),
        )
        .await;
    assert_eq!(enqueue(&scoped, "emails-x").await.status, 201);
    let msg = enqueue(&scoped, "orders")
        .await
        .assert_error(403, "forbidden")
        .to_owned();
    assert!(msg.contains("limited to queues emails-*"), "{msg}");
    let listed = s.as_(&scoped, "GET", "/v1/queues", None).await;
    let names: Vec<&str> = listed.body["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert!(names.iter().all(|n| n.starts_with("emails-")), "{names:?}");
    assert!(names.len() >= 2);
    // By id: a task in a queue the key may not touch is refused, also inside a batch.
    let order = enqueue(&ta, "orders").await.body;
    s.as_(&scoped, "GET", &format!("/v1/tasks/{}", id(&order)), None)
        .await
        .assert_error(403, "forbidden");
    s.as_(
        &scoped,
        "POST",
        &format!("/v1/tasks/{}/cancel", id(&order)),
        None,
    )
    .await
    .assert_error(403, "forbidden");
    let batch = s
        .as_(
            &scoped,
            "POST",
            "/v1/tasks/complete",
            Some(json!({"items": [
            {"id": id(&order), "lease": "1"},
            {"id": id(&task), "lease": lease(&task)}]})),
        )
        .await;
    assert_eq!(
        batch.body["items"][0]["error"]["code"], "forbidden",
        "{}",
        batch.body
    );
    assert_eq!(
        batch.body["items"][1]["state"], "succeeded",
        "{}",
        batch.body
    );
    // Changing the role applies to the next request: no allow left for emails-eu.
    put(json!([{"resource": "queues/other", "action": "tasks:*", "effect": "allow"}])).await;
    enqueue(&mailer, "emails-eu")
        .await
        .assert_error(403, "forbidden");
    put(json!([{"resource": "queues/*", "action": "*", "effect": "allow"}])).await;
    assert_eq!(enqueue(&mailer, "emails-eu").await.status, 201);
    // A role held by a live key cannot be deleted; once its keys are revoked it can.
    s.as_(&ta, "DELETE", "/v1/roles/no-billing", None)
        .await
        .assert_error(409, "conflict");
    // Bad rules are refused and change nothing.
    for (rules, needle) in [
        (
            json!([{"resource": "queues/*", "action": "tasks:eat", "effect": "allow"}]),
            "tasks:eat",
        ),
        (
            json!([{"resource": "buckets/*", "action": "*", "effect": "allow"}]),
            "buckets/*",
        ),
        (
            json!([{"resource": "tenants/*", "action": "*", "effect": "allow"}]),
            "admin",
        ),
        (json!([]), "rules"),
    ] {
        let a = s
            .as_(
                &ta,
                "PUT",
                "/v1/roles/mailer",
                Some(json!({ "rules": rules })),
            )
            .await;
        let msg = a.assert_error(422, "invalid_field");
        assert!(msg.contains(needle), "{msg}");
    }
    s.as_(
        &ta,
        "PUT",
        "/v1/roles/worker",
        Some(json!({"rules": [{"resource": "*", "action": "*", "effect": "allow"}]})),
    )
    .await
    .assert_error(409, "conflict");
    assert_eq!(enqueue(&mailer, "emails-eu").await.status, 201, "unchanged");
    s.stop().await;
}

#[tokio::test]
async fn expired_and_revoked_keys_are_refused_on_the_next_request() {
    let s = TestServer::start().await;
    s.new_tenant("t").await;
    let (id_exp, expiring) = s
        .new_key("t", json!({"roles": ["reader"], "expires_in_s": 60}))
        .await;
    let (id_rev, revoked) = s.new_key("t", json!({"roles": ["reader"]})).await;
    for t in [&expiring, &revoked] {
        assert_eq!(s.as_(t, "GET", "/v1/queues", None).await.status, 200);
    }
    s.clock.advance_ms(61_000);
    let msg = s
        .as_(&expiring, "GET", "/v1/queues", None)
        .await
        .assert_error(401, "unauthorized")
        .to_owned();
    assert!(msg.contains(&id_exp) && msg.contains("expired"), "{msg}");
    let (a, _) = s
        .send_full(
            Some(ADMIN),
            &[("rota-tenant", "t")],
            "DELETE",
            &format!("/v1/keys/{id_rev}"),
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body["revoked_at"].is_string());
    let msg = s
        .as_(&revoked, "GET", "/v1/queues", None)
        .await
        .assert_error(401, "unauthorized")
        .to_owned();
    assert!(msg.contains("revoked"), "{msg}");
    // The listing shows when keys were used and revoked, and never a token or hash.
    let (list, _) = s
        .send_full(
            Some(ADMIN),
            &[("rota-tenant", "t")],
            "GET",
            "/v1/keys",
            None,
        )
        .await;
    let text = list.body.to_string();
    assert!(!text.contains(&revoked) && !text.contains("hash"), "{text}");
    let keys = list.body["keys"].as_array().unwrap();
    let rev = keys.iter().find(|k| k["id"] == id_rev.as_str()).unwrap();
    assert!(rev["last_used_at"].is_string() && rev["revoked_at"].is_string());
    // Creating keys checks what it is given.
    for (spec, needle) in [
        (json!({"roles": []}), "roles is empty"),
        (json!({"roles": ["nope"]}), "role `nope`"),
        (
            json!({"roles": ["reader"], "expires_at": "2001-01-01T00:00:00Z"}),
            "past",
        ),
        (
            json!({"roles": ["reader"], "queues": ["bad name"]}),
            "queues",
        ),
        (
            json!({"roles": ["reader"], "expires_in_s": 5, "expires_at": "2100-01-01T00:00:00Z"}),
            "not both",
        ),
    ] {
        let (a, _) = s
            .send_full(
                Some(ADMIN),
                &[("rota-tenant", "t")],
                "POST",
                "/v1/keys",
                Some(&spec.to_string()),
            )
            .await;
        let msg = a.assert_error(422, "invalid_field");
        assert!(msg.contains(needle), "{spec}: {msg}");
    }
    s.stop().await;
}

#[tokio::test]
async fn missing_or_bad_credentials_answer_401_without_echoing_them() {
    let s = TestServer::start().await;
    s.new_tenant("t").await;
    let (key_id, token) = s.new_key("t", json!({"roles": ["reader"]})).await;
    let wrong_secret = format!("rota_{key_id}_{}", "0".repeat(64));
    let wrong_header = format!("Bearer {wrong_secret}");
    let cases: Vec<(Option<&str>, &str)> = vec![
        (None, "no credentials"),
        (Some("Basic dXNlcjpwYXNz"), "Bearer"),
        // What `-H "Authorization: Bearer $TOKEN"` sends with TOKEN unset.
        (Some("Bearer"), "no token after it"),
        (Some("Bearer   "), "no token after it"),
        (Some("Bearer rota_nothing"), "not a valid"),
        (Some(&wrong_header), "not valid"),
        (Some("Bearer a.b.c"), "not a valid"),
    ];
    for (header, needle) in cases {
        let headers: Vec<(&str, &str)> = header.iter().map(|h| ("authorization", *h)).collect();
        let (a, h) = s.send_full(None, &headers, "GET", "/v1/queues", None).await;
        let msg = a.assert_error(401, "unauthorized");
        assert!(msg.contains(needle), "{header:?}: {msg}");
        assert!(!a.body.to_string().contains(&wrong_secret[10..]));
        assert_eq!(h["www-authenticate"], "Bearer realm=\"rota\"");
    }
    // Health, metrics and the API document stay open.
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert_eq!(
            s.send_as(None, "GET", path, None).await.status,
            200,
            "{path}"
        );
    }
    assert_eq!(
        s.as_(&token, "GET", "/v1/whoami", None).await.body["tenant"],
        "t"
    );
    s.stop().await;
}

#[tokio::test]
async fn tenants_are_managed_by_the_admin() {
    let s = TestServer::start().await;
    s.new_tenant("acme").await;
    s.admin("POST", "/v1/admin/tenants", json!({"name": "acme"}))
        .await
        .assert_error(409, "conflict");
    let msg = s
        .admin("POST", "/v1/admin/tenants", json!({"name": "a b"}))
        .await
        .assert_error(422, "invalid_field")
        .to_owned();
    assert!(msg.contains("a b"), "{msg}");
    let list = s.get("/v1/admin/tenants").await;
    let names: Vec<&str> = list.body["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme", "default"]);
    let patched = s
        .admin(
            "PATCH",
            "/v1/admin/tenants/acme",
            json!({"limits": {"max_in_flight": 9}}),
        )
        .await;
    assert_eq!(
        patched.body["limits"]["max_in_flight"], 9,
        "{}",
        patched.body
    );
    // Deleting a tenant takes its queues, tasks and keys with it.
    let (_, token) = s.new_key("acme", json!({"roles": ["producer"]})).await;
    let t = s
        .as_(&token, "POST", "/v1/queues/q/tasks", Some(json!({})))
        .await
        .body;
    let del = s.send("DELETE", "/v1/admin/tenants/acme", None).await;
    assert_eq!(del.status, 200, "{}", del.body);
    s.as_(&token, "GET", "/v1/queues", None)
        .await
        .assert_error(401, "unauthorized");
    s.new_tenant("acme").await;
    let (a, _) = s
        .send_full(
            Some(ADMIN),
            &[("rota-tenant", "acme")],
            "GET",
            &format!("/v1/tasks/{}", id(&t)),
            None,
        )
        .await;
    a.assert_error(404, "task_not_found");
    s.send("DELETE", "/v1/admin/tenants/nope", None)
        .await
        .assert_error(404, "not_found");
    s.stop().await;
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_until_the_minute_slides() {
    let s = TestServer::start().await;
    s.new_tenant("t").await;
    let (_, token) = s
        .new_key(
            "t",
            json!({"roles": ["reader"], "limits": {"requests_per_minute": 3}}),
        )
        .await;
    for _ in 0..3 {
        assert_eq!(s.as_(&token, "GET", "/v1/queues", None).await.status, 200);
    }
    let (a, h) = s
        .send_full(Some(&token), &[], "GET", "/v1/queues", None)
        .await;
    let msg = a.assert_error(429, "rate_limited");
    assert!(msg.contains("3 requests in the last minute"), "{msg}");
    assert_eq!(h["retry-after"], "60");
    // Other keys of the tenant are not held back by this key's limit.
    let (_, other) = s.new_key("t", json!({"roles": ["reader"]})).await;
    assert_eq!(s.as_(&other, "GET", "/v1/queues", None).await.status, 200);
    s.clock.advance_ms(30_000);
    let (_, h) = s
        .send_full(Some(&token), &[], "GET", "/v1/queues", None)
        .await;
    assert_eq!(h["retry-after"], "30");
    s.clock.advance_ms(30_000);
    assert_eq!(s.as_(&token, "GET", "/v1/queues", None).await.status, 200);
    // The tenant as a whole.
    let p = s
        .admin(
            "PATCH",
            "/v1/admin/tenants/t",
            json!({"limits": {"requests_per_minute": 2}}),
        )
        .await;
    assert_eq!(p.status, 200);
    s.clock.advance_ms(60_000);
    assert_eq!(s.as_(&other, "GET", "/v1/queues", None).await.status, 200);
    assert_eq!(s.as_(&other, "GET", "/v1/queues", None).await.status, 200);
    let (a, h) = s
        .send_full(Some(&token), &[], "GET", "/v1/queues", None)
        .await;
    let msg = a.assert_error(429, "rate_limited");
    assert!(msg.contains("tenant `t`"), "{msg}");
    assert!(h.contains_key("retry-after"));
    let metrics = s.get("/metrics").await.body.to_string();
    assert!(metrics.contains("rota_rate_limited_total"), "{metrics}");
    s.stop().await;
}

#[tokio::test]
async fn in_flight_limits_answer_503_and_long_polls_count() {
    let s = TestServer::start().await;
    s.new_tenant("t").await;
    let (_, token) = s
        .new_key(
            "t",
            json!({"roles": ["worker", "producer"], "limits": {"max_in_flight": 1}}),
        )
        .await;
    assert_eq!(
        s.as_(&token, "PATCH", "/v1/queues/q", Some(json!({})))
            .await
            .status,
        403
    );
    let (_, ta) = s.new_key("t", json!({"roles": ["tenant-admin"]})).await;
    assert_eq!(
        s.as_(&ta, "PATCH", "/v1/queues/q", Some(json!({})))
            .await
            .status,
        200
    );
    // A parked long-poll holds the key's only slot.
    let parked = {
        let http = reqwest::Client::new();
        let (url, token) = (format!("{}/v1/queues/q/claim", s.url), token.clone());
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .json(&json!({"worker": "w", "wait_ms": 30000}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    while s.as_(&ta, "GET", "/v1/queues/q", None).await.body["last_claim_at"] == Value::Null {
        tokio::task::yield_now().await;
    }
    let (a, h) = s
        .send_full(Some(&token), &[], "GET", "/v1/queues", None)
        .await;
    let msg = a.assert_error(503, "too_many_in_flight");
    assert!(msg.contains("1 requests in flight"), "{msg}");
    assert_eq!(h["retry-after"], "1");
    // The claim ends with a task; the slot is free again.
    s.as_(&ta, "POST", "/v1/queues/q/tasks", Some(json!({})))
        .await;
    assert_eq!(parked.await.unwrap()["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(s.as_(&token, "GET", "/v1/queues", None).await.status, 200);
    let metrics = s.get("/metrics").await.body.to_string();
    assert!(
        metrics.contains("rota_concurrency_limited_total"),
        "{metrics}"
    );
    s.stop().await;
}
