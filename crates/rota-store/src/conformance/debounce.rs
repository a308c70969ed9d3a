//! Debounce: an enqueue with `on_duplicate: replace` takes the place of its unique key's live
//! holder while that task still waits to run (new fields, same id, its delay started again),
//! and keeps a running holder as `keep` does.

use super::events::{read_all, types};
use super::*;
use rota_core::{OnDuplicate, TaskState};

fn keyed(key: &str, payload: &str, on_duplicate: OnDuplicate) -> NewTask {
    let mut t = task("sync");
    t.unique_key = Some(key.into());
    t.payload = json(payload);
    t.on_duplicate = on_duplicate;
    t
}

fn in_ms(clock: &ManualClock, ms: i64) -> Option<Timestamp> {
    Some(clock.now().plus_ms(ms))
}

async fn counts(s: &DynStore, queue: &QueueKey) -> (u64, u64, u64) {
    let c = s.queue(queue).await.unwrap().counts;
    (c.scheduled, c.ready, c.running)
}

pub async fn replace_takes_a_waiting_tasks_place_and_restarts_its_delay<H: Harness>() {
    let (_h, clock, s) = setup::<H>().await;
    let queue = q("debounce");
    let mut first = keyed("doc-7", r#"{"v":1}"#, OnDuplicate::Replace);
    first.run_at = in_ms(&clock, 10_000);
    let held = enqueue_one(&s, &queue, first).await;
    assert_eq!(held.state, TaskState::Scheduled);

    clock.advance_ms(6_000);
    let mut second = keyed("doc-7", r#"{"v":2}"#, OnDuplicate::Replace);
    second.run_at = in_ms(&clock, 10_000);
    second.priority = 5;
    second.kind = "sync-v2".into();
    second.tags = vec!["edited".into()];
    second.max_attempts = Some(3);
    let out = s.enqueue(&queue, vec![second]).await.unwrap();
    let e = &out[0];
    assert!(e.duplicate && e.replaced, "a waiting holder is replaced");
    assert_eq!(e.task.id, held.id, "the holder keeps its id");
    assert_eq!(e.task.payload.get(), r#"{"v":2}"#);
    assert_eq!(
        e.task.run_at,
        Timestamp(T0 + 16_000),
        "the delay starts again"
    );
    assert_eq!(e.task.state, TaskState::Scheduled);
    assert_eq!(
        (e.task.priority, e.task.kind.as_str(), e.task.max_attempts),
        (5, "sync-v2", 3)
    );
    assert_eq!(e.task.tags, ["edited"]);
    assert_eq!(e.task.created_at, held.created_at);
    assert_eq!(e.task.updated_at, clock.now());
    assert_eq!(e.task.unique_key.as_deref(), Some("doc-7"));

    // The store holds what the answer says.
    let got = s.get("default", held.id).await.unwrap();
    assert_eq!(got.payload.get(), r#"{"v":2}"#);
    assert_eq!((got.run_at, got.priority), (e.task.run_at, 5));
    assert_eq!((got.kind.as_str(), got.max_attempts), ("sync-v2", 3));
    assert_eq!(got.tags, ["edited"]);
    assert_eq!(counts(&s, &queue).await, (1, 0, 0), "still one task");

    // The first delay's end no longer makes it ready; the new one does.
    clock.advance_ms(5_000);
    s.run_maintenance().await.unwrap();
    assert!(s.claim(&queue, claim_req(1)).await.unwrap().is_empty());
    clock.advance_ms(5_000);
    s.run_maintenance().await.unwrap();
    let claimed = claim_one(&s, &queue).await;
    assert_eq!((claimed.id, claimed.payload.get()), (held.id, r#"{"v":2}"#));
}

pub async fn replace_moves_a_task_between_ready_and_scheduled<H: Harness>() {
    let (_h, clock, s) = setup::<H>().await;
    let queue = q("debounce-states");
    let held = enqueue_one(&s, &queue, keyed("k", "1", OnDuplicate::Replace)).await;
    assert_eq!(held.state, TaskState::Ready);
    assert_eq!(counts(&s, &queue).await, (0, 1, 0));

    let mut later = keyed("k", "2", OnDuplicate::Replace);
    later.run_at = in_ms(&clock, 1_000);
    let e = s.enqueue(&queue, vec![later]).await.unwrap().remove(0);
    assert!(e.replaced);
    assert_eq!(e.task.state, TaskState::Scheduled);
    assert_eq!(counts(&s, &queue).await, (1, 0, 0));
    assert!(s.claim(&queue, claim_req(1)).await.unwrap().is_empty());

    let e = s
        .enqueue(&queue, vec![keyed("k", "3", OnDuplicate::Replace)])
        .await
        .unwrap()
        .remove(0);
    assert!(e.replaced);
    assert_eq!(e.task.state, TaskState::Ready);
    assert_eq!(counts(&s, &queue).await, (0, 1, 0));
    let claimed = claim_one(&s, &queue).await;
    assert_eq!((claimed.id, claimed.payload.get()), (held.id, "3"));
}

/// Keep (the default) answers the holder as it is, whatever it waits for.
pub async fn keep_leaves_a_waiting_holder_as_it_was<H: Harness>() {
    let (_h, clock, s) = setup::<H>().await;
    let queue = q("debounce-keep");
    let mut first = keyed("k", "1", OnDuplicate::Keep);
    first.run_at = in_ms(&clock, 10_000);
    let held = enqueue_one(&s, &queue, first).await;
    clock.advance_ms(1_000);
    let e = s
        .enqueue(&queue, vec![keyed("k", "2", OnDuplicate::Keep)])
        .await
        .unwrap()
        .remove(0);
    assert!(e.duplicate && !e.replaced);
    assert_eq!((e.task.payload.get(), e.task.run_at), ("1", held.run_at));
    let got = s.get("default", held.id).await.unwrap();
    assert_eq!((got.payload.get(), got.updated_at), ("1", held.updated_at));
}

/// A running holder cannot be replaced (its worker has the old payload): it is answered as a
/// duplicate not replaced, and nothing is enqueued. Once it finishes, the key is free again.
pub async fn a_running_holder_is_kept_and_nothing_is_enqueued<H: Harness>() {
    let (_h, _clock, s) = setup::<H>().await;
    let queue = q("debounce-running");
    enqueue_one(&s, &queue, keyed("k", "1", OnDuplicate::Replace)).await;
    let running = claim_one(&s, &queue).await;
    let e = s
        .enqueue(&queue, vec![keyed("k", "2", OnDuplicate::Replace)])
        .await
        .unwrap()
        .remove(0);
    assert!(e.duplicate && !e.replaced, "a running holder is kept");
    assert_eq!((e.task.id, e.task.state), (running.id, TaskState::Running));
    assert_eq!(e.task.payload.get(), "1");
    assert_eq!(counts(&s, &queue).await, (0, 0, 1), "nothing was enqueued");
    let got = s.get("default", running.id).await.unwrap();
    assert_eq!(got.payload.get(), "1");
    assert_eq!(got.lease, running.lease, "the lease is untouched");

    complete(&s, &running).await.unwrap();
    let e = s
        .enqueue(&queue, vec![keyed("k", "3", OnDuplicate::Replace)])
        .await
        .unwrap()
        .remove(0);
    assert!(
        !e.duplicate && !e.replaced,
        "a finished holder frees the key"
    );
    assert_ne!(e.task.id, running.id);
}

/// A holder waiting for a retry is replaced too; what its runs recorded stays with it.
pub async fn a_holder_waiting_for_its_retry_is_replaced_keeping_its_history<H: Harness>() {
    let (_h, clock, s) = setup::<H>().await;
    let queue = q("debounce-retry");
    let held = enqueue_one(&s, &queue, keyed("k", "1", OnDuplicate::Replace)).await;
    let c = claim_one(&s, &queue).await;
    fail(&s, &c, Some(60_000), false).await.unwrap();
    let e = s
        .enqueue(&queue, vec![keyed("k", "2", OnDuplicate::Replace)])
        .await
        .unwrap()
        .remove(0);
    assert!(e.replaced);
    assert_eq!(e.task.id, held.id);
    assert_eq!(e.task.state, TaskState::Ready, "no delay asked: ready now");
    assert_eq!(e.task.run_at, clock.now());
    assert_eq!(e.task.attempt, 1);
    assert_eq!(e.task.errors.len(), 1);
    let got = s.get("default", held.id).await.unwrap();
    assert_eq!((got.attempt, got.errors.len()), (1, 1));
    assert_eq!(got.payload.get(), "2");
    assert_eq!(got.max_attempts, 25, "no max_attempts given: the queue's");
}

/// A batch takes effect in order, as enqueues one after another: an entry repeating a key
/// earlier in the batch finds that entry's task as its holder.
pub async fn a_batch_applies_keep_and_replace_in_order<H: Harness>() {
    let (_h, _clock, s) = setup::<H>().await;
    let queue = q("debounce-batch");
    let before = read_all(&s, "default", 0).await.len();
    let out = s
        .enqueue(
            &queue,
            vec![
                keyed("a", "1", OnDuplicate::Keep),
                keyed("a", "2", OnDuplicate::Replace),
                keyed("a", "3", OnDuplicate::Keep),
                keyed("a", "4", OnDuplicate::Replace),
                keyed("b", "5", OnDuplicate::Replace),
                task("plain"),
            ],
        )
        .await
        .unwrap();
    let flags: Vec<(bool, bool)> = out.iter().map(|e| (e.duplicate, e.replaced)).collect();
    assert_eq!(
        flags,
        [
            (false, false),
            (true, true),
            (true, false),
            (true, true),
            (false, false),
            (false, false)
        ]
    );
    let a = out[0].task.id;
    assert!(
        out[..4].iter().all(|e| e.task.id == a),
        "one task for key a"
    );
    let payloads: Vec<&str> = out[..4].iter().map(|e| e.task.payload.get()).collect();
    assert_eq!(
        payloads,
        ["1", "2", "2", "4"],
        "each answer as the task was then"
    );
    assert_eq!(s.get("default", a).await.unwrap().payload.get(), "4");
    assert_eq!(counts(&s, &queue).await, (0, 3, 0));
    // One event per entry that changed something; a key's replacements after its enqueue. (An
    // engine may commit a batch's new tasks before its replacements, so the order between
    // keys is not fixed.)
    let logged = read_all(&s, "default", 0).await;
    let mut seen = types(&logged[before..]);
    seen.sort();
    assert_eq!(
        seen,
        [
            "task.enqueued",
            "task.enqueued",
            "task.enqueued",
            "task.replaced",
            "task.replaced"
        ]
    );
    let of_a: Vec<&str> = logged[before..]
        .iter()
        .filter(|e| e.task_id == a)
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(of_a, ["task.enqueued", "task.replaced", "task.replaced"]);

    // A running holder is kept by every entry of a later batch.
    let running = claim_one(&s, &q("debounce-batch")).await;
    let key = running.unique_key.clone().unwrap();
    let out = s
        .enqueue(
            &queue,
            vec![
                keyed(&key, "10", OnDuplicate::Replace),
                keyed(&key, "11", OnDuplicate::Replace),
            ],
        )
        .await
        .unwrap();
    assert!(out.iter().all(|e| e.duplicate && !e.replaced));
    assert!(out.iter().all(|e| e.task.id == running.id));
}

/// The event a replacement logs, and the group rule: the holder's group stays unless the new
/// task names one.
pub async fn replace_logs_task_replaced_and_keeps_the_group_unless_named<H: Harness>() {
    let (_h, clock, s) = setup::<H>().await;
    let queue = q("debounce-events");
    let mut first = keyed("k", "1", OnDuplicate::Replace);
    first.group = Some("acme".into());
    let held = enqueue_one(&s, &queue, first).await;
    let after = read_all(&s, "default", 0).await.last().unwrap().cursor;

    clock.advance_ms(1_000);
    let mut unnamed = keyed("k", "2", OnDuplicate::Replace);
    unnamed.run_at = in_ms(&clock, 5_000);
    let e = s.enqueue(&queue, vec![unnamed]).await.unwrap().remove(0);
    assert_eq!(
        e.task.group.as_deref(),
        Some("acme"),
        "the holder's group stays"
    );
    assert_eq!(
        s.get("default", held.id).await.unwrap().group.as_deref(),
        Some("acme")
    );
    let mut named = keyed("k", "3", OnDuplicate::Replace);
    named.group = Some("globex".into());
    let e = s.enqueue(&queue, vec![named]).await.unwrap().remove(0);
    assert_eq!(e.task.group.as_deref(), Some("globex"));
    assert_eq!(
        s.get("default", held.id).await.unwrap().group.as_deref(),
        Some("globex")
    );
    // The task is claimed in its new group's turn.
    let claimed = claim_one(&s, &queue).await;
    assert_eq!(claimed.group.as_deref(), Some("globex"));

    let logged = read_all(&s, "default", after).await;
    assert_eq!(
        types(&logged),
        ["task.replaced", "task.replaced", "task.claimed"]
    );
    let first = &logged[0];
    assert_eq!((first.task_id, first.at), (held.id, Timestamp(T0 + 1_000)));
    assert_eq!(first.queue, "debounce-events");
    assert_eq!(first.state, Some(TaskState::Scheduled));
    assert_eq!(first.due, Some(Timestamp(T0 + 6_000)), "the new run_at");
    assert_eq!(logged[1].state, Some(TaskState::Ready));
    assert_eq!(logged[1].due, None);
}
