//! The service layer driven with no HTTP at all, as a second front door drives it: a caller
//! admitted from a token, the same rules and errors as the HTTP API.

use rota_core::{ManualClock, NewTask, Timestamp};
use rota_server::auth::{Auth, AuthConfig, NewKey, Secret};
use rota_server::error::ErrorKind;
use rota_server::service::{Claim, Service};
use rota_server::ServerConfig;
use rota_sqlite::{SqliteOptions, SqliteStore};
use rota_store::{Completion, DynStore};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const ADMIN: &str = "service-test-admin-token-0123456789abcdef";

struct Fixture {
    service: Service,
    auth: Arc<Auth>,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(1_800_000_000_000));
    let store: DynStore = Arc::new(
        SqliteStore::open(
            &dir.path().join("rota.db"),
            Arc::new(clock.clone()),
            SqliteOptions::default(),
        )
        .unwrap(),
    );
    let config = AuthConfig {
        admin_token: Some(Secret(ADMIN.into())),
        ..Default::default()
    };
    let auth = Auth::load(store.clone(), Arc::new(clock.clone()), config)
        .await
        .unwrap();
    let service = Service::new(
        store,
        Arc::new(ServerConfig::default()),
        Arc::new(clock),
        CancellationToken::new(),
        Default::default(),
    );
    Fixture {
        service,
        auth,
        _dir: dir,
    }
}

fn task(kind: &str) -> NewTask {
    NewTask {
        kind: kind.into(),
        payload: rota_core::json_null(),
        priority: 0,
        run_at: None,
        max_attempts: None,
        unique_key: None,
        tags: vec![],
        callback_url: None,
        group: None,
    }
}

fn claim(max: usize, wait_ms: u64) -> Claim {
    Claim {
        worker: "w".into(),
        kinds: vec![],
        max,
        wait_ms,
        lease_ms: None,
    }
}

#[tokio::test]
async fn a_caller_admitted_from_a_token_enqueues_waits_claims_and_completes() {
    let f = fixture().await;
    let (admin, _permit) = f.auth.admit(Some(ADMIN.into()), None).await.unwrap();

    // A claim that waits is woken by an enqueue made after it began, not by a poll.
    let waiting = {
        let (service, admin) = (f.service.clone(), admin.clone());
        tokio::spawn(async move { service.claim(&admin, "emails", claim(1, 10_000)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    let out = f
        .service
        .enqueue(&admin, "emails", vec![task("send")], false)
        .await
        .unwrap();
    assert!(!out[0].duplicate);
    let claimed = waiting.await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, out[0].task.id);

    let lease = claimed[0].lease.as_ref().unwrap().token.clone();
    let done = f
        .service
        .complete(
            &admin,
            vec![Completion {
                id: claimed[0].id,
                lease,
                result: None,
            }],
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        done[0].as_ref().unwrap().state,
        rota_core::TaskState::Succeeded
    );
}

#[tokio::test]
async fn the_rules_and_permissions_hold_without_http() {
    let f = fixture().await;
    let (admin, _p) = f.auth.admit(Some(ADMIN.into()), None).await.unwrap();

    let err = f
        .service
        .enqueue(&admin, "q", vec![task("")], true)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert_eq!(err.message, "tasks[0].kind must not be empty");

    let err = f.service.claim(&admin, "q", claim(0, 0)).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert!(err.message.contains("max is 0"), "{}", err.message);

    let err = f
        .service
        .enqueue(&admin, "bad/name", vec![task("k")], false)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadRequest);

    // A reader may look but not enqueue; nothing was written.
    let (_, token) = f
        .auth
        .create_key(
            &admin.principal,
            rota_core::DEFAULT_TENANT,
            NewKey {
                name: Some("reader".into()),
                roles: vec!["reader".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (reader, _p) = f
        .auth
        .admit(Some(token.as_str().into()), None)
        .await
        .unwrap();
    let err = f
        .service
        .enqueue(&reader, "q", vec![task("k")], false)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden);
    assert!(err.message.contains("tasks:enqueue"), "{}", err.message);
    assert!(f.service.queues(&reader).await.unwrap().is_empty());

    let err = f
        .auth
        .admit(Some("not-a-key".into()), None)
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind, ErrorKind::Unauthenticated);
    let err = f.auth.admit(None, None).await.err().unwrap();
    assert_eq!(err.kind, ErrorKind::Unauthenticated);
    // Another tenant does not exist for a tenant's key.
    let err = f
        .auth
        .admit(Some(token.as_str().into()), Some("other"))
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind, ErrorKind::NotFound);
}
