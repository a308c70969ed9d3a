//! What only a store of several shards can get wrong: where queues go, event cursors across
//! writers, data directories from before shards, and copies brought back in line at open.

use rota_core::{ManualClock, QueueKey, SystemClock, Timestamp};
use rota_sqlite::{shard_path, SqliteOptions, SqliteStore};
use rota_store::conformance::task;
use rota_store::{AuthChange, ClaimRequest, Completion, EventKeep, EventLog, Store, StoreError};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

fn open(path: &Path, shards: usize) -> Arc<SqliteStore> {
    let options = SqliteOptions {
        shards,
        ..SqliteOptions::default()
    };
    Arc::new(SqliteStore::open(path, Arc::new(SystemClock), options).expect("open"))
}

/// Queue names per shard file, read from the files themselves.
fn queues_by_file(home: &Path, shards: usize) -> Vec<HashSet<String>> {
    (0..shards)
        .map(|i| {
            let conn = rusqlite::Connection::open(shard_path(home, i)).unwrap();
            let mut stmt = conn.prepare("SELECT name FROM queues").unwrap();
            let names = stmt.query_map([], |r| r.get(0)).unwrap();
            names.collect::<rusqlite::Result<_>>().unwrap()
        })
        .collect()
}

async fn claim_one(s: &SqliteStore, q: &QueueKey) -> rota_core::Task {
    let req = ClaimRequest {
        worker: "w".into(),
        kinds: vec![],
        max: 1,
        lease_ms: None,
    };
    s.claim(q, req).await.unwrap().remove(0)
}

#[tokio::test]
async fn queues_spread_over_the_shards_and_each_lives_in_one() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join(rota_sqlite::DB_FILE);
    let s = open(&home, 4);
    for i in 0..32 {
        let q = QueueKey::new("default", format!("q{i}"));
        s.enqueue(&q, vec![task("x")]).await.unwrap();
    }
    s.close().await;
    let files = queues_by_file(&home, 4);
    let total: usize = files.iter().map(HashSet::len).sum();
    assert_eq!(total, 32, "each queue in exactly one file: {files:?}");
    assert!(
        files.iter().all(|f| f.len() >= 3),
        "32 queues over 4 shards leave none nearly empty: {files:?}"
    );
    // Reopened, every queue is found where it is, keeps its task and names its shard.
    let s = open(&home, 4);
    for i in 0..32 {
        let q = QueueKey::new("default", format!("q{i}"));
        let info = s.queue(&q).await.unwrap();
        assert_eq!(info.counts.ready, 1);
        let file = info.shard.unwrap() as usize;
        assert!(files[file].contains(&q.name), "{} in shard {file}", q.name);
    }
    assert_eq!(s.queues("default").await.unwrap().len(), 32);
    s.close().await;
}

/// Writers on four shards log at once while a reader follows the log from cursor to cursor:
/// it sees every event once, in cursor order, none skipped because a smaller cursor
/// committed after a larger one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_following_the_log_misses_nothing_while_shards_commit() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join(rota_sqlite::DB_FILE), 4);
    const PRODUCERS: usize = 8;
    const BATCHES: usize = 60;
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let s = s.clone();
        producers.push(tokio::spawn(async move {
            let q = QueueKey::new("default", format!("p{p}"));
            for _ in 0..BATCHES {
                s.enqueue(&q, vec![task("x"), task("y")]).await.unwrap();
            }
        }));
    }
    let expected = PRODUCERS * BATCHES * 2;
    let keep: EventKeep = Arc::new(|_| true);
    let mut after = 0;
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while seen.len() < expected && std::time::Instant::now() < deadline {
        let page = s.events("default", after, 7, keep.clone()).await.unwrap();
        for e in &page.events {
            assert!(e.cursor > after, "cursor {} after {after}", e.cursor);
            seen.push(e.cursor);
        }
        after = page.next_cursor;
        tokio::task::yield_now().await;
    }
    for p in producers {
        p.await.unwrap();
    }
    assert_eq!(seen.len(), expected, "every event once");
    let unique: HashSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), expected);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    s.close().await;
}

/// A data directory from before shards (one file, ids without a shard) opens with four: its
/// queue stays in `rota.db`, its tasks are found and completed by their old ids, and new
/// queues spread out.
#[tokio::test]
async fn a_one_file_directory_keeps_working_with_more_shards() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join(rota_sqlite::DB_FILE);
    let old = QueueKey::new("default", "old");
    let s = open(&home, 1);
    s.enqueue(&old, vec![task("a"), task("b"), task("c")])
        .await
        .unwrap();
    s.close().await;
    // Ids written before shards existed take any stripe, and an older Rota recorded no point
    // where striped ids begin: make the file so.
    let conn = rusqlite::Connection::open(&home).unwrap();
    conn.execute_batch(
        "UPDATE tasks SET id = id + 1 + (id % 3); \
         DELETE FROM settings WHERE name = 'ids_striped_from';",
    )
    .unwrap();
    drop(conn);
    let s = open(&home, 4);
    let held = claim_one(&s, &old).await;
    assert_ne!(held.id.0 % 64, 0, "an id from before shards");
    assert_eq!(s.get("default", held.id).await.unwrap().id, held.id);
    let done = s
        .complete(
            "default",
            vec![Completion {
                id: held.id,
                lease: held.lease.clone().unwrap().token,
                result: None,
            }],
        )
        .await;
    assert!(done[0].is_ok(), "{done:?}");
    assert_eq!(s.queue(&old).await.unwrap().counts.ready, 2);
    for i in 0..16 {
        s.enqueue(
            &QueueKey::new("default", format!("new{i}")),
            vec![task("x")],
        )
        .await
        .unwrap();
    }
    s.close().await;
    let files = queues_by_file(&home, 4);
    assert!(files[0].contains("old"));
    assert!(files[1..].iter().any(|f| !f.is_empty()), "{files:?}");
    // Fewer shards asked for later: the files that exist keep serving their queues.
    let s = open(&home, 1);
    assert_eq!(s.shard_count(), 4);
    assert_eq!(s.queues("default").await.unwrap().len(), 17);
    s.close().await;
}

/// A tenant deleted in `rota.db` whose deletion did not reach a shard (a crash between the
/// two) is gone from that shard too once the store opens again.
#[tokio::test]
async fn a_deletion_a_crash_cut_short_is_finished_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join(rota_sqlite::DB_FILE);
    let s = open(&home, 4);
    let tenant = rota_store::TenantRecord {
        name: "acme".into(),
        created_at: Timestamp(1),
        limits: Default::default(),
        event_retention_ms: None,
    };
    s.change_auth(AuthChange::PutTenant(tenant)).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..8 {
        let q = QueueKey::new("acme", format!("q{i}"));
        let t = s.enqueue(&q, vec![task("x")]).await.unwrap().remove(0).task;
        ids.push(t.id);
    }
    s.close().await;
    // Only rota.db's transaction of the deletion commits, as if the process died right after:
    // the rows go, a tombstone names the tenant, and the copies' generation is counted.
    let conn = rusqlite::Connection::open(&home).unwrap();
    conn.execute_batch(
        "DELETE FROM tasks WHERE queue_id IN (SELECT id FROM queues WHERE tenant = 'acme'); \
         DELETE FROM events WHERE queue_id IN (SELECT id FROM queues WHERE tenant = 'acme'); \
         DELETE FROM queues WHERE tenant = 'acme'; DELETE FROM tenants WHERE name = 'acme'; \
         INSERT INTO tenant_tombstones (name, deleted_at) VALUES ('acme', 1); \
         UPDATE settings SET doc = CAST(CAST(doc AS INTEGER) + 1 AS TEXT) \
         WHERE name = 'copies_generation';",
    )
    .unwrap();
    drop(conn);
    let left = queues_by_file(&home, 4);
    assert!(left[1..].iter().any(|f| !f.is_empty()), "{left:?}");
    let s = open(&home, 4);
    for id in ids {
        assert_eq!(
            s.get("acme", id).await.unwrap_err(),
            StoreError::TaskNotFound(id)
        );
    }
    assert!(s.queues("acme").await.unwrap().is_empty());
    let refused = s
        .enqueue(&QueueKey::new("acme", "q0"), vec![task("x")])
        .await;
    assert!(
        matches!(refused, Err(StoreError::TenantNotFound(_))),
        "{refused:?}"
    );
    s.close().await;
    let files = queues_by_file(&home, 4);
    assert!(files.iter().all(HashSet::is_empty), "{files:?}");
}

/// Task ids name their shard, so a complete or a heartbeat goes to one writer; and two shards
/// never give the same id.
#[tokio::test]
async fn ids_are_unique_across_shards_and_name_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(1_800_000_000_000));
    let options = SqliteOptions {
        shards: 4,
        ..SqliteOptions::default()
    };
    let home = dir.path().join(rota_sqlite::DB_FILE);
    let s = SqliteStore::open(&home, Arc::new(clock), options).unwrap();
    let mut all = HashSet::new();
    for i in 0..16 {
        let q = QueueKey::new("default", format!("q{i}"));
        let tasks = s.enqueue(&q, vec![task("x"); 10]).await.unwrap();
        let stripes: HashSet<u64> = tasks.iter().map(|t| t.task.id.0 % 64).collect();
        assert_eq!(stripes.len(), 1, "one queue, one shard");
        all.extend(tasks.into_iter().map(|t| t.task.id));
    }
    assert_eq!(all.len(), 160);
    s.close().await;
}

/// `max_queues_per_tenant` is the store's limit, not each shard's: new queues created at once
/// on four shards stop at the limit, and still do after the store opens again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_queue_limit_holds_across_shards() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join(rota_sqlite::DB_FILE);
    let options = SqliteOptions {
        shards: 4,
        max_queues_per_tenant: 5,
        ..SqliteOptions::default()
    };
    let s = Arc::new(SqliteStore::open(&home, Arc::new(SystemClock), options.clone()).unwrap());
    let mut tries = Vec::new();
    for i in 0..24 {
        let s = s.clone();
        tries.push(tokio::spawn(async move {
            let q = QueueKey::new("default", format!("q{i}"));
            s.enqueue(&q, vec![task("x")]).await
        }));
    }
    let mut made = 0;
    for t in tries {
        match t.await.unwrap() {
            Ok(_) => made += 1,
            Err(StoreError::LimitReached(msg)) => assert!(msg.contains("max_queues_per_tenant")),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(made, 5);
    assert_eq!(s.queues("default").await.unwrap().len(), 5);
    s.close().await;
    let s = SqliteStore::open(&home, Arc::new(SystemClock), options).unwrap();
    let refused = s
        .enqueue(&QueueKey::new("default", "one-more"), vec![task("x")])
        .await;
    assert!(
        matches!(refused, Err(StoreError::LimitReached(_))),
        "{refused:?}"
    );
    s.close().await;
}

/// A directory that is not a whole store is refused, not opened: shard 0 missing beside shard
/// files (it would be made empty, and the shards' tenants deleted to match it), or a missing
/// shard between others. Nothing is changed.
#[tokio::test]
async fn a_store_missing_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join(rota_sqlite::DB_FILE);
    let s = open(&home, 3);
    for i in 0..12 {
        s.enqueue(&QueueKey::new("default", format!("q{i}")), vec![task("x")])
            .await
            .unwrap();
    }
    s.close().await;
    let aside = dir.path().join("aside.db");
    std::fs::rename(shard_path(&home, 1), &aside).unwrap();
    let options = SqliteOptions {
        shards: 3,
        ..SqliteOptions::default()
    };
    let err = SqliteStore::open(&home, Arc::new(SystemClock), options.clone())
        .err()
        .expect("refused");
    assert!(
        err.contains("rota-shard2.db exists but") && err.contains("rota-shard1.db"),
        "{err}"
    );
    std::fs::rename(&aside, shard_path(&home, 1)).unwrap();
    std::fs::rename(&home, &aside).unwrap();
    let err = SqliteStore::open(&home, Arc::new(SystemClock), options.clone())
        .err()
        .expect("refused");
    assert!(err.contains("rota.db is missing"), "{err}");
    assert!(!home.exists(), "nothing was made");
    std::fs::rename(&aside, &home).unwrap();
    let s = SqliteStore::open(&home, Arc::new(SystemClock), options).unwrap();
    assert_eq!(s.queues("default").await.unwrap().len(), 12);
    s.close().await;
}
