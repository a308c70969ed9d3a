//! What only an engine shared by several servers has: leadership, the access-control change
//! feed, migrations applied once by servers starting together, and a schema it refuses.

use rota_core::auth::{ClientLimits, TenantRecord};
use rota_core::{ManualClock, Timestamp};
use rota_postgres::testing::TestCluster;
use rota_postgres::{schema, PostgresOptions, PostgresStore};
use rota_store::{AuthChange, Store};
use std::sync::Arc;
use std::time::Duration;

async fn database() -> String {
    tokio::task::spawn_blocking(|| TestCluster::shared().create_database())
        .await
        .unwrap()
}

async fn open(url: &str) -> Result<PostgresStore, String> {
    let clock = ManualClock::new(Timestamp(1_800_000_000_000));
    PostgresStore::open(url, Arc::new(clock), PostgresOptions::default()).await
}

#[tokio::test]
async fn one_leader_at_a_time_and_resigning_hands_over_at_once() {
    let url = database().await;
    let (a, b) = (open(&url).await.unwrap(), open(&url).await.unwrap());
    let ttl = Duration::from_secs(2);
    assert!(a.lead("maintenance", "server-a", ttl).await.unwrap());
    assert!(!b.lead("maintenance", "server-b", ttl).await.unwrap());
    assert!(
        a.lead("maintenance", "server-a", ttl).await.unwrap(),
        "renewal"
    );
    // Another service is elected on its own.
    assert!(b.lead("webhooks", "server-b", ttl).await.unwrap());
    a.resign("maintenance", "server-a").await;
    assert!(b.lead("maintenance", "server-b", ttl).await.unwrap());
    // A leader that stops renewing loses the lease when it runs out.
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert!(a.lead("maintenance", "server-a", ttl).await.unwrap());
    assert!(!b.lead("maintenance", "server-b", ttl).await.unwrap());
}

#[tokio::test]
async fn an_access_change_through_one_server_signals_the_other() {
    let url = database().await;
    let (a, b) = (open(&url).await.unwrap(), open(&url).await.unwrap());
    let signal = b.auth_signal();
    let notified = signal.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    a.change_auth(AuthChange::PutTenant(TenantRecord {
        name: "acme".into(),
        created_at: Timestamp(0),
        limits: ClientLimits::default(),
        event_retention_ms: None,
    }))
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(1), notified)
        .await
        .expect("the other server hears the change within a second");
    assert!(b
        .load_auth()
        .await
        .unwrap()
        .tenants
        .iter()
        .any(|t| t.name == "acme"));
}

#[tokio::test]
async fn servers_starting_together_migrate_once() {
    let url = database().await;
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { open(&url).await.map(|_| ()) })
        })
        .collect();
    for o in opens {
        o.await.unwrap().unwrap();
    }
    let rows = tokio::task::spawn_blocking(move || {
        TestCluster::shared().psql(&url, "SELECT count(*) FROM rota_migrations")
    })
    .await
    .unwrap();
    assert_eq!(rows, schema::CURRENT_VERSION.to_string());
}

#[tokio::test]
async fn a_newer_or_dirty_schema_is_refused_with_the_way_out() {
    let url = database().await;
    let store = open(&url).await.unwrap();
    let next = schema::CURRENT_VERSION + 1;
    let u = url.clone();
    tokio::task::spawn_blocking(move || {
        TestCluster::shared().psql(
            &u,
            &format!(
                "INSERT INTO rota_migrations (version, name, finished_at) VALUES ({next}, 'future', now())"
            ),
        )
    })
    .await
    .unwrap();
    let e = open(&url).await.err().expect("a newer schema is refused");
    assert!(e.contains("newer than this Rota understands"), "{e}");
    let health = store.health().await;
    let schema_check = health.checks.iter().find(|(n, _)| n == "schema").unwrap();
    assert!(schema_check.1.is_err(), "readiness names the schema");
    let u = url.clone();
    tokio::task::spawn_blocking(move || {
        TestCluster::shared().psql(
            &u,
            &format!("UPDATE rota_migrations SET finished_at = NULL WHERE version = {next}"),
        )
    })
    .await
    .unwrap();
    let e = open(&url).await.err().expect("a dirty schema is refused");
    assert!(
        e.contains("did not finish") && e.contains("rota migrate"),
        "{e}"
    );
}

#[tokio::test]
async fn a_server_that_must_not_migrate_refuses_a_schema_behind() {
    let url = database().await;
    let clock = ManualClock::new(Timestamp(0));
    let options = PostgresOptions {
        migrate: false,
        ..PostgresOptions::default()
    };
    let e = PostgresStore::open(&url, Arc::new(clock), options)
        .await
        .err()
        .expect("an empty database is behind");
    assert!(e.contains("migrations not at head"), "{e}");
}

#[tokio::test]
async fn a_unix_socket_url_connects_without_tls() {
    let url = database().await;
    let socket = TestCluster::shared().socket_url(&url);
    let store = open(&socket).await.expect("opens through the socket");
    assert!(store.health().await.checks.iter().all(|(_, c)| c.is_ok()));
    store.close().await;
}
