//! Bodies for queues: listing, settings, purge, retention, isolation, wake-ups, overviews.

use super::*;

pub async fn list_filters_and_paginates_newest_first<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let queue = q("list");
    let mut ids = vec![];
    for i in 0..7 {
        let kind = if i % 2 == 0 { "even" } else { "odd" };
        ids.push(enqueue_one(&s, &queue, task(kind)).await.id);
    }
    let first = claim_one(&s, &queue).await; // ids[0] is now running
    let page = |state, kind: Option<&str>, before| ListFilter {
        state,
        kind: kind.map(str::to_owned),
        limit: 3,
        before,
        unique_key: None,
    };
    let p1 = s.list(&queue, page(None, None, None)).await.unwrap();
    let got: Vec<_> = p1.tasks.iter().map(|t| t.id).collect();
    assert_eq!(got, [ids[6], ids[5], ids[4]]);
    let p2 = s
        .list(&queue, page(None, None, p1.next_cursor))
        .await
        .unwrap();
    let got: Vec<_> = p2.tasks.iter().map(|t| t.id).collect();
    assert_eq!(got, [ids[3], ids[2], ids[1]]);
    let p3 = s
        .list(&queue, page(None, None, p2.next_cursor))
        .await
        .unwrap();
    assert_eq!(p3.tasks.len(), 1);
    assert_eq!(p3.next_cursor, None, "no cursor after the last page");
    let running = s
        .list(&queue, page(Some(TaskState::Running), None, None))
        .await
        .unwrap();
    assert_eq!(running.tasks.len(), 1);
    assert_eq!(running.tasks[0].id, first.id);
    let odd = s
        .list(&queue, page(Some(TaskState::Ready), Some("odd"), None))
        .await
        .unwrap();
    let got: Vec<_> = odd.tasks.iter().map(|t| t.id).collect();
    assert_eq!(got, [ids[5], ids[3], ids[1]]);
    let e = s
        .list(&q("nope"), page(None, None, None))
        .await
        .unwrap_err();
    assert_eq!(e, StoreError::QueueNotFound("nope".into()));

    // By unique key: the live holder only, whatever its state; a finished one is not listed.
    let keyed = |key: &str| ListFilter {
        unique_key: Some(key.to_owned()),
        limit: 10,
        ..Default::default()
    };
    let mut t = task("keyed");
    t.unique_key = Some("k-1".into());
    let queue = q("list-keyed");
    enqueue_one(&s, &queue, task("other")).await;
    let first_holder = enqueue_one(&s, &queue, t.clone()).await.id;
    let ids_of = |p: Page| p.tasks.iter().map(|t| t.id).collect::<Vec<_>>();
    let got = s.list(&queue, keyed("k-1")).await.unwrap();
    assert_eq!(ids_of(got), [first_holder]);
    // Running, beside another running task: still found, and only it.
    claim_one(&s, &queue).await;
    let running = claim_one(&s, &queue).await;
    assert_eq!(running.id, first_holder);
    let got = s.list(&queue, keyed("k-1")).await.unwrap();
    assert_eq!(ids_of(got), [first_holder]);
    complete(&s, &running).await.unwrap();
    let got = s.list(&queue, keyed("k-1")).await.unwrap();
    assert!(
        got.tasks.is_empty(),
        "a finished task no longer holds its key"
    );
    let second_holder = enqueue_one(&s, &queue, t).await.id;
    let got = s.list(&queue, keyed("k-1")).await.unwrap();
    assert_eq!(ids_of(got), [second_holder]);
    assert!(s.list(&queue, keyed("k-2")).await.unwrap().tasks.is_empty());

    // Across the tenant's queues: each queue's live holder, none of another tenant's.
    let mut t = task("keyed");
    t.unique_key = Some("k-1".into());
    let other_queue = enqueue_one(&s, &q("list-keyed-2"), t.clone()).await.id;
    let acme = QueueKey::new("acme", "list-keyed");
    create_tenant(&s, "acme").await;
    enqueue_one(&s, &acme, t).await;
    let mut got: Vec<_> = s
        .unique_holders("default", "k-1")
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.queue, t.id))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("list-keyed".to_owned(), second_holder),
            ("list-keyed-2".to_owned(), other_queue)
        ]
    );
    assert!(s.unique_holders("default", "k-2").await.unwrap().is_empty());
    assert_eq!(s.unique_holders("acme", "k-1").await.unwrap().len(), 1);
}

pub async fn queue_stats_settings_and_pause<H: Harness>() {
    let (_h, clock, s) = setup::<H>().await;
    let queue = q("stats");
    s.enqueue(&queue, vec![task("x"), task("x"), task("x")])
        .await
        .unwrap();
    clock.advance_ms(1_500);
    let info = s.queue(&queue).await.unwrap();
    assert_eq!(info.name, "stats");
    assert_eq!(info.counts.ready, 3);
    assert_eq!(info.oldest_ready_age_ms, Some(1_500));
    assert_eq!(info.last_claim_at, None);
    assert_eq!(info.settings, rota_core::QueueSettings::default());
    let c = claim_one(&s, &queue).await;
    complete(&s, &c).await.unwrap();
    let info = s.queue(&queue).await.unwrap();
    assert_eq!((info.counts.ready, info.counts.succeeded), (2, 1));
    assert_eq!(info.last_claim_at, Some(clock.now()));
    let paused = s
        .update_queue(
            &queue,
            QueuePatch {
                paused: Some(true),
                max_attempts: Some(7),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(paused.settings.paused);
    assert_eq!(paused.settings.max_attempts, 7);
    assert!(s.claim(&queue, claim_req(5)).await.unwrap().is_empty());
    assert_eq!(enqueue_one(&s, &queue, task("x")).await.max_attempts, 7);
    s.update_queue(
        &queue,
        QueuePatch {
            paused: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(s.claim(&queue, claim_req(5)).await.unwrap().len(), 3);
    let all = s.queues("default").await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].counts.running, 3);
}

pub async fn purge_removes_the_tasks_of_one_state<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let queue = q("purge");
    s.enqueue(&queue, vec![task("x"), task("x"), task("x")])
        .await
        .unwrap();
    for _ in 0..2 {
        let c = claim_one(&s, &queue).await;
        fail(&s, &c, None, true).await.unwrap();
    }
    assert_eq!(s.purge(&queue, TaskState::Dead).await.unwrap(), 2);
    assert_eq!(s.purge(&queue, TaskState::Dead).await.unwrap(), 0);
    let info = s.queue(&queue).await.unwrap();
    assert_eq!((info.counts.dead, info.counts.ready), (0, 1));
    // Live tasks too: a purged running task's lease finds it gone.
    s.enqueue(&queue, vec![task("x")]).await.unwrap();
    let running = claim_one(&s, &queue).await;
    assert_eq!(s.purge(&queue, TaskState::Running).await.unwrap(), 1);
    assert_eq!(s.purge(&queue, TaskState::Ready).await.unwrap(), 1);
    let info = s.queue(&queue).await.unwrap();
    assert_eq!((info.counts.ready, info.counts.running), (0, 0));
    let gone = complete(&s, &running).await.unwrap_err();
    assert!(matches!(gone, StoreError::TaskNotFound(_)), "{gone:?}");
    assert!(s.claim(&queue, claim_req(10)).await.unwrap().is_empty());
}

pub async fn retention_deletes_old_final_tasks<H: Harness>() {
    let (_h, clock, s) = setup::<H>().await;
    let queue = q("keep");
    s.update_queue(
        &queue,
        QueuePatch {
            retention_ms: Some(60_000),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let a = enqueue_one(&s, &queue, task("x")).await;
    let c = claim_one(&s, &queue).await;
    complete(&s, &c).await.unwrap();
    clock.advance_ms(30_000);
    let b = enqueue_one(&s, &queue, task("x")).await;
    s.change("default", b.id, Change::Cancel).await.unwrap();
    clock.advance_ms(30_000);
    assert_eq!(s.run_maintenance().await.unwrap().deleted, 1);
    assert_eq!(
        s.get("default", a.id).await.unwrap_err(),
        StoreError::TaskNotFound(a.id)
    );
    assert!(s.get("default", b.id).await.is_ok());
    assert_eq!(s.queue(&queue).await.unwrap().counts.total(), 1);
}

pub async fn tenants_are_isolated<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    create_tenant(&s, "acme").await;
    create_tenant(&s, "globex").await;
    let acme = QueueKey::new("acme", "jobs");
    let globex = QueueKey::new("globex", "jobs");
    let t = enqueue_one(&s, &acme, task("x")).await;
    assert_eq!(
        s.get("globex", t.id).await.unwrap_err(),
        StoreError::TaskNotFound(t.id)
    );
    assert!(s.claim(&globex, claim_req(5)).await.unwrap().is_empty());
    assert_eq!(
        s.change("globex", t.id, Change::Cancel).await.unwrap_err(),
        StoreError::TaskNotFound(t.id)
    );
    let c = claim_one(&s, &acme).await;
    let wrong_tenant = s
        .complete(
            "globex",
            vec![Completion {
                id: c.id,
                lease: lease(&c),
                result: None,
            }],
        )
        .await
        .remove(0);
    assert_eq!(wrong_tenant.unwrap_err(), StoreError::TaskNotFound(c.id));
    // A claim does not create a queue, and acme's queue is invisible to globex.
    assert_eq!(s.queues("globex").await.unwrap().len(), 0);
    assert_eq!(
        s.queue(&globex).await.unwrap_err(),
        StoreError::QueueNotFound("jobs".into())
    );
    assert_eq!(s.queues("acme").await.unwrap().len(), 1);
    // The same queue name in another tenant is another queue.
    enqueue_one(&s, &globex, task("y")).await;
    assert_eq!(s.queue(&globex).await.unwrap().counts.total(), 1);
    assert_eq!(s.queue(&acme).await.unwrap().counts.total(), 1);
}

pub async fn data_survives_reopen<H: Harness>() {
    let (h, clock, s) = setup::<H>().await;
    let queue = q("persist");
    let a = enqueue_one(&s, &queue, task("x")).await;
    let mut later = task("y");
    later.run_at = Some(Timestamp(T0 + 1_000));
    let b = enqueue_one(&s, &queue, later).await;
    let c = claim_one(&s, &queue).await;
    complete(&s, &c).await.unwrap();
    s.update_queue(
        &queue,
        QueuePatch {
            lease_ms: Some(5_000),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.close().await;
    assert!(matches!(
        s.get("default", a.id).await,
        Err(StoreError::Unavailable(_))
    ));
    let s = h.open(clock.clone()).await;
    assert_eq!(
        s.get("default", a.id).await.unwrap().state,
        TaskState::Succeeded
    );
    assert_eq!(
        s.get("default", b.id).await.unwrap().state,
        TaskState::Scheduled
    );
    let info = s.queue(&queue).await.unwrap();
    assert_eq!(info.settings.lease_ms, 5_000);
    assert_eq!((info.counts.succeeded, info.counts.scheduled), (1, 1));
    // New ids keep growing after a reopen.
    let n = enqueue_one(&s, &queue, task("z")).await;
    assert!(n.id > b.id);
    s.close().await;
}

pub async fn enqueue_wakes_waiting_claims<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let queue = q("wake");
    let signal = s.ready_signal(&queue);
    let notified = signal.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    enqueue_one(&s, &queue, task("x")).await;
    tokio::time::timeout(std::time::Duration::from_secs(5), notified)
        .await
        .expect("enqueue notifies the queue's ready signal");
}

pub async fn unknown_tasks_and_queues_are_not_found<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let id = TaskId(12345 << 20);
    assert_eq!(
        s.get("default", id).await.unwrap_err(),
        StoreError::TaskNotFound(id)
    );
    assert_eq!(
        s.change("default", id, Change::Cancel).await.unwrap_err(),
        StoreError::TaskNotFound(id)
    );
    assert_eq!(
        s.change("default", id, Change::Retry).await.unwrap_err(),
        StoreError::TaskNotFound(id)
    );
    let hb = Heartbeat {
        id,
        lease: "x".into(),
        lease_ms: None,
        progress: Some(json_null()),
    };
    assert_eq!(
        s.heartbeat("default", hb).await.unwrap_err(),
        StoreError::TaskNotFound(id)
    );
    assert_eq!(
        s.queue(&q("ghost")).await.unwrap_err(),
        StoreError::QueueNotFound("ghost".into())
    );
    assert_eq!(
        s.purge(&q("ghost"), TaskState::Dead).await.unwrap_err(),
        StoreError::QueueNotFound("ghost".into())
    );
    assert!(s.claim(&q("ghost"), claim_req(1)).await.unwrap().is_empty());
}

/// `/metrics`' view: the deepest queues in full, every other queue's counts summed.
pub async fn queue_overview_shows_the_deepest_and_sums_the_rest<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    create_tenant(&s, "acme").await;
    for (name, n) in [("a", 1), ("b", 5), ("c", 2), ("d", 7), ("e", 3)] {
        let tasks = (0..n).map(|_| task("x")).collect();
        s.enqueue(&QueueKey::new("acme", name), tasks)
            .await
            .unwrap();
    }
    let o = s.queue_overview(2).await.unwrap();
    let names: Vec<&str> = o.top.iter().map(|(_, q)| q.name.as_str()).collect();
    assert_eq!(names, ["b", "d"]);
    assert!(o.top.iter().all(|(t, _)| t == "acme"));
    assert_eq!(o.top[1].1.counts.ready, 7);
    assert_eq!(o.rest.ready, 1 + 2 + 3);
    assert_eq!(o.rest_queues, 3);
    let all = s.queue_overview(100).await.unwrap();
    assert_eq!(
        (all.top.len(), all.rest_queues, all.rest.total()),
        (5, 0, 0)
    );
    let none = s.queue_overview(0).await.unwrap();
    assert_eq!((none.top.len(), none.rest.ready), (0, 18));
}

/// The operators' view lists every tenant's queues, each with its tenant.
pub async fn all_queues_spans_tenants<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    create_tenant(&s, "acme").await;
    create_tenant(&s, "globex").await;
    enqueue_one(&s, &QueueKey::new("acme", "jobs"), task("x")).await;
    enqueue_one(&s, &QueueKey::new("globex", "jobs"), task("x")).await;
    enqueue_one(&s, &QueueKey::new("globex", "mail"), task("x")).await;
    let all: Vec<(String, String, u64)> = s
        .all_queues()
        .await
        .unwrap()
        .into_iter()
        .map(|(tenant, q)| (tenant, q.name, q.counts.ready))
        .collect();
    assert_eq!(
        all,
        [
            ("acme".to_owned(), "jobs".to_owned(), 1),
            ("globex".to_owned(), "jobs".to_owned(), 1),
            ("globex".to_owned(), "mail".to_owned(), 1),
        ]
    );
}
