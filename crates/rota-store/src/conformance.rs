//! The conformance suite: one test body per behaviour, run against every engine.
//!
//! An engine crate provides a [`Harness`] and expands [`conformance_tests!`](crate::conformance_tests)
//! in a test file; each body below becomes one `#[tokio::test]` there. Bodies drive a
//! [`ManualClock`] and call [`Store::run_maintenance`] themselves, so nothing sleeps.

use crate::*;
use rota_core::auth::{ClientLimits, Effect, Rule};
use rota_core::lifecycle::LeaseLoss;
use rota_core::{json_null, Backoff, Clock, ManualClock, NewTask, QueuePatch, TaskState};
use serde_json::value::RawValue;

/// Where an engine keeps one test's data.
#[async_trait]
pub trait Harness: Send + Sync + Sized + 'static {
    /// A new, empty location (a temp file, a fresh database).
    async fn new() -> Self;
    /// Opens the store at this location, creating it if empty; opening again after `close`
    /// must find the same data.
    async fn open(&self, clock: ManualClock) -> DynStore;
}

/// Expands to one `#[tokio::test]` per conformance body for the given [`Harness`] type.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:ty) => {
        $crate::conformance_tests!(@each $harness;
            enqueue_then_get_round_trips,
            claim_orders_by_priority_then_fifo,
            claim_filters_by_kind,
            delayed_tasks_wait_for_run_at,
            stale_lease_is_refused_after_expiry,
            expired_lease_with_no_attempts_left_goes_dead,
            heartbeat_extends_the_lease,
            an_expired_lease_is_refused_before_maintenance_runs,
            failures_back_off_record_errors_and_end_dead,
            retry_brings_a_dead_task_back,
            unique_key_deduplicates_live_tasks,
            cancel_only_non_final_tasks,
            batch_complete_reports_each_item,
            list_filters_and_paginates_newest_first,
            queue_stats_settings_and_pause,
            purge_removes_only_final_states,
            retention_deletes_old_final_tasks,
            tenants_are_isolated,
            data_survives_reopen,
            enqueue_wakes_waiting_claims,
            unknown_tasks_and_queues_are_not_found,
            temporary_failures_keep_their_attempt,
            all_queues_spans_tenants,
            queue_overview_shows_the_deepest_and_sums_the_rest,
            returned_tasks_match_what_is_stored,
            auth_data_round_trips_and_survives_reopen,
            deleting_a_tenant_removes_everything_it_owns,
            deleting_a_tenant_under_concurrent_writes_leaves_nothing
        );
    };
    (@each $harness:ty; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                $crate::conformance::$name::<$harness>().await;
            }
        )*
    };
}

const T0: i64 = 1_800_000_000_000;

fn q(name: &str) -> QueueKey {
    QueueKey::new("default", name)
}

fn json(s: &str) -> Json {
    RawValue::from_string(s.to_owned()).unwrap()
}

pub fn task(kind: &str) -> NewTask {
    NewTask {
        kind: kind.into(),
        payload: json(r#"{"n":1}"#),
        priority: 0,
        run_at: None,
        max_attempts: None,
        unique_key: None,
        tags: vec![],
    }
}

async fn setup<H: Harness>() -> (H, ManualClock, DynStore) {
    let h = H::new().await;
    let clock = ManualClock::new(Timestamp(T0));
    let s = h.open(clock.clone()).await;
    (h, clock, s)
}

fn claim_req(max: usize) -> ClaimRequest {
    ClaimRequest {
        worker: "w1".into(),
        kinds: vec![],
        max,
        lease_ms: Some(10_000),
    }
}

async fn create_tenant(s: &DynStore, name: &str) {
    let t = TenantRecord {
        name: name.into(),
        created_at: Timestamp(T0),
        limits: ClientLimits::default(),
    };
    s.change_auth(AuthChange::PutTenant(t)).await.unwrap();
}

async fn enqueue_one(s: &DynStore, queue: &QueueKey, t: NewTask) -> Task {
    let mut out = s.enqueue(queue, vec![t]).await.unwrap();
    assert_eq!(out.len(), 1);
    out.remove(0).task
}

async fn claim_one(s: &DynStore, queue: &QueueKey) -> Task {
    let mut got = s.claim(queue, claim_req(1)).await.unwrap();
    assert_eq!(got.len(), 1, "expected one claimable task");
    got.remove(0)
}

fn lease(t: &Task) -> String {
    t.lease
        .as_ref()
        .expect("running task has a lease")
        .token
        .clone()
}

async fn complete(s: &DynStore, t: &Task) -> StoreResult<Task> {
    let item = Completion {
        id: t.id,
        lease: lease(t),
        result: Some(json(r#"{"ok":true}"#)),
    };
    s.complete("default", vec![item]).await.remove(0)
}

async fn fail(s: &DynStore, t: &Task, retry_in_ms: Option<u64>, dead: bool) -> StoreResult<Task> {
    let item = FailureReport {
        id: t.id,
        lease: lease(t),
        error: format!("boom on attempt {}", t.attempt),
        retry_in_ms,
        dead,
        temporary: false,
    };
    s.fail("default", vec![item]).await.remove(0)
}

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
    let r = s.retry("default", t.id).await.unwrap();
    assert_eq!(r.state, TaskState::Ready);
    assert_eq!(r.attempt, 0);
    assert!(r.finished_at.is_none());
    assert_eq!(r.errors.len(), 1, "history is kept");
    let c = claim_one(&s, &queue).await;
    assert_eq!(c.attempt, 1);
    let e = s.retry("default", t.id).await.unwrap_err();
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
    let c = s.cancel("default", a.id).await.unwrap();
    assert_eq!(c.state, TaskState::Cancelled);
    assert!(c.finished_at.is_some());
    assert!(s.claim(&queue, claim_req(1)).await.unwrap().is_empty());
    let e = s.cancel("default", a.id).await.unwrap_err();
    assert!(matches!(e, StoreError::InvalidState { .. }), "{e:?}");
    // A running task can be cancelled; its worker's lease is then lost.
    enqueue_one(&s, &queue, task("x")).await;
    let r = claim_one(&s, &queue).await;
    s.cancel("default", r.id).await.unwrap();
    assert_eq!(
        complete(&s, &r).await.unwrap_err(),
        StoreError::LeaseLost(r.id, LeaseLoss::Final(TaskState::Cancelled))
    );
    // Cancelled tasks can be retried.
    assert_eq!(
        s.retry("default", a.id).await.unwrap().state,
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

pub async fn purge_removes_only_final_states<H: Harness>() {
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
    let e = s.purge(&queue, TaskState::Ready).await.unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e:?}");
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
    s.cancel("default", b.id).await.unwrap();
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
        s.cancel("globex", t.id).await.unwrap_err(),
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
        s.cancel("default", id).await.unwrap_err(),
        StoreError::TaskNotFound(id)
    );
    assert_eq!(
        s.retry("default", id).await.unwrap_err(),
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
    let r = s.retry("default", dead.id).await.unwrap();
    check(&s, &r).await;
    let x = s.cancel("default", r.id).await.unwrap();
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

fn key_record(id: &str, tenant: &str) -> KeyRecord {
    KeyRecord {
        id: id.to_owned(),
        tenant: tenant.to_owned(),
        name: Some("ci".into()),
        hash: "ab".repeat(32),
        roles: vec!["worker".into(), "custom".into()],
        queues: vec!["emails-*".into()],
        expires_at: Some(Timestamp(T0 + 60_000)),
        created_at: Timestamp(T0),
        last_used_at: None,
        revoked_at: None,
        limits: ClientLimits {
            requests_per_minute: Some(600),
            max_in_flight: None,
        },
    }
}

fn role_record(tenant: &str, name: &str) -> RoleRecord {
    RoleRecord {
        tenant: tenant.to_owned(),
        name: name.to_owned(),
        rules: vec![
            Rule::new("queues/*", "tasks:*", Effect::Allow),
            Rule::new("queues/secret", "*", Effect::Deny),
        ],
        updated_at: Timestamp(T0),
    }
}

pub async fn auth_data_round_trips_and_survives_reopen<H: Harness>() {
    let (h, clock, s) = setup::<H>().await;
    // A new store has the `default` tenant, which owns whatever existed before tenants did.
    let fresh = s.load_auth().await.unwrap();
    assert_eq!(
        fresh
            .tenants
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["default"]
    );
    assert!(fresh.keys.is_empty() && fresh.roles.is_empty());
    let acme = TenantRecord {
        name: "acme".into(),
        created_at: Timestamp(T0),
        limits: ClientLimits {
            requests_per_minute: None,
            max_in_flight: Some(7),
        },
    };
    s.change_auth(AuthChange::PutTenant(acme.clone()))
        .await
        .unwrap();
    let mut key = key_record("k1", "acme");
    s.change_auth(AuthChange::PutKey(key.clone()))
        .await
        .unwrap();
    let role = role_record("acme", "custom");
    s.change_auth(AuthChange::PutRole(role.clone()))
        .await
        .unwrap();
    s.change_auth(AuthChange::PutRole(role_record("acme", "gone")))
        .await
        .unwrap();
    s.change_auth(AuthChange::DeleteRole {
        tenant: "acme".into(),
        name: "gone".into(),
    })
    .await
    .unwrap();
    s.change_auth(AuthChange::TouchKeys(vec![(
        "k1".into(),
        Timestamp(T0 + 5),
    )]))
    .await
    .unwrap();
    key.last_used_at = Some(Timestamp(T0 + 5));
    // Replacing a key (revocation) keeps one row.
    key.revoked_at = Some(Timestamp(T0 + 9));
    s.change_auth(AuthChange::PutKey(key.clone()))
        .await
        .unwrap();
    s.close().await;
    let s = h.open(clock).await;
    let mut data = s.load_auth().await.unwrap();
    data.tenants.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(data.tenants[0], acme);
    assert_eq!(data.tenants[1].name, "default");
    assert_eq!(data.keys, vec![key]);
    assert_eq!(data.roles, vec![role]);
    s.close().await;
}

pub async fn deleting_a_tenant_removes_everything_it_owns<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    for name in ["acme", "globex"] {
        let t = TenantRecord {
            name: name.into(),
            created_at: Timestamp(T0),
            limits: ClientLimits::default(),
        };
        s.change_auth(AuthChange::PutTenant(t)).await.unwrap();
        s.change_auth(AuthChange::PutKey(key_record(&format!("{name}-key"), name)))
            .await
            .unwrap();
        s.change_auth(AuthChange::PutRole(role_record(name, "custom")))
            .await
            .unwrap();
    }
    let acme = QueueKey::new("acme", "jobs");
    let globex = QueueKey::new("globex", "jobs");
    let a = enqueue_one(&s, &acme, task("x")).await;
    enqueue_one(&s, &acme, task("x")).await;
    claim_one(&s, &acme).await;
    let g = enqueue_one(&s, &globex, task("y")).await;
    s.change_auth(AuthChange::DeleteTenant("acme".into()))
        .await
        .unwrap();
    assert_eq!(
        s.get("acme", a.id).await.unwrap_err(),
        StoreError::TaskNotFound(a.id)
    );
    assert!(s.queues("acme").await.unwrap().is_empty());
    assert!(s.claim(&acme, claim_req(5)).await.unwrap().is_empty());
    let data = s.load_auth().await.unwrap();
    assert!(data.tenants.iter().all(|t| t.name != "acme"));
    assert!(data.keys.iter().all(|k| k.tenant != "acme"));
    assert!(data.roles.iter().all(|r| r.tenant != "acme"));
    assert_eq!(data.keys.len(), 1);
    // The other tenant is untouched. A write for the deleted tenant (one authenticated just
    // before the delete, say) cannot bring it back; a new tenant of the same name starts empty.
    assert_eq!(s.get("globex", g.id).await.unwrap().state, TaskState::Ready);
    assert_eq!(s.queue(&globex).await.unwrap().counts.total(), 1);
    assert_eq!(
        s.enqueue(&acme, vec![task("z")]).await.unwrap_err(),
        StoreError::TenantNotFound("acme".into())
    );
    assert_eq!(
        s.update_queue(&acme, QueuePatch::default())
            .await
            .unwrap_err(),
        StoreError::TenantNotFound("acme".into())
    );
    assert!(s.queues("acme").await.unwrap().is_empty());
    create_tenant(&s, "acme").await;
    assert!(s.queues("acme").await.unwrap().is_empty());
    let again = enqueue_one(&s, &acme, task("z")).await;
    assert_eq!(s.queue(&acme).await.unwrap().counts.ready, 1);
    assert_eq!(s.all_queues().await.unwrap().len(), 2);
    assert!(again.id > g.id);
}

/// Deleting a tenant while its writes (and another tenant's) are on their way: every write of
/// the other tenant succeeds, and once the delete is answered nothing of the deleted tenant
/// exists or comes back, whichever order the writes landed in. Many rounds, so writes land
/// before, beside (in one commit) and after the delete.
pub async fn deleting_a_tenant_under_concurrent_writes_leaves_nothing<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    create_tenant(&s, "bystander").await;
    let other = QueueKey::new("bystander", "jobs");
    for round in 0..20 {
        create_tenant(&s, "doomed").await;
        let doomed = QueueKey::new("doomed", format!("q{}", round % 3));
        enqueue_one(&s, &doomed, task("x")).await;
        let mut writes = Vec::new();
        for i in 0..24 {
            let store = s.clone();
            let (q, o) = (doomed.clone(), other.clone());
            writes.push(tokio::spawn(async move {
                if i % 6 == 0 {
                    tokio::task::yield_now().await;
                }
                let mine = store.enqueue(&q, vec![task("x")]).await;
                let theirs = store.enqueue(&o, vec![task("y")]).await;
                (mine, theirs)
            }));
            if i == 12 {
                let s = s.clone();
                writes.push(tokio::spawn(async move {
                    s.change_auth(AuthChange::DeleteTenant("doomed".into()))
                        .await
                        .unwrap();
                    (Ok(vec![]), Ok(vec![]))
                }));
            }
        }
        for w in writes {
            let (mine, theirs) = w.await.unwrap();
            theirs.expect("another tenant's write is never affected");
            match mine {
                Ok(_) | Err(StoreError::TenantNotFound(_)) => {}
                Err(e) => panic!("round {round}: unexpected error {e:?}"),
            }
        }
        assert!(
            s.queues("doomed").await.unwrap().is_empty(),
            "round {round}: the deleted tenant's queues came back"
        );
        assert!(s
            .all_queues()
            .await
            .unwrap()
            .iter()
            .all(|(t, _)| t != "doomed"));
        assert_eq!(
            s.enqueue(&doomed, vec![task("x")]).await.unwrap_err(),
            StoreError::TenantNotFound("doomed".into())
        );
    }
    let total: u64 = s.queue(&other).await.unwrap().counts.total();
    assert_eq!(total, 20 * 24);
    // A new tenant with the old name inherits nothing.
    create_tenant(&s, "doomed").await;
    assert!(s.queues("doomed").await.unwrap().is_empty());
}
