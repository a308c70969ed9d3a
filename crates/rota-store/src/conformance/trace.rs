//! A task's W3C trace context (docs/telemetry.md) is stored as given, whichever way the task
//! came in, handed out with its claims, and taken over by a debounce.

use super::workflows::spec;
use super::*;
use crate::workflows::Submission;
use rota_core::OnDuplicate;

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const OTHER: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";

fn traced(kind: &str, parent: &str, state: Option<&str>) -> NewTask {
    NewTask {
        traceparent: Some(parent.into()),
        tracestate: state.map(str::to_owned),
        ..task(kind)
    }
}

pub async fn a_task_keeps_its_trace_context<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let queue = q("traced");
    let t = enqueue_one(&s, &queue, traced("a", PARENT, Some("rojo=1,congo=2"))).await;
    assert_eq!(t.traceparent.as_deref(), Some(PARENT));
    let got = s.get("default", t.id).await.unwrap();
    assert_eq!(got.traceparent.as_deref(), Some(PARENT));
    assert_eq!(got.tracestate.as_deref(), Some("rojo=1,congo=2"));
    let plain = enqueue_one(&s, &queue, task("b")).await;
    assert_eq!(s.get("default", plain.id).await.unwrap().traceparent, None);

    let claimed = claim_one(&s, &queue).await;
    assert_eq!(claimed.id, t.id);
    assert_eq!(
        (
            claimed.traceparent.as_deref(),
            claimed.tracestate.as_deref()
        ),
        (Some(PARENT), Some("rojo=1,congo=2"))
    );

    // A debounce takes the new task's context, or none.
    let mut first = traced("c", PARENT, None);
    first.unique_key = Some("k".into());
    first.run_at = Some(Timestamp(T0 + 60_000));
    let held = enqueue_one(&s, &queue, first).await;
    let mut second = traced("c", OTHER, Some("x=y"));
    second.unique_key = Some("k".into());
    second.on_duplicate = OnDuplicate::Replace;
    let out = s.enqueue(&queue, vec![second]).await.unwrap();
    assert!(out[0].replaced);
    let got = s.get("default", held.id).await.unwrap();
    assert_eq!(
        (got.traceparent.as_deref(), got.tracestate.as_deref()),
        (Some(OTHER), Some("x=y"))
    );

    // A workflow's tasks keep theirs, in every queue.
    let mut a = spec("a", "wf1", &[]);
    a.task = traced("a", PARENT, None);
    let mut b = spec("b", "wf2", &[0]);
    b.task = traced("b", OTHER, Some("s=1"));
    let wf = s
        .submit_workflow("default", vec![a, b], Submission::Workflow)
        .await
        .unwrap();
    for (t, want) in wf
        .tasks
        .iter()
        .zip([(Some(PARENT), None), (Some(OTHER), Some("s=1"))])
    {
        let got = s.get("default", t.task.id).await.unwrap();
        assert_eq!(
            (got.traceparent.as_deref(), got.tracestate.as_deref()),
            want,
            "{}",
            t.name
        );
    }
}
