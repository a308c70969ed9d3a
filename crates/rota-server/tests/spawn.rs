//! Tasks added after a submission, through a real server (docs/workflows.md): a running task
//! that spawns tasks and runs again with their results, and open batches.

mod helpers;

use helpers::{id, lease, TestServer};
use serde_json::json;

/// Fetch the pages found at run time, then merge: the lister spawns the fetches, waits, and
/// runs again with their results; what waits for the lister waits for the fetches too.
#[tokio::test]
async fn a_task_spawns_fetches_and_merges_their_results() {
    let s = TestServer::start().await;
    let list = s.enqueue("list", json!({"kind": "list"})).await;
    let notify = s
        .enqueue(
            "notify",
            json!({"kind": "notify", "depends_on": [id(&list)]}),
        )
        .await;
    let running = &s.claim("list", json!({"worker": "w", "max": 1})).await[0];
    let pages: Vec<_> = (0..3)
        .map(|i| json!({"queue": "pages", "kind": "fetch", "payload": {"page": i}}))
        .collect();
    let spawned = s
        .post(
            &format!("/v1/tasks/{}/spawn", id(running)),
            json!({"lease": lease(running), "tasks": pages}),
        )
        .await;
    assert_eq!(spawned.status, 201, "{}", spawned.body);
    assert_eq!(spawned.body["task"]["state"], "waiting");
    assert_eq!(spawned.body["tasks"].as_array().unwrap().len(), 3);
    // The lease was given up: completing or spawning under it again is refused.
    s.post(
        &format!("/v1/tasks/{}/spawn", id(running)),
        json!({"lease": lease(running), "tasks": [{"queue": "pages"}]}),
    )
    .await
    .assert_error(409, "lease_lost");
    s.post(
        &format!("/v1/tasks/{}/complete", id(running)),
        json!({"lease": lease(running)}),
    )
    .await
    .assert_error(409, "lease_lost");

    for n in 0..3 {
        let t = &s.claim("pages", json!({"worker": "w", "max": 1})).await[0];
        let done = s
            .post(
                &format!("/v1/tasks/{}/complete", id(t)),
                json!({"lease": lease(t), "result": {"rows": n * 10}}),
            )
            .await;
        assert_eq!(done.status, 200, "{}", done.body);
    }
    assert_eq!(s.state_of(&id(&list)).await, "ready");
    assert_eq!(s.state_of(&id(&notify)).await, "waiting");
    let again = &s.claim("list", json!({"worker": "w", "max": 1})).await[0];
    assert_eq!(id(again), id(&list));
    assert_eq!(again["attempt"], 1, "a spawn does not spend an attempt");
    let deps = again["dependencies"].as_array().unwrap();
    let mut rows: Vec<i64> = deps
        .iter()
        .map(|d| d["result"]["rows"].as_i64().unwrap())
        .collect();
    rows.sort();
    assert_eq!(rows, [0, 10, 20]);
    let done = s
        .post(
            &format!("/v1/tasks/{}/complete", id(again)),
            json!({"lease": lease(again), "result": "merged"}),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(s.state_of(&id(&notify)).await, "ready");
    s.stop().await;
}

/// Every bad spawn is refused with a 4xx that names the problem and stores nothing.
#[tokio::test]
async fn bad_spawns_are_refused_and_store_nothing() {
    let s = TestServer::start().await;
    s.enqueue("work", json!({"kind": "w"})).await;
    let t = &s.claim("work", json!({"worker": "w", "max": 1})).await[0];
    let path = format!("/v1/tasks/{}/spawn", id(t));
    for (body, status) in [
        (json!({"lease": lease(t), "tasks": []}), 422),
        (
            json!({"lease": lease(t), "tasks": [{"queue": "kids", "name": "n"}]}),
            422,
        ),
        (
            json!({"lease": lease(t), "tasks": [{"queue": "kids", "unique_key": "u"}]}),
            422,
        ),
        (
            json!({"lease": lease(t), "tasks": [{"queue": "bad queue!"}]}),
            400,
        ),
        (
            json!({"lease": lease(t), "tasks": [{"queue": "kids"}], "on_dependency_failure": "maybe"}),
            422,
        ),
        (json!({"tasks": [{"queue": "kids"}]}), 422),
    ] {
        let a = s.post(&path, body.clone()).await;
        assert_eq!(a.status, status, "{body}: {}", a.body);
        assert!(a.body["error"]["message"].as_str().is_some(), "{}", a.body);
    }
    s.post(
        &path,
        json!({"lease": "nope", "tasks": [{"queue": "kids"}]}),
    )
    .await
    .assert_error(409, "lease_lost");
    s.post(
        "/v1/tasks/0190b6a1-0000-7000-8000-000000000000/spawn",
        json!({"lease": "x", "tasks": [{"queue": "kids"}]}),
    )
    .await
    .assert_error(404, "task_not_found");
    let kids = s.get("/v1/queues/kids").await;
    assert!(
        kids.status == 404 || kids.body["counts"]["ready"] == 0,
        "{}",
        kids.body
    );
    assert_eq!(s.state_of(&id(t)).await, "running");
    s.stop().await;
}

/// A report gateway collects rows as they are found, then closes the batch: the report runs
/// once, after the close and every row.
#[tokio::test]
async fn an_open_batch_takes_rows_until_it_is_closed() {
    let s = TestServer::start().await;
    let b = s
        .post(
            "/v1/batches",
            json!({"tasks": [], "open": true,
                   "callback": {"queue": "reports", "kind": "report"}}),
        )
        .await;
    assert_eq!(b.status, 201, "{}", b.body);
    assert_eq!(b.body["open"], true);
    let bid = b.body["id"].as_str().unwrap().to_owned();
    let cb = id(&b.body["tasks"][0]["task"]);
    let add = s
        .post(
            &format!("/v1/batches/{bid}/tasks"),
            json!({"tasks": [{"queue": "rows", "kind": "row"}, {"queue": "rows", "kind": "row"}]}),
        )
        .await;
    assert_eq!(add.status, 201, "{}", add.body);
    assert_eq!(add.body["tasks"].as_array().unwrap().len(), 2);
    for t in s.claim("rows", json!({"worker": "w", "max": 2})).await {
        s.post(
            &format!("/v1/tasks/{}/complete", id(&t)),
            json!({"lease": lease(&t)}),
        )
        .await;
    }
    assert_eq!(
        s.state_of(&cb).await,
        "waiting",
        "open: waits for the close"
    );
    let closed = s.post(&format!("/v1/batches/{bid}/close"), json!({})).await;
    assert_eq!(closed.status, 200, "{}", closed.body);
    assert_eq!(closed.body["open"], false);
    assert_eq!(closed.body["counts"]["succeeded"], 2);
    assert_eq!(s.state_of(&cb).await, "ready");
    let report = &s.claim("reports", json!({"worker": "w", "max": 1})).await[0];
    assert_eq!(report["batch"]["succeeded"].as_array().unwrap().len(), 2);
    // Closed: more rows are refused, closing again changes nothing.
    s.post(
        &format!("/v1/batches/{bid}/tasks"),
        json!({"tasks": [{"queue": "rows"}]}),
    )
    .await
    .assert_error(409, "conflict");
    let again = s.post(&format!("/v1/batches/{bid}/close"), json!({})).await;
    assert_eq!(again.status, 200, "{}", again.body);
    // Not a batch, not there, bad members.
    let wf = s
        .post(
            "/v1/workflows",
            json!({"tasks": [{"name": "a", "queue": "q"}]}),
        )
        .await;
    let wid = wf.body["id"].as_str().unwrap();
    let a = s
        .post(
            &format!("/v1/batches/{wid}/tasks"),
            json!({"tasks": [{"queue": "rows"}]}),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.body);
    s.post(
        "/v1/batches/0190b6a1-0000-7000-8000-000000000000/tasks",
        json!({"tasks": [{"queue": "rows"}]}),
    )
    .await
    .assert_error(404, "workflow_not_found");
    let open = s
        .post(
            "/v1/batches",
            json!({"tasks": [], "open": true, "callback": {"queue": "reports"}}),
        )
        .await;
    let oid = open.body["id"].as_str().unwrap();
    for body in [
        json!({"tasks": []}),
        json!({"tasks": [{"queue": "rows", "depends_on": ["x"]}]}),
        json!({"tasks": [{"queue": "rows"}], "extra": 1}),
    ] {
        let a = s
            .post(&format!("/v1/batches/{oid}/tasks"), body.clone())
            .await;
        assert!(a.status == 400 || a.status == 422, "{body}: {}", a.body);
    }
    // A closed batch without `open` still needs members.
    let a = s
        .post(
            "/v1/batches",
            json!({"tasks": [], "callback": {"queue": "q"}}),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.body);
    s.stop().await;
}
