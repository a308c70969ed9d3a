//! Schedules through a real server, driven by a manual clock: the scheduler's pass is called
//! after each clock move (no sleeps), as the background loop would.

mod helpers;

use helpers::*;
use rota_core::schedule::local;
use rota_core::Timestamp;
use rota_store::DynStore;
use serde_json::{json, Value};

async fn pass(s: &TestServer) {
    let store: DynStore = s.store.clone();
    rota_server::background::schedules::fire_due(&store, &s.clock)
        .await
        .unwrap();
}

fn at(v: &Value) -> Timestamp {
    Timestamp::parse_rfc3339(v.as_str().unwrap()).unwrap()
}

async fn put(s: &TestServer, name: &str, body: Value) -> Answer {
    s.send(
        "PUT",
        &format!("/v1/schedules/{name}"),
        Some(&body.to_string()),
    )
    .await
}

#[tokio::test]
async fn a_tick_enqueues_one_task_and_definitions_are_checked() {
    let s = TestServer::start().await;
    s.clock.set(local("UTC", 2027, 1, 15, 8, 20).unwrap());
    let body = json!({"queue": "mirrors", "kind": "sync", "cron": "0 * * * *",
                      "payload": {"mirror": "crates"}, "priority": 2});
    let made = put(&s, "hourly", body.clone()).await;
    assert_eq!(made.status, 201, "{}", made.body);
    let next = at(&made.body["next_run_at"]);
    assert_eq!(next, local("UTC", 2027, 1, 15, 9, 0).unwrap());
    assert_eq!(put(&s, "hourly", body).await.status, 200);

    for (bad, word) in [
        (json!({"queue": "q", "cron": "61 * * * *"}), "cron"),
        (
            json!({"queue": "q", "cron": "0 3 * * *", "timezone": "Mars/Base"}),
            "timezone",
        ),
        (json!({"queue": "q"}), "every_ms"),
        (
            json!({"queue": "q", "every_ms": 5000, "cron": "* * * * *"}),
            "either",
        ),
        (json!({"queue": "q", "every_ms": 10}), "every_ms"),
    ] {
        let r = put(&s, "bad", bad).await;
        let msg = r.assert_error(422, "invalid_field");
        assert!(msg.contains(word), "{msg}");
    }
    put(&s, "bad name!", json!({"queue": "q", "every_ms": 5000}))
        .await
        .assert_error(400, "bad_request");
    s.get("/v1/schedules/bad")
        .await
        .assert_error(404, "schedule_not_found");

    // Not due yet: nothing. Due: one task, and the same tick again does nothing.
    pass(&s).await;
    assert_eq!(s.count("mirrors").await, 0);
    s.clock.set(next);
    pass(&s).await;
    pass(&s).await;
    assert_eq!(s.count("mirrors").await, 1);
    let got = s.get("/v1/schedules/hourly").await.body;
    assert_eq!(at(&got["next_run_at"]), next.plus_ms(3_600_000));
    let run = &got["runs"][0];
    assert_eq!(at(&run["tick"]), next);
    assert_eq!(run["outcome"], "ready");
    let task = s
        .get(&format!("/v1/tasks/{}", run["task_id"].as_str().unwrap()))
        .await
        .body;
    assert_eq!(task["kind"], "sync");
    assert_eq!(task["payload"], json!({"mirror": "crates"}));
    assert_eq!(task["unique_key"], format!("schedule:hourly:{}", next.0));

    // A manual trigger runs now and leaves the ticks alone; paused, nothing fires.
    let t = s.post("/v1/schedules/hourly/trigger", json!({})).await;
    assert_eq!(t.status, 200, "{}", t.body);
    assert_eq!(t.body["runs"][0]["trigger"], "manual");
    assert_eq!(s.count("mirrors").await, 2);
    let p = s.post("/v1/schedules/hourly/pause", json!({})).await;
    assert!(p.body["next_run_at"].is_null() && p.body["paused"] == true);
    s.clock.advance_ms(7_200_000);
    pass(&s).await;
    assert_eq!(s.count("mirrors").await, 2);
    let r = s.post("/v1/schedules/hourly/resume", json!({})).await;
    assert!(at(&r.body["next_run_at"]) > rota_core::Clock::now(&s.clock));
    let listed = s.get("/v1/schedules").await.body;
    assert_eq!(listed["schedules"].as_array().unwrap().len(), 1);
    assert!(
        listed["schedules"][0].get("group").is_none(),
        "no group, no field"
    );
    // A schedule's group is read back as it was given (and its tasks carry it).
    let grouped = put(
        &s,
        "per-org",
        json!({"queue": "mirrors", "every_ms": 60_000, "group": "org-42"}),
    )
    .await;
    assert_eq!(grouped.body["group"], "org-42", "{}", grouped.body);
    assert_eq!(s.get("/v1/schedules/per-org").await.body["group"], "org-42");
    let fired = s
        .post("/v1/schedules/per-org/trigger", json!({}))
        .await
        .body;
    let task = s
        .get(&format!(
            "/v1/tasks/{}",
            fired["runs"][0]["task_id"].as_str().unwrap()
        ))
        .await
        .body;
    assert_eq!(task["group"], "org-42");
    s.send("DELETE", "/v1/schedules/per-org", None).await;
    assert_eq!(
        s.send("DELETE", "/v1/schedules/hourly", None).await.status,
        200
    );
    s.get("/v1/schedules/hourly")
        .await
        .assert_error(404, "schedule_not_found");
    s.stop().await;
}

#[tokio::test]
async fn ticks_follow_local_time_across_a_daylight_saving_change() {
    let s = TestServer::start().await;
    // Berlin springs forward on 2027-03-28 at 02:00; 02:30 does not exist that night.
    s.clock.set(local("UTC", 2027, 3, 27, 12, 0).unwrap());
    let made = put(
        &s,
        "nightly",
        json!({"queue": "reports", "cron": "30 2 * * *", "timezone": "Europe/Berlin"}),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let first = at(&made.body["next_run_at"]);
    assert_eq!(
        first,
        local("UTC", 2027, 3, 28, 1, 0).unwrap(),
        "03:00 CEST"
    );
    s.clock.set(first);
    pass(&s).await;
    let got = s.get("/v1/schedules/nightly").await.body;
    assert_eq!(
        at(&got["next_run_at"]),
        local("UTC", 2027, 3, 29, 0, 30).unwrap(),
        "02:30 CEST"
    );
    assert_eq!(s.count("reports").await, 1);
    s.stop().await;
}

#[tokio::test]
async fn catch_up_after_downtime_and_overlap_skip() {
    let s = TestServer::start().await;
    s.clock.set(local("UTC", 2027, 1, 15, 0, 0).unwrap());
    for (name, catch_up) in [("all", "all"), ("latest", "latest"), ("none", "none")] {
        let r = put(
            &s,
            name,
            json!({"queue": name, "cron": "0 * * * *", "catch_up": catch_up}),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    // Down from before 01:00 until 05:30: ticks 01:00 to 05:00 were missed.
    s.clock.set(local("UTC", 2027, 1, 15, 5, 30).unwrap());
    pass(&s).await;
    assert_eq!(s.count("all").await, 5);
    assert_eq!(s.count("latest").await, 1);
    assert_eq!(s.count("none").await, 0);
    let none = s.get("/v1/schedules/none").await.body;
    assert!(
        none["runs"][0]["skipped"]
            .as_str()
            .unwrap()
            .contains("missed 5"),
        "{none}"
    );
    assert_eq!(
        at(&none["next_run_at"]),
        local("UTC", 2027, 1, 15, 6, 0).unwrap()
    );

    // overlap: skip fires nothing while the last run's task is live.
    let r = put(
        &s,
        "exclusive",
        json!({"queue": "ex", "every_ms": 60000, "overlap": "skip"}),
    )
    .await;
    let tick = at(&r.body["next_run_at"]);
    s.clock.set(tick);
    pass(&s).await;
    assert_eq!(s.count("ex").await, 1);
    s.clock.set(tick.plus_ms(60_000));
    pass(&s).await;
    assert_eq!(s.count("ex").await, 1);
    let got = s.get("/v1/schedules/exclusive").await.body;
    assert!(got["runs"][0]["skipped"]
        .as_str()
        .unwrap()
        .starts_with("overlap"));
    let c = s.claim("ex", json!({"worker": "w"})).await.remove(0);
    s.post(
        &format!("/v1/tasks/{}/complete", id(&c)),
        json!({"lease": lease(&c)}),
    )
    .await;
    s.clock.set(tick.plus_ms(120_000));
    pass(&s).await;
    let got = s.get("/v1/schedules/exclusive").await.body;
    assert!(got["runs"][0]["task_id"].is_string(), "{got}");
    s.stop().await;
}

#[tokio::test]
async fn schedules_belong_to_a_tenant_and_need_their_permissions() {
    let s = TestServer::start().await;
    assert_eq!(
        put(&s, "mine", json!({"queue": "q", "every_ms": 60000}))
            .await
            .status,
        201
    );
    assert_eq!(
        s.post("/v1/admin/tenants", json!({"name": "acme"}))
            .await
            .status,
        201
    );
    let key = |role: &str| {
        let s = &s;
        let body = json!({"roles": [role]}).to_string();
        async move {
            let (r, _) = s
                .send_full(
                    Some(ADMIN),
                    &[("rota-tenant", "acme")],
                    "POST",
                    "/v1/keys",
                    Some(&body),
                )
                .await;
            r.body["token"].as_str().unwrap().to_owned()
        }
    };
    let (reader, admin) = (key("reader").await, key("tenant-admin").await);
    let other = s
        .send_as(Some(&admin), "GET", "/v1/schedules/mine", None)
        .await;
    assert_eq!(other.status, 404);
    let body = json!({"queue": "q", "every_ms": 60000}).to_string();
    let made = s
        .send_as(Some(&admin), "PUT", "/v1/schedules/theirs", Some(&body))
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let listed = s.send_as(Some(&reader), "GET", "/v1/schedules", None).await;
    assert_eq!(listed.body["schedules"][0]["name"], "theirs");
    assert_eq!(listed.body["schedules"].as_array().unwrap().len(), 1);
    let refused = s
        .send_as(Some(&reader), "PUT", "/v1/schedules/x", Some(&body))
        .await;
    assert_eq!(refused.status, 403);
    s.stop().await;
}

#[tokio::test]
async fn ticks_are_logged_and_seen_only_with_leave_to_read_the_schedule() {
    let s = TestServer::start().await;
    s.clock.set(local("UTC", 2027, 1, 15, 8, 0).unwrap());
    let body = json!({"queue": "mirrors", "kind": "sync", "every_ms": 60000, "overlap": "skip"});
    assert_eq!(put(&s, "sync", body).await.status, 201);
    s.clock.advance_ms(60_000);
    pass(&s).await; // fires
    s.clock.advance_ms(60_000);
    pass(&s).await; // skipped: the first run is still ready
    let r = s.get("/v1/events?types=schedule.*").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let events = r.body["events"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["schedule.fired", "schedule.skipped"]);
    let (fired, skipped) = (&events[0], &events[1]);
    assert_eq!(fired["data"]["schedule"], "sync");
    assert_eq!(
        (fired["queue"].as_str(), fired["kind"].as_str()),
        (Some("mirrors"), Some("sync"))
    );
    let task = s.get("/v1/queues/mirrors/tasks").await.body["tasks"][0].clone();
    assert_eq!(fired["task_id"], task["id"]);
    assert!(skipped.get("task_id").is_none(), "{skipped}");
    assert!(skipped["data"]["reason"]
        .as_str()
        .unwrap()
        .contains("overlap"));
    assert_eq!(
        at(&skipped["data"]["tick"]),
        local("UTC", 2027, 1, 15, 8, 2).unwrap()
    );

    // A key that may read the queue's tasks but not schedules sees the task, not the ticks.
    let role =
        json!({"rules": [{"resource": "queues/*", "action": "tasks:read", "effect": "allow"}]});
    let made = s
        .send("PUT", "/v1/roles/tasks-only", Some(&role.to_string()))
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let key = s.post("/v1/keys", json!({"roles": ["tasks-only"]})).await;
    let token = key.body["token"].as_str().unwrap().to_owned();
    let seen = s.send_as(Some(&token), "GET", "/v1/events", None).await;
    let types: Vec<&str> = seen.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["task.enqueued"], "{}", seen.body);
    s.stop().await;
}
