//! The audit log through a real server: each administrative change is recorded with who made
//! it, from where, with which request, and what it changed; a refused change records nothing;
//! no secret is ever written; a tenant-admin reads its own tenant's entries, an admin every
//! tenant's, and the log pages newest first.

mod helpers;

use helpers::*;
use serde_json::{json, Value};

/// Sends as `token` acting in `tenant`, with request id `rid`.
async fn call(
    s: &TestServer,
    token: &str,
    tenant: Option<&str>,
    rid: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let mut headers = vec![("x-request-id", rid)];
    if let Some(t) = tenant {
        headers.push(("rota-tenant", t));
    }
    let text = body.map(|b| b.to_string());
    s.send_full(Some(token), &headers, method, path, text.as_deref())
        .await
        .0
}

async fn tenant_key(s: &TestServer, tenant: &str, role: &str) -> (String, String) {
    let a = call(
        s,
        ADMIN,
        Some(tenant),
        "make-key",
        "POST",
        "/v1/keys",
        Some(json!({"name": format!("{tenant}-{role}"), "roles": [role]})),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    (
        a.body["id"].as_str().unwrap().to_owned(),
        a.body["token"].as_str().unwrap().to_owned(),
    )
}

async fn audit(s: &TestServer, token: &str, query: &str) -> Answer {
    s.send_as(Some(token), "GET", &format!("/v1/audit{query}"), None)
        .await
}

fn entries(a: &Answer) -> Vec<Value> {
    assert_eq!(a.status, 200, "{}", a.body);
    a.body["entries"].as_array().unwrap().clone()
}

fn find<'a>(all: &'a [Value], action: &str) -> &'a Value {
    all.iter()
        .find(|e| e["action"] == action)
        .unwrap_or_else(|| panic!("no {action} in {all:#?}"))
}

#[tokio::test]
async fn administrative_changes_are_recorded_with_who_where_and_what() {
    let s = TestServer::start().await;
    s.create_tenant("acme").await;
    let (key_id, admin_of_acme) = tenant_key(&s, "acme", "tenant-admin").await;
    let me = format!("key:{key_id}");
    let as_me = |rid: &'static str, method: &'static str, path: String, body: Option<Value>| {
        let (s, t) = (&s, admin_of_acme.clone());
        async move { call(s, &t, None, rid, method, &path, body).await }
    };
    let a = as_me(
        "r-settings",
        "PATCH",
        "/v1/queues/mail".into(),
        Some(json!({"max_attempts": 7})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        as_me("r-pause", "POST", "/v1/queues/mail/pause".into(), None)
            .await
            .status,
        200
    );
    let t = s.enqueue_in("acme", "mail", json!({"kind": "send"})).await;
    let tid = t["id"].as_str().unwrap().to_owned();
    let a = as_me("r-cancel", "POST", format!("/v1/tasks/{tid}/cancel"), None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let rules =
        json!({"rules": [{"resource": "queues/*", "action": "tasks:read", "effect": "allow"}]});
    assert_eq!(
        as_me("r-role", "PUT", "/v1/roles/viewer".into(), Some(rules))
            .await
            .status,
        201
    );
    let hook = as_me(
        "r-hook",
        "POST",
        "/v1/hooks".into(),
        Some(
            json!({"name": "gh", "queue": "mail", "kind": "push", "verify": "github",
                    "secret": "a-hook-secret-never-logged"}),
        ),
    )
    .await;
    assert_eq!(hook.status, 201, "{}", hook.body);
    let schedule = json!({"queue": "mail", "kind": "digest", "every_ms": 60_000});
    let a = as_me(
        "r-schedule",
        "PUT",
        "/v1/schedules/digest".into(),
        Some(schedule),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let (other, _) = tenant_key(&s, "acme", "producer").await;
    let rotated = as_me(
        "r-rotate",
        "POST",
        format!("/v1/keys/{other}/rotate"),
        Some(json!({})),
    )
    .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new_token = rotated.body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        as_me("r-revoke", "DELETE", format!("/v1/keys/{other}"), None)
            .await
            .status,
        200
    );
    let a = call(
        &s,
        ADMIN,
        None,
        "r-maint",
        "PUT",
        "/v1/admin/maintenance",
        Some(json!({"mode": "announce", "message": "upgrade at noon"})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);

    let a = audit(&s, ADMIN, "?tenant=acme&limit=100").await;
    let all = entries(&a);
    let text = a.body.to_string();
    assert!(
        !text.contains("a-hook-secret-never-logged"),
        "a hook's secret is never logged"
    );
    assert!(!text.contains(&new_token), "a key's token is never logged");

    let e = find(&all, "queue.update");
    assert_eq!(e["actor"], me);
    assert_eq!(e["tenant"], "acme");
    assert_eq!(e["target"], "queues/mail");
    assert_eq!(e["request_id"], "r-settings");
    assert_eq!(e["source"], "127.0.0.1");
    assert_eq!(e["before"], json!({"max_attempts": 25}));
    assert_eq!(e["after"], json!({"max_attempts": 7}));
    assert_eq!(find(&all, "queue.pause")["request_id"], "r-pause");
    assert_eq!(find(&all, "task.cancel")["target"], format!("tasks/{tid}"));
    assert_eq!(
        find(&all, "role.put")["after"]["rules"][0]["action"],
        "tasks:read"
    );
    let e = find(&all, "hook.create");
    assert_eq!(
        e["target"],
        format!("hooks/{}", hook.body["id"].as_str().unwrap())
    );
    assert_eq!(e["after"]["verify"], "github");
    assert_eq!(find(&all, "schedule.put")["target"], "schedules/digest");
    let e = find(&all, "key.rotate");
    assert_eq!(e["target"], format!("keys/{other}"));
    assert!(e["after"]["previous_until"].is_string(), "{e}");
    assert!(find(&all, "key.revoke")["after"]["revoked_at"].is_string());
    let e = find(&all, "key.create");
    assert_eq!(
        e["actor"], "admin token",
        "made by the admin token acting in acme"
    );
    assert!(e["target"].as_str().unwrap().starts_with("keys/"), "{e}");
    // Newest first.
    let times: Vec<&str> = all.iter().map(|e| e["at"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted);
    // Maintenance mode is the admin's own tenant's.
    let m = entries(&audit(&s, ADMIN, "?action=maintenance.").await);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["tenant"], "default");
    assert_eq!(m[0]["after"]["message"], "upgrade at noon");
    s.stop().await;
}

#[tokio::test]
async fn a_refused_change_records_nothing() {
    let s = TestServer::start().await;
    let before = entries(&audit(&s, ADMIN, "").await).len();
    // Invalid settings, a purge of live tasks, a cancel of no task, a role naming no action.
    let a = s
        .send("PATCH", "/v1/queues/mail", Some(r#"{"max_attempts": 0}"#))
        .await;
    assert_eq!(a.status, 422, "{}", a.body);
    let a = s
        .send("DELETE", "/v1/queues/mail/tasks?state=ready", None)
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    let a = s
        .send(
            "POST",
            "/v1/tasks/0190f5a0-0000-7000-8000-000000000000/cancel",
            None,
        )
        .await;
    assert_eq!(a.status, 404, "{}", a.body);
    let a = s
        .send(
            "PUT",
            "/v1/roles/x",
            Some(r#"{"rules": [{"resource": "queues/*", "action": "nope", "effect": "allow"}]}"#),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert_eq!(entries(&audit(&s, ADMIN, "").await).len(), before);
    s.stop().await;
}

#[tokio::test]
async fn each_tenant_reads_its_own_entries_and_an_admin_reads_all() {
    let s = TestServer::start().await;
    for t in ["acme", "beta"] {
        s.create_tenant(t).await;
    }
    let (_, acme_admin) = tenant_key(&s, "acme", "tenant-admin").await;
    let (_, acme_producer) = tenant_key(&s, "acme", "producer").await;
    let (_, beta_admin) = tenant_key(&s, "beta", "tenant-admin").await;
    for i in 0..5 {
        for token in [&acme_admin, &beta_admin] {
            let body = json!({"max_attempts": 2 + i});
            let a = call(&s, token, None, "r", "PATCH", "/v1/queues/q", Some(body)).await;
            assert_eq!(a.status, 200, "{}", a.body);
        }
    }
    let acme = entries(&audit(&s, &acme_admin, "?action=queue.update").await);
    assert_eq!(acme.len(), 5);
    assert!(acme.iter().all(|e| e["tenant"] == "acme"));
    audit(&s, &acme_admin, "?tenant=beta")
        .await
        .assert_error(403, "forbidden");
    audit(&s, &acme_producer, "")
        .await
        .assert_error(403, "forbidden");
    let all = entries(&audit(&s, ADMIN, "?action=queue.update").await);
    assert_eq!(all.len(), 10);

    // Pages of three, newest first, each entry once.
    let mut seen = Vec::new();
    let mut query = "?action=queue.&limit=3".to_owned();
    loop {
        let a = audit(&s, ADMIN, &query).await;
        seen.extend(entries(&a).into_iter().map(|e| e["id"].clone()));
        match a.body["next_cursor"].as_str() {
            Some(c) => query = format!("?action=queue.&limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 10);
    let mut unique = seen.clone();
    unique.sort_by_key(|v| v.to_string());
    unique.dedup();
    assert_eq!(unique.len(), 10);

    for bad in [
        "cursor=nope",
        "limit=0",
        "limit=501",
        "tenant=a%20b",
        "actor=",
    ] {
        let a = audit(&s, ADMIN, &format!("?{bad}")).await;
        assert_eq!(a.status, 422, "{bad}: {}", a.body);
    }
    audit(&s, ADMIN, "?since=yesterday")
        .await
        .assert_error(400, "bad_request");
    s.stop().await;
}
