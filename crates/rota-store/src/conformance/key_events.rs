//! Events of a tenant in no queue (`key.*`): written with the key in one transaction, read by
//! the tenant alone, handed to its webhooks, logged once under a notice's condition, and gone
//! with the tenant.

use super::events::{read_all, types};
use super::*;
use rota_core::events::{about_key, EventType, Subject};

fn notice(key: &KeyRecord, ty: EventType, expect: Option<&str>) -> AuthChange {
    let mut k = key.clone();
    k.expiry_notice = Some(ty.as_str().to_owned());
    AuthChange::KeyEvent {
        key: Box::new(k),
        event: Box::new(about_key(ty, &key.id, Timestamp(T0), key.expires_at)),
        expect_notice: Some(expect.map(str::to_owned)),
    }
}

pub async fn key_events_are_the_tenants_in_no_queue_and_logged_once<H: Harness>() {
    let (h, clock, s) = setup::<H>().await;
    for t in ["acme", "globex"] {
        create_tenant(&s, t).await;
    }
    let wh = super::webhooks::hook("acme", "keys", &["key.*"], &[]);
    s.put_webhook(wh).await.unwrap();
    let key = super::tenants::key_record("k1", "acme");
    s.change_auth(AuthChange::PutKey(Box::new(key.clone())))
        .await
        .unwrap();
    // A rotation: the key and its event in one change.
    let mut rotated = key.clone();
    rotated.previous_until = Some(Timestamp(T0 + 5_000));
    let event = about_key(
        EventType::KeyRotated,
        "k1",
        Timestamp(T0),
        rotated.previous_until,
    );
    s.change_auth(AuthChange::KeyEvent {
        key: Box::new(rotated),
        event: Box::new(event),
        expect_notice: None,
    })
    .await
    .unwrap();
    // Expiry notices: each once, whoever asks (a stale expectation writes nothing).
    s.change_auth(notice(&key, EventType::KeyExpiring, None))
        .await
        .unwrap();
    s.change_auth(notice(&key, EventType::KeyExpiring, None))
        .await
        .unwrap();
    s.change_auth(notice(&key, EventType::KeyExpired, Some("key.expiring")))
        .await
        .unwrap();
    s.change_auth(notice(&key, EventType::KeyExpired, Some("key.expiring")))
        .await
        .unwrap();
    // A notice for a key that is not there writes nothing.
    let ghost = super::tenants::key_record("ghost", "acme");
    s.change_auth(notice(&ghost, EventType::KeyExpiring, None))
        .await
        .unwrap();
    // Task events beside them keep their queues.
    enqueue_one(&s, &QueueKey::new("acme", "mail"), task("send")).await;

    let check = |s: DynStore| async move {
        let acme = read_all(&s, "acme", 0).await;
        assert_eq!(
            types(&acme),
            [
                "key.rotated",
                "key.expiring",
                "key.expired",
                "task.enqueued"
            ]
        );
        for e in &acme[..3] {
            assert_eq!(e.queue, "", "a key's event is in no queue");
            assert_eq!(e.subject, Some(Subject::Key("k1".into())));
        }
        assert_eq!(acme[0].due, Some(Timestamp(T0 + 5_000)));
        assert_eq!(acme[1].due, Some(Timestamp(T0 + 60_000)));
        assert_eq!(acme[3].queue, "mail");
        assert!(
            read_all(&s, "globex", 0).await.is_empty(),
            "another tenant's"
        );
        let stored = s.load_auth().await.unwrap();
        let k = stored.keys.iter().find(|k| k.id == "k1").unwrap();
        assert_eq!(k.expiry_notice.as_deref(), Some("key.expired"));
        assert!(!stored.keys.iter().any(|k| k.id == "ghost"));
        // The tenant's webhook for key.* has one delivery of each.
        let f = DeliveryFilter {
            webhook_id: "keys".into(),
            state: None,
            limit: 100,
            before: None,
        };
        let mut got: Vec<&str> = Vec::new();
        let deliveries = s.deliveries("acme", f).await.unwrap();
        for d in &deliveries {
            got.push(d.event.event_type.as_str());
            assert_eq!(d.event.subject, Some(Subject::Key("k1".into())));
        }
        got.sort_unstable();
        assert_eq!(got, ["key.expired", "key.expiring", "key.rotated"]);
    };
    check(s.clone()).await;
    s.close().await;
    let s = h.open(clock.clone()).await;
    check(s.clone()).await;

    // Gone with the tenant.
    s.change_auth(AuthChange::DeleteTenant("acme".into()))
        .await
        .unwrap();
    create_tenant(&s, "acme").await;
    assert!(read_all(&s, "acme", 0).await.is_empty());
    s.close().await;
}
