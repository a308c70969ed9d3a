//! Webhooks: each logged event a webhook wants becomes a delivery in the same transaction;
//! attempts are taken, recorded and retried; an endpoint failing for days is disabled.

use super::*;
use rota_core::events::EventFilter;
use rota_core::webhooks::{Attempt, DeliveryState, Webhook, DISABLE_AFTER_MS, MAX_ATTEMPTS};

pub(super) fn hook(tenant: &str, id: &str, types: &[&str], queues: &[&str]) -> Webhook {
    Webhook {
        tenant: tenant.into(),
        id: id.into(),
        url: "https://hooks.example.com/rota".into(),
        filter: EventFilter {
            types: types.iter().map(|s| s.to_string()).collect(),
            queues: queues.iter().map(|s| s.to_string()).collect(),
        },
        description: Some("ops".into()),
        enabled: true,
        disabled_reason: None,
        secret: "s3cret".into(),
        previous_secret: None,
        previous_until: None,
        failing_since: None,
        created_at: Timestamp(T0),
        updated_at: Timestamp(T0),
        owner: None,
    }
}

fn filter(id: &str, state: Option<DeliveryState>) -> DeliveryFilter {
    DeliveryFilter {
        webhook_id: id.into(),
        state,
        limit: 100,
        before: None,
    }
}

fn failed(status: u16) -> Attempt {
    Attempt {
        status: Some(status),
        error: Some(format!("answered {status}")),
        latency_ms: 5,
        give_up: false,
    }
}

/// Fails delivery `id` at every attempt, each when due, until it is dead.
async fn fail_until_dead(s: &DynStore, clock: &ManualClock, id: i64) {
    for attempt in 1..=MAX_ATTEMPTS {
        let now = clock.now();
        let taken = s
            .take_deliveries(vec![id], now, now.plus_ms(1_000))
            .await
            .unwrap();
        assert_eq!(taken.len(), 1);
        s.record_attempts(vec![(id, failed(500))], now)
            .await
            .unwrap();
        clock.advance_ms(rota_core::webhooks::retry_delay_ms(attempt));
    }
}

/// For webhook `flaky`, failing since its first attempt: a new task's delivery fails once
/// [`DISABLE_AFTER_MS`] later; answers the webhooks that attempt disabled.
async fn fail_long_enough(s: &DynStore, clock: &ManualClock, queue: &QueueKey) -> Vec<Webhook> {
    enqueue_one(s, queue, task("x")).await;
    let id = s
        .deliveries("default", filter("flaky", Some(DeliveryState::Pending)))
        .await
        .unwrap()[0]
        .id;
    clock.advance_ms(DISABLE_AFTER_MS);
    let now = clock.now();
    s.take_deliveries(vec![id], now, now.plus_ms(1_000))
        .await
        .unwrap();
    s.record_attempts(vec![(id, failed(500))], now)
        .await
        .unwrap()
}

fn ok() -> Attempt {
    Attempt {
        status: Some(204),
        error: None,
        latency_ms: 2,
        give_up: false,
    }
}

pub async fn events_a_webhook_wants_become_deliveries<H: Harness>() {
    let (h, clock, s) = setup::<H>().await;
    create_tenant(&s, "acme").await;
    s.put_webhook(hook(
        "default",
        "wh1",
        &["task.succeeded", "task.dead"],
        &["mail*"],
    ))
    .await
    .unwrap();
    let mut off = hook("default", "off", &["task.*"], &[]);
    off.enabled = false;
    s.put_webhook(off).await.unwrap();
    s.put_webhook(hook("acme", "theirs", &["task.*"], &[]))
        .await
        .unwrap();
    assert_eq!(
        s.put_webhook(hook("ghost", "x", &["task.*"], &[]))
            .await
            .unwrap_err(),
        StoreError::TenantNotFound("ghost".into())
    );
    let queue = q("mail-eu");
    enqueue_one(&s, &queue, task("send")).await;
    let t = claim_one(&s, &queue).await;
    complete(&s, &t).await.unwrap();
    enqueue_one(&s, &q("other"), task("send")).await;
    let c = claim_one(&s, &q("other")).await;
    complete(&s, &c).await.unwrap();

    let mine = s.deliveries("default", filter("wh1", None)).await.unwrap();
    assert_eq!(mine.len(), 1, "only task.succeeded on mail*: {mine:?}");
    let d = &mine[0];
    assert_eq!(d.event.event_type.as_str(), "task.succeeded");
    assert_eq!((d.event.task_id, d.event.queue.as_str()), (t.id, "mail-eu"));
    // The delivery carries the logged event, cursor and all.
    let logged = s
        .events(
            "default",
            0,
            1_000,
            Arc::new(|_: &rota_core::events::Event| true),
        )
        .await
        .unwrap();
    let same = logged
        .events
        .iter()
        .find(|e| e.task_id == t.id && e.event_type.as_str() == "task.succeeded")
        .unwrap();
    assert_eq!(same, &d.event);
    assert_eq!((d.state, d.attempts), (DeliveryState::Pending, 0));
    assert!(s
        .deliveries("default", filter("off", None))
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .deliveries("acme", filter("theirs", None))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.webhooks("default", None)
            .await
            .unwrap()
            .iter()
            .map(|w| w.id.as_str())
            .collect::<Vec<_>>(),
        ["off", "wh1"]
    );

    // Due, taken (an attempt in flight until `until`), failed, due again, delivered.
    let now = clock.now();
    let due = s.due_deliveries(now, 10, DueSkip::default()).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].id, due[0].webhook_id.as_str()), (d.id, "wh1"));
    let until = now.plus_ms(15_000);
    let taken = s.take_deliveries(vec![d.id], now, until).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(
        (taken[0].0.attempts, taken[0].1.secret.as_str()),
        (1, "s3cret")
    );
    assert!(s
        .take_deliveries(vec![d.id], now, until)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .due_deliveries(now, 10, DueSkip::default())
        .await
        .unwrap()
        .is_empty());
    s.record_attempts(vec![(d.id, failed(503))], now)
        .await
        .unwrap();
    let after = &s
        .deliveries("default", filter("wh1", Some(DeliveryState::Failed)))
        .await
        .unwrap()[0];
    assert_eq!(after.last_status, Some(503));
    assert_eq!(after.next_at, Some(now.plus_ms(10_000)));
    assert_eq!(
        s.webhooks("default", Some("wh1")).await.unwrap()[0].failing_since,
        Some(now)
    );
    clock.advance_ms(10_000);
    let now = clock.now();
    s.take_deliveries(vec![d.id], now, now.plus_ms(15_000))
        .await
        .unwrap();
    s.record_attempts(vec![(d.id, ok())], now).await.unwrap();
    let done = &s.deliveries("default", filter("wh1", None)).await.unwrap()[0];
    assert_eq!((done.state, done.attempts), (DeliveryState::Delivered, 2));
    assert_eq!(done.delivered_at, Some(now));
    assert_eq!(
        s.webhooks("default", Some("wh1")).await.unwrap()[0].failing_since,
        None
    );

    // A delivered or dead delivery can be sent again by hand; it survives a reopen.
    let again = s.retry_delivery("default", "wh1", d.id).await.unwrap();
    assert_eq!(again.state, DeliveryState::Pending);
    assert_eq!(
        s.retry_delivery("acme", "wh1", d.id).await.unwrap_err(),
        StoreError::DeliveryNotFound(d.id)
    );
    s.close().await;
    let s = h.open(clock.clone()).await;
    assert_eq!(
        s.due_deliveries(clock.now(), 10, DueSkip::default())
            .await
            .unwrap()
            .len(),
        1
    );
    s.close().await;
}

pub async fn attempts_end_dead_and_a_failing_endpoint_is_disabled<H: Harness>() {
    let (_h, clock, s) = setup::<H>().await;
    s.put_webhook(hook("default", "flaky", &["task.enqueued"], &[]))
        .await
        .unwrap();
    let queue = q("jobs");
    enqueue_one(&s, &queue, task("x")).await;
    let id = s
        .deliveries("default", filter("flaky", None))
        .await
        .unwrap()[0]
        .id;
    fail_until_dead(&s, &clock, id).await;
    let dead = &s
        .deliveries("default", filter("flaky", None))
        .await
        .unwrap()[0];
    assert_eq!(
        (dead.state, dead.attempts),
        (DeliveryState::Dead, MAX_ATTEMPTS)
    );
    assert!(s
        .due_deliveries(clock.now(), 10, DueSkip::default())
        .await
        .unwrap()
        .is_empty());

    // Failing since the first attempt, long enough: the next failure disables it.
    let disabled = fail_long_enough(&s, &clock, &queue).await;
    assert_eq!(disabled.len(), 1);
    let w = &s.webhooks("default", Some("flaky")).await.unwrap()[0];
    assert!(!w.enabled);
    assert!(
        w.disabled_reason
            .as_deref()
            .unwrap()
            .contains("answered 500"),
        "{w:?}"
    );
    // Finished deliveries are deleted a week after their last attempt; the failed one stays.
    clock.advance_ms(rota_core::webhooks::KEEP_FINISHED_MS + 1);
    s.run_maintenance().await.unwrap();
    let left = s
        .deliveries("default", filter("flaky", None))
        .await
        .unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].state, DeliveryState::Failed);
    let before = s
        .deliveries("default", filter("flaky", None))
        .await
        .unwrap()
        .len();
    enqueue_one(&s, &queue, task("x")).await;
    assert_eq!(
        s.deliveries("default", filter("flaky", None))
            .await
            .unwrap()
            .len(),
        before
    );
}

pub async fn deleting_a_webhook_or_its_tenant_deletes_its_deliveries<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    create_tenant(&s, "acme").await;
    s.put_webhook(hook("default", "a", &["task.*"], &[]))
        .await
        .unwrap();
    s.put_webhook(hook("acme", "b", &["task.*"], &[]))
        .await
        .unwrap();
    enqueue_one(&s, &q("jobs"), task("x")).await;
    enqueue_one(&s, &QueueKey::new("acme", "jobs"), task("x")).await;
    assert_eq!(
        s.due_deliveries(Timestamp(T0), 10, DueSkip::default())
            .await
            .unwrap()
            .len(),
        2
    );
    s.delete_webhook("default", "a").await.unwrap();
    assert_eq!(
        s.delete_webhook("default", "a").await.unwrap_err(),
        StoreError::WebhookNotFound("a".into())
    );
    s.change_auth(AuthChange::DeleteTenant("acme".into()))
        .await
        .unwrap();
    assert!(s
        .due_deliveries(Timestamp(T0), 10, DueSkip::default())
        .await
        .unwrap()
        .is_empty());
    assert!(s.webhooks("acme", None).await.unwrap().is_empty());
    // No webhook left: events make no deliveries.
    enqueue_one(&s, &q("jobs"), task("x")).await;
    assert!(s
        .due_deliveries(Timestamp(T0), 10, DueSkip::default())
        .await
        .unwrap()
        .is_empty());
}

pub async fn a_task_result_goes_to_its_callback_url<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let queue = q("reports");
    let mut with = task("report");
    with.callback_url = Some("https://app.example.com/done".into());
    // No signer yet: the outcome makes no delivery.
    let first = enqueue_one(&s, &queue, with.clone()).await;
    assert_eq!(
        first.callback_url.as_deref(),
        Some("https://app.example.com/done")
    );
    let c = claim_one(&s, &queue).await;
    complete(&s, &c).await.unwrap();
    assert!(s
        .deliveries("default", filter("callbacks", None))
        .await
        .unwrap()
        .is_empty());

    let mut signer = hook("default", rota_core::webhooks::CALLBACKS_ID, &[], &[]);
    signer.enabled = false;
    s.put_webhook(signer).await.unwrap();
    let t = enqueue_one(&s, &queue, with).await;
    enqueue_one(&s, &queue, task("report")).await;
    assert_eq!(
        s.get("default", t.id)
            .await
            .unwrap()
            .callback_url
            .as_deref(),
        Some("https://app.example.com/done")
    );
    for _ in 0..2 {
        let c = claim_one(&s, &queue).await;
        complete(&s, &c).await.unwrap();
    }
    let got = s
        .deliveries("default", filter("callbacks", None))
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].url.as_deref(), Some("https://app.example.com/done"));
    assert_eq!(
        (got[0].event.task_id, got[0].event.event_type.as_str()),
        (t.id, "task.succeeded")
    );
    let due = s
        .due_deliveries(Timestamp(T0), 10, DueSkip::default())
        .await
        .unwrap();
    assert_eq!(due[0].url.as_deref(), Some("https://app.example.com/done"));

    // A queue's default reaches its tasks that name none; a task's own wins.
    let patch = QueuePatch {
        callback_url: Some(Some("https://app.example.com/queue".into())),
        ..Default::default()
    };
    let info = s.update_queue(&queue, patch).await.unwrap();
    assert_eq!(
        info.settings.callback_url.as_deref(),
        Some("https://app.example.com/queue")
    );
    let plain = enqueue_one(&s, &queue, task("report")).await;
    let c = claim_one(&s, &queue).await;
    assert_eq!(c.id, plain.id);
    fail(&s, &c, None, true).await.unwrap();
    let got = s
        .deliveries("default", filter("callbacks", None))
        .await
        .unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].url.as_deref(), Some("https://app.example.com/queue"));
    assert_eq!(got[0].event.event_type.as_str(), "task.dead");
}

/// The deliverer leaves out what it cannot start (a full webhook, a full callback origin, a
/// tenant at its share), so a page of those never hides another tenant's work.
pub async fn due_deliveries_leave_out_what_is_skipped<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    create_tenant(&s, "acme").await;
    s.put_webhook(hook("default", "busy", &["task.enqueued"], &[]))
        .await
        .unwrap();
    s.put_webhook(hook("acme", "calm", &["task.enqueued"], &[]))
        .await
        .unwrap();
    let mut signer = hook("default", rota_core::webhooks::CALLBACKS_ID, &[], &[]);
    signer.enabled = false;
    s.put_webhook(signer).await.unwrap();
    for _ in 0..3 {
        enqueue_one(&s, &q("jobs"), task("x")).await;
    }
    enqueue_one(&s, &QueueKey::new("acme", "jobs"), task("x")).await;
    // Two results: one to a hanging origin, one elsewhere.
    for url in [
        "https://slow.example.com/a?x=1",
        "https://fast.example.com/b",
    ] {
        let mut t = task("r");
        t.callback_url = Some(url.into());
        enqueue_one(&s, &q("results"), t).await;
        let c = claim_one(&s, &q("results")).await;
        complete(&s, &c).await.unwrap();
    }
    let due = |skip: DueSkip| {
        let s = s.clone();
        async move {
            let mut got: Vec<String> = s
                .due_deliveries(Timestamp(i64::MAX / 2), 100, skip)
                .await
                .unwrap()
                .into_iter()
                .map(|d| format!("{}/{}", d.tenant, d.url.unwrap_or(d.webhook_id)))
                .collect();
            got.sort();
            got.dedup();
            got
        }
    };
    let all = due(DueSkip::default()).await;
    assert_eq!(
        all,
        [
            "acme/calm",
            "default/busy",
            "default/https://fast.example.com/b",
            "default/https://slow.example.com/a?x=1"
        ]
    );
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    let skip = DueSkip {
        webhooks: vec![pair("default", "busy")],
        callbacks: vec![pair("default", "https://slow.example.com/")],
        ..Default::default()
    };
    assert_eq!(
        due(skip).await,
        ["acme/calm", "default/https://fast.example.com/b"]
    );
    // Each names one tenant's: another tenant's webhook or result with the same id or origin
    // is not left out; a webhook id leaves out no results (signed by `callbacks`).
    let skip = DueSkip {
        webhooks: vec![
            pair("acme", "busy"),
            pair("default", "calm"),
            pair("default", rota_core::webhooks::CALLBACKS_ID),
        ],
        callbacks: vec![pair("acme", "https://slow.example.com/")],
        ..Default::default()
    };
    assert_eq!(due(skip).await, all);
    let skip = DueSkip {
        tenants: vec!["default".into()],
        ..Default::default()
    };
    assert_eq!(due(skip).await, ["acme/calm"]);
    let skip = DueSkip {
        tenants: vec!["default".into(), "acme".into()],
        ..Default::default()
    };
    assert!(due(skip).await.is_empty());
}

pub async fn dead_deliveries_and_disabled_webhooks_are_logged_for_other_webhooks<H: Harness>() {
    let (_h, clock, s) = setup::<H>().await;
    // `flaky` also asks for delivery events: never its own, or its failures would feed it.
    let types = ["task.enqueued", "delivery.*", "webhook.*"];
    s.put_webhook(hook("default", "flaky", &types, &[]))
        .await
        .unwrap();
    s.put_webhook(hook("default", "ops", &["delivery.*", "webhook.*"], &[]))
        .await
        .unwrap();
    let queue = q("jobs");
    let task_id = enqueue_one(&s, &queue, task("x")).await.id;
    let id = s
        .deliveries("default", filter("flaky", None))
        .await
        .unwrap()[0]
        .id;
    fail_until_dead(&s, &clock, id).await;
    let keep: EventKeep = Arc::new(|e: &rota_core::events::Event| e.event_type.is_delivery());
    let logged = s
        .events("default", 0, 10, keep.clone())
        .await
        .unwrap()
        .events;
    assert_eq!(logged.len(), 1, "{logged:?}");
    let dead = &logged[0];
    assert_eq!(dead.event_type.as_str(), "delivery.dead");
    assert_eq!(
        (dead.queue.as_str(), dead.task_id, dead.attempt),
        ("jobs", task_id, MAX_ATTEMPTS)
    );
    assert_eq!(dead.error.as_deref(), Some("answered 500"));
    let about = rota_core::events::Subject::Delivery {
        webhook_id: "flaky".into(),
        delivery_id: id,
    };
    assert_eq!(dead.subject.as_ref(), Some(&about));
    let to_ops = s.deliveries("default", filter("ops", None)).await.unwrap();
    assert_eq!(to_ops.len(), 1);
    assert_eq!(to_ops[0].event.subject.as_ref(), Some(&about));
    let to_flaky = s
        .deliveries("default", filter("flaky", None))
        .await
        .unwrap();
    assert_eq!(to_flaky.len(), 1, "none about its own delivery");

    // Disabled after failing long enough: logged too, with the reason.
    fail_long_enough(&s, &clock, &queue).await;
    // Read on from the last one seen, as a follower does.
    let logged = s
        .events("default", dead.cursor, 10, keep)
        .await
        .unwrap()
        .events;
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0].event_type.as_str(), "webhook.disabled");
    assert!(logged[0]
        .error
        .as_deref()
        .unwrap()
        .contains("every delivery failed since"));
    assert_eq!(
        s.deliveries("default", filter("ops", None))
            .await
            .unwrap()
            .len(),
        2
    );
}
