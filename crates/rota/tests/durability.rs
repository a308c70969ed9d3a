//! Durability: kill the real binary with SIGKILL while clients enqueue, claim and complete, then
//! restart it on the same data dir and check that every acknowledged enqueue is present exactly
//! once and every acknowledged completion is still `succeeded`; with one shard, and with four
//! (queues spread over four files and writers).

mod common;

use common::start_with;
use rota_client::{
    ClaimOptions, Client, CompleteItem, ListOptions, NewTask, QueueSettingsPatch, Rate,
};
use rota_core::{TaskId, TaskState};
use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The queues of a run: one, or four spread over the shards.
fn queues(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("durable{i}")).collect()
}

#[derive(Default)]
struct Acked {
    /// Task id → the sequence number in its payload.
    enqueued: Mutex<HashMap<TaskId, u64>>,
    completed: Mutex<HashSet<TaskId>>,
    enqueue_count: AtomicU64,
    complete_count: AtomicU64,
    progress: tokio::sync::Notify,
}

fn seq_of(payload: &serde_json::value::RawValue) -> u64 {
    let v: serde_json::Value = serde_json::from_str(payload.get()).unwrap();
    v["seq"].as_u64().unwrap()
}

/// Producers enqueue single tasks and small batches; consumers claim and complete, alone and in
/// batches. Each records only what the server acknowledged.
fn workload(
    client: &Client,
    acked: &Arc<Acked>,
    round: u64,
    queues: &[String],
    grouped: bool,
) -> Vec<tokio::task::JoinHandle<()>> {
    let next_seq = Arc::new(AtomicU64::new(round * 1_000_000));
    let mut handles = Vec::new();
    for p in 0..4 {
        let (client, acked, next_seq) = (client.clone(), acked.clone(), next_seq.clone());
        let queue = queues[p % queues.len()].clone();
        handles.push(tokio::spawn(async move {
            loop {
                let n = if p % 2 == 0 { 1 } else { 10 };
                let tasks: Vec<NewTask> = (0..n)
                    .map(|_| {
                        let seq = next_seq.fetch_add(1, Ordering::Relaxed);
                        let t = NewTask::new("durable.job", &serde_json::json!({ "seq": seq }));
                        if grouped {
                            t.group(format!("g{}", seq % 7))
                        } else {
                            t
                        }
                    })
                    .collect();
                let Ok(out) = client.enqueue_batch(&queue, &tasks).await else {
                    return; // the server is gone
                };
                let mut map = acked.enqueued.lock().unwrap();
                for e in out {
                    map.insert(e.task.id, seq_of(&e.task.payload));
                }
                drop(map);
                acked.enqueue_count.fetch_add(n, Ordering::Relaxed);
                acked.progress.notify_waiters();
            }
        }));
    }
    for w in 0..4 {
        let (client, acked) = (client.clone(), acked.clone());
        let queue = queues[w % queues.len()].clone();
        handles.push(tokio::spawn(async move {
            let opts = ClaimOptions {
                worker: format!("w{w}"),
                max: 10,
                wait_ms: Some(200),
                ..Default::default()
            };
            loop {
                let Ok(tasks) = client.claim(&queue, &opts).await else {
                    return;
                };
                let lease = |t: &rota_core::Task| t.lease.as_ref().unwrap().token.clone();
                let done: Vec<TaskId> = if w % 2 == 0 {
                    let mut done = Vec::new();
                    for t in &tasks {
                        match client.complete(t.id, &lease(t), None).await {
                            Ok(_) => done.push(t.id),
                            Err(_) => break,
                        }
                    }
                    done
                } else {
                    let items: Vec<CompleteItem> = tasks
                        .iter()
                        .map(|t| CompleteItem {
                            id: t.id,
                            lease: lease(t),
                            result: None,
                        })
                        .collect();
                    if items.is_empty() {
                        continue;
                    }
                    match client.complete_batch(&items).await {
                        Ok(out) => out
                            .iter()
                            .filter(|o| o.ok)
                            .map(|o| o.id.parse().unwrap())
                            .collect(),
                        Err(_) => return,
                    }
                };
                let n = done.len() as u64;
                acked.completed.lock().unwrap().extend(done);
                acked.complete_count.fetch_add(n, Ordering::Relaxed);
                acked.progress.notify_waiters();
            }
        }));
    }
    handles
}

async fn all_tasks(client: &Client, queue: &str) -> Vec<rota_core::Task> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = client
            .list(
                queue,
                &ListOptions {
                    limit: Some(1_000),
                    cursor: cursor.take(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        out.extend(page.tasks);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill() {
    survive_sigkill("1", 1, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill_with_four_shards() {
    survive_sigkill("4", 4, None).await;
}

/// The same with flow control on: the queues limited (concurrency, rate, per-group
/// concurrency) and every task in one of seven groups. The limits survive too, and the
/// restarted server never has more running than they allow.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill_with_limits_and_groups() {
    let limits = QueueSettingsPatch {
        concurrency: Some(Some(12)),
        rate: Some(Some(Rate {
            limit: 100_000,
            period_ms: 1_000,
            burst: 100,
        })),
        group_concurrency: Some(Some(3)),
        // Leases left by the killed server come back soon, so the next round makes progress.
        lease_ms: Some(2_000),
        ..Default::default()
    };
    survive_sigkill("4", 2, Some(limits)).await;
}

async fn survive_sigkill(shards: &str, queue_count: usize, limits: Option<QueueSettingsPatch>) {
    let dir = tempfile::tempdir().unwrap();
    let env = [("ROTA_SHARDS", shards)];
    let queues = queues(queue_count);
    let mut total_enqueued = 0;
    for round in 0..3 {
        let mut server = start_with(dir.path(), &env).await;
        if let (Some(l), 0) = (&limits, round) {
            for q in &queues {
                server.client.update_queue(q, l).await.unwrap();
            }
        }
        let acked = Arc::new(Acked::default());
        let handles = workload(&server.client, &acked, round, &queues, limits.is_some());
        // Kill in the middle of the traffic, once enough has been acknowledged.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let notified = acked.progress.notified();
            if acked.enqueue_count.load(Ordering::Relaxed) >= 3_000
                && acked.complete_count.load(Ordering::Relaxed) >= 1_000
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the workload made too little progress"
            );
            let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
        }
        server.child.kill().unwrap(); // SIGKILL
        server.child.wait().unwrap();
        for h in handles {
            let _ = h.await;
        }

        let mut server = start_with(dir.path(), &env).await;
        let enqueued = acked.enqueued.lock().unwrap().clone();
        let completed = acked.completed.lock().unwrap().clone();
        total_enqueued += enqueued.len();
        let mut tasks = Vec::new();
        let mut counted = 0;
        for q in &queues {
            let mine = all_tasks(&server.client, q).await;
            // The restarted server's counts agree with its rows.
            let info = server.client.queue(q).await.unwrap();
            assert_eq!(info.counts.total(), mine.len() as u64);
            if let Some(l) = &limits {
                assert_eq!(info.settings.concurrency, l.concurrency.flatten());
                assert_eq!(info.settings.rate, l.rate.flatten());
                assert_eq!(
                    info.settings.group_concurrency,
                    l.group_concurrency.flatten()
                );
                assert!(info.counts.running <= 12, "{} running", info.counts.running);
                let groups = server.client.groups(q, None, None).await.unwrap().groups;
                assert!(groups.iter().all(|g| g.running <= 3), "{groups:?}");
            }
            counted += mine.len();
            tasks.extend(mine);
        }
        assert_eq!(counted, tasks.len());
        let mut seen_seq: HashMap<u64, usize> = HashMap::new();
        let mut by_id = HashMap::new();
        for t in &tasks {
            *seen_seq.entry(seq_of(&t.payload)).or_default() += 1;
            by_id.insert(t.id, t);
        }
        for (id, seq) in &enqueued {
            let t = by_id
                .get(id)
                .unwrap_or_else(|| panic!("acknowledged task {id} is lost"));
            assert_eq!(seq_of(&t.payload), *seq);
            assert_eq!(seen_seq[seq], 1, "seq {seq} stored more than once");
        }
        for id in &completed {
            assert_eq!(
                by_id[id].state,
                TaskState::Succeeded,
                "acknowledged completion of {id} is lost"
            );
        }
        assert!(
            seen_seq.values().all(|n| *n == 1),
            "a task was stored twice"
        );
        assert!(tasks.len() >= total_enqueued);
        eprintln!(
            "{shards} shard(s), round {round}: {} acknowledged enqueues and {} completions \
             survived SIGKILL",
            enqueued.len(),
            completed.len()
        );
        // A clean stop this time (SIGTERM), so the next round also starts from a closed store.
        let _ = Command::new("kill")
            .arg(server.child.id().to_string())
            .status();
        server.child.wait().unwrap();
    }
}

/// Tenants, keys, revocations and roles are acknowledged writes too: each survives SIGKILL
/// right after its answer, and the first start's admin key is not created again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_access_control_changes_survive_sigkill() {
    use rota_client::{Effect, NewKey, Rule};
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_with(dir.path(), &[("ROTA_SHARDS", "4")]).await;
    let admin_token = server.admin_token.clone();
    server
        .client
        .create_tenant("acme", Default::default(), None)
        .await
        .unwrap();
    let acme = server.client.clone().with_tenant(Some("acme"));
    let spec = |role: &str| NewKey {
        roles: vec![role.into()],
        ..Default::default()
    };
    let kept = acme.create_key(&spec("producer")).await.unwrap();
    let revoked = acme.create_key(&spec("worker")).await.unwrap();
    acme.revoke_key(&revoked.key.id).await.unwrap();
    let rule = Rule {
        resource: "queues/*".into(),
        action: "tasks:read".into(),
        effect: Effect::Allow,
    };
    acme.put_role("auditor", &[rule]).await.unwrap();
    server.child.kill().unwrap(); // SIGKILL, right after the last answer
    server.child.wait().unwrap();

    let server = start_with(dir.path(), &[("ROTA_SHARDS", "4")]).await;
    assert_eq!(server.admin_token, admin_token, "no second bootstrap key");
    let producer = Client::with_token(&server.url, Some(&kept.token)).unwrap();
    let me = producer.whoami().await.unwrap();
    assert_eq!(
        (me.tenant.as_str(), me.roles.as_slice()),
        ("acme", &["producer".to_owned()][..])
    );
    let worker = Client::with_token(&server.url, Some(&revoked.token)).unwrap();
    assert!(matches!(
        worker.whoami().await,
        Err(rota_client::Error::Unauthorized { .. })
    ));
    let acme = server.client.clone().with_tenant(Some("acme"));
    assert!(acme
        .roles()
        .await
        .unwrap()
        .iter()
        .any(|r| r.name == "auditor"));
}
