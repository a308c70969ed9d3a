//! The storage conformance suite, run against the SQLite engine on a real file.

use rota_core::ManualClock;
use rota_sqlite::{SqliteOptions, SqliteStore};
use rota_store::conformance::Harness;
use rota_store::DynStore;
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
    conn.execute_batch(
        "DROP TABLE tenants; DROP TABLE api_keys; DROP TABLE roles; PRAGMA user_version = 1;",
    )
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
