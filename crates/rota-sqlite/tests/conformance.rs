//! The storage conformance suite, run against the SQLite engine on a real file.

use rota_core::ManualClock;
use rota_sqlite::{SqliteOptions, SqliteStore};
use rota_store::conformance::Harness;
use rota_store::{DynStore, EventLog};
use std::sync::Arc;

struct Sqlite(tempfile::TempDir);

#[async_trait::async_trait]
impl Harness for Sqlite {
    async fn new() -> Self {
        Sqlite(tempfile::tempdir().expect("temp dir"))
    }
    async fn open(&self, clock: ManualClock) -> DynStore {
        let path = self.0.path().join(rota_sqlite::DB_FILE);
        Arc::new(SqliteStore::open(&path, Arc::new(clock), SqliteOptions::default()).expect("open"))
    }
}

rota_store::conformance_tests!(Sqlite);

/// The same bodies with four shards: queues spread over four files and writers.
mod four_shards {
    use super::*;

    struct Sharded(tempfile::TempDir);

    #[async_trait::async_trait]
    impl Harness for Sharded {
        async fn new() -> Self {
            Sharded(tempfile::tempdir().expect("temp dir"))
        }
        async fn open(&self, clock: ManualClock) -> DynStore {
            let path = self.0.path().join(rota_sqlite::DB_FILE);
            let options = SqliteOptions {
                shards: 4,
                ..SqliteOptions::default()
            };
            Arc::new(SqliteStore::open(&path, Arc::new(clock), options).expect("open"))
        }
    }

    rota_store::conformance_tests!(Sharded);
}

/// Takes a file back to schema 2 (before schema 3's purge times, 4's event log, 5's schedules
/// and 6's webhooks).
/// Back to schema 13, before dependencies and workflows (14), workflow ends (15) and attempt
/// starts (16), trace contexts (17), inbound webhooks (18), the audit log (19) and events of a
/// tenant in no queue (20).
const UNDO_DEPS: &str = "ALTER TABLE events DROP COLUMN tenant; DROP TABLE audit; \
    DROP TABLE hooks; ALTER TABLE tasks DROP COLUMN traceparent; \
    ALTER TABLE tasks DROP COLUMN tracestate; ALTER TABLE tasks DROP COLUMN started_at; \
    DROP INDEX tasks_workflow; DROP TABLE task_waits; \
    DROP TABLE task_dependents; DROP TABLE release_outbox; DROP TABLE workflows; \
    ALTER TABLE tasks DROP COLUMN depends_on; ALTER TABLE tasks DROP COLUMN dep_policy; \
    ALTER TABLE tasks DROP COLUMN workflow; DROP INDEX tasks_unique_live; \
    CREATE INDEX tasks_unique_live ON tasks (queue_id, unique_key) \
    WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'ready', 'running'); \
    PRAGMA user_version = 13;";

/// Back to schema 12: the ready tasks in two indexes, ungrouped and grouped.
const TO_VERSION_12: &str = "DROP INDEX tasks_ready; \
    CREATE INDEX tasks_ready ON tasks (queue_id, priority DESC, id) \
    WHERE state = 'ready' AND grp IS NULL; \
    CREATE INDEX tasks_ready_group ON tasks (queue_id, grp, priority DESC, id) \
    WHERE state = 'ready' AND grp IS NOT NULL; PRAGMA user_version = 12;";

/// Back to schema 8 from the current one (before flow control).
const UNDO_FLOW: &str = "DROP INDEX tasks_ready; DROP INDEX tasks_ready_kind; \
    DROP INDEX tasks_running_group; DROP INDEX tasks_grouped; \
    ALTER TABLE tasks DROP COLUMN grp; DROP TABLE task_groups; \
    ALTER TABLE queues DROP COLUMN rate_tat_us; \
    CREATE INDEX tasks_ready ON tasks (queue_id, priority DESC, id) WHERE state = 'ready'; \
    CREATE INDEX tasks_ready_kind ON tasks (queue_id, kind, priority DESC, id) \
    WHERE state = 'ready';";

const TO_VERSION_2: &str =
    "DROP TABLE tenant_tombstones; DROP TABLE settings; ALTER TABLE tasks DROP COLUMN callback_url; DROP TABLE deliveries; DROP TABLE webhooks; DROP TABLE schedules; DROP TABLE events; DROP TABLE probe; DROP INDEX tasks_purge; \
    ALTER TABLE tasks DROP COLUMN purge_at; \
    CREATE INDEX tasks_finished ON tasks (queue_id, finished_at) WHERE finished_at IS NOT NULL; \
    PRAGMA user_version = 2;";

/// A file from before retention by due time (schema 2) gets each finished task's deletion time
/// from its queue's retention, and retention then deletes it when due.
#[tokio::test]
async fn a_store_from_schema_2_gets_purge_times() {
    use rota_store::{Completion, Store};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(rota_sqlite::DB_FILE);
    let clock = ManualClock::new(rota_core::Timestamp(1_800_000_000_000));
    let store =
        SqliteStore::open(&path, Arc::new(clock.clone()), SqliteOptions::default()).unwrap();
    let queue = rota_core::QueueKey::new("default", "old");
    let patch = rota_core::QueuePatch {
        retention_ms: Some(60_000),
        ..Default::default()
    };
    store.update_queue(&queue, patch).await.unwrap();
    store
        .enqueue(&queue, vec![rota_store::conformance::task("x")])
        .await
        .unwrap();
    let claimed = store
        .claim(
            &queue,
            rota_store::ClaimRequest {
                worker: "w".into(),
                kinds: vec![],
                max: 1,
                lease_ms: None,
            },
        )
        .await
        .unwrap()
        .remove(0);
    let done = Completion {
        id: claimed.id,
        lease: claimed.lease.unwrap().token,
        result: None,
    };
    store
        .complete("default", vec![done])
        .await
        .remove(0)
        .unwrap();
    store.close().await;
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(&format!("{UNDO_DEPS} {UNDO_FLOW} {TO_VERSION_2}"))
        .unwrap();
    let store =
        SqliteStore::open(&path, Arc::new(clock.clone()), SqliteOptions::default()).unwrap();
    assert_eq!(store.run_maintenance().await.unwrap().deleted, 0);
    clock.advance_ms(60_000);
    assert_eq!(store.run_maintenance().await.unwrap().deleted, 1);
    store.close().await;
}

/// A file of schema 12 (ready tasks in two indexes) opens with one, and claims still take the
/// ungrouped tasks first, then the groups in turn.
#[tokio::test]
async fn a_store_from_schema_12_merges_its_ready_indexes() {
    use rota_store::conformance::task;
    use rota_store::Store;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(rota_sqlite::DB_FILE);
    let clock = Arc::new(rota_core::SystemClock);
    let store = SqliteStore::open(&path, clock.clone(), SqliteOptions::default()).unwrap();
    let queue = rota_core::QueueKey::new("default", "mixed");
    let mut tasks = vec![task("u")];
    for g in ["b", "a"] {
        let mut t = task(g);
        t.group = Some(g.into());
        tasks.push(t);
    }
    store.enqueue(&queue, tasks).await.unwrap();
    store.close().await;
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(&format!("{UNDO_DEPS} {TO_VERSION_12}"))
        .unwrap();
    let store = SqliteStore::open(&path, clock, SqliteOptions::default()).unwrap();
    let claim = rota_store::ClaimRequest {
        worker: "w".into(),
        kinds: vec![],
        max: 10,
        lease_ms: None,
    };
    let got = store.claim(&queue, claim).await.unwrap();
    let kinds: Vec<&str> = got.iter().map(|t| t.kind.as_str()).collect();
    assert_eq!(kinds, ["u", "a", "b"]);
    store.close().await;
    let conn = rusqlite::Connection::open(&path).unwrap();
    let ready_indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'tasks_ready%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ready_indexes.len(), 2, "{ready_indexes:?}");
    assert!(!ready_indexes.iter().any(|n| n == "tasks_ready_group"));
}

/// A file written before access control existed (schema version 1) opens with its queues and
/// tasks in tenant `default`, which now exists as a tenant.
#[tokio::test]
async fn a_store_from_before_tenants_opens_in_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(rota_sqlite::DB_FILE);
    let clock = Arc::new(rota_core::SystemClock);
    let store = SqliteStore::open(&path, clock.clone(), SqliteOptions::default()).unwrap();
    let queue = rota_core::QueueKey::new("default", "old");
    let t = rota_store::Store::enqueue(&store, &queue, vec![rota_store::conformance::task("x")])
        .await
        .unwrap()
        .remove(0)
        .task;
    rota_store::Store::close(&store).await;
    // Take the file back to version 1, as an older Rota left it.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(&format!(
        "{UNDO_DEPS} {UNDO_FLOW} {TO_VERSION_2} DROP TABLE tenants; DROP TABLE api_keys; DROP TABLE roles; \
         PRAGMA user_version = 1;"
    ))
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(&path, clock, SqliteOptions::default()).unwrap();
    let auth = rota_store::Store::load_auth(&store).await.unwrap();
    let names: Vec<&str> = auth.tenants.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["default"]);
    let again = rota_store::Store::get(&store, "default", t.id)
        .await
        .unwrap();
    assert_eq!(again.queue, "old");
    assert_eq!(
        rota_sqlite::schema::version(&rusqlite::Connection::open(&path).unwrap()).unwrap(),
        rota_sqlite::schema::CURRENT_VERSION
    );
    rota_store::Store::close(&store).await;
}

/// A file whose event log names queues and types in full (schema 6) opens with the same events
/// at the same cursors, and new events take cursors past every one ever given (the sequence
/// carries over, even past events already trimmed).
#[tokio::test]
async fn a_store_from_schema_6_keeps_its_event_log_and_cursors() {
    use rota_store::Store;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(rota_sqlite::DB_FILE);
    let clock = Arc::new(rota_core::SystemClock);
    let store = SqliteStore::open(&path, clock.clone(), SqliteOptions::default()).unwrap();
    let queue = rota_core::QueueKey::new("default", "old");
    let t = store
        .enqueue(&queue, vec![rota_store::conformance::task("x")])
        .await
        .unwrap()
        .remove(0)
        .task;
    store.close().await;
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(&format!(
        "{UNDO_DEPS} {UNDO_FLOW} CREATE TABLE events_old (cursor INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, \
           tenant TEXT NOT NULL, queue TEXT NOT NULL, kind TEXT NOT NULL, task_id INTEGER NOT NULL, \
           attempt INTEGER NOT NULL, type TEXT NOT NULL, state TEXT, worker TEXT, error TEXT, \
           due INTEGER); \
         ALTER TABLE tasks DROP COLUMN callback_url; ALTER TABLE deliveries DROP COLUMN url; \
         ALTER TABLE deliveries DROP COLUMN subject; DROP TABLE settings; DROP TABLE tenant_tombstones; \
         INSERT INTO events_old SELECT e.cursor, e.at, q.tenant, q.name, e.kind, e.task_id, \
           e.attempt, 'task.enqueued', e.state, e.worker, e.error, e.due \
           FROM events e JOIN queues q ON q.id = e.queue_id; \
         DROP TABLE events; ALTER TABLE events_old RENAME TO events; \
         UPDATE sqlite_sequence SET seq = 100 WHERE name = 'events'; \
         PRAGMA user_version = 6;"
    ))
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(&path, clock, SqliteOptions::default()).unwrap();
    let keep_all: rota_store::EventKeep = Arc::new(|_| true);
    let page = store
        .events("default", 0, 100, keep_all.clone())
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1);
    let e = &page.events[0];
    assert_eq!((e.cursor, e.task_id, e.queue.as_str()), (1, t.id, "old"));
    assert_eq!(e.event_type.as_str(), "task.enqueued");
    store
        .enqueue(&queue, vec![rota_store::conformance::task("y")])
        .await
        .unwrap();
    let page = store.events("default", 1, 100, keep_all).await.unwrap();
    assert_eq!(page.events[0].cursor, 101);
    store.close().await;
}
