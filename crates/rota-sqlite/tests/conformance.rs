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
