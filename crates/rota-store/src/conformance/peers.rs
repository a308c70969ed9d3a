//! Bodies that open two stores on one location (two servers on one database) and race them.
//! An engine that serves one server per location (the embedded one) opens no second store:
//! [`Harness::open_peer`] returns `None`, and both sides go through the one store, which must
//! hold the same rules under the same races.

use super::*;
use std::collections::HashSet;

pub(super) async fn pair<H: Harness>() -> (H, ManualClock, DynStore, DynStore) {
    let (h, clock, a) = setup::<H>().await;
    let b = h
        .open_peer(clock.clone())
        .await
        .unwrap_or_else(|| a.clone());
    (h, clock, a, b)
}

pub async fn concurrent_claims_through_two_stores_never_share_a_task<H: Harness>() {
    let (_h, _c, a, b) = pair::<H>().await;
    let queue = q("race");
    let total = 300;
    for chunk in 0..3 {
        let store = if chunk % 2 == 0 { &a } else { &b };
        store
            .enqueue(&queue, (0..total / 3).map(|_| task("x")).collect())
            .await
            .unwrap();
    }
    let mut claimers = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let queue = queue.clone();
        claimers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = store.claim(&queue, claim_req(7)).await.unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|t| t.id));
            }
        }));
    }
    let mut seen = HashSet::new();
    for c in claimers {
        for id in c.await.unwrap() {
            assert!(seen.insert(id), "task {id} was handed to two claimers");
        }
    }
    assert_eq!(seen.len(), total);
    for s in [&a, &b] {
        assert_eq!(s.queue(&queue).await.unwrap().counts.running, total as u64);
    }
}

/// The other server hears which tenant's events a commit logged (PostgreSQL: the `NOTIFY`
/// names it), and wakes only that tenant's readers.
pub async fn a_commit_through_one_store_wakes_the_others_readers_of_its_tenant_only<H: Harness>() {
    let (_h, _c, a, b) = pair::<H>().await;
    create_tenant(&a, "globex").await;
    let (mine, any) = (b.tenant_event_signal("default"), b.event_signal());
    let idle = mine.notified();
    tokio::pin!(idle);
    idle.as_mut().enable();
    let other = any.notified();
    tokio::pin!(other);
    other.as_mut().enable();
    enqueue_one(&a, &QueueKey::new("globex", "busy"), task("x")).await;
    // Every tenant's signal fires after the tenants' own, so once it has, default's would have.
    tokio::time::timeout(std::time::Duration::from_secs(10), other)
        .await
        .expect("the other store hears of the commit");
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(
        std::future::Future::poll(idle.as_mut(), &mut cx).is_pending(),
        "globex's commit woke the other store's reader of default's events"
    );
    enqueue_one(&a, &q("mine"), task("x")).await;
    tokio::time::timeout(std::time::Duration::from_secs(10), idle)
        .await
        .expect("the tenant's commit wakes the other store's readers of its events");
}

pub async fn one_unique_key_enqueued_through_both_yields_one_live_task<H: Harness>() {
    let (_h, _c, a, b) = pair::<H>().await;
    let queue = q("uniq-race");
    for round in 0..20 {
        let mut t = task("x");
        t.unique_key = Some(format!("key-{round}"));
        let (ra, rb) = tokio::join!(
            a.enqueue(&queue, vec![t.clone()]),
            b.enqueue(&queue, vec![t.clone()])
        );
        let (ra, rb) = (ra.unwrap().remove(0), rb.unwrap().remove(0));
        assert_eq!(
            ra.task.id, rb.task.id,
            "round {round}: two live tasks for one key"
        );
        assert!(
            ra.duplicate != rb.duplicate,
            "round {round}: exactly one enqueue created the task"
        );
    }
    assert_eq!(a.queue(&queue).await.unwrap().counts.ready, 20);
}

pub async fn a_lease_taken_through_one_is_reclaimed_through_the_other<H: Harness>() {
    let (_h, clock, a, b) = pair::<H>().await;
    let queue = q("handover");
    enqueue_one(&a, &queue, task("x")).await;
    let first = claim_one(&a, &queue).await;
    clock.advance_ms(10_001);
    assert_eq!(b.run_maintenance().await.unwrap().expired, 1);
    clock.advance_ms(3_600_000);
    b.run_maintenance().await.unwrap();
    let second = claim_one(&b, &queue).await;
    assert_eq!((second.id, second.attempt), (first.id, 2));
    assert_eq!(
        complete(&a, &first).await.unwrap_err(),
        StoreError::LeaseLost(first.id, LeaseLoss::Replaced)
    );
    assert_eq!(
        complete(&a, &second).await.unwrap().state,
        TaskState::Succeeded
    );
}

pub async fn heartbeat_complete_and_fail_work_through_the_other_store<H: Harness>() {
    let (_h, clock, a, b) = pair::<H>().await;
    let queue = q("across");
    let t = enqueue_one(&a, &queue, task("x")).await;
    let c = claim_one(&a, &queue).await;
    clock.advance_ms(5_000);
    let hb = b
        .heartbeat(
            "default",
            Heartbeat {
                id: c.id,
                lease: lease(&c),
                lease_ms: Some(10_000),
                progress: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(hb.lease.unwrap().expires_at, clock.now().plus_ms(10_000));
    let f = fail(&b, &c, Some(0), false).await.unwrap();
    assert_eq!(f.state, TaskState::Ready);
    let c = claim_one(&a, &queue).await;
    assert_eq!(c.id, t.id);
    assert_eq!(complete(&b, &c).await.unwrap().state, TaskState::Succeeded);
    assert_eq!(
        a.get("default", t.id).await.unwrap().state,
        TaskState::Succeeded
    );
}

pub async fn queue_counts_agree_whichever_store_wrote<H: Harness>() {
    let (_h, _c, a, b) = pair::<H>().await;
    let queue = q("counts");
    a.enqueue(&queue, vec![task("x"), task("x"), task("x")])
        .await
        .unwrap();
    b.enqueue(&queue, vec![task("x"), task("x")]).await.unwrap();
    let c = claim_one(&b, &queue).await;
    complete(&a, &c).await.unwrap();
    let c = claim_one(&a, &queue).await;
    fail(&b, &c, None, true).await.unwrap();
    claim_one(&b, &queue).await;
    for s in [&a, &b] {
        let counts = s.queue(&queue).await.unwrap().counts;
        assert_eq!(
            (counts.ready, counts.running, counts.succeeded, counts.dead),
            (2, 1, 1, 1)
        );
        let all = s.all_queues().await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].1.counts, counts);
    }
}

pub async fn an_enqueue_through_one_wakes_claims_waiting_on_the_other<H: Harness>() {
    let (_h, _c, a, b) = pair::<H>().await;
    let queue = q("wake-across");
    let signal = b.ready_signal(&queue);
    for _ in 0..3 {
        let notified = signal.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        enqueue_one(&a, &queue, task("x")).await;
        tokio::time::timeout(std::time::Duration::from_secs(5), notified)
            .await
            .expect("the other store's ready signal fires");
    }
}

pub async fn deleting_a_tenant_under_enqueues_through_both_leaves_nothing<H: Harness>() {
    let (_h, _c, a, b) = pair::<H>().await;
    for round in 0..10 {
        create_tenant(&a, "doomed").await;
        let doomed = QueueKey::new("doomed", format!("q{}", round % 2));
        let mut writes = Vec::new();
        for i in 0..16 {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let q = doomed.clone();
            writes.push(tokio::spawn(async move {
                store.enqueue(&q, vec![task("x")]).await.map(|_| ())
            }));
            if i == 8 {
                let s = b.clone();
                writes.push(tokio::spawn(async move {
                    s.change_auth(AuthChange::DeleteTenant("doomed".into()))
                        .await
                }));
            }
        }
        for w in writes {
            match w.await.unwrap() {
                Ok(()) | Err(StoreError::TenantNotFound(_)) => {}
                Err(e) => panic!("round {round}: unexpected error {e:?}"),
            }
        }
        for s in [&a, &b] {
            assert!(
                s.queues("doomed").await.unwrap().is_empty(),
                "round {round}: the deleted tenant's queues came back"
            );
            assert_eq!(
                s.enqueue(&doomed, vec![task("x")]).await.unwrap_err(),
                StoreError::TenantNotFound("doomed".into())
            );
        }
    }
    assert!(a.all_queues().await.unwrap().is_empty());
}
