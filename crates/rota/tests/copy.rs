//! `rota copy`: an embedded data directory moved into an empty PostgreSQL database, then
//! served from there with everything as it was — tasks in every state with their errors,
//! results and leases, queue settings, tenants, keys and roles — and refused into a database
//! that is not empty.

mod common;

use common::start_with;
use rota_client::{ClaimOptions, Client, NewKey, NewTask, QueueSettingsPatch};
use rota_core::auth::{Effect, Rule};
use rota_core::{QueueInfo, Task, TaskState};
use rota_postgres::testing::TestCluster;
use std::process::Command;

const ADMIN: &str = "copy-admin-token-0123456789abcdef0123456789ab";

fn copy(from: &std::path::Path, to: &str, drop_pending: bool) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rota"));
    c.args(["copy", "--from"])
        .arg(from)
        .args(["--to", to, "--batch", "3"])
        .env("ROTA_LOG", "warn");
    if drop_pending {
        c.arg("--drop-pending-deliveries");
    }
    c.output().expect("rota copy runs")
}

fn same(a: &Task, b: &Task) {
    let json = |t: &Task| serde_json::to_value(t).unwrap();
    assert_eq!(json(a), json(b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_moves_to_postgres_with_everything_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("ROTA_ADMIN_TOKEN", ADMIN),
        ("ROTA_WEBHOOKS_ALLOW_PRIVATE", "true"),
        // Port 9: nothing listens there.
        ("ROTA_WEBHOOKS_ALLOWED_PORTS", "1-65535"),
    ];
    let mut embedded = start_with(dir.path(), &env).await;
    let admin = embedded.client.clone();
    admin
        .create_tenant("acme", Default::default(), None)
        .await
        .unwrap();
    let rules = vec![Rule {
        resource: "queues/*".into(),
        action: "tasks:read".into(),
        effect: Effect::Allow,
    }];
    let acme_admin = admin.clone().with_tenant(Some("acme"));
    acme_admin.put_role("peek", &rules).await.unwrap();
    let key = acme_admin
        .create_key(&NewKey {
            name: Some("acme worker".into()),
            roles: vec!["producer".into(), "worker".into(), "peek".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let acme = Client::with_token(&embedded.url, Some(&key.token)).unwrap();
    let schedule = rota_client::ScheduleDef {
        queue: "sync".into(),
        cron: Some("0 3 * * *".into()),
        timezone: Some("Europe/Berlin".into()),
        paused: Some(true),
        ..Default::default()
    };
    acme_admin.put_schedule("nightly", &schedule).await.unwrap();
    let hook = acme_admin
        .create_webhook(&rota_client::NewWebhook {
            url: "http://127.0.0.1:9/hook".into(),
            events: vec!["task.dead".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    // An inbound webhook (access data, like a key): it must take requests after the copy.
    let inbound = reqwest::Client::new()
        .post(format!("{}/v1/hooks", embedded.url))
        .bearer_auth(ADMIN)
        .header("rota-tenant", "acme")
        .json(
            &serde_json::json!({"name": "gitlab", "queue": "sync", "kind": "push",
                                   "verify": "gitlab", "secret": "gitlab-secret-token-1"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(inbound.status(), 201);
    let inbound: serde_json::Value = inbound.json().await.unwrap();
    let inbound_id = inbound["id"].as_str().unwrap().to_owned();
    // A task in every state, over ten tasks so that the copy takes several pages of three.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let t = NewTask::new("mail", &serde_json::json!({ "n": i })).max_attempts(1);
        tasks.push(acme.enqueue("mail", &t).await.unwrap().task.id);
    }
    let mut later = NewTask::new("mail", &serde_json::json!("later")).unique_key("weekly");
    later.delay_ms = Some(3_600_000);
    let scheduled = acme.enqueue("mail", &later).await.unwrap().task.id;
    let claim = |n| ClaimOptions {
        worker: "w1".into(),
        max: n,
        ..Default::default()
    };
    let claimed = acme.claim("mail", &claim(4)).await.unwrap();
    let lease = |t: &Task| t.lease.as_ref().unwrap().token.clone();
    acme.complete(
        claimed[0].id,
        &lease(&claimed[0]),
        Some(serde_json::value::to_raw_value(&serde_json::json!({"sent": true})).unwrap()),
    )
    .await
    .unwrap();
    acme.fail(
        claimed[1].id,
        &lease(&claimed[1]),
        "smtp said no",
        None,
        false,
    )
    .await
    .unwrap();
    acme_admin.cancel(tasks[9]).await.unwrap();
    let running = claimed[2].clone();
    admin
        .enqueue("other", &NewTask::new("x", &serde_json::json!(null)))
        .await
        .unwrap();
    admin
        .update_queue(
            "other",
            &QueueSettingsPatch {
                paused: Some(true),
                max_attempts: Some(7),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let acme_admin = admin.clone().with_tenant(Some("acme"));
    let mut before = Vec::new();
    for id in tasks.iter().chain([&scheduled]) {
        before.push(acme_admin.get(*id).await.unwrap());
    }
    let queues_before = (
        acme_admin.queues().await.unwrap(),
        admin.queues().await.unwrap(),
    );
    let _ = embedded.child.kill();
    embedded.child.wait().unwrap();

    let url = tokio::task::spawn_blocking(|| TestCluster::shared().create_database())
        .await
        .unwrap();
    // The dead task's webhook delivery (to a port nothing listens on) is still to be sent:
    // the copy refuses, naming it and the override, and writes nothing.
    let said = |out: &std::process::Output| {
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
    };
    let out = copy(dir.path(), &url, false);
    let refused = said(&out);
    assert!(!out.status.success(), "{refused}");
    assert!(
        refused.contains("1 webhook deliveries or task callbacks are still waiting")
            && refused.contains("--drop-pending-deliveries")
            && refused.contains("Nothing was copied"),
        "{refused}"
    );
    let out = copy(dir.path(), &url, true);
    let said = said(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("were dropped (--drop-pending-deliveries)"),
        "{said}"
    );
    assert!(said.contains("12 tasks"), "{said}");
    assert!(
        said.contains("1 inbound webhooks, 1 schedules, 1 webhooks"),
        "{said}"
    );

    let pg_dir = tempfile::tempdir().unwrap();
    let pg = start_with(
        pg_dir.path(),
        &[("ROTA_DATABASE_URL", &url), ("ROTA_ADMIN_TOKEN", ADMIN)],
    )
    .await;
    let admin = Client::with_token(&pg.url, Some(ADMIN)).unwrap();
    let acme_admin = admin.clone().with_tenant(Some("acme"));
    let copied = acme_admin.schedule("nightly").await.unwrap();
    assert_eq!(
        (
            copied.cron.as_deref(),
            copied.timezone.as_str(),
            copied.paused
        ),
        (Some("0 3 * * *"), "Europe/Berlin", true)
    );
    let copied_hook = acme_admin.webhook(&hook.id).await.unwrap();
    assert_eq!(copied_hook.events, ["task.dead"]);
    // The audit log came along whole: the embedded server's changes (the webhook's creation
    // among them), in the same order.
    let all = rota_client::AuditQuery {
        limit: Some(500),
        ..Default::default()
    };
    let audit = admin.audit(&all).await.unwrap().entries;
    assert!(
        audit
            .iter()
            .any(|e| e.action == "webhook.create" && e.tenant == "acme"),
        "{audit:?}"
    );
    assert!(
        said.contains(&format!("{} audit entries", audit.len())),
        "{said}"
    );
    for (id, was) in tasks.iter().chain([&scheduled]).zip(&before) {
        same(&acme_admin.get(*id).await.unwrap(), was);
    }
    let queues_after = (
        acme_admin.queues().await.unwrap(),
        admin.queues().await.unwrap(),
    );
    // Everything but the oldest ready task's age, which grew meanwhile, and the shard.
    let settled = |q: &(Vec<QueueInfo>, Vec<QueueInfo>)| {
        let mut v = serde_json::to_value(q).unwrap();
        for list in v.as_array_mut().unwrap() {
            for q in list.as_array_mut().unwrap() {
                q.as_object_mut().unwrap().remove("oldest_ready_age_ms");
                // Where the embedded store kept it; PostgreSQL has no shards.
                q.as_object_mut().unwrap().remove("shard");
            }
        }
        v
    };
    assert_eq!(settled(&queues_after), settled(&queues_before));
    assert_eq!(acme_admin.role("peek").await.unwrap().rules, rules);
    // The key works, the running task's lease still holds, the unique key is still taken.
    let acme = Client::with_token(&pg.url, Some(&key.token)).unwrap();
    let done = acme
        .complete(running.id, &lease(&running), None)
        .await
        .unwrap();
    assert_eq!(done.state, TaskState::Succeeded);
    let again = acme.enqueue("mail", &later).await.unwrap();
    assert!(again.duplicate && again.task.id == scheduled);
    let new = acme
        .enqueue("mail", &NewTask::new("mail", &serde_json::json!(1)))
        .await
        .unwrap();
    assert!(tasks.iter().all(|id| new.task.id > *id));
    let sent = reqwest::Client::new()
        .post(format!("{}/hooks/{inbound_id}", pg.url))
        .header("x-gitlab-token", "gitlab-secret-token-1")
        .body("ping")
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202, "the copied hook takes requests");

    // Into a database that is no longer empty: refused, naming what is there.
    let out = copy(dir.path(), &url, true);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("is not empty") && said.contains("queues"),
        "{said}"
    );
}

/// A task still waiting for a dependency is refused (waits are not carried over), naming how
/// many, and nothing is copied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_waiting_for_dependencies_are_refused_and_nothing_is_copied() {
    let dir = tempfile::tempdir().unwrap();
    let mut embedded = start_with(dir.path(), &[("ROTA_ADMIN_TOKEN", ADMIN)]).await;
    let c = embedded.client.clone();
    let first = c
        .enqueue("scrape", &NewTask::new("scrape", &()))
        .await
        .unwrap();
    let mut then = NewTask::new("rules", &());
    then.depends_on = vec![first.task.id];
    let waiting = c.enqueue("rules", &then).await.unwrap();
    assert_eq!(waiting.task.state, TaskState::Waiting);
    let _ = embedded.child.kill();
    let _ = embedded.child.wait();

    let url = tokio::task::spawn_blocking(|| TestCluster::shared().create_database())
        .await
        .unwrap();
    let out = copy(dir.path(), &url, false);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("1 tasks") && said.contains("waiting for dependencies"),
        "{said}"
    );
    assert!(said.contains("Nothing was copied"), "{said}");
    // Nothing was copied: the database is still empty, so a later copy may fill it.
    let out = copy(dir.path(), &url, false);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains("is not empty"), "{said}");
}
