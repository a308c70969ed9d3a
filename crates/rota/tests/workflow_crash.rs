//! Durability of dependencies: SIGKILL the real binary in the middle of a fan-in of 1,000
//! tasks, and again right after the last one's completion is acknowledged (its release of the
//! join may be on its way to another shard), then restart: every dependent is released exactly
//! once, the join runs once, and nothing acknowledged is lost. On the embedded engine with four
//! shards (the members, their followers and the join spread over different files and writers),
//! and on PostgreSQL. The same for a spawn: killed right after it is acknowledged, in the middle
//! of its tasks and after the last, the spawner is released once with every result.

mod common;

use common::start_with;
use rota_client::{
    ClaimOptions, Client, CompleteItem, EventOptions, NewTask, QueueSettingsPatch, WorkflowTaskDef,
};
use rota_core::{Backoff, TaskId, TaskState};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

const MEMBERS: usize = 1_000;
const MEMBER_QUEUES: [&str; 4] = ["fan0", "fan1", "fan2", "fan3"];

/// Claims and completes up to `n` tasks of `queue` in batches; answers the ids whose
/// completion was acknowledged (stops quietly when the server is gone).
async fn complete_some(c: &Client, queue: &str, n: usize) -> Vec<TaskId> {
    let mut done = Vec::new();
    while done.len() < n {
        let opts = ClaimOptions {
            worker: "w".into(),
            max: (n - done.len()).min(50),
            wait_ms: Some(100),
            ..Default::default()
        };
        let Ok(tasks) = c.claim(queue, &opts).await else {
            return done;
        };
        if tasks.is_empty() {
            return done;
        }
        let items: Vec<CompleteItem> = tasks
            .iter()
            .map(|t| CompleteItem {
                id: t.id,
                lease: t.lease.as_ref().unwrap().token.clone(),
                result: None,
            })
            .collect();
        let Ok(out) = c.complete_batch(&items).await else {
            return done;
        };
        done.extend(
            out.iter()
                .filter(|o| o.ok)
                .map(|o| o.id.parse::<TaskId>().unwrap()),
        );
    }
    done
}

/// How many `task.released` events each task has.
async fn releases(c: &Client) -> HashMap<TaskId, usize> {
    let mut out: HashMap<TaskId, usize> = HashMap::new();
    let mut after = 0;
    loop {
        let page = c
            .events(&EventOptions {
                after,
                types: vec!["task.released".into()],
                limit: Some(1_000),
                ..Default::default()
            })
            .await
            .unwrap();
        if page.events.is_empty() {
            return out;
        }
        for e in page.events {
            *out.entry(e.task_id.unwrap()).or_default() += 1;
        }
        after = page.next_cursor;
    }
}

async fn state(c: &Client, id: TaskId) -> TaskState {
    c.get(id).await.unwrap().state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fan_in_survives_sigkill_and_its_join_runs_once() {
    fan_in_survives_sigkill(&[("ROTA_SHARDS", "4")]).await;
}

/// The same on PostgreSQL: a server killed between an ending's commit and its release of the
/// waiters leaves the release to the next server's maintenance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fan_in_survives_sigkill_on_postgres() {
    let url = tokio::task::spawn_blocking(|| {
        rota_postgres::testing::TestCluster::shared().create_database()
    })
    .await
    .unwrap();
    fan_in_survives_sigkill(&[
        ("ROTA_DATABASE_URL", url.as_str()),
        (
            "ROTA_ADMIN_TOKEN",
            "pg-test-admin-token-0123456789abcdef0123456789",
        ),
    ])
    .await;
}

async fn fan_in_survives_sigkill(env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let env = env.to_vec();
    let mut server = start_with(dir.path(), &env).await;
    // Leases the killed server held come back soon, and their retries wait little.
    let quick = QueueSettingsPatch {
        lease_ms: Some(1_000),
        backoff: Some(Backoff {
            base_ms: 10,
            max_ms: 50,
        }),
        ..Default::default()
    };
    for q in MEMBER_QUEUES.iter().chain(&["after", "join"]) {
        server.client.update_queue(q, &quick).await.unwrap();
    }
    // 1,000 members, each followed by one task of its own, and one join waiting for all.
    let mut tasks = Vec::new();
    for i in 0..MEMBERS {
        let q = MEMBER_QUEUES[i % MEMBER_QUEUES.len()];
        tasks.push(WorkflowTaskDef::new(
            format!("m{i}"),
            q,
            NewTask::new("member", &i),
        ));
    }
    for i in 0..MEMBERS {
        tasks.push(
            WorkflowTaskDef::new(format!("a{i}"), "after", NewTask::new("after", &i))
                .after(format!("m{i}")),
        );
    }
    let mut join = WorkflowTaskDef::new("join", "join", NewTask::new("join", &()));
    join.depends_on = (0..MEMBERS).map(|i| format!("m{i}")).collect();
    tasks.push(join);
    let wf = server.client.submit_workflow(&tasks).await.unwrap();
    let ids: HashMap<String, TaskId> = wf
        .tasks
        .iter()
        .map(|t| (t.name.clone(), t.task.id))
        .collect();
    let join_id = ids["join"];

    // Round one: half the members complete, then SIGKILL.
    let mut acked: HashSet<TaskId> = HashSet::new();
    let runs = MEMBER_QUEUES.map(|q| {
        let c = server.client.clone();
        tokio::spawn(async move { complete_some(&c, q, MEMBERS / 8).await })
    });
    for r in runs {
        acked.extend(r.await.unwrap());
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    // Round two: the rest, then SIGKILL right after the last acknowledgement.
    let mut server = start_with(dir.path(), &env).await;
    for id in &acked {
        assert_eq!(
            state(&server.client, *id).await,
            TaskState::Succeeded,
            "acknowledged completion of {id} is lost"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.len() < MEMBERS {
        assert!(Instant::now() < deadline, "{} members done", acked.len());
        let runs = MEMBER_QUEUES.map(|q| {
            let c = server.client.clone();
            tokio::spawn(async move { complete_some(&c, q, MEMBERS).await })
        });
        for r in runs {
            acked.extend(r.await.unwrap());
        }
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    // After the restart the join becomes ready, and runs once.
    let server = start_with(dir.path(), &env).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while state(&server.client, join_id).await != TaskState::Ready {
        assert!(Instant::now() < deadline, "the join was never released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let claimed = server
        .client
        .claim(
            "join",
            &ClaimOptions {
                worker: "w".into(),
                max: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "the join is claimable once");
    // Every follower is released too, and none twice.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = server.client.queue("after").await.unwrap();
        if info.counts.ready as usize == MEMBERS {
            break;
        }
        assert!(Instant::now() < deadline, "followers: {:?}", info.counts);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let released = releases(&server.client).await;
    assert_eq!(released.get(&join_id), Some(&1), "the join's releases");
    for i in 0..MEMBERS {
        let a = ids[&format!("a{i}")];
        assert_eq!(released.get(&a), Some(&1), "follower a{i} released once");
    }
    let got = server.client.workflow(&wf.id).await.unwrap();
    assert_eq!(got.counts.succeeded as usize, MEMBERS);
    assert_eq!(got.counts.ready as usize, MEMBERS);
    assert_eq!(got.counts.running, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_spawn_survives_sigkill_and_its_spawner_runs_again_once() {
    spawn_survives_sigkill(&[("ROTA_SHARDS", "4")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_spawn_survives_sigkill_on_postgres() {
    let url = tokio::task::spawn_blocking(|| {
        rota_postgres::testing::TestCluster::shared().create_database()
    })
    .await
    .unwrap();
    spawn_survives_sigkill(&[
        ("ROTA_DATABASE_URL", url.as_str()),
        (
            "ROTA_ADMIN_TOKEN",
            "pg-test-admin-token-0123456789abcdef0123456789",
        ),
    ])
    .await;
}

/// SIGKILL right after a spawn is acknowledged, again in the middle of its tasks and right
/// after the last one's completion: the spawner still waits for every spawned task, is
/// released once, and its claim carries all their results.
async fn spawn_survives_sigkill(env: &[(&str, &str)]) {
    use rota_client::AddedTask;
    const SPAWNED: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let env = env.to_vec();
    let server = start_with(dir.path(), &env).await;
    server
        .client
        .enqueue("lists", &NewTask::new("list", &()))
        .await
        .unwrap();
    let opts = ClaimOptions {
        worker: "w".into(),
        max: 1,
        ..Default::default()
    };
    let jobs = server.client.claim_jobs("lists", &opts).await.unwrap();
    let tasks: Vec<AddedTask> = (0..SPAWNED)
        .map(|i| AddedTask::new(MEMBER_QUEUES[i % 4], NewTask::new("page", &i)))
        .collect();
    let out = server.client.spawn(&jobs[0], &tasks, None).await.unwrap();
    let spawner = out.task.id;
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let mut server = start_with(dir.path(), &env).await;
    assert_eq!(state(&server.client, spawner).await, TaskState::Waiting);
    for t in &out.tasks {
        assert_eq!(
            state(&server.client, t.id).await,
            TaskState::Ready,
            "spawned {}",
            t.id
        );
    }
    let mut acked = 0;
    let runs = MEMBER_QUEUES.map(|q| {
        let c = server.client.clone();
        tokio::spawn(async move { complete_some(&c, q, SPAWNED / 8).await })
    });
    for r in runs {
        acked += r.await.unwrap().len();
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let mut server = start_with(dir.path(), &env).await;
    assert_eq!(state(&server.client, spawner).await, TaskState::Waiting);
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked < SPAWNED {
        assert!(Instant::now() < deadline, "{acked} spawned tasks done");
        let runs = MEMBER_QUEUES.map(|q| {
            let c = server.client.clone();
            tokio::spawn(async move { complete_some(&c, q, SPAWNED).await })
        });
        for r in runs {
            acked += r.await.unwrap().len();
        }
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let server = start_with(dir.path(), &env).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while state(&server.client, spawner).await != TaskState::Ready {
        assert!(Instant::now() < deadline, "the spawner was never released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let again = server.client.claim_jobs("lists", &opts).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].task.id, spawner);
    assert_eq!(again[0].task.attempt, 1, "the spawn gave its attempt back");
    assert_eq!(again[0].dependencies.len(), 100, "the first 100 inline");
    assert_eq!(again[0].task.depends_on.len(), SPAWNED);
    let released = releases(&server.client).await;
    assert_eq!(released.get(&spawner), Some(&1), "released once");
}
