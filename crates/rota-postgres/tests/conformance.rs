//! The storage conformance suite on PostgreSQL: a throwaway server for this test binary, a
//! fresh database per test.

use async_trait::async_trait;
use rota_core::ManualClock;
use rota_postgres::testing::TestCluster;
use rota_postgres::{PostgresOptions, PostgresStore};
use rota_store::conformance::Harness;
use rota_store::DynStore;
use std::sync::Arc;

struct Pg {
    url: String,
}

#[async_trait]
impl Harness for Pg {
    async fn new() -> Self {
        let cluster = tokio::task::spawn_blocking(TestCluster::shared)
            .await
            .unwrap();
        let url = tokio::task::spawn_blocking(move || cluster.create_database())
            .await
            .unwrap();
        Pg { url }
    }
    async fn open_peer(&self, clock: ManualClock) -> Option<DynStore> {
        Some(self.open(clock).await)
    }
    async fn open(&self, clock: ManualClock) -> DynStore {
        let options = PostgresOptions {
            pool_size: 8,
            ..PostgresOptions::default()
        };
        Arc::new(
            PostgresStore::open(&self.url, Arc::new(clock), options)
                .await
                .expect("open the store"),
        )
    }
}

rota_store::conformance_tests!(Pg);
