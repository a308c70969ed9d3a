//! Bodies for the task lifecycle: enqueue, claim, leases, failures, retries, batches.

use super::*;

pub async fn enqueue_then_get_round_trips<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let mut t = task("email.send");
    t.priority = 5;
    t.unique_key = Some("u1".into());
    t.tags = vec!["a".into(), "b".into()];
    t.max_attempts = Some(3);
    let got = enqueue_one(&s, &q("mail"), t).await;
    assert_eq!(got.state, TaskState::Ready);
    assert_eq!(got.queue, "mail");
    assert_eq!(got.kind, "email.send");
    assert_eq!(got.payload.get(), r#"{"n":1}"#);
    assert_eq!(got.priority, 5);
    assert_eq!(got.attempt, 0);
    assert_eq!(got.max_attempts, 3);
    assert_eq!(got.run_at, Timestamp(T0));
    assert_eq!(got.created_at, Timestamp(T0));
    assert_eq!(got.unique_key.as_deref(), Some("u1"));
    assert_eq!(got.tags, ["a", "b"]);
    assert!(got.lease.is_none() && got.result.is_none() && got.errors.is_empty());
    let again = s.get("default", got.id).await.unwrap();
    assert_eq!(again.id, got.id);
    assert_eq!(again.payload.get(), got.payload.get());
    assert_eq!(again.tags, got.tags);
    // A task without max_attempts takes the queue's default (25).
    let d = enqueue_one(&s, &q("mail"), task("x")).await;
    assert_eq!(d.max_attempts, 25);
    assert!(d.id > got.id, "ids grow");
}

pub async fn claim_orders_by_priority_then_fifo<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let queue = q("jobs");
    let mut ids = vec![];
    for (i, p) in [0, 10, 0, 10, -5].into_iter().enumerate() {
        let mut t = task(&format!("k{i}"));
        t.priority = p;
        ids.push(enqueue_one(&s, &queue, t).await.id);
    }
    let got = s.claim(&queue, claim_req(10)).await.unwrap();
    let order: Vec<TaskId> = got.iter().map(|t| t.id).collect();
    assert_eq!(order, [ids[1], ids[3], ids[0], ids[2], ids[4]]);
    for t in &got {
        assert_eq!(t.state, TaskState::Running);
        assert_eq!(t.attempt, 1);
        let l = t.lease.as_ref().unwrap();
        assert_eq!(l.worker, "w1");
        assert_eq!(l.expires_at, Timestamp(T0 + 10_000));
    }
    let tokens: std::collections::HashSet<_> = got.iter().map(lease).collect();
    assert_eq!(tokens.len(), got.len(), "each claim gets its own token");
    assert!(s.claim(&queue, claim_req(10)).await.unwrap().is_empty());
}

pub async fn claim_filters_by_kind<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let queue = q("mixed");
    let a = enqueue_one(&s, &queue, task("a")).await;
    let b = enqueue_one(&s, &queue, task("b")).await;
    let mut c = task("c");
    c.priority = 9;
    let c = enqueue_one(&s, &queue, c).await;
    let mut req = claim_req(10);
    req.kinds = vec!["b".into(), "c".into()];
    let got: Vec<TaskId> = s
        .claim(&queue, req.clone())
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(got, [c.id, b.id], "priority order holds across kinds");
    assert!(s.claim(&queue, req).await.unwrap().is_empty());
    assert_eq!(claim_one(&s, &queue).await.id, a.id);
}

pub async fn delayed_tasks_wait_for_run_at<H: Harness>() {
    let (_h, clock, s) = setup::<H>().await;
    let queue = q("later");
    let mut t = task("x");
    t.run_at = Some(Timestamp(T0 + 5_000));
    let t = enqueue_one(&s, &queue, t).await;
    assert_eq!(t.state, TaskState::Scheduled);
    assert!(s.claim(&queue, claim_req(1)).await.unwrap().is_empty());
    let r = s.run_maintenance().await.unwrap();
    assert_eq!(r.promoted, 0);
    assert_eq!(r.next_due, Some(Timestamp(T0 + 5_000)));
    clock.advance_ms(5_000);
    let r = s.run_maintenance().await.unwrap();
    assert_eq!(r.promoted, 1);
    assert_eq!(
        s.get("default", t.id).await.unwrap().state,
        TaskState::Ready
    );
    assert_eq!(claim_one(&s, &queue).await.id, t.id);
}

pub async fn stale_lease_is_refused_after_expiry<H: Harness>() {
    let (_h, clock, s) = setup::<H>().await;
    let queue = q("fence");
    enqueue_one(&s, &queue, task("x")).await;
    let first = claim_one(&s, &queue).await;
    clock.advance_ms(10_001);
    let r = s.run_maintenance().await.unwrap();
    assert_eq!(r.expired, 1);
    let expired = s.get("default", first.id).await.unwrap();
    assert_eq!(
        expired.errors.len(),
        1,
        "an expired lease counts as a failed attempt"
    );
    assert!(expired.errors[0].message.contains("lease expired"));
    // Backoff puts it back as scheduled; let it come due.
    clock.advance_ms(3_600_000);
    s.run_maintenance().await.unwrap();
    let second = claim_one(&s, &queue).await;
    assert_eq!(second.id, first.id);
    assert_eq!(second.attempt, 2);
    assert_ne!(lease(&second), lease(&first));
    for stale in [
        complete(&s, &first).await,
        fail(&s, &first, None, false).await,
        s.heartbeat(
            "default",
            Heartbeat {
                id: first.id,
                lease: lease(&first),
                lease_ms: None,
                progress: None,
            },
        )
        .await,
    ] {
        assert_eq!(
            stale.unwrap_err(),
            StoreError::LeaseLost(first.id, LeaseLoss::Replaced)
        );
    }
    let done = complete(&s, &second).await.unwrap();
    assert_eq!(done.state, TaskState::Succeeded);
    assert_eq!(done.result.unwrap().get(), r#"{"ok":true}"#);
    assert!(done.lease.is_none());
    assert_eq!(done.finished_at, Some(clock.now()));
    // Completing twice is refused too, and says the task is already final.
    assert_eq!(
        complete(&s, &second).await.unwrap_err(),
        StoreError::LeaseLost(first.id, LeaseLoss::Final(TaskState::Succeeded))
    );
}

pub async fn expired_lease_with_no_attempts_left_goes_dead<H: Harness>() {
    let (_h, clock, s) = setup::<H>().await;
    let queue = q("once");
    let mut t = task("x");
    t.max_attempts = Some(1);
    let t = enqueue_one(&s, &queue, t).await;
    claim_one(&s, &queue).await;
    let r = s.run_maintenance().await.unwrap();
    assert_eq!(r.expired, 0);
    assert_eq!(r.next_due, Some(Timestamp(T0 + 10_000)));
    clock.advance_ms(10_000);
    assert_eq!(s.run_maintenance().await.unwrap().expired, 1);
    let dead = s.get("default", t.id).await.unwrap();
    assert_eq!(dead.state, TaskState::Dead);
    assert!(dead.finished_at.is_some());
}

pub async fn heartbeat_extends_the_lease<H: Harness>() {
    let (_h, clock, s) = setup::<H>().await;
    let queue = q("long");
    enqueue_one(&s, &queue, task("x")).await;
    let t = claim_one(&s, &queue).await;
    for _ in 0..5 {
        clock.advance_ms(8_000);
        let hb = s
            .heartbeat(
                "default",
                Heartbeat {
                    id: t.id,
                    lease: lease(&t),
                    lease_ms: Some(10_000),
                    progress: Some(json(r#"{"pct":50}"#)),
                },
            )
            .await
            .unwrap();
        assert_eq!(
            hb.lease.as_ref().unwrap().expires_at,
            clock.now().plus_ms(10_000)
        );
        assert_eq!(hb.progress.unwrap().get(), r#"{"pct":50}"#);
        assert_eq!(s.run_maintenance().await.unwrap().expired, 0);
    }
    assert_eq!(complete(&s, &t).await.unwrap().state, TaskState::Succeeded);
}

/// Heartbeat, complete and fail check the lease's expiry themselves: a lease past its time is
/// refused even though no maintenance pass has returned the task yet.
pub async fn an_expired_lease_is_refused_before_maintenance_runs<H: Harness>() {
    let (_h, clock, s) = setup::<H>().await;
    let queue = q("expiry");
    enqueue_one(&s, &queue, task("x")).await;
    let t = claim_one(&s, &queue).await;
    let expires = t.lease.as_ref().unwrap().expires_at;
    clock.set(expires);
    let hb = s
        .heartbeat(
            "default",
            Heartbeat {
                id: t.id,
                lease: lease(&t),
                lease_ms: None,
                progress: None,
            },
        )
        .await;
    let want = StoreError::LeaseLost(t.id, LeaseLoss::Expired(expires));
    assert_eq!(hb.unwrap_err(), want);
    assert_eq!(complete(&s, &t).await.unwrap_err(), want);
    assert_eq!(fail(&s, &t, None, false).await.unwrap_err(), want);
    // Nothing changed: the task is still running until maintenance returns it.
    let stored = s.get("default", t.id).await.unwrap();
    assert_eq!(stored.state, TaskState::Running);
    assert!(stored.errors.is_empty());
    assert_eq!(s.run_maintenance().await.unwrap().expired, 1);
}

pub async fn failures_back_off_record_errors_and_end_dead<H: Harness>() {
    let (_h, clock, s) = setup::<H>().await;
    let queue = q("flaky");
    s.update_queue(
        &queue,
        QueuePatch {
            backoff: Some(Backoff {
                base_ms: 100,
                max_ms: 1_000,
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut t = task("x");
    t.max_attempts = Some(3);
    let t = enqueue_one(&s, &queue, t).await;
    // Attempt 1: the worker asks for a 2 s delay.
    let c = claim_one(&s, &queue).await;
    let f = fail(&s, &c, Some(2_000), false).await.unwrap();
    assert_eq!(f.state, TaskState::Scheduled);
    assert_eq!(f.run_at, clock.now().plus_ms(2_000));
    assert!(f.lease.is_none());
    clock.advance_ms(2_000);
    s.run_maintenance().await.unwrap();
    // Attempt 2: backoff with jitter, at most 200 ms.
    let c = claim_one(&s, &queue).await;
    let f = fail(&s, &c, None, false).await.unwrap();
    assert!(f.run_at <= clock.now().plus_ms(200), "{:?}", f.run_at);
    assert!(f.run_at >= clock.now());
    clock.advance_ms(200);
    s.run_maintenance().await.unwrap();
    // Attempt 3 is the last: dead.
    let c = claim_one(&s, &queue).await;
    assert_eq!(c.attempt, 3);
    let f = fail(&s, &c, None, false).await.unwrap();
    assert_eq!(f.state, TaskState::Dead);
    assert_eq!(f.id, t.id);
    let attempts: Vec<u32> = f.errors.iter().map(|e| e.attempt).collect();
    assert_eq!(attempts, [1, 2, 3]);
    assert_eq!(f.errors[2].message, "boom on attempt 3");
    // `dead: true` skips the remaining attempts.
    let t2 = enqueue_one(&s, &queue, task("y")).await;
    let c = claim_one(&s, &queue).await;
    assert_eq!(c.id, t2.id);
    assert_eq!(
        fail(&s, &c, None, true).await.unwrap().state,
        TaskState::Dead
    );
}

pub async fn retry_brings_a_dead_task_back<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let queue = q("dlq");
    let t = enqueue_one(&s, &queue, task("x")).await;
    let c = claim_one(&s, &queue).await;
    fail(&s, &c, None, true).await.unwrap();
    let r = s.change("default", t.id, Change::Retry).await.unwrap();
    assert_eq!(r.state, TaskState::Ready);
    assert_eq!(r.attempt, 0);
    assert!(r.finished_at.is_none());
    assert_eq!(r.errors.len(), 1, "history is kept");
    let c = claim_one(&s, &queue).await;
    assert_eq!(c.attempt, 1);
    let e = s.change("default", t.id, Change::Retry).await.unwrap_err();
    assert!(matches!(e, StoreError::InvalidState { .. }), "{e:?}");
}

pub async fn unique_key_deduplicates_live_tasks<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let queue = q("uniq");
    let mut t = task("x");
    t.unique_key = Some("sync-2026-11-24T10".into());
    let out = s
        .enqueue(&queue, vec![t.clone(), t.clone(), task("other")])
        .await
        .unwrap();
    assert!(!out[0].duplicate);
    assert!(out[1].duplicate, "second in the same batch is a duplicate");
    assert_eq!(out[1].task.id, out[0].task.id);
    assert!(!out[2].duplicate);
    let again = s.enqueue(&queue, vec![t.clone()]).await.unwrap();
    assert!(again[0].duplicate);
    assert_eq!(again[0].task.id, out[0].task.id);
    // Same key in another queue is independent.
    assert!(!s.enqueue(&q("uniq2"), vec![t.clone()]).await.unwrap()[0].duplicate);
    // Once the task is final, the key is free again.
    let mut req = claim_req(1);
    req.kinds = vec!["x".into()];
    let c = s.claim(&queue, req).await.unwrap().remove(0);
    complete(&s, &c).await.unwrap();
    let fresh = s.enqueue(&queue, vec![t]).await.unwrap();
    assert!(!fresh[0].duplicate);
    assert_ne!(fresh[0].task.id, out[0].task.id);
}

pub async fn cancel_only_non_final_tasks<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let queue = q("cancel");
    let a = enqueue_one(&s, &queue, task("x")).await;
    let c = s.change("default", a.id, Change::Cancel).await.unwrap();
    assert_eq!(c.state, TaskState::Cancelled);
    assert!(c.finished_at.is_some());
    assert!(s.claim(&queue, claim_req(1)).await.unwrap().is_empty());
    let e = s.change("default", a.id, Change::Cancel).await.unwrap_err();
    assert!(matches!(e, StoreError::InvalidState { .. }), "{e:?}");
    // A running task can be cancelled; its worker's lease is then lost.
    enqueue_one(&s, &queue, task("x")).await;
    let r = claim_one(&s, &queue).await;
    s.change("default", r.id, Change::Cancel).await.unwrap();
    // Heartbeat, complete and fail all say it was cancelled (the server's `task_cancelled`),
    // which is how the worker learns to stop the handler.
    let cancelled = StoreError::LeaseLost(r.id, LeaseLoss::Final(TaskState::Cancelled));
    let beat = Heartbeat {
        id: r.id,
        lease: lease(&r),
        lease_ms: None,
        progress: None,
    };
    assert_eq!(s.heartbeat("default", beat).await.unwrap_err(), cancelled);
    assert_eq!(complete(&s, &r).await.unwrap_err(), cancelled);
    assert_eq!(fail(&s, &r, None, false).await.unwrap_err(), cancelled);
    // Cancelled tasks can be retried.
    assert_eq!(
        s.change("default", a.id, Change::Retry)
            .await
            .unwrap()
            .state,
        TaskState::Ready
    );
}

pub async fn batch_complete_reports_each_item<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let queue = q("batch");
    s.enqueue(&queue, vec![task("x"), task("x"), task("x")])
        .await
        .unwrap();
    let got = s.claim(&queue, claim_req(3)).await.unwrap();
    let missing = TaskId(got[2].id.0 + 1_000_000);
    let items = vec![
        Completion {
            id: got[0].id,
            lease: lease(&got[0]),
            result: None,
        },
        Completion {
            id: got[1].id,
            lease: "not-the-token".into(),
            result: None,
        },
        Completion {
            id: missing,
            lease: lease(&got[2]),
            result: None,
        },
    ];
    let out = s.complete("default", items).await;
    assert_eq!(out[0].as_ref().unwrap().state, TaskState::Succeeded);
    assert_eq!(
        out[1].as_ref().unwrap_err(),
        &StoreError::LeaseLost(got[1].id, LeaseLoss::Replaced)
    );
    assert_eq!(
        out[2].as_ref().unwrap_err(),
        &StoreError::TaskNotFound(missing)
    );
    assert_eq!(
        s.get("default", got[1].id).await.unwrap().state,
        TaskState::Running,
        "a refused item changes nothing"
    );
    let failures = vec![FailureReport {
        id: got[2].id,
        lease: lease(&got[2]),
        error: "nope".into(),
        retry_in_ms: Some(0),
        dead: false,
        temporary: false,
    }];
    let out = s.fail("default", failures).await;
    assert_eq!(out[0].as_ref().unwrap().state, TaskState::Ready);
}

/// Every operation's returned task is exactly what a later `get` reads back, field for field.
pub async fn returned_tasks_match_what_is_stored<H: Harness>() {
    let (_h, clock, s) = setup::<H>().await;
    let queue = q("same");
    async fn check(s: &DynStore, returned: &Task) {
        let stored = s.get("default", returned.id).await.unwrap();
        let a = serde_json::to_value(returned).unwrap();
        let b = serde_json::to_value(&stored).unwrap();
        assert_eq!(a, b, "returned task differs from the stored one");
    }
    let mut t = task("k");
    t.tags = vec!["x".into()];
    t.unique_key = Some("u".into());
    let e = enqueue_one(&s, &queue, t).await;
    check(&s, &e).await;
    let mut req = claim_req(5);
    req.kinds = vec!["k".into()];
    let c = s.claim(&queue, req).await.unwrap().remove(0);
    check(&s, &c).await;
    clock.advance_ms(10);
    let hb = s
        .heartbeat(
            "default",
            Heartbeat {
                id: c.id,
                lease: lease(&c),
                lease_ms: Some(20_000),
                progress: Some(json(r#"{"p":1}"#)),
            },
        )
        .await
        .unwrap();
    check(&s, &hb).await;
    clock.advance_ms(10);
    let f = fail(&s, &c, Some(0), false).await.unwrap();
    check(&s, &f).await;
    let c = claim_one(&s, &queue).await;
    check(&s, &c).await;
    let f = fail(&s, &c, Some(60_000), false).await.unwrap();
    check(&s, &f).await;
    clock.advance_ms(60_000);
    s.run_maintenance().await.unwrap();
    let c = claim_one(&s, &queue).await;
    clock.advance_ms(10_000);
    s.run_maintenance().await.unwrap(); // the lease expires
    let expired = s.get("default", c.id).await.unwrap();
    assert_eq!(expired.errors.len(), 3);
    clock.advance_ms(3_600_000);
    s.run_maintenance().await.unwrap();
    let c = claim_one(&s, &queue).await;
    check(&s, &c).await;
    let done = complete(&s, &c).await.unwrap();
    check(&s, &done).await;
    let e2 = enqueue_one(&s, &queue, task("k")).await;
    let c2 = claim_one(&s, &queue).await;
    assert_eq!(c2.id, e2.id);
    let dead = fail(&s, &c2, None, true).await.unwrap();
    check(&s, &dead).await;
    let r = s.change("default", dead.id, Change::Retry).await.unwrap();
    check(&s, &r).await;
    let x = s.change("default", r.id, Change::Cancel).await.unwrap();
    check(&s, &x).await;
}

/// A temporary failure is recorded but gives its attempt back: it never makes a task dead.
pub async fn temporary_failures_keep_their_attempt<H: Harness>() {
    let (_h, clock, s) = setup::<H>().await;
    let queue = q("temp");
    let mut t = task("x");
    t.max_attempts = Some(1);
    let t = enqueue_one(&s, &queue, t).await;
    for round in 1..=3 {
        let c = claim_one(&s, &queue).await;
        assert_eq!(c.attempt, 1, "round {round}: the same attempt again");
        let f = s
            .fail(
                "default",
                vec![FailureReport {
                    id: c.id,
                    lease: lease(&c),
                    error: "dependency down".into(),
                    retry_in_ms: Some(1_000),
                    dead: false,
                    temporary: true,
                }],
            )
            .await
            .remove(0)
            .unwrap();
        assert_eq!(f.state, TaskState::Scheduled);
        assert_eq!(f.attempt, 0);
        assert_eq!(f.errors.len(), round, "every failure is in the history");
        assert_eq!(f.errors[round - 1].attempt, 1);
        let stored = s.get("default", t.id).await.unwrap();
        assert_eq!(stored.attempt, 0);
        clock.advance_ms(1_000);
        s.run_maintenance().await.unwrap();
    }
    // A real failure on the only attempt ends it.
    let c = claim_one(&s, &queue).await;
    assert_eq!(
        fail(&s, &c, None, false).await.unwrap().state,
        TaskState::Dead
    );
}
