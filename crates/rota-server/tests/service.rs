//! The service layer driven with no HTTP at all, as a second front door drives it: a caller
//! admitted from a token, the same rules and errors as the HTTP API.

use rota_core::{ManualClock, NewTask, OnDuplicate, Timestamp};
use rota_server::auth::{Auth, AuthConfig, NewKey, Principal, Secret};
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
        on_duplicate: Default::default(),
        tags: vec![],
        callback_url: None,
        group: None,
        depends_on: Vec::new(),
        on_dependency_failure: Default::default(),
        workflow: None,
        traceparent: None,
        tracestate: None,
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

/// A credential limited to some kinds replaces only tasks of those kinds (a replacement
/// rewrites the holder); keeping a duplicate is still answered.
#[tokio::test]
async fn a_kind_limited_caller_replaces_only_tasks_of_its_kinds() {
    let f = fixture().await;
    let (admin, _permit) = f.auth.admit(Some(ADMIN.into()), None).await.unwrap();
    let p = &admin.principal;
    let mut limited = admin.clone();
    limited.principal = Arc::new(Principal {
        tenant: p.tenant.clone(),
        label: p.label.clone(),
        key_id: p.key_id.clone(),
        roles: p.roles.clone(),
        queues: p.queues.clone(),
        kinds: Some(vec!["send".into()]),
        expires_at: p.expires_at,
        token_expires_at: p.token_expires_at,
        scope: None,
    });
    let keyed = |kind: &str, on_duplicate| NewTask {
        unique_key: Some("k".into()),
        on_duplicate,
        ..task(kind)
    };
    let held = f
        .service
        .enqueue(
            &admin,
            "mail",
            vec![keyed("audit", OnDuplicate::Keep)],
            false,
        )
        .await
        .unwrap();
    let refused = f
        .service
        .enqueue(
            &limited,
            "mail",
            vec![keyed("send", OnDuplicate::Replace)],
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Forbidden);
    assert!(refused.message.contains("audit"), "{}", refused.message);
    let kept = f
        .service
        .enqueue(
            &limited,
            "mail",
            vec![keyed("send", OnDuplicate::Keep)],
            false,
        )
        .await
        .unwrap();
    assert!(kept[0].duplicate && !kept[0].replaced);
    assert_eq!(kept[0].task.kind, "audit");

    // A holder of its own kind it replaces.
    let own = f
        .service
        .enqueue(
            &limited,
            "mail2",
            vec![keyed("send", OnDuplicate::Replace)],
            false,
        )
        .await
        .unwrap();
    let again = f
        .service
        .enqueue(
            &limited,
            "mail2",
            vec![keyed("send", OnDuplicate::Replace)],
            false,
        )
        .await
        .unwrap();
    assert!(again[0].replaced);
    assert_eq!(again[0].task.id, own[0].task.id);
    assert_ne!(held[0].task.id, own[0].task.id);
}

/// A claim waiting on several queues is answered from the one an enqueue readied (on the
/// embedded engine, inside that enqueue's commit); a claim whose wait has ended leaves
/// nothing leased behind it when a task arrives after.
#[tokio::test]
async fn a_waiting_claim_gets_its_task_from_the_queue_that_readied_it_and_an_ended_one_none() {
    let f = fixture().await;
    let (admin, _permit) = f.auth.admit(Some(ADMIN.into()), None).await.unwrap();
    let waiting = {
        let (service, admin) = (f.service.clone(), admin.clone());
        tokio::spawn(async move {
            service
                .claim_first(&admin, &["first", "second"], claim(1, 10_000))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let out = f
        .service
        .enqueue(&admin, "second", vec![task("k")], false)
        .await
        .unwrap();
    let (i, tasks) = waiting.await.unwrap().unwrap().expect("a task");
    assert_eq!((i, tasks.len()), (1, 1), "from the second queue");
    assert_eq!(tasks[0].id, out[0].task.id);
    assert_eq!(tasks[0].state, rota_core::TaskState::Running);

    let ended = f
        .service
        .claim(&admin, "later", claim(1, 50))
        .await
        .unwrap();
    assert!(ended.is_empty());
    let out = f
        .service
        .enqueue(&admin, "later", vec![task("k")], false)
        .await
        .unwrap();
    let now = f.service.get(&admin, out[0].task.id).await.unwrap();
    assert_eq!(
        now.state,
        rota_core::TaskState::Ready,
        "no ended wait took it"
    );
}
