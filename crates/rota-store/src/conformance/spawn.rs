//! Tasks added after a submission (docs/workflows.md): a running task that spawns tasks and
//! waits for them, and open batches. The added tasks go to other queues than their waiter, so
//! an engine with several shards ties them across shards.

use super::workflows::{after, reaches, spec, types_of};
use super::*;
use crate::workflows::{Spawn, Submission};
use rota_core::events::EventType;
use rota_core::OnDependencyFailure;

fn kids(queue: &str, n: usize) -> Vec<(String, NewTask)> {
    (0..n)
        .map(|i| (queue.to_owned(), task(&format!("page{i}"))))
        .collect()
}

fn spawn_of(t: &Task, tasks: Vec<(String, NewTask)>, on_failure: OnDependencyFailure) -> Spawn {
    Spawn {
        task: t.id,
        lease: t.lease.as_ref().expect("a claimed task").token.clone(),
        tasks,
        on_failure,
    }
}

/// A running task spawns tasks: it waits for them (its dependents with it), runs again as the
/// same attempt once they succeed, and its claim then names them as dependencies.
pub async fn a_spawner_waits_for_its_tasks_and_runs_again<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let (list, pages, merge) = (q("list"), q("pages"), q("merge"));
    let p = enqueue_one(&s, &list, task("list")).await;
    let notify = enqueue_one(&s, &merge, after("notify", &[&p])).await;
    let running = claim_one(&s, &list).await;
    assert_eq!(running.attempt, 1);
    let out = s
        .spawn(
            "default",
            spawn_of(&running, kids("pages", 3), OnDependencyFailure::Cancel),
        )
        .await
        .unwrap();
    assert_eq!(out.task.state, TaskState::Waiting);
    assert_eq!(out.task.attempt, 0, "the attempt is given back");
    assert!(out.task.lease.is_none());
    assert_eq!(out.tasks.len(), 3);
    let spawned: Vec<TaskId> = out.tasks.iter().map(|t| t.id).collect();
    assert_eq!(out.task.depends_on, spawned);
    assert!(out.tasks.iter().all(|t| t.state == TaskState::Ready));
    // The old lease is gone: the spawner can neither complete nor spawn again.
    assert!(matches!(
        complete(&s, &running).await,
        Err(StoreError::LeaseLost(..))
    ));
    let stored = s.get("default", p.id).await.unwrap();
    assert_eq!(stored.state, TaskState::Waiting);

    let claimed = s.claim(&pages, claim_req(3)).await.unwrap();
    assert_eq!(claimed.len(), 3);
    complete(&s, &claimed[0]).await.unwrap();
    complete(&s, &claimed[1]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(
        s.get("default", p.id).await.unwrap().state,
        TaskState::Waiting
    );
    complete(&s, &claimed[2]).await.unwrap();
    reaches(&s, p.id, TaskState::Ready).await;
    assert_eq!(
        s.get("default", notify.id).await.unwrap().state,
        TaskState::Waiting
    );

    let again = claim_one(&s, &list).await;
    assert_eq!(again.id, p.id);
    assert_eq!(again.attempt, 1, "a spawn does not spend an attempt");
    assert_eq!(again.depends_on, spawned);
    complete(&s, &again).await.unwrap();
    reaches(&s, notify.id, TaskState::Ready).await;
    assert_eq!(
        types_of(&s, p.id).await,
        vec![
            EventType::Enqueued,
            EventType::Claimed,
            EventType::Waiting,
            EventType::Released,
            EventType::Claimed,
            EventType::Succeeded
        ]
    );
}

/// A spawn under a lease that is not the task's stores nothing; a spawned task that dies
/// cancels the spawner (and its chain) unless it asked to run anyway.
pub async fn a_spawn_needs_the_lease_and_a_failed_task_cancels_or_runs_the_spawner<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let (work, kids_q, next) = (q("work"), q("kids"), q("next"));
    let a = enqueue_one(&s, &work, task("a")).await;
    let b = enqueue_one(&s, &work, task("b")).await;
    let chained = enqueue_one(&s, &next, after("chained", &[&a])).await;
    let ra = claim_one(&s, &work).await;
    let rb = claim_one(&s, &work).await;
    assert_eq!((ra.id, rb.id), (a.id, b.id));

    let mut forged = spawn_of(&ra, kids("kids", 2), OnDependencyFailure::Cancel);
    forged.lease = "not-the-lease".into();
    assert!(matches!(
        s.spawn("default", forged).await,
        Err(StoreError::LeaseLost(..))
    ));
    let mut elsewhere = spawn_of(&ra, kids("kids", 1), OnDependencyFailure::Cancel);
    elsewhere.task = TaskId(ra.id.0 + (1 << 40));
    assert!(matches!(
        s.spawn("default", elsewhere).await,
        Err(StoreError::TaskNotFound(_))
    ));
    assert_eq!(
        s.queue(&kids_q).await.map(|i| i.counts.ready).unwrap_or(0),
        0
    );
    assert_eq!(
        s.get("default", a.id).await.unwrap().state,
        TaskState::Running
    );

    s.spawn(
        "default",
        spawn_of(&ra, kids("kids", 1), OnDependencyFailure::Cancel),
    )
    .await
    .unwrap();
    s.spawn(
        "default",
        spawn_of(&rb, kids("kids", 1), OnDependencyFailure::Run),
    )
    .await
    .unwrap();
    for k in s.claim(&kids_q, claim_req(2)).await.unwrap() {
        fail(&s, &k, None, true).await.unwrap();
    }
    let ca = reaches(&s, a.id, TaskState::Cancelled).await;
    assert!(ca.errors.last().unwrap().message.contains("dead"), "{ca:?}");
    reaches(&s, chained.id, TaskState::Cancelled).await;
    reaches(&s, b.id, TaskState::Ready).await;
}

/// An open batch takes members until it is closed; its callback waits for the close and for
/// every member, runs once, and a closed batch refuses more.
pub async fn an_open_batch_takes_members_until_it_is_closed<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let mut cb = spec(rota_core::workflow::BATCH_CALLBACK, "report", &[]);
    cb.task.on_dependency_failure = OnDependencyFailure::Run;
    let b = s
        .submit_workflow("default", vec![cb], Submission::Batch { open: true })
        .await
        .unwrap();
    assert_eq!(b.open, Some(true));
    let id: TaskId = b.id.parse().unwrap();
    let callback = b.tasks[0].task.id;
    assert_eq!(b.tasks[0].task.state, TaskState::Waiting);

    let first = s
        .add_to_batch("default", id, kids("rows", 2))
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    assert!(first
        .iter()
        .all(|t| t.workflow.as_deref() == Some(b.id.as_str())));
    for t in s.claim(&q("rows"), claim_req(2)).await.unwrap() {
        complete(&s, &t).await.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(
        s.get("default", callback).await.unwrap().state,
        TaskState::Waiting,
        "an open batch's callback waits for the close"
    );
    let more = s
        .add_to_batch("default", id, kids("more", 1))
        .await
        .unwrap();
    s.close_batch("default", id).await.unwrap();
    let wf = s.workflow("default", id).await.unwrap();
    assert_eq!(wf.open, Some(false));
    let names: Vec<&str> = wf.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["callback", "m0", "m1", "m2"]);
    assert!(matches!(
        s.add_to_batch("default", id, kids("rows", 1)).await,
        Err(StoreError::Conflict(_))
    ));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(
        s.get("default", callback).await.unwrap().state,
        TaskState::Waiting,
        "closed, it still waits for the member left"
    );
    let last = claim_one(&s, &q("more")).await;
    assert_eq!(last.id, more[0].id);
    fail(&s, &last, None, true).await.unwrap();
    let ready = reaches(&s, callback, TaskState::Ready).await;
    assert_eq!(ready.depends_on.len(), 3);
    s.close_batch("default", id).await.unwrap();
    assert!(matches!(
        s.add_to_batch("globex", id, kids("rows", 1)).await,
        Err(StoreError::WorkflowNotFound(_))
    ));
    let plain = s
        .submit_workflow(
            "default",
            vec![spec("x", "other", &[])],
            Submission::Workflow,
        )
        .await
        .unwrap();
    assert!(matches!(
        s.add_to_batch("default", plain.id.parse().unwrap(), kids("rows", 1))
            .await,
        Err(StoreError::Invalid(_))
    ));
}
