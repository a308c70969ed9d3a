//! An operator's changes by task id: run now, kill, delete (cancel and retry live with the task
//! bodies).

use super::*;

pub async fn run_now_starts_a_waiting_task_and_keeps_its_attempts<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let queue = q("later");
    let mut later = task("x");
    later.run_at = Some(Timestamp(T0 + 3_600_000));
    let scheduled = enqueue_one(&s, &queue, later).await;
    assert_eq!(scheduled.state, TaskState::Scheduled);
    let now = s
        .change("default", scheduled.id, Change::RunNow)
        .await
        .unwrap();
    assert_eq!((now.state, now.run_at), (TaskState::Ready, Timestamp(T0)));
    assert_eq!(claim_one(&s, &queue).await.id, scheduled.id);
    // A retry waiting for its backoff runs now with its attempt counted.
    let c = s.get("default", scheduled.id).await.unwrap();
    fail(&s, &c, Some(3_600_000), false).await.unwrap();
    let r = s.change("default", c.id, Change::RunNow).await.unwrap();
    assert_eq!(
        (r.state, r.attempt, r.errors.len()),
        (TaskState::Ready, 1, 1)
    );
    assert_eq!(claim_one(&s, &queue).await.attempt, 2);
    let e = s.change("default", c.id, Change::RunNow).await.unwrap_err();
    assert!(matches!(e, StoreError::InvalidState { .. }), "{e:?}");
    let counts = s.queue(&queue).await.unwrap().counts;
    assert_eq!((counts.scheduled, counts.running), (0, 1));
}

pub async fn kill_sends_a_waiting_task_to_the_dead_letters<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let queue = q("kill");
    let mut later = task("x");
    later.run_at = Some(Timestamp(T0 + 60_000));
    let a = enqueue_one(&s, &queue, later).await;
    let b = enqueue_one(&s, &queue, task("x")).await;
    for t in [&a, &b] {
        let reason = Change::Kill {
            reason: "not wanted".into(),
        };
        let k = s.change("default", t.id, reason).await.unwrap();
        assert_eq!(k.state, TaskState::Dead);
        assert_eq!(k.finished_at, Some(Timestamp(T0)));
        let stored = s.get("default", t.id).await.unwrap();
        assert_eq!(stored.state, TaskState::Dead);
        let last = stored.errors.last().expect("the reason is recorded");
        assert_eq!((last.message.as_str(), last.attempt), ("not wanted", 0));
    }
    let counts = s.queue(&queue).await.unwrap().counts;
    assert_eq!((counts.scheduled, counts.ready, counts.dead), (0, 0, 2));
    assert!(s.claim(&queue, claim_req(1)).await.unwrap().is_empty());
    // Running and final tasks are not killed; a killed task can be retried.
    let r = s.change("default", a.id, Change::Retry).await.unwrap();
    assert_eq!(r.state, TaskState::Ready);
    let running = claim_one(&s, &queue).await;
    let kill = Change::Kill { reason: "x".into() };
    let e = s
        .change("default", running.id, kill.clone())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::InvalidState { .. }), "{e:?}");
    let e = s.change("default", b.id, kill).await.unwrap_err();
    assert!(matches!(e, StoreError::InvalidState { .. }), "{e:?}");
}

pub async fn delete_removes_a_task_that_is_not_running<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    create_tenant(&s, "globex").await;
    let queue = q("del");
    let mut keyed = task("x");
    keyed.unique_key = Some("k1".into());
    let a = enqueue_one(&s, &queue, keyed.clone()).await;
    let b = enqueue_one(&s, &queue, task("x")).await;
    // Another tenant cannot see it, let alone delete it.
    let e = s.change("globex", a.id, Change::Delete).await.unwrap_err();
    assert_eq!(e, StoreError::TaskNotFound(a.id));
    let gone = s.change("default", a.id, Change::Delete).await.unwrap();
    assert_eq!((gone.id, gone.state), (a.id, TaskState::Ready));
    assert_eq!(
        s.get("default", a.id).await.unwrap_err(),
        StoreError::TaskNotFound(a.id)
    );
    // Its unique key is free again.
    let again = s.enqueue(&queue, vec![keyed]).await.unwrap().remove(0);
    assert!(!again.duplicate);
    // A running task is not deleted; once final, it is.
    let running = claim_one(&s, &queue).await;
    assert_eq!(running.id, b.id);
    let e = s.change("default", b.id, Change::Delete).await.unwrap_err();
    assert!(matches!(e, StoreError::InvalidState { .. }), "{e:?}");
    complete(&s, &running).await.unwrap();
    s.change("default", b.id, Change::Delete).await.unwrap();
    let counts = s.queue(&queue).await.unwrap().counts;
    assert_eq!((counts.ready, counts.running, counts.succeeded), (1, 0, 0));
    assert_eq!(
        s.change("default", b.id, Change::Delete).await.unwrap_err(),
        StoreError::TaskNotFound(b.id)
    );
}
