//! Bodies for inbound webhooks: kept with the tenant's access data (across reopen, replaced
//! in place, deleted alone or with the tenant), and the events of their requests logged in
//! the event log like a transition's.

use super::events::read_all;
use super::*;
use rota_core::events::{Event, EventType, Subject};
use rota_core::hooks::{HookRecord, Verify};
use rota_core::TaskId;

fn hook(id: &str, tenant: &str, name: &str) -> HookRecord {
    HookRecord {
        id: id.to_owned(),
        tenant: tenant.to_owned(),
        name: name.to_owned(),
        queue: "mirror".into(),
        kind: "push".into(),
        verify: Verify::Github,
        secret: "s3cret-s3cret-s3cret".into(),
        previous_secret: None,
        previous_until: None,
        enabled: true,
        description: Some("GitHub pushes".into()),
        owner: Some(rota_core::webhooks::WebhookOwner {
            label: "key k1".into(),
            key_id: Some("k1".into()),
            tenant: tenant.to_owned(),
            roles: vec!["producer".into()],
            queues: vec![],
            scope: None,
        }),
        created_at: Timestamp(T0),
        updated_at: Timestamp(T0),
    }
}

fn about(ty: EventType, hook_id: &str, delivery: Option<&str>, task_id: TaskId) -> Event {
    Event {
        cursor: 0,
        event_type: ty,
        at: Timestamp(T0),
        queue: "mirror".into(),
        kind: "push".into(),
        task_id,
        attempt: 0,
        state: None,
        worker: None,
        error: (ty == EventType::HookRejected).then(|| "bad_signature: no match".to_owned()),
        due: None,
        subject: Some(Subject::Hook {
            hook_id: hook_id.to_owned(),
            delivery: delivery.map(str::to_owned),
        }),
    }
}

pub async fn inbound_hooks_round_trip_and_their_requests_are_logged<H: Harness>() {
    let (h, clock, s) = setup::<H>().await;
    create_tenant(&s, "acme").await;
    let mut kept = hook("hk_1", "acme", "github");
    for h in [kept.clone(), hook("hk_2", "acme", "gitlab")] {
        s.change_auth(AuthChange::PutHook(Box::new(h)))
            .await
            .unwrap();
    }
    // A rotation replaces the record in place.
    kept.previous_secret = Some(kept.secret.clone());
    kept.previous_until = Some(Timestamp(T0 + 60_000));
    kept.secret = "n3w-s3cret-n3w-s3cret".into();
    s.change_auth(AuthChange::PutHook(Box::new(kept.clone())))
        .await
        .unwrap();
    s.change_auth(AuthChange::DeleteHook {
        tenant: "acme".into(),
        id: "hk_2".into(),
    })
    .await
    .unwrap();

    // Events that are no transition, in a queue that does not exist yet, in the order given.
    let task = enqueue_one(&s, &QueueKey::new("acme", "other"), task("x")).await;
    let received = about(EventType::HookReceived, "hk_1", Some("d/1"), task.id);
    let rejected = about(EventType::HookRejected, "hk_1", None, TaskId::NONE);
    s.log_events("acme", vec![received.clone(), rejected.clone()])
        .await
        .unwrap();
    assert_eq!(
        s.log_events("nobody", vec![received.clone()])
            .await
            .unwrap_err(),
        StoreError::TenantNotFound("nobody".into())
    );
    s.close().await;
    let s = h.open(clock).await;
    assert_eq!(s.load_auth().await.unwrap().hooks, vec![kept]);
    let logged: Vec<Event> = read_all(&s, "acme", 0)
        .await
        .into_iter()
        .filter(|e| e.event_type.is_hook())
        .collect();
    assert_eq!(logged.len(), 2, "{logged:?}");
    assert!(logged[0].cursor < logged[1].cursor);
    for (got, want) in logged.iter().zip([&received, &rejected]) {
        let mut want = want.clone();
        want.cursor = got.cursor;
        assert_eq!(got, &want);
    }
    assert!(s
        .queues("acme")
        .await
        .unwrap()
        .iter()
        .any(|q| q.name == "mirror"));

    s.change_auth(AuthChange::DeleteTenant("acme".into()))
        .await
        .unwrap();
    assert!(s.load_auth().await.unwrap().hooks.is_empty());
    s.close().await;
}
