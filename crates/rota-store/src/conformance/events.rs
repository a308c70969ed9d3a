//! The event log: one event per transition, in commit order, per tenant, resumable by cursor,
//! trimmed by retention.

use super::*;
use rota_core::events::{Event, EventType};

fn all() -> EventKeep {
    Arc::new(|_: &Event| true)
}

pub(super) async fn read_all(s: &DynStore, tenant: &str, after: i64) -> Vec<Event> {
    let mut out = Vec::new();
    let mut cursor = after;
    loop {
        let page = s.events(tenant, cursor, 1_000, all()).await.unwrap();
        let done = page.events.is_empty() && page.next_cursor == cursor;
        out.extend(page.events);
        if done {
            return out;
        }
        cursor = page.next_cursor;
    }
}

pub(super) fn types(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

/// Readers wait per tenant: another tenant's commits do not wake them (an idle stream of one
/// tenant costs nothing while another is busy), their own tenant's do.
pub async fn a_commit_wakes_only_the_readers_of_its_tenants_events<H: Harness>() {
    let (_h, _clock, s) = setup::<H>().await;
    create_tenant(&s, "globex").await;
    let (mine, any) = (s.tenant_event_signal("default"), s.event_signal());
    let idle = mine.notified();
    tokio::pin!(idle);
    idle.as_mut().enable();
    for n in 0..3 {
        // The signal of every tenant fires after the tenants' own (see `EventSignals`), so
        // once it has, a wake-up of `default` would have come.
        let other = any.notified();
        tokio::pin!(other);
        other.as_mut().enable();
        let queue = QueueKey::new("globex", format!("busy{n}"));
        enqueue_one(&s, &queue, task("x")).await;
        tokio::time::timeout(std::time::Duration::from_secs(5), other)
            .await
            .expect("a commit with events wakes the readers of every tenant's events");
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(
            std::future::Future::poll(idle.as_mut(), &mut cx).is_pending(),
            "globex's commit woke a reader of default's events"
        );
    }
    enqueue_one(&s, &q("mine"), task("x")).await;
    tokio::time::timeout(std::time::Duration::from_secs(5), idle)
        .await
        .expect("the tenant's own commit wakes its readers");
}

pub async fn every_transition_is_logged_in_commit_order<H: Harness>() {
    let (_h, clock, s) = setup::<H>().await;
    create_tenant(&s, "globex").await;
    let queue = q("ev");
    let signal = s.event_signal();
    let woken = signal.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    let mut keyed = task("x");
    keyed.unique_key = Some("k".into());
    let a = enqueue_one(&s, &queue, keyed.clone()).await;
    tokio::time::timeout(std::time::Duration::from_secs(5), woken)
        .await
        .expect("a commit with events wakes readers");
    // A duplicate logs nothing.
    assert!(s.enqueue(&queue, vec![keyed]).await.unwrap()[0].duplicate);
    let claimed = claim_one(&s, &queue).await;
    complete(&s, &claimed).await.unwrap();
    let b = enqueue_one(&s, &queue, task("x")).await;
    let c = claim_one(&s, &queue).await;
    fail(&s, &c, Some(60_000), false).await.unwrap();
    s.change("default", b.id, Change::RunNow).await.unwrap();
    let c = claim_one(&s, &queue).await;
    fail(&s, &c, None, true).await.unwrap();
    s.change("default", b.id, Change::Retry).await.unwrap();
    s.change("default", b.id, Change::Cancel).await.unwrap();
    s.change("default", b.id, Change::Delete).await.unwrap();
    let d = enqueue_one(&s, &queue, task("y")).await;
    claim_one(&s, &queue).await;
    clock.advance_ms(20_000);
    s.run_maintenance().await.unwrap();
    let kill = Change::Kill {
        reason: "stop".into(),
    };
    s.change("default", d.id, kill).await.unwrap();
    // Another tenant's work is not in this tenant's log.
    enqueue_one(&s, &QueueKey::new("globex", "ev"), task("x")).await;

    let events = read_all(&s, "default", 0).await;
    assert_eq!(
        types(&events),
        [
            "task.enqueued",
            "task.claimed",
            "task.succeeded",
            "task.enqueued",
            "task.claimed",
            "task.failed",
            "task.claimed",
            "task.dead",
            "task.retried",
            "task.cancelled",
            "task.deleted",
            "task.enqueued",
            "task.claimed",
            "task.lease_expired",
            "task.dead",
        ]
    );
    assert!(events.windows(2).all(|w| w[0].cursor < w[1].cursor));
    let e = &events[0];
    assert_eq!(
        (e.task_id, e.queue.as_str(), e.kind.as_str()),
        (a.id, "ev", "x")
    );
    assert_eq!((e.attempt, e.at), (0, Timestamp(T0)));
    assert_eq!(e.data()["state"], "ready");
    assert_eq!(events[1].data()["worker"], "w1");
    assert_eq!(events[1].attempt, 1);
    assert_eq!(events[5].data()["error"], "boom on attempt 1");
    assert!(
        events[5].data()["retry_at"].is_string(),
        "{}",
        events[5].data()
    );
    assert_eq!(events[7].data()["error"], "boom on attempt 2");
    assert_eq!(events[13].data()["worker"], "w1");
    assert_eq!(events[13].data()["state"], "scheduled");
    assert_eq!(events[14].data()["error"], "stop");
    assert_eq!(events[14].at, Timestamp(T0 + 20_000));
    let theirs = read_all(&s, "globex", 0).await;
    assert_eq!(types(&theirs), ["task.enqueued"]);

    // Resuming after any cursor gives exactly what follows it; `keep` filters.
    let from = events[6].cursor;
    let rest = read_all(&s, "default", from).await;
    assert_eq!(rest, events[7..]);
    let page = s.events("default", 0, 2, all()).await.unwrap();
    assert_eq!(page.events, events[..2]);
    assert_eq!(page.next_cursor, events[1].cursor);
    let dead_only: EventKeep = Arc::new(|e: &Event| e.event_type == EventType::Dead);
    let page = s.events("default", 0, 10, dead_only).await.unwrap();
    assert_eq!(types(&page.events), ["task.dead", "task.dead"]);
    // Past the end, the cursor stays put.
    let last = events.last().unwrap().cursor;
    let page = s.events("default", last, 10, all()).await.unwrap();
    assert!(page.events.is_empty());
    assert!(page.next_cursor >= last);
}

/// A batch's events (an engine may store them as one run) read the same from any cursor and
/// page size as all at once, each with its own task's kind and attempt, and a webhook gets
/// each of them as its own delivery.
pub async fn a_batchs_events_read_alike_from_any_cursor<H: Harness>() {
    let (_h, _clock, s) = setup::<H>().await;
    s.put_webhook(webhooks::hook("default", "all", &["task.*"], &[]))
        .await
        .unwrap();
    let (one, two) = (q("runs"), q("runs2"));
    let mut batch: Vec<NewTask> = (0..6)
        .map(|i| task(if i % 2 == 0 { "even" } else { "odd" }))
        .collect();
    batch[3].run_at = Some(Timestamp(T0 + 3_600_000));
    s.enqueue(&one, batch).await.unwrap();
    s.enqueue(&two, vec![task("c"), task("c")]).await.unwrap();
    // One task of `runs` on its second attempt, the others on their first.
    let first = claim_one(&s, &one).await;
    fail(&s, &first, Some(0), false).await.unwrap();
    let mut claimed = s.claim(&one, claim_req(10)).await.unwrap();
    assert_eq!(claimed.len(), 5, "the five ready tasks of runs");
    assert!(claimed.iter().any(|t| t.attempt == 2) && claimed.iter().any(|t| t.attempt == 1));
    claimed.extend(s.claim(&two, claim_req(10)).await.unwrap());
    let items = claimed
        .iter()
        .map(|t| Completion {
            id: t.id,
            lease: lease(t),
            result: None,
        })
        .collect();
    for r in s.complete("default", items).await {
        r.unwrap();
    }

    let logged = read_all(&s, "default", 0).await;
    assert!(logged.windows(2).all(|w| w[0].cursor < w[1].cursor));
    for t in &claimed {
        let mine: Vec<_> = logged.iter().filter(|e| e.task_id == t.id).collect();
        assert!(mine.iter().all(|e| e.kind == t.kind), "{mine:?}");
        let last: Vec<_> = mine.iter().rev().take(2).rev().collect();
        assert_eq!(
            last.iter()
                .map(|e| (e.event_type.as_str(), e.attempt))
                .collect::<Vec<_>>(),
            [("task.claimed", t.attempt), ("task.succeeded", t.attempt)],
            "{mine:?}"
        );
    }
    let succeeded = logged
        .iter()
        .filter(|e| e.event_type.as_str() == "task.succeeded");
    assert_eq!(succeeded.count(), 7);
    // From every cursor, pages of one and of three continue exactly where `all` does.
    let mut from = vec![0];
    from.extend(logged.iter().map(|e| e.cursor));
    for (i, after) in from.iter().enumerate() {
        for limit in [1, 3] {
            let page = s.events("default", *after, limit, all()).await.unwrap();
            let want: Vec<i64> = logged
                .iter()
                .skip(i)
                .take(limit)
                .map(|e| e.cursor)
                .collect();
            let got: Vec<i64> = page.events.iter().map(|e| e.cursor).collect();
            assert_eq!(got, want, "after {after}, limit {limit}");
            assert_eq!(page.events[..], logged[i..i + got.len()]);
        }
    }
    // A filter that keeps only the odd tasks skips within a batch's events.
    let odd: EventKeep = Arc::new(|e: &Event| e.kind == "odd");
    let page = s.events("default", 0, 1_000, odd).await.unwrap();
    let want: Vec<&Event> = logged.iter().filter(|e| e.kind == "odd").collect();
    assert_eq!(page.events.iter().collect::<Vec<_>>(), want);
    // The webhook got one delivery per event, each carrying it.
    let mut got = Vec::new();
    let mut before = None;
    loop {
        let f = DeliveryFilter {
            webhook_id: "all".into(),
            state: None,
            limit: 100,
            before,
        };
        let page = s.deliveries("default", f).await.unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|d| d.id);
        got.extend(page.into_iter().map(|d| d.event));
    }
    got.sort_by_key(|e| e.cursor);
    assert_eq!(got, logged);
    // The doctor counts a batch's events one by one.
    let d = s
        .diagnose("default", Timestamp(T0 - 1), Timestamp(T0 + 86_400_000))
        .await
        .unwrap();
    let count = |queue: &str| {
        let a = &d.queues[queue];
        [
            EventType::Enqueued,
            EventType::Claimed,
            EventType::Succeeded,
            EventType::Failed,
        ]
        .map(|t| a.count(t))
    };
    assert_eq!(count("runs"), [6, 6, 5, 1]);
    assert_eq!(count("runs2"), [2, 2, 2, 0]);
    let minute = T0 / 60_000 * 60_000;
    let per_minute: Vec<_> = d.queues["runs"].minutes.iter().collect();
    assert_eq!(per_minute, [(&minute, &(5, 1))]);
}

pub async fn events_past_retention_are_trimmed_and_cursors_keep_growing<H: Harness>() {
    let (_h, clock, s) = setup::<H>().await;
    let queue = q("old");
    enqueue_one(&s, &queue, task("x")).await;
    let before = read_all(&s, "default", 0).await;
    assert_eq!(before.len(), 1);
    clock.advance_ms(DEFAULT_EVENT_RETENTION_MS as i64 + 1);
    s.run_maintenance().await.unwrap();
    assert!(read_all(&s, "default", 0).await.is_empty(), "trimmed");
    enqueue_one(&s, &queue, task("x")).await;
    let after = read_all(&s, "default", 0).await;
    assert_eq!(after.len(), 1);
    assert!(
        after[0].cursor > before[0].cursor,
        "a cursor is never given twice"
    );
    // A reader resuming from the trimmed cursor gets what is still retained.
    assert_eq!(read_all(&s, "default", before[0].cursor).await, after);
}

pub async fn each_tenant_keeps_events_for_its_own_retention<H: Harness>() {
    let (_h, clock, s) = setup::<H>().await;
    const HOUR: u64 = 3_600_000;
    let put = |name: &str, ms: Option<u64>| {
        AuthChange::PutTenant(TenantRecord {
            name: name.into(),
            created_at: Timestamp(T0),
            limits: ClientLimits::default(),
            event_retention_ms: ms,
        })
    };
    // The default keeps a day; `brief` an hour, `audit` three days.
    s.change_auth(put("brief", Some(HOUR))).await.unwrap();
    s.change_auth(put("audit", Some(72 * HOUR))).await.unwrap();
    for tenant in ["default", "brief", "audit"] {
        enqueue_one(&s, &QueueKey::new(tenant, "q"), task("x")).await;
    }
    let counts = || async {
        let mut n = Vec::new();
        for tenant in ["default", "brief", "audit"] {
            n.push(read_all(&s, tenant, 0).await.len());
        }
        n
    };
    let pass = |ms: u64| {
        clock.advance_ms(ms as i64);
        s.run_maintenance()
    };
    pass(2 * HOUR).await.unwrap();
    assert_eq!(counts().await, [1, 0, 1], "brief's hour is over");
    pass(DEFAULT_EVENT_RETENTION_MS).await.unwrap();
    assert_eq!(counts().await, [0, 0, 1], "the default day is over");
    // An event logged now, for a tenant whose retention then goes back to the default.
    enqueue_one(&s, &QueueKey::new("audit", "q"), task("x")).await;
    pass(48 * HOUR).await.unwrap();
    assert_eq!(
        counts().await,
        [0, 0, 1],
        "audit's first event is three days old"
    );
    s.change_auth(put("audit", None)).await.unwrap();
    pass(DEFAULT_EVENT_RETENTION_MS).await.unwrap();
    s.run_maintenance().await.unwrap();
    assert_eq!(counts().await, [0, 0, 0], "audit now keeps the default day");
}

pub async fn deleting_a_tenant_deletes_its_events<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    create_tenant(&s, "doomed").await;
    enqueue_one(&s, &QueueKey::new("doomed", "q"), task("x")).await;
    assert_eq!(read_all(&s, "doomed", 0).await.len(), 1);
    s.change_auth(AuthChange::DeleteTenant("doomed".into()))
        .await
        .unwrap();
    create_tenant(&s, "doomed").await;
    assert!(read_all(&s, "doomed", 0).await.is_empty());
}

pub async fn a_diagnosis_sums_recent_events_errors_kinds_and_far_schedules<H: Harness>() {
    let (_h, clock, s) = setup::<H>().await;
    let (orders, mail, later) = (q("orders"), q("mail"), q("later"));
    for kind in ["ship", "bill", "ship"] {
        enqueue_one(&s, &orders, task(kind)).await;
    }
    enqueue_one(&s, &mail, task("send")).await;
    // One failed attempt (retry in a minute) and one dead task, with the same error.
    let first = claim_one(&s, &orders).await;
    fail(&s, &first, Some(60_000), false).await.unwrap();
    let second = claim_one(&s, &orders).await;
    fail(&s, &second, None, true).await.unwrap();
    let mut far = task("yearly");
    far.run_at = Some(clock.now().plus_ms(400 * 86_400_000));
    enqueue_one(&s, &later, far.clone()).await;

    let horizon = clock.now().plus_ms(30 * 86_400_000);
    let d = s
        .diagnose("default", Timestamp(T0 - 1), horizon)
        .await
        .unwrap();
    assert!(!d.truncated);
    let o = &d.queues["orders"];
    let counts = |a: &crate::QueueActivity| {
        [
            EventType::Enqueued,
            EventType::Claimed,
            EventType::Failed,
            EventType::Dead,
        ]
        .map(|t| a.count(t))
    };
    assert_eq!(counts(o), [3, 2, 1, 1]);
    assert_eq!(o.errors, vec![("boom on attempt 1".to_owned(), 2)]);
    assert_eq!(
        o.ready_kinds,
        ["ship"],
        "the third task; the first waits for its retry"
    );
    let minute = clock.now().0 / 60_000 * 60_000;
    let per_minute: Vec<_> = o.minutes.iter().collect();
    assert_eq!(
        per_minute,
        [(&minute, &(0, 2))],
        "two failed attempts this minute"
    );
    assert_eq!(d.queues["mail"].ready_kinds, ["send"]);
    assert_eq!(counts(&d.queues["mail"]), [1, 0, 0, 0]);
    let l = &d.queues["later"];
    assert_eq!((l.far_scheduled, l.latest_run_at), (1, far.run_at));
    assert!(l.ready_kinds.is_empty());

    // Events before `since` are not counted; what is ready still is.
    clock.advance_ms(1_000);
    let d = s.diagnose("default", clock.now(), horizon).await.unwrap();
    assert_eq!(counts(&d.queues["orders"]), [0, 0, 0, 0]);
    assert!(d.queues["orders"].errors.is_empty());
    assert_eq!(d.queues["orders"].ready_kinds, ["ship"]);
    // Another tenant sees none of it.
    create_tenant(&s, "other").await;
    let d = s
        .diagnose("other", Timestamp(T0 - 1), horizon)
        .await
        .unwrap();
    assert!(d.queues.is_empty(), "{d:?}");
}
