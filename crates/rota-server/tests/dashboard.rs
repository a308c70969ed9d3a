//! The dashboard's sessions and rules over plain HTTP (the browser test in crates/rota drives
//! the pages themselves): sign-in, a session that expires and dies with its key, forged
//! cookies, changes only from the pages, the event stream on the cookie, pages that follow
//! permissions.

mod helpers;

use helpers::*;
use serde_json::json;

/// A client that keeps no cookies and follows no redirects.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in with `token`; the session cookie's value.
async fn sign_in(s: &TestServer, token: &str) -> Option<String> {
    let r = http()
        .post(format!("{}/login", s.url))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("rota_session="))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .filter(|v| !v.is_empty())
}

async fn get(s: &TestServer, path: &str, session: &str) -> reqwest::Response {
    http()
        .get(format!("{}{path}", s.url))
        .header("cookie", format!("rota_session={session}"))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn sessions_sign_in_expire_and_die_with_their_key() {
    let s = TestServer::start().await;
    // Without a session, pages lead to sign-in; a wrong key is refused there.
    let r = http().get(format!("{}/", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login");
    let refused = http()
        .post(format!("{}/login", s.url))
        .form(&[("token", "rota_0123456789abcdef0123456789abcdef_nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.text().await.unwrap().contains("not valid"));

    let key = s.post("/v1/keys", json!({"roles": ["reader"]})).await;
    let (token, id) = (
        key.body["token"].as_str().unwrap().to_owned(),
        key.body["id"].as_str().unwrap().to_owned(),
    );
    let session = sign_in(&s, &token).await.expect("a session cookie");
    assert!(!session.contains(&token), "the key is not in the cookie");
    assert_eq!(get(&s, "/", &session).await.status(), 200);

    // A forged or altered session is refused.
    let last = if session.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &session[..session.len() - 1]);
    assert_eq!(get(&s, "/", &forged).await.status(), 303);
    // Revoking the key ends the session at once.
    assert_eq!(
        s.send("DELETE", &format!("/v1/keys/{id}"), None)
            .await
            .status,
        200
    );
    assert_eq!(get(&s, "/", &session).await.status(), 303);

    // Sessions expire after 8 hours.
    let other = s.post("/v1/keys", json!({"roles": ["reader"]})).await;
    let session = sign_in(&s, other.body["token"].as_str().unwrap())
        .await
        .unwrap();
    s.clock.advance_ms(rota_server::auth::SESSION_TTL_MS + 1);
    assert_eq!(get(&s, "/", &session).await.status(), 303);
}

#[tokio::test]
async fn changes_come_only_from_the_pages_and_follow_permissions() {
    let s = TestServer::start().await;
    s.enqueue("jobs", json!({"kind": "x"})).await;
    let session = sign_in(&s, ADMIN).await.unwrap();
    let post = |path: &str, htmx: bool| {
        let mut r = http()
            .post(format!("{}{path}", s.url))
            .header("cookie", format!("rota_session={session}"));
        if htmx {
            r = r.header("hx-request", "true");
        }
        r.send()
    };
    // A plain cross-site form cannot send HX-Request: refused, nothing changes.
    assert_eq!(
        post("/queues/jobs/pause", false).await.unwrap().status(),
        403
    );
    assert_eq!(
        s.get("/v1/queues/jobs").await.body["settings"]["paused"],
        false
    );
    assert_eq!(
        post("/queues/jobs/pause", true).await.unwrap().status(),
        204
    );
    assert_eq!(
        s.get("/v1/queues/jobs").await.body["settings"]["paused"],
        true
    );

    // A reader's pages offer no change, and the server refuses one anyway.
    let key = s.post("/v1/keys", json!({"roles": ["reader"]})).await;
    let reader = sign_in(&s, key.body["token"].as_str().unwrap())
        .await
        .unwrap();
    let page = get(&s, "/queues/jobs", &reader).await.text().await.unwrap();
    assert!(
        page.contains("Queue jobs") && !page.contains("hx-post=\"/queues/"),
        "{page}"
    );
    let refused = http()
        .post(format!("{}/queues/jobs/resume", s.url))
        .header("cookie", format!("rota_session={reader}"))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
}

#[tokio::test]
async fn the_event_stream_follows_the_session_cookie() {
    let s = TestServer::start().await;
    s.enqueue("jobs", json!({"kind": "x"})).await;
    let session = sign_in(&s, ADMIN).await.unwrap();
    let mut r = get(&s, "/v1/events/stream", &session).await;
    assert_eq!(r.status(), 200);
    let mut seen = String::new();
    while !seen.contains("task.enqueued") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), r.chunk())
            .await
            .expect("an event within 5 s")
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    // Only the stream takes the cookie; the rest of the API wants a bearer token.
    assert_eq!(get(&s, "/v1/queues", &session).await.status(), 401);
}

#[tokio::test]
async fn an_admin_switches_tenant_and_every_page_shows_the_maintenance_banner() {
    let s = TestServer::start().await;
    s.create_tenant("acme").await;
    s.enqueue_in("acme", "acme-orders", json!({"kind": "x"}))
        .await;
    let session = sign_in(&s, ADMIN).await.unwrap();
    let own = get(&s, "/", &session).await.text().await.unwrap();
    assert!(
        !own.contains("acme-orders"),
        "tenant default has no such queue"
    );
    let switched = http()
        .post(format!("{}/tenant", s.url))
        .header("cookie", format!("rota_session={session}"))
        .header("hx-request", "true")
        .form(&[("tenant", "acme")])
        .send()
        .await
        .unwrap();
    assert_eq!(switched.status(), 200);
    let cookie = switched.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("rota_tenant=acme;"), "{cookie}");
    let page = http()
        .get(format!("{}/", s.url))
        .header(
            "cookie",
            format!("rota_session={session}; rota_tenant=acme"),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("acme-orders"), "{page}");

    let on = json!({"mode": "on", "message": "disk swap"}).to_string();
    assert_eq!(
        s.send("PUT", "/v1/admin/maintenance", Some(&on))
            .await
            .status,
        200
    );
    for path in ["/", "/dead", "/workers", "/keys"] {
        let page = get(&s, path, &session).await.text().await.unwrap();
        assert!(
            page.contains("id=\"maintenance\"") && page.contains("disk swap"),
            "{path}: {page}"
        );
    }
}

#[tokio::test]
async fn the_queue_page_shows_and_changes_flow_control() {
    let s = TestServer::start().await;
    s.enqueue("jobs", json!({"kind": "x", "group": "acme"}))
        .await;
    let session = sign_in(&s, ADMIN).await.unwrap();
    let page = get(&s, "/queues/jobs", &session)
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Flow control"), "{page}");
    assert!(page.contains(r#"data-group="acme""#), "{page}");
    assert!(page.contains(r#"hx-post="/queues/jobs/limits""#), "{page}");
    let post = |path: &str, form: Vec<(&'static str, &'static str)>| {
        http()
            .post(format!("{}{path}", s.url))
            .header("cookie", format!("rota_session={session}"))
            .header("hx-request", "true")
            .form(&form)
            .send()
    };
    let r = post(
        "/queues/jobs/limits",
        vec![
            ("concurrency", "3"),
            ("rate", "100/1s"),
            ("group_concurrency", ""),
            ("group_rate", "5000/1h"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    let settings = s.get("/v1/queues/jobs").await.body["settings"].clone();
    assert_eq!(settings["concurrency"], 3);
    assert_eq!(settings["rate"], json!({"limit": 100, "period_ms": 1000}));
    assert_eq!(settings["group_rate"]["period_ms"], 3_600_000);
    // A bad rate is told in the page and changes nothing.
    let r = post(
        "/queues/jobs/limits",
        vec![("concurrency", "5"), ("rate", "100 per second")],
    )
    .await
    .unwrap();
    assert_eq!(r.headers()["hx-retarget"], "#flow-error");
    assert!(r.text().await.unwrap().contains("LIMIT/PERIOD"));
    assert_eq!(
        s.get("/v1/queues/jobs").await.body["settings"]["concurrency"],
        3
    );
    // A group's own settings.
    let r = post(
        "/queues/jobs/group",
        vec![
            ("group", "acme"),
            ("concurrency", "8"),
            ("weight", "2"),
            ("paused", "1"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    let g = &s.get("/v1/queues/jobs/groups").await.body["groups"][0];
    assert_eq!(g["group"], "acme");
    assert_eq!(
        g["settings"],
        json!({"concurrency": 8, "paused": true, "weight": 2})
    );
    assert_eq!(g["held_by"], "paused");
}

/// The workflows page lists workflows; one is drawn as a graph (a box per task in its state,
/// an arrow per dependency) with its table, and the cancel button ends what has not ended.
#[tokio::test]
async fn a_workflow_is_drawn_with_its_states_and_can_be_cancelled() {
    let s = TestServer::start().await;
    let wf = s
        .post(
            "/v1/workflows",
            json!({"tasks": [{"name": "scrape", "queue": "scrape"},
                             {"name": "evaluate", "queue": "rules", "depends_on": ["scrape"]},
                             {"name": "notify", "queue": "notify", "depends_on": ["evaluate"]}]}),
        )
        .await;
    let id = wf.body["id"].as_str().unwrap().to_owned();
    let session = sign_in(&s, ADMIN).await.unwrap();
    let list = get(&s, "/workflows", &session).await.text().await.unwrap();
    assert!(list.contains(&format!("/workflows/{id}")), "{list}");
    let page = get(&s, &format!("/workflows/{id}"), &session)
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"workflow-graph\""), "{page}");
    assert_eq!(page.matches("class=\"node ready\"").count(), 1, "{page}");
    assert_eq!(page.matches("class=\"node waiting\"").count(), 2, "{page}");
    assert_eq!(page.matches("class=\"edge\"").count(), 2, "{page}");
    assert!(page.contains(&format!("hx-post=\"/workflows/{id}/cancel\"")));
    let fragment = get(&s, &format!("/fragments/workflows/{id}"), &session)
        .await
        .text()
        .await
        .unwrap();
    assert!(fragment.contains("workflow-tasks") && !fragment.contains("<html"));
    let r = http()
        .post(format!("{}/workflows/{id}/cancel", s.url))
        .header("cookie", format!("rota_session={session}"))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let after = s.get(&format!("/v1/workflows/{id}")).await;
    assert_eq!(after.body["state"], "cancelled");
}

#[tokio::test]
async fn the_keys_page_shows_expiry_and_rotation() {
    let s = TestServer::start().await;
    let made = s
        .post(
            "/v1/keys",
            json!({"name": "soon", "roles": ["reader"], "expires_in_s": 3 * 86_400}),
        )
        .await;
    let id = made.body["id"].as_str().unwrap().to_owned();
    let rotated = s
        .post(
            &format!("/v1/keys/{id}/rotate"),
            json!({"grace_ms": 7_200_000}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let session = sign_in(&s, ADMIN).await.unwrap();
    let page = get(&s, "/keys", &session).await.text().await.unwrap();
    let row = page
        .split("<tr>")
        .find(|r| r.contains(&id))
        .unwrap_or_else(|| panic!("no row for {id}: {page}"));
    assert!(
        row.contains("<span class=\"badge\">in 3d 0h</span>"),
        "{row}"
    );
    assert!(row.contains("old secret valid in 2h 0m"), "{row}");
}

/// The hooks page shows each hook the key may read, with the URL to give its provider and the
/// requests it answered; a key without `hooks:read` on a hook does not see it.
#[tokio::test]
async fn the_hooks_page_shows_hooks_and_their_requests_as_far_as_the_key_may_read() {
    let s = TestServer::start().await;
    let token = "gitlab-token-0123456789";
    let mut made = Vec::new();
    for name in ["gitlab-push", "gitlab-tags"] {
        let a = s
            .post(
                "/v1/hooks",
                json!({"name": name, "queue": "mirror", "kind": "push", "verify": "gitlab",
                       "secret": token}),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        made.push(a.body);
    }
    let (push, tags) = (&made[0], &made[1]);
    let (id, other) = (push["id"].as_str().unwrap(), tags["id"].as_str().unwrap());
    let url = push["url"].as_str().unwrap();
    let deliver = |token: &'static str, delivery: &'static str| {
        http()
            .post(url)
            .header("content-type", "application/json")
            .header("x-gitlab-token", token)
            .header("idempotency-key", delivery)
            .body(r#"{"object_kind":"push"}"#)
            .send()
    };
    let r = deliver(token, "delivery-1").await.unwrap();
    assert_eq!(r.status(), 202);
    let task = r.json::<serde_json::Value>().await.unwrap()["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = deliver("not-the-token-0123456", "delivery-2")
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let rotated = s
        .post(
            &format!("/v1/hooks/{other}/rotate-secret"),
            json!({"grace_ms": 7_200_000}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);

    let session = sign_in(&s, ADMIN).await.unwrap();
    let page = get(&s, "/hooks", &session).await.text().await.unwrap();
    assert!(page.contains(r#"<a href="/hooks" class="on">"#), "{page}");
    let card = page
        .split(&format!(r#"id="hook-{id}""#))
        .nth(1)
        .and_then(|rest| rest.split("id=\"hook-").next())
        .unwrap_or_else(|| panic!("no card for {id}: {page}"));
    assert!(card.contains("gitlab-push") && card.contains(url), "{card}");
    assert!(card.contains(r#"<a href="/queues/mirror">"#), "{card}");
    let received = card
        .split("<tr>")
        .find(|r| r.contains("delivery-1"))
        .unwrap_or_else(|| panic!("no row for delivery-1: {card}"));
    assert!(
        received.contains("received")
            && received.contains("202")
            && received.contains(&format!(r#"<a href="/tasks/{task}">"#)),
        "{received}"
    );
    let rejected = card
        .split("<tr>")
        .find(|r| r.contains("rejected"))
        .unwrap_or_else(|| panic!("no row for the refused request: {card}"));
    assert!(
        rejected.contains("rejected")
            && rejected.contains("401")
            && rejected.contains("bad_signature"),
        "{rejected}"
    );
    assert!(!page.contains(token), "the secret is never shown");
    let rotated = page
        .split(&format!(r#"id="hook-{other}""#))
        .nth(1)
        .unwrap_or_else(|| panic!("no card for {other}: {page}"));
    assert!(
        rotated.contains("old secret accepted in 2h 0m"),
        "{rotated}"
    );
    assert!(!card.contains("old secret"), "{card}");

    // A key that may read one hook sees that one only; one without hooks:read sees none.
    let role = json!({"rules": [{"resource": format!("hooks/{id}"), "action": "hooks:read",
                                 "effect": "allow"}]});
    let put = s
        .send("PUT", "/v1/roles/one-hook", Some(&role.to_string()))
        .await;
    assert_eq!(put.status, 201, "{}", put.body);
    for (roles, sees) in [(json!(["one-hook"]), true), (json!(["producer"]), false)] {
        let key = s.post("/v1/keys", json!({"roles": roles})).await;
        let session = sign_in(&s, key.body["token"].as_str().unwrap())
            .await
            .unwrap();
        let page = get(&s, "/hooks", &session).await;
        assert_eq!(page.status(), 200);
        let page = page.text().await.unwrap();
        assert_eq!(
            page.contains(&format!(r#"id="hook-{id}""#)),
            sees,
            "{roles}: {page}"
        );
        assert!(!page.contains(other), "{roles}: {page}");
        if !sees {
            assert!(page.contains("takes hooks:read"), "{page}");
        }
    }
}

/// The audit page lists the tenant's changes newest first, filters them by action, pages
/// through them, and tells a key without `audit:read` what it takes.
#[tokio::test]
async fn the_audit_page_lists_changes_and_follows_permissions() {
    let s = TestServer::start().await;
    for n in 0..55 {
        let a = s
            .send(
                "PATCH",
                "/v1/queues/mail",
                Some(&json!({"max_attempts": 2 + n % 3}).to_string()),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    s.send("POST", "/v1/queues/mail/pause", None).await;
    let session = sign_in(&s, ADMIN).await.unwrap();
    let page = get(&s, "/audit", &session).await.text().await.unwrap();
    assert!(page.contains(r#"<a href="/audit" class="on">"#), "{page}");
    let rows: Vec<&str> = page.split("<tr>").skip(2).collect();
    assert_eq!(rows.len(), 50, "one page of 50");
    assert!(rows[0].contains("queue.pause"), "newest first: {}", rows[0]);
    assert!(page.contains("Older →"), "{page}");
    let older = page
        .split(r#"<a href=""#)
        .find(|p| p.starts_with("/audit?"))
        .and_then(|p| p.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    let rest = get(&s, &older, &session).await.text().await.unwrap();
    assert_eq!(rest.split("<tr>").skip(2).count(), 6, "{older}");
    let paused = get(&s, "/audit?action=queue.pause", &session)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(paused.split("<tr>").skip(2).count(), 1);

    let reader = s.post("/v1/keys", json!({"roles": ["reader"]})).await;
    let reader = sign_in(&s, reader.body["token"].as_str().unwrap())
        .await
        .unwrap();
    let page = get(&s, "/audit", &reader).await.text().await.unwrap();
    assert!(page.contains("takes audit:read"), "{page}");
    assert!(!page.contains("queue.pause"));
}
