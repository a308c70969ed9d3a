//! Faults particular to the embedded engine: rows made unreadable behind its back, and the
//! bounds it keeps on per-tenant state.

use rota_core::{ManualClock, QueueKey, Timestamp};
use rota_sqlite::{SqliteOptions, SqliteStore};
use rota_store::conformance::task;
use rota_store::{ClaimRequest, Completion, Store, StoreError};
use std::sync::Arc;

const T0: i64 = 1_800_000_000_000;

fn open(dir: &tempfile::TempDir, clock: &ManualClock, options: SqliteOptions) -> Arc<SqliteStore> {
    let path = dir.path().join(rota_sqlite::DB_FILE);
    Arc::new(SqliteStore::open(&path, Arc::new(clock.clone()), options).unwrap())
}

/// Makes a task's `errors` column unreadable, as a bad disk or a hand edit would.
fn poison(dir: &tempfile::TempDir, id: rota_core::TaskId) {
    let conn = rusqlite::Connection::open(dir.path().join(rota_sqlite::DB_FILE)).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    let n = conn
        .execute(
            "UPDATE tasks SET errors = 'not json' WHERE id = ?1",
            [id.as_i64()],
        )
        .unwrap();
    assert_eq!(n, 1);
}

fn claim(max: usize) -> ClaimRequest {
    ClaimRequest {
        worker: "w".into(),
        kinds: vec![],
        max,
        lease_ms: Some(10_000),
    }
}

/// An op whose row cannot be read fails alone: the writes that share its commit are applied
/// and answered as if it were not there.
#[tokio::test]
async fn a_failing_write_fails_only_its_own_request() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(T0));
    let store = open(&dir, &clock, SqliteOptions::default());
    let q = QueueKey::new("default", "jobs");
    store.enqueue(&q, vec![task("x")]).await.unwrap();
    let bad = store.claim(&q, claim(1)).await.unwrap().remove(0);
    poison(&dir, bad.id);
    for round in 0..5 {
        let mut handles = Vec::new();
        for _ in 0..50 {
            let (s, q) = (store.clone(), q.clone());
            handles.push(tokio::spawn(
                async move { s.enqueue(&q, vec![task("y")]).await },
            ));
        }
        let poisoned = {
            let s = store.clone();
            let item = Completion {
                id: bad.id,
                lease: bad.lease.clone().unwrap().token,
                result: None,
            };
            tokio::spawn(async move { s.complete("default", vec![item]).await.remove(0) })
        };
        for _ in 0..50 {
            let (s, q) = (store.clone(), q.clone());
            handles.push(tokio::spawn(
                async move { s.enqueue(&q, vec![task("y")]).await },
            ));
        }
        for h in handles {
            h.await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
        let e = poisoned.await.unwrap().unwrap_err();
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    }
    let info = store.queue(&q).await.unwrap();
    assert_eq!(info.counts.ready, 500);
    assert_eq!(info.counts.running, 1);
    store.close().await;
}

/// A running task whose row cannot be read does not stop maintenance: due tasks of every
/// queue are promoted, other expired leases return, and the unreadable task is set aside as
/// dead where an operator can inspect it.
#[tokio::test]
async fn an_unreadable_row_does_not_stop_maintenance() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(T0));
    let store = open(&dir, &clock, SqliteOptions::default());
    let q = QueueKey::new("default", "jobs");
    store.enqueue(&q, vec![task("x"), task("x")]).await.unwrap();
    let running = store.claim(&q, claim(2)).await.unwrap();
    poison(&dir, running[0].id);
    let mut later = task("later");
    later.run_at = Some(Timestamp(T0 + 5_000));
    let other = QueueKey::new("default", "other");
    store.enqueue(&other, vec![later]).await.unwrap();
    clock.advance_ms(20_000);
    let report = store.run_maintenance().await.unwrap();
    assert_eq!(report.promoted, 1);
    assert_eq!(report.expired, 1, "the readable lease is returned");
    let info = store.queue(&q).await.unwrap();
    assert_eq!(info.counts.running, 0);
    assert_eq!(info.counts.dead, 1, "the unreadable task is set aside");
    assert_eq!(store.queue(&other).await.unwrap().counts.ready, 1);
    // The next pass has nothing left to trip on.
    let again = store.run_maintenance().await.unwrap();
    assert_eq!((again.promoted, again.expired), (0, 0));
    store.close().await;
}

/// `limits.max_queues_per_tenant`: a write that would create one queue too many is refused
/// with the limit named; existing queues keep working, and other tenants are not counted.
#[tokio::test]
async fn queues_per_tenant_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(T0));
    let options = SqliteOptions {
        max_queues_per_tenant: 3,
        ..Default::default()
    };
    let store = open(&dir, &clock, options);
    for i in 0..3 {
        let q = QueueKey::new("default", format!("q{i}"));
        store.enqueue(&q, vec![task("x")]).await.unwrap();
    }
    let e = store
        .enqueue(&QueueKey::new("default", "q3"), vec![task("x")])
        .await
        .unwrap_err();
    match e {
        StoreError::LimitReached(m) => assert!(m.contains("limits.max_queues_per_tenant"), "{m}"),
        other => panic!("{other:?}"),
    }
    let e = store
        .update_queue(&QueueKey::new("default", "q4"), Default::default())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::LimitReached(_)), "{e:?}");
    store
        .enqueue(&QueueKey::new("default", "q0"), vec![task("x")])
        .await
        .unwrap();
    assert_eq!(store.queues("default").await.unwrap().len(), 3);
    store.close().await;
}
