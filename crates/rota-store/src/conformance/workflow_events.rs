//! A workflow's own events (docs/workflows.md, "Events"): once every task of it ended,
//! maintenance logs one `workflow.succeeded`, `workflow.failed` or `workflow.cancelled`, in
//! its last task's queue, naming the workflow.

use super::workflows::spec;
use super::*;
use crate::workflows::Submission;
use rota_core::events::{EventType, Subject};

async fn workflow_events(s: &DynStore) -> Vec<Event> {
    s.events(
        "default",
        0,
        10_000,
        Arc::new(|e: &Event| e.event_type.is_workflow()),
    )
    .await
    .unwrap()
    .events
}

pub async fn a_workflow_logs_its_end_once<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let ok = s
        .submit_workflow(
            "default",
            vec![spec("a", "wa", &[]), spec("b", "wb", &[0])],
            Submission::Workflow,
        )
        .await
        .unwrap();
    let bad = s
        .submit_workflow("default", vec![spec("x", "wx", &[])], Submission::Workflow)
        .await
        .unwrap();
    let gone = s
        .submit_workflow("default", vec![spec("y", "wy", &[])], Submission::Workflow)
        .await
        .unwrap();
    s.run_maintenance().await.unwrap();
    assert!(workflow_events(&s).await.is_empty(), "nothing ended yet");

    let a = claim_one(&s, &q("wa")).await;
    complete(&s, &a).await.unwrap();
    s.run_maintenance().await.unwrap();
    assert!(workflow_events(&s).await.is_empty(), "b still waits");
    let x = claim_one(&s, &q("wx")).await;
    fail(&s, &x, None, true).await.unwrap();
    s.change("default", gone.tasks[0].task.id, Change::Cancel)
        .await
        .unwrap();
    // b is released once a's ending reaches it (a moment later across shards).
    let b = super::workflows::reaches(&s, ok.tasks[1].task.id, TaskState::Ready).await;
    let b = {
        let claimed = claim_one(&s, &q("wb")).await;
        assert_eq!(claimed.id, b.id);
        claimed
    };
    complete(&s, &b).await.unwrap();
    for _ in 0..3 {
        s.run_maintenance().await.unwrap();
    }
    let events = workflow_events(&s).await;
    let of = |id: &str| -> Vec<&Event> {
        events
            .iter()
            .filter(|e| e.subject == Some(Subject::Workflow(id.to_owned())))
            .collect()
    };
    let (e_ok, e_bad, e_gone) = (of(&ok.id), of(&bad.id), of(&gone.id));
    assert_eq!(e_ok.len(), 1, "{events:?}");
    assert_eq!(e_ok[0].event_type, EventType::WorkflowSucceeded);
    assert_eq!((e_ok[0].queue.as_str(), e_ok[0].task_id), ("wb", b.id));
    assert_eq!(e_ok[0].data()["workflow"], ok.id.as_str());
    assert_eq!(e_bad.len(), 1);
    assert_eq!(e_bad[0].event_type, EventType::WorkflowFailed);
    assert_eq!(e_gone.len(), 1);
    assert_eq!(e_gone[0].event_type, EventType::WorkflowCancelled);
    assert_eq!(events.len(), 3);
}
