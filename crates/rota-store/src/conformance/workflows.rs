//! Dependencies and workflows (docs/workflows.md). A dependency and its dependent are put in
//! different queues, so an engine with several shards ties them across shards; an ending may
//! then reach its dependents a moment after it is acknowledged, so the bodies wait for the
//! outcome (a few seconds at most) instead of assuming it at once.

use super::*;
use crate::workflows::{Submission, WorkflowSpecTask};
use rota_core::events::EventType;
use rota_core::workflow::{WorkflowKind, WorkflowState};
use rota_core::OnDependencyFailure;
use std::time::Duration;

pub(super) fn after(kind: &str, deps: &[&Task]) -> NewTask {
    NewTask {
        depends_on: deps.iter().map(|t| t.id).collect(),
        ..task(kind)
    }
}

/// Waits (up to 5 s) until task `id` is in `state`; answers it.
pub(super) async fn reaches(s: &DynStore, id: TaskId, state: TaskState) -> Task {
    for _ in 0..500 {
        let t = s.get("default", id).await.unwrap();
        if t.state == state {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t = s.get("default", id).await.unwrap();
    panic!("task {id} stayed {} instead of becoming {state}", t.state);
}

/// Completes the one ready task of `queue` (which must be `t`).
async fn run(s: &DynStore, queue: &QueueKey, t: &Task) -> Task {
    let claimed = claim_one(s, queue).await;
    assert_eq!(claimed.id, t.id, "the ready task of {}", queue.name);
    complete(s, &claimed).await.unwrap()
}

pub(super) async fn types_of(s: &DynStore, id: TaskId) -> Vec<EventType> {
    s.events(
        "default",
        0,
        10_000,
        Arc::new(move |e: &Event| e.task_id == id),
    )
    .await
    .unwrap()
    .events
    .into_iter()
    .map(|e| e.event_type)
    .collect()
}

pub async fn a_task_waits_for_its_dependencies_and_is_released_when_they_succeed<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let (scrape, rules) = (q("scrape"), q("rules"));
    let a = enqueue_one(&s, &scrape, task("a")).await;
    let b = enqueue_one(&s, &scrape, task("b")).await;
    let j = enqueue_one(&s, &rules, after("join", &[&a, &b])).await;
    assert_eq!(j.state, TaskState::Waiting);
    assert_eq!(j.depends_on, vec![a.id, b.id]);
    assert_eq!(s.queue(&rules).await.unwrap().counts.waiting, 1);
    assert!(s.claim(&rules, claim_req(5)).await.unwrap().is_empty());

    run(&s, &scrape, &a).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        s.get("default", j.id).await.unwrap().state,
        TaskState::Waiting
    );
    assert!(s.claim(&rules, claim_req(5)).await.unwrap().is_empty());

    run(&s, &scrape, &b).await;
    reaches(&s, j.id, TaskState::Ready).await;
    let claimed = claim_one(&s, &rules).await;
    assert_eq!(claimed.id, j.id);
    assert_eq!(
        types_of(&s, j.id).await,
        vec![EventType::Waiting, EventType::Released, EventType::Claimed]
    );
}

pub async fn a_dependency_that_already_succeeded_counts_at_once<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let a = enqueue_one(&s, &q("first"), task("a")).await;
    run(&s, &q("first"), &a).await;
    let j = enqueue_one(&s, &q("then"), after("j", &[&a])).await;
    assert_eq!(j.state, TaskState::Ready, "{j:?}");
    assert_eq!(types_of(&s, j.id).await, vec![EventType::Enqueued]);
}

pub async fn a_failed_dependency_cancels_its_dependents_unless_they_run_anyway<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let (up, down, last) = (q("up"), q("down"), q("last"));
    let a = enqueue_one(&s, &up, task("a")).await;
    let cancels = enqueue_one(&s, &down, after("cancels", &[&a])).await;
    let runs = enqueue_one(
        &s,
        &down,
        NewTask {
            on_dependency_failure: OnDependencyFailure::Run,
            ..after("runs", &[&a])
        },
    )
    .await;
    assert_eq!(runs.on_dependency_failure, OnDependencyFailure::Run);
    let chained = enqueue_one(&s, &last, after("chained", &[&cancels])).await;
    let claimed = claim_one(&s, &up).await;
    fail(&s, &claimed, None, true).await.unwrap();

    let c = reaches(&s, cancels.id, TaskState::Cancelled).await;
    let reason = &c.errors.last().expect("the reason is recorded").message;
    assert!(
        reason.contains(&a.id.to_string()) && reason.contains("dead"),
        "{reason}"
    );
    reaches(&s, runs.id, TaskState::Ready).await;
    let ch = reaches(&s, chained.id, TaskState::Cancelled).await;
    assert!(ch
        .errors
        .last()
        .unwrap()
        .message
        .contains(&cancels.id.to_string()));

    // A dependency already dead when the task is enqueued cancels it at once.
    let late = enqueue_one(&s, &down, after("late", &[&a])).await;
    assert_eq!(late.state, TaskState::Cancelled);
}

pub async fn an_unknown_dependency_is_refused_and_changes_nothing<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    create_tenant(&s, "globex").await;
    let theirs = enqueue_one(&s, &QueueKey::new("globex", "q"), task("x")).await;
    let missing = TaskId(theirs.id.0 + 1);
    for dep in [theirs.id, missing] {
        let err = s
            .enqueue(
                &q("mine"),
                vec![
                    task("ok"),
                    NewTask {
                        depends_on: vec![dep],
                        ..task("j")
                    },
                ],
            )
            .await
            .unwrap_err();
        match err {
            StoreError::Invalid(m) => assert!(m.contains(&dep.to_string()), "{m}"),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }
    match s.queue(&q("mine")).await {
        Err(StoreError::QueueNotFound(_)) => {}
        Ok(info) => assert_eq!(info.counts.total(), 0),
        Err(e) => panic!("{e}"),
    }
}

pub async fn cancelling_a_waiting_task_cancels_its_chain<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let a = enqueue_one(&s, &q("a"), task("a")).await;
    let b = enqueue_one(&s, &q("b"), after("b", &[&a])).await;
    let c = enqueue_one(&s, &q("c"), after("c", &[&b])).await;
    let cancelled = s.change("default", b.id, Change::Cancel).await.unwrap();
    assert_eq!(cancelled.state, TaskState::Cancelled);
    reaches(&s, c.id, TaskState::Cancelled).await;
    // The dependency itself goes on; finishing it releases nothing.
    run(&s, &q("a"), &a).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        s.get("default", c.id).await.unwrap().state,
        TaskState::Cancelled
    );
}

pub async fn waits_survive_reopen<H: Harness>() {
    let (h, clock, s) = setup::<H>().await;
    let a = enqueue_one(&s, &q("a"), task("a")).await;
    let j = enqueue_one(&s, &q("j"), after("j", &[&a])).await;
    let claimed = claim_one(&s, &q("a")).await;
    s.close().await;
    drop(s);
    let s = h.open(clock.clone()).await;
    assert_eq!(
        s.get("default", j.id).await.unwrap().state,
        TaskState::Waiting
    );
    complete(&s, &claimed).await.unwrap();
    reaches(&s, j.id, TaskState::Ready).await;
}

pub(super) fn spec(name: &str, queue: &str, after: &[usize]) -> WorkflowSpecTask {
    WorkflowSpecTask {
        name: name.into(),
        queue: queue.into(),
        task: task(name),
        after: after.to_vec(),
    }
}

pub async fn a_workflow_is_stored_whole_and_runs_in_order<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    // master -> three variants (another queue) -> join (a third).
    let wf = s
        .submit_workflow(
            "default",
            vec![
                spec("master", "render", &[]),
                spec("v1", "variants", &[0]),
                spec("v2", "variants", &[0]),
                spec("v3", "variants", &[0]),
                spec("join", "publish", &[1, 2, 3]),
            ],
            Submission::Workflow,
        )
        .await
        .unwrap();
    assert_eq!(wf.tasks.len(), 5);
    assert_eq!(wf.state, WorkflowState::Running);
    let names: Vec<&str> = wf.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["master", "v1", "v2", "v3", "join"]);
    let id: TaskId = wf.id.parse().unwrap();
    let ids: Vec<TaskId> = wf.tasks.iter().map(|t| t.task.id).collect();
    for t in &wf.tasks {
        assert_eq!(t.task.workflow.as_deref(), Some(wf.id.as_str()));
    }
    assert_eq!(wf.tasks[4].task.depends_on, ids[1..4].to_vec());
    let master = reaches(&s, ids[0], TaskState::Ready).await;
    for t in &ids[1..] {
        assert_eq!(
            s.get("default", *t).await.unwrap().state,
            TaskState::Waiting
        );
    }
    assert!(s
        .claim(&q("variants"), claim_req(5))
        .await
        .unwrap()
        .is_empty());
    run(&s, &q("render"), &master).await;
    for t in &ids[1..4] {
        reaches(&s, *t, TaskState::Ready).await;
    }
    let variants = s.claim(&q("variants"), claim_req(5)).await.unwrap();
    assert_eq!(variants.len(), 3);
    for v in &variants {
        complete(&s, v).await.unwrap();
    }
    let join = reaches(&s, ids[4], TaskState::Ready).await;
    run(&s, &q("publish"), &join).await;
    let done = s.workflow("default", id).await.unwrap();
    assert_eq!(done.state, WorkflowState::Succeeded);
    assert_eq!(done.counts.succeeded, 5);
    let listed = s.workflows("default", None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, wf.id);
    assert!(listed[0].tasks.is_empty());
    assert_eq!(listed[0].counts.succeeded, 5);
    let mut read = s.tasks_by_id("default", &ids).await.unwrap();
    read.sort_by_key(|t| t.id);
    let mut want = ids.clone();
    want.sort();
    assert_eq!(read.iter().map(|t| t.id).collect::<Vec<_>>(), want);
    assert!(read
        .iter()
        .all(|t| t.state == TaskState::Succeeded && t.result.is_some()));
    // Another tenant sees none of it.
    create_tenant(&s, "globex").await;
    assert!(s.tasks_by_id("globex", &ids).await.unwrap().is_empty());
    assert!(matches!(
        s.workflow("globex", id).await,
        Err(StoreError::WorkflowNotFound(_))
    ));
    assert!(s.workflows("globex", None, 10).await.unwrap().is_empty());
}

pub async fn a_workflow_that_cannot_be_stored_stores_nothing<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    s.change_auth(AuthChange::PutTenant(TenantRecord {
        name: "small".into(),
        created_at: Timestamp(T0),
        limits: ClientLimits::default(),
        event_retention_ms: None,
    }))
    .await
    .unwrap();
    // The tenant does not exist: no part is written, whichever shard it would go to.
    let err = s
        .submit_workflow(
            "nobody",
            vec![
                spec("a", "q1", &[]),
                spec("b", "q2", &[0]),
                spec("c", "q3", &[1]),
            ],
            Submission::Workflow,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TenantNotFound(_)), "{err:?}");
    assert!(s.workflows("nobody", None, 10).await.unwrap().is_empty());
}

pub async fn a_failed_step_fails_the_workflow_and_cancels_what_waits<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let wf = s
        .submit_workflow(
            "default",
            vec![
                spec("scrape", "scrape", &[]),
                spec("evaluate", "evaluate", &[0]),
                spec("notify", "notify", &[1]),
            ],
            Submission::Workflow,
        )
        .await
        .unwrap();
    let ids: Vec<TaskId> = wf.tasks.iter().map(|t| t.task.id).collect();
    reaches(&s, ids[0], TaskState::Ready).await;
    let claimed = claim_one(&s, &q("scrape")).await;
    fail(&s, &claimed, None, true).await.unwrap();
    reaches(&s, ids[2], TaskState::Cancelled).await;
    let w = s.workflow("default", wf.id.parse().unwrap()).await.unwrap();
    assert_eq!(w.state, WorkflowState::Failed);
    assert_eq!((w.counts.dead, w.counts.cancelled), (1, 2));
}

/// The last two dependencies of a join ending at the same moment (through two servers, where
/// the engine has them) release it once.
pub async fn the_last_two_dependencies_ending_at_once_release_the_join_once<H: Harness>() {
    let (_h, _c, a, b) = super::peers::pair::<H>().await;
    for _ in 0..10 {
        let x = enqueue_one(&a, &q("x"), task("x")).await;
        let y = enqueue_one(&b, &q("y"), task("y")).await;
        let j = enqueue_one(&a, &q("j"), after("j", &[&x, &y])).await;
        let cx = claim_one(&a, &q("x")).await;
        let cy = claim_one(&b, &q("y")).await;
        let (r1, r2) = tokio::join!(complete(&a, &cx), complete(&b, &cy));
        r1.unwrap();
        r2.unwrap();
        reaches(&a, j.id, TaskState::Ready).await;
        let released = types_of(&a, j.id)
            .await
            .into_iter()
            .filter(|t| *t == EventType::Released)
            .count();
        assert_eq!(released, 1, "the join was released {released} times");
        run(&b, &q("j"), &j).await;
    }
}

/// A batch: its callback waits for every member and runs once, whatever they ended as; the
/// store says which workflows are batches and which task is the callback.
pub async fn a_batch_callback_runs_once_after_every_member<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let mut tasks: Vec<WorkflowSpecTask> = (0..3)
        .map(|i| spec(&format!("m{i}"), "members", &[]))
        .collect();
    let mut cb = spec(rota_core::workflow::BATCH_CALLBACK, "done", &[0, 1, 2]);
    cb.task.on_dependency_failure = OnDependencyFailure::Run;
    tasks.push(cb);
    let b = s
        .submit_workflow("default", tasks, Submission::Batch { open: false })
        .await
        .unwrap();
    assert_eq!(b.kind, WorkflowKind::Batch);
    let id: TaskId = b.id.parse().unwrap();
    let callback = b.tasks[3].task.id;
    let plain = s
        .submit_workflow(
            "default",
            vec![spec("x", "other", &[])],
            Submission::Workflow,
        )
        .await
        .unwrap();
    let plain_id: TaskId = plain.id.parse().unwrap();
    let found = s.batch_callbacks("default", &[id, plain_id]).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found.get(&id), Some(&callback));
    assert!(s.batch_callbacks("globex", &[id]).await.unwrap().is_empty());
    let members = s.claim(&q("members"), claim_req(3)).await.unwrap();
    assert_eq!(members.len(), 3);
    complete(&s, &members[0]).await.unwrap();
    fail(&s, &members[1], None, true).await.unwrap();
    assert_eq!(
        s.get("default", callback).await.unwrap().state,
        TaskState::Waiting
    );
    s.change("default", members[2].id, Change::Cancel)
        .await
        .unwrap();
    reaches(&s, callback, TaskState::Ready).await;
    assert_eq!(
        s.workflow("default", id).await.unwrap().kind,
        WorkflowKind::Batch
    );
    let listed = s.workflows("default", None, 10).await.unwrap();
    assert!(listed
        .iter()
        .any(|w| w.id == b.id && w.kind == WorkflowKind::Batch));
}

/// A workflow is kept while any of its tasks is; then retention removes its record too.
pub async fn retention_keeps_a_workflow_while_a_task_of_it_is_kept<H: Harness>() {
    let (_h, clock, s) = setup::<H>().await;
    let two_hours = 2 * 3_600_000;
    for q in ["r1", "r2"] {
        let patch = QueuePatch {
            retention_ms: Some(two_hours),
            ..Default::default()
        };
        s.update_queue(&super::q(q), patch).await.unwrap();
    }
    let wf = s
        .submit_workflow(
            "default",
            vec![spec("a", "r1", &[]), spec("b", "r2", &[0])],
            Submission::Workflow,
        )
        .await
        .unwrap();
    let id: TaskId = wf.id.parse().unwrap();
    let a = reaches(&s, wf.tasks[0].task.id, TaskState::Ready).await;
    run(&s, &q("r1"), &a).await;
    // b is still kept (ready): the workflow stays, however old.
    clock.advance_ms(two_hours as i64 + 1);
    s.run_maintenance().await.unwrap();
    s.run_maintenance().await.unwrap();
    let w = s.workflow("default", id).await.unwrap();
    assert_eq!(w.tasks.len(), 1, "a went with its queue's retention");
    let b = reaches(&s, wf.tasks[1].task.id, TaskState::Ready).await;
    run(&s, &q("r2"), &b).await;
    clock.advance_ms(two_hours as i64 + 1);
    s.run_maintenance().await.unwrap();
    s.run_maintenance().await.unwrap();
    assert!(matches!(
        s.workflow("default", id).await,
        Err(StoreError::WorkflowNotFound(_))
    ));
    assert!(s.workflows("default", None, 10).await.unwrap().is_empty());
}

/// A dependency deleted before it ends is taken as cancelled by its dependents; one deleted
/// after it succeeded is not an ending twice.
pub async fn deleting_a_dependency_cancels_its_dependents<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let a = enqueue_one(&s, &q("del-a"), task("a")).await;
    let j = enqueue_one(&s, &q("del-j"), after("j", &[&a])).await;
    s.change("default", a.id, Change::Delete).await.unwrap();
    let c = reaches(&s, j.id, TaskState::Cancelled).await;
    assert!(c.errors.last().unwrap().message.contains(&a.id.to_string()));
    let b = enqueue_one(&s, &q("del-a"), task("b")).await;
    let k = enqueue_one(&s, &q("del-j"), after("k", &[&b])).await;
    run(&s, &q("del-a"), &b).await;
    reaches(&s, k.id, TaskState::Ready).await;
    s.change("default", b.id, Change::Delete).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        s.get("default", k.id).await.unwrap().state,
        TaskState::Ready
    );
}
