//! Maintenance mode through a real server: writes and claims refused with the message and a
//! Retry-After, reads and work already handed out going on, the banner on /readyz and whoami,
//! an end that comes by itself, and only admins may set it.

mod helpers;

use helpers::*;
use serde_json::json;

#[tokio::test]
async fn on_refuses_writes_and_claims_while_reads_and_running_work_go_on() {
    let s = TestServer::start().await;
    let t = s.enqueue("work", json!({"kind": "x"})).await;
    s.enqueue("work", json!({"kind": "x"})).await;
    let c = s.claim("work", json!({"worker": "w", "max": 1})).await[0].clone();

    let until = "2027-01-15T08:02:00.000Z"; // two minutes after the test clock's start
    let on = json!({"mode": "on", "message": "database upgrade", "until": until});
    let set = s
        .send("PUT", "/v1/admin/maintenance", Some(&on.to_string()))
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(set.body["maintenance"]["refusing"], true);
    assert_eq!(set.body["maintenance"]["by"], "admin token");

    let (refused, headers) = s
        .send_full(
            Some(ADMIN),
            &[],
            "POST",
            "/v1/queues/work/tasks",
            Some(r#"{"kind": "x"}"#),
        )
        .await;
    let msg = refused.assert_error(503, "maintenance");
    assert!(
        msg.contains("database upgrade") && msg.contains(until),
        "{msg}"
    );
    assert_eq!(headers["retry-after"], "120");
    s.post("/v1/queues/work/claim", json!({"worker": "w"}))
        .await
        .assert_error(503, "maintenance");
    s.send("PATCH", "/v1/queues/work", Some(r#"{"paused": true}"#))
        .await
        .assert_error(503, "maintenance");

    // Reads work; the banner is on /readyz and whoami.
    assert_eq!(s.get("/v1/queues/work").await.body["counts"]["ready"], 1);
    let ready = s.get("/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body["maintenance"]["message"], "database upgrade");
    let me = s.get("/v1/whoami").await;
    assert_eq!(me.body["maintenance"]["until"], until);

    // The task handed out before may still finish.
    let path = |verb: &str| format!("/v1/tasks/{}/{verb}", id(&t));
    let hb = s
        .post(&path("heartbeat"), json!({"lease": lease(&c)}))
        .await;
    assert_eq!(hb.status, 200, "{}", hb.body);
    let done = s.post(&path("complete"), json!({"lease": lease(&c)})).await;
    assert_eq!(done.status, 200, "{}", done.body);

    // A wrong key is still a 401, not the banner.
    s.send_as(
        Some("rota_nope_nope"),
        "POST",
        "/v1/queues/work/tasks",
        None,
    )
    .await
    .assert_error(401, "unauthorized");

    // At `until` it ends by itself.
    s.clock.advance_ms(120_000);
    s.enqueue("work", json!({"kind": "x"})).await;
    assert!(s.get("/readyz").await.body.get("maintenance").is_none());
    assert!(s.get("/v1/admin/maintenance").await.body["maintenance"].is_null());
}

#[tokio::test]
async fn announce_only_shows_a_banner_and_only_admins_set_it() {
    let s = TestServer::start().await;
    let body = json!({"mode": "announce", "message": "upgrade tonight"});
    let set = s
        .send("PUT", "/v1/admin/maintenance", Some(&body.to_string()))
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    s.enqueue("work", json!({"kind": "x"})).await;
    let me = s.get("/v1/whoami").await;
    assert_eq!(me.body["maintenance"]["message"], "upgrade tonight");
    assert_eq!(me.body["maintenance"]["refusing"], false);

    // Checked input: nothing changes.
    for (bad, word) in [
        (json!({"mode": "on", "message": " "}), "message"),
        (
            json!({"mode": "on", "message": "x", "until": "2020-01-01T00:00:00Z"}),
            "until",
        ),
    ] {
        let r = s
            .send("PUT", "/v1/admin/maintenance", Some(&bad.to_string()))
            .await;
        assert!(r.assert_error(422, "invalid_field").contains(word));
    }
    let bad_mode = s
        .send(
            "PUT",
            "/v1/admin/maintenance",
            Some(r#"{"mode": "later", "message": "x"}"#),
        )
        .await;
    assert_eq!(bad_mode.status, 422, "{}", bad_mode.body);
    assert_eq!(
        s.get("/v1/admin/maintenance").await.body["maintenance"]["refusing"],
        false
    );

    // A tenant admin is not a server admin.
    let key = s.post("/v1/keys", json!({"roles": ["tenant-admin"]})).await;
    let token = key.body["token"].as_str().unwrap().to_owned();
    let on = json!({"mode": "on", "message": "mine"}).to_string();
    s.send_as(Some(&token), "PUT", "/v1/admin/maintenance", Some(&on))
        .await
        .assert_error(403, "forbidden");
    s.send_as(Some(&token), "DELETE", "/v1/admin/maintenance", None)
        .await
        .assert_error(403, "forbidden");

    let off = s.send("DELETE", "/v1/admin/maintenance", None).await;
    assert_eq!(off.status, 200, "{}", off.body);
    assert!(s.get("/v1/whoami").await.body.get("maintenance").is_none());
}
