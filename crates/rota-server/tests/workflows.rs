//! Dependencies and workflows through a real server (docs/workflows.md): the seeds' examples,
//! every kind of bad input refused with a 4xx that stores nothing, and who may name what.

mod helpers;

use helpers::{id, lease, Answer, TestServer, ADMIN};
use serde_json::{json, Value};

async fn run_one(s: &TestServer, queue: &str, result: Value) -> Value {
    let got = s.claim(queue, json!({"worker": "w", "max": 1})).await;
    assert_eq!(got.len(), 1, "one ready task in {queue}");
    let t = &got[0];
    let done = s
        .post(
            &format!("/v1/tasks/{}/complete", id(t)),
            json!({"lease": lease(t), "result": result}),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    t.clone()
}

/// The version monitor's chain: scrape, then evaluate the rules, then notify.
#[tokio::test]
async fn scrape_evaluate_notify_runs_in_order_and_is_read_back() {
    let s = TestServer::start().await;
    let a = s
        .post(
            "/v1/workflows",
            json!({"tasks": [
                {"name": "scrape", "queue": "scrape", "kind": "release.scrape",
                 "payload": {"repo": "rota"}},
                {"name": "evaluate", "queue": "rules", "kind": "rules.evaluate",
                 "depends_on": ["scrape"]},
                {"name": "notify", "queue": "notify", "kind": "notify.send",
                 "depends_on": ["evaluate"]}
            ]}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let wf = a.body["id"].as_str().unwrap().to_owned();
    assert_eq!(a.body["state"], "running");
    let tasks = a.body["tasks"].as_array().unwrap();
    let names: Vec<&str> = tasks.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["scrape", "evaluate", "notify"]);
    let ids: Vec<String> = tasks.iter().map(|t| id(&t["task"])).collect();
    assert_eq!(tasks[0]["task"]["state"], "ready");
    assert_eq!(tasks[1]["task"]["state"], "waiting");
    assert_eq!(tasks[1]["task"]["depends_on"], json!([ids[0]]));
    assert_eq!(tasks[2]["task"]["workflow"], wf);
    assert!(s
        .claim("rules", json!({"worker": "w", "max": 5}))
        .await
        .is_empty());

    run_one(&s, "scrape", json!({"version": "1.2.0"})).await;
    assert_eq!(s.state_of(&ids[1]).await, "ready");
    run_one(&s, "rules", json!({"matched": 1})).await;
    run_one(&s, "notify", json!(null)).await;
    let got = s.get(&format!("/v1/workflows/{wf}")).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.body["state"], "succeeded");
    assert_eq!(got.body["counts"]["succeeded"], 3);
    let list = s.get("/v1/workflows").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.body["workflows"][0]["id"], wf);
    assert!(list.body["workflows"][0].get("tasks").is_none());
    assert_eq!(list.body["next_before"], Value::Null);
    s.stop().await;
}

/// A command queue's master asset, its variants in parallel, and a join; then the registry's
/// mirror and rescan as a task enqueued with `depends_on`.
#[tokio::test]
async fn fan_out_join_and_depends_on_by_id() {
    let s = TestServer::start().await;
    let a = s
        .post(
            "/v1/workflows",
            json!({"tasks": [
                {"name": "master", "queue": "render"},
                {"name": "small", "queue": "variants", "depends_on": ["master"]},
                {"name": "large", "queue": "variants", "depends_on": ["master"]},
                {"name": "join", "queue": "publish", "depends_on": ["small", "large"]}
            ]}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let join = id(&a.body["tasks"][3]["task"]);
    run_one(&s, "render", json!(1)).await;
    run_one(&s, "variants", json!(2)).await;
    assert_eq!(s.state_of(&join).await, "waiting");
    run_one(&s, "variants", json!(3)).await;
    assert_eq!(s.state_of(&join).await, "ready");
    // The join's claim carries its inputs: how each ended, and its result.
    let got = s
        .post("/v1/queues/publish/claim", json!({"worker": "w", "max": 1}))
        .await;
    assert_eq!(got.status, 200, "{}", got.body);
    let deps = got.body["tasks"][0]["dependencies"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(deps.len(), 2);
    let mut results: Vec<i64> = deps.iter().map(|d| d["result"].as_i64().unwrap()).collect();
    results.sort();
    assert_eq!(results, [2, 3]);
    assert!(deps
        .iter()
        .all(|d| d["state"] == "succeeded" && d["queue"] == "variants"));
    // A task that waited for nothing carries no such field.
    let plain = s.enqueue("publish", json!({"kind": "plain"})).await;
    let got = s.claim("publish", json!({"worker": "w", "max": 1})).await;
    assert_eq!(id(&got[0]), id(&plain));
    assert!(got[0].get("dependencies").is_none());

    let mirror = s.enqueue("mirror", json!({"kind": "mirror"})).await;
    let rescan = s
        .enqueue(
            "rescan",
            json!({"kind": "rescan", "depends_on": [id(&mirror)]}),
        )
        .await;
    assert_eq!(rescan["state"], "waiting");
    run_one(&s, "mirror", json!(null)).await;
    assert_eq!(s.state_of(&id(&rescan)).await, "ready");
    s.stop().await;
}

#[tokio::test]
async fn a_failed_dependency_cancels_or_runs_as_asked_and_cancel_ends_a_workflow() {
    let s = TestServer::start().await;
    let up = s
        .enqueue("up", json!({"kind": "a", "max_attempts": 1}))
        .await;
    let cancels = s
        .enqueue("down", json!({"kind": "c", "depends_on": [id(&up)]}))
        .await;
    let runs = s
        .enqueue(
            "down",
            json!({"kind": "r", "depends_on": [id(&up)], "on_dependency_failure": "run"}),
        )
        .await;
    assert_eq!(runs["on_dependency_failure"], "run");
    let t = &s.claim("up", json!({"worker": "w", "max": 1})).await[0];
    let f = s
        .post(
            &format!("/v1/tasks/{}/fail", id(t)),
            json!({"lease": lease(t), "error": "boom"}),
        )
        .await;
    assert_eq!(f.status, 200, "{}", f.body);
    let c = s.get(&format!("/v1/tasks/{}", id(&cancels))).await.body;
    assert_eq!(c["state"], "cancelled");
    let reason = c["errors"][0]["message"].as_str().unwrap();
    assert!(reason.contains(&id(&up)), "{reason}");
    assert_eq!(s.state_of(&id(&runs)).await, "ready");

    let wf = s
        .post(
            "/v1/workflows",
            json!({"tasks": [{"name": "a", "queue": "x"}, {"name": "b", "queue": "y",
                   "depends_on": ["a"]}]}),
        )
        .await;
    let wid = wf.body["id"].as_str().unwrap();
    let c = s
        .post(&format!("/v1/workflows/{wid}/cancel"), json!({}))
        .await;
    assert_eq!(c.status, 200, "{}", c.body);
    assert_eq!(c.body["state"], "cancelled");
    assert_eq!(c.body["counts"]["cancelled"], 2);
    s.stop().await;
}

async fn nothing_stored(s: &TestServer) {
    let list = s.get("/v1/workflows").await;
    assert_eq!(list.body["workflows"], json!([]), "{}", list.body);
    let queues = s.get("/v1/queues").await;
    assert_eq!(queues.body["queues"], json!([]), "{}", queues.body);
}

#[tokio::test]
async fn bad_graphs_and_bad_dependencies_are_refused_and_store_nothing() {
    let s = TestServer::start().await;
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"tasks": [{"name": "a", "queue": "q", "depends_on": ["c"]},
                             {"name": "b", "queue": "q", "depends_on": ["a"]},
                             {"name": "c", "queue": "q", "depends_on": ["b"]}]}),
            422,
            "cycle",
        ),
        (
            json!({"tasks": [{"name": "a", "queue": "q", "depends_on": ["nope"]}]}),
            422,
            "`nope` is not the name",
        ),
        (
            json!({"tasks": [{"name": "a", "queue": "q"}, {"name": "a", "queue": "q"}]}),
            422,
            "names two tasks",
        ),
        (
            json!({"tasks": [{"name": "a", "queue": "q", "unique_key": "k"}]}),
            422,
            "unknown field `unique_key`",
        ),
        (json!({"tasks": []}), 422, "empty"),
        (
            json!({"tasks": [{"name": "a", "queue": "q", "on_dependency_failure": "run"}]}),
            422,
            "needs depends_on",
        ),
        (
            json!({"tasks": [{"name": "a", "queue": "bad queue name!"}]}),
            400,
            "",
        ),
    ];
    for (body, status, words) in cases {
        let a = s.post("/v1/workflows", body.clone()).await;
        assert_eq!(a.status, status, "{body}: {}", a.body);
        let msg = a.body["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(words), "{body}: {msg}");
    }
    nothing_stored(&s).await;

    for (deps, words) in [
        (json!(["not-an-id"]), "not a Rota task id"),
        (
            json!(["01a3185c-5000-7000-8000-000000000000"]),
            "does not exist",
        ),
    ] {
        let a = s
            .post(
                "/v1/queues/q/tasks",
                json!({"kind": "x", "depends_on": deps}),
            )
            .await;
        let msg = a.assert_error(422, "invalid_field");
        assert!(msg.contains(words), "{msg}");
    }
    let a = s
        .post(
            "/v1/queues/q/tasks",
            json!({"kind": "x", "on_dependency_failure": "cancel"}),
        )
        .await;
    a.assert_error(422, "invalid_field");
    nothing_stored(&s).await;
    // Debounce cannot take new dependencies: refused rather than dropping them.
    let dep = s.enqueue("deps", json!({"kind": "d"})).await;
    let a = s
        .post(
            "/v1/queues/q/tasks",
            json!({"kind": "x", "unique_key": "k", "on_duplicate": "replace",
                   "depends_on": [id(&dep)]}),
        )
        .await;
    let msg = a.assert_error(422, "invalid_field");
    assert!(msg.contains("replace"), "{msg}");
    s.stop().await;
}

#[tokio::test]
async fn a_key_names_only_dependencies_it_may_read() {
    let s = TestServer::start().await;
    let secret = s.enqueue("secret", json!({"kind": "x"})).await;
    let k = s
        .post(
            "/v1/keys",
            json!({"roles": ["producer"], "queues": ["mine"], "name": "p"}),
        )
        .await;
    assert_eq!(k.status, 201, "{}", k.body);
    let token = k.body["token"].as_str().unwrap();
    let body = json!({"kind": "x", "depends_on": [id(&secret)]}).to_string();
    let a: Answer = s
        .send_as(Some(token), "POST", "/v1/queues/mine/tasks", Some(&body))
        .await;
    assert_eq!(a.status, 403, "{}", a.body);
    // The admin may.
    let ok = s
        .send_as(Some(ADMIN), "POST", "/v1/queues/mine/tasks", Some(&body))
        .await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    // And a workflow into a queue the key may not write is refused whole.
    let wf = json!({"tasks": [{"name": "a", "queue": "mine"}, {"name": "b", "queue": "other"}]})
        .to_string();
    let a = s
        .send_as(Some(token), "POST", "/v1/workflows", Some(&wf))
        .await;
    assert_eq!(a.status, 403, "{}", a.body);
    s.stop().await;
}

/// Sidekiq's "complete" and "success" callbacks: the callback waits for every member, runs
/// once whatever they ended as (or only if all succeeded), and its claim says how each ended.
#[tokio::test]
async fn a_batch_runs_its_callback_once_with_its_members_outcomes() {
    let s = TestServer::start().await;
    let a = s
        .post(
            "/v1/batches",
            json!({"tasks": [{"queue": "work", "kind": "a"},
                             {"queue": "work", "kind": "b", "max_attempts": 1},
                             {"queue": "work", "kind": "c"}],
                   "callback": {"queue": "done", "kind": "report", "payload": {"to": "ops"}}}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["kind"], "batch");
    let bid = a.body["id"].as_str().unwrap().to_owned();
    let tasks = a.body["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 4);
    assert_eq!(tasks[3]["name"], "callback");
    assert_eq!(tasks[3]["task"]["state"], "waiting");
    let ids: Vec<String> = tasks.iter().map(|t| id(&t["task"])).collect();
    let members = s.claim("work", json!({"worker": "w", "max": 3})).await;
    let by_kind = |k: &str| members.iter().find(|t| t["kind"] == k).unwrap().clone();
    let (ta, tb) = (by_kind("a"), by_kind("b"));
    let ok = s
        .post(
            &format!("/v1/tasks/{}/complete", id(&ta)),
            json!({"lease": lease(&ta)}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let f = s
        .post(
            &format!("/v1/tasks/{}/fail", id(&tb)),
            json!({"lease": lease(&tb), "error": "boom"}),
        )
        .await;
    assert_eq!(f.status, 200, "{}", f.body);
    assert_eq!(s.state_of(&ids[3]).await, "waiting");
    let c = s
        .post(&format!("/v1/tasks/{}/cancel", ids[2]), json!({}))
        .await;
    assert_eq!(c.status, 200, "{}", c.body);
    let got = s
        .post("/v1/queues/done/claim", json!({"worker": "w", "max": 5}))
        .await;
    let claimed = got.body["tasks"].as_array().unwrap();
    assert_eq!(claimed.len(), 1, "the callback runs once: {}", got.body);
    let batch = &claimed[0]["batch"];
    assert_eq!(batch["id"], bid);
    assert_eq!(batch["succeeded"], json!([ids[0]]));
    assert_eq!(batch["dead"], json!([ids[1]]));
    assert_eq!(batch["cancelled"], json!([ids[2]]));
    assert_eq!(claimed[0]["payload"], json!({"to": "ops"}));
    let read = s.get(&format!("/v1/batches/{bid}")).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["counts"]["running"], 1);

    // "success": a member that dies cancels the callback.
    let a = s
        .post(
            "/v1/batches",
            json!({"tasks": [{"queue": "work2", "kind": "x"}],
                   "callback": {"queue": "done2", "kind": "report"},
                   "only_on_success": true}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let cb = id(&a.body["tasks"][1]["task"]);
    let t = &s.claim("work2", json!({"worker": "w", "max": 1})).await[0];
    s.post(
        &format!("/v1/tasks/{}/fail", id(t)),
        json!({"lease": lease(t), "error": "boom", "dead": true}),
    )
    .await;
    assert_eq!(s.state_of(&cb).await, "cancelled");

    // A workflow is not a batch; a member has no name; an empty batch is refused.
    let wf = s
        .post(
            "/v1/workflows",
            json!({"tasks": [{"name": "a", "queue": "q"}]}),
        )
        .await;
    let wid = wf.body["id"].as_str().unwrap();
    s.get(&format!("/v1/batches/{wid}"))
        .await
        .assert_error(404, "batch_not_found");
    for body in [
        json!({"tasks": [{"queue": "q", "name": "n"}], "callback": {"queue": "q"}}),
        json!({"tasks": [], "callback": {"queue": "q"}}),
        json!({"tasks": [{"queue": "q"}], "callback": {"queue": "q", "depends_on": ["x"]}}),
    ] {
        let a = s.post("/v1/batches", body.clone()).await;
        assert_eq!(a.status, 422, "{body}: {}", a.body);
    }
    s.stop().await;
}
