//! The worker runtime against a real server (system clock: leases and heartbeats run in real
//! time, so leases here are short and every wait has a deadline).

mod common;

use common::server;
use rota_client::worker::{HandlerError, Worker};
use rota_client::{Client, NewTask};
use rota_core::TaskState;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Waits (bounded) until `check` holds, asking the server again every 20 ms.
async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn count(c: &Client, queue: &str, state: TaskState) -> u64 {
    c.queue(queue)
        .await
        .map(|q| q.counts.get(state))
        .unwrap_or(0)
}

fn stopper() -> (
    tokio::sync::oneshot::Sender<()>,
    impl std::future::Future<Output = ()> + Send,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}

#[tokio::test]
async fn runs_tasks_with_bounded_concurrency() {
    let s = server().await;
    let tasks: Vec<NewTask> = (0..12).map(|i| NewTask::new("job", &i)).collect();
    s.client.enqueue_batch("conc", &tasks).await.unwrap();
    let active = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (stop, shutdown) = stopper();
    let (a, m) = (active.clone(), most.clone());
    let worker = tokio::spawn(Worker::new(s.client.clone(), "conc").concurrency(3).run(
        move |_task| {
            let (a, m) = (a.clone(), m.clone());
            async move {
                let now = a.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await; // the work
                a.fetch_sub(1, Ordering::SeqCst);
                Ok(Some(serde_json::value::to_raw_value(&"done").unwrap()))
            }
        },
        shutdown,
    ));
    eventually("12 succeeded", || async {
        count(&s.client, "conc", TaskState::Succeeded).await == 12
    })
    .await;
    stop.send(()).unwrap();
    let stats = worker.await.unwrap().unwrap();
    assert_eq!(stats.succeeded, 12);
    assert_eq!(
        most.load(Ordering::SeqCst),
        3,
        "never more than 3 at once, and 3 were used"
    );
}

#[tokio::test]
async fn heartbeats_keep_a_long_task_alive() {
    let s = server().await;
    let t = s
        .client
        .enqueue("long", &NewTask::new("slow", &()))
        .await
        .unwrap()
        .task;
    let (stop, shutdown) = stopper();
    let worker = tokio::spawn(
        Worker::new(s.client.clone(), "long")
            .lease(Duration::from_millis(1_000))
            .run(
                |_t| async {
                    tokio::time::sleep(Duration::from_millis(2_500)).await; // 2.5 leases
                    Ok(None)
                },
                shutdown,
            ),
    );
    eventually("the long task succeeded", || async {
        s.client.get(t.id).await.unwrap().state == TaskState::Succeeded
    })
    .await;
    let done = s.client.get(t.id).await.unwrap();
    assert_eq!(done.attempt, 1, "never lost its lease");
    assert!(done.errors.is_empty());
    stop.send(()).unwrap();
    assert_eq!(worker.await.unwrap().unwrap().succeeded, 1);
}

#[tokio::test]
async fn panics_errors_and_timeouts_become_failed_attempts() {
    let s = server().await;
    let mut ids = Vec::new();
    for kind in ["panic", "error", "hang", "retry"] {
        let e = s
            .client
            .enqueue("bad", &NewTask::new(kind, &()).max_attempts(1))
            .await
            .unwrap();
        ids.push(e.task.id);
    }
    let (stop, shutdown) = stopper();
    let worker = tokio::spawn(
        Worker::new(s.client.clone(), "bad")
            .concurrency(4)
            .timeout(Duration::from_secs(2)) // generous: a loaded CI machine must not time out the others
            .run(
                |t| async move {
                    match t.kind.as_str() {
                        "panic" => panic!("boom"),
                        "error" => Err(HandlerError::new("bad input").dead()),
                        "hang" => std::future::pending().await,
                        _ => Err(HandlerError::new("later").retry_in(Duration::from_secs(60))),
                    }
                },
                shutdown,
            ),
    );
    eventually("all four failed", || async {
        count(&s.client, "bad", TaskState::Dead).await == 4
    })
    .await;
    let msg = |i: usize| {
        let c = s.client.clone();
        let id = ids[i];
        async move { c.get(id).await.unwrap().errors[0].message.clone() }
    };
    assert!(msg(0).await.contains("handler panicked: boom"));
    assert_eq!(msg(1).await, "bad input");
    assert!(msg(2).await.contains("timed out"));
    assert_eq!(msg(3).await, "later");
    stop.send(()).unwrap();
    let stats = worker.await.unwrap().unwrap();
    assert_eq!(
        (stats.failed, stats.succeeded),
        (4, 0),
        "the worker kept running"
    );
}

#[tokio::test]
async fn shutdown_finishes_or_returns_tasks_without_losing_any() {
    let s = server().await;
    let tasks: Vec<NewTask> = ["fast", "fast", "stuck", "stuck"]
        .iter()
        .map(|k| NewTask::new(*k, &()))
        .collect();
    s.client.enqueue_batch("sd", &tasks).await.unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let (stop, shutdown) = stopper();
    let (st, rel) = (started.clone(), release.clone());
    let worker = tokio::spawn(
        Worker::new(s.client.clone(), "sd")
            .concurrency(4)
            .grace(Duration::from_millis(500))
            .run(
                move |t| {
                    let (st, rel) = (st.clone(), rel.clone());
                    async move {
                        st.fetch_add(1, Ordering::SeqCst);
                        if t.kind == "fast" {
                            rel.notified().await; // finishes within the grace period
                            Ok(None)
                        } else {
                            std::future::pending().await
                        }
                    }
                },
                shutdown,
            ),
    );
    eventually("all four running", || async {
        started.load(Ordering::SeqCst) == 4
    })
    .await;
    stop.send(()).unwrap();
    release.notify_waiters();
    let stats = worker.await.unwrap().unwrap();
    assert_eq!((stats.succeeded, stats.interrupted), (2, 2), "{stats:?}");
    let q = s.client.queue("sd").await.unwrap();
    assert_eq!(q.counts.succeeded, 2);
    assert_eq!(q.counts.ready, 2, "interrupted tasks go straight back");
    assert_eq!(q.counts.total(), 4, "nothing lost");
    let page = s.client.list("sd", &Default::default()).await.unwrap();
    for t in page.tasks.iter().filter(|t| t.state == TaskState::Ready) {
        assert!(t.errors[0].message.contains("shut down"), "{:?}", t.errors);
        assert_eq!(t.attempt, 0, "an interrupted attempt is given back");
    }
}

#[tokio::test]
async fn a_killed_workers_tasks_come_back_after_their_lease() {
    let s = server().await;
    let t = s
        .client
        .enqueue("kill", &NewTask::new("x", &()))
        .await
        .unwrap()
        .task;
    let (_stop, shutdown) = stopper();
    // Dropped when the handler's future is: shows the handler dies with its worker.
    struct Dropped(Arc<AtomicUsize>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    let worker = tokio::spawn(
        Worker::new(s.client.clone(), "kill")
            .lease(Duration::from_millis(1_000))
            .name("doomed")
            .run(
                move |_t| {
                    let guard = Dropped(d.clone());
                    async move {
                        let _guard = guard;
                        std::future::pending().await
                    }
                },
                shutdown,
            ),
    );
    eventually("the task is running", || async {
        s.client.get(t.id).await.unwrap().state == TaskState::Running
    })
    .await;
    worker.abort(); // the process dies: no more heartbeats, no report
    eventually("the handler was dropped with its worker", || async {
        dropped.load(Ordering::SeqCst) == 1
    })
    .await;
    eventually("the lease expired and the task came back", || async {
        let now = s.client.get(t.id).await.unwrap();
        now.state != TaskState::Running && !now.errors.is_empty()
    })
    .await;
    let back = s.client.get(t.id).await.unwrap();
    assert!(
        back.errors[0].message.contains("doomed"),
        "{:?}",
        back.errors
    );
    assert!(matches!(
        back.state,
        TaskState::Scheduled | TaskState::Ready
    ));
}

#[tokio::test]
async fn a_cancel_aborts_the_handler_and_nothing_is_retried() {
    let s = server().await;
    let t = s
        .client
        .enqueue("cancel", &NewTask::new("hang", &()))
        .await
        .unwrap()
        .task;
    // Set when the handler's future is dropped, i.e. when the runtime aborted it.
    struct Dropped(Arc<std::sync::Mutex<Option<Instant>>>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = Some(Instant::now());
        }
    }
    let dropped = Arc::new(std::sync::Mutex::new(None));
    let d = dropped.clone();
    let (stop, shutdown) = stopper();
    let every = Duration::from_millis(200);
    // One slot: the next task runs only if the cancelled one gave its slot back.
    let worker = tokio::spawn(
        Worker::new(s.client.clone(), "cancel")
            .heartbeat_every(every)
            .run(
                move |t| {
                    let guard = Dropped(d.clone());
                    async move {
                        if t.kind == "hang" {
                            let _guard = guard;
                            std::future::pending::<()>().await;
                        }
                        Ok(None)
                    }
                },
                shutdown,
            ),
    );
    eventually("the task is running", || async {
        s.client.get(t.id).await.unwrap().state == TaskState::Running
    })
    .await;
    let cancelled_at = Instant::now();
    s.client.cancel(t.id).await.unwrap();
    eventually("the handler was aborted", || async {
        dropped.lock().unwrap().is_some()
    })
    .await;
    let took = dropped.lock().unwrap().unwrap() - cancelled_at;
    // One heartbeat interval, with room for a loaded machine; the lease (30 s) is far off.
    assert!(
        took < every + Duration::from_secs(3),
        "stopped {took:?} after the cancel"
    );
    let next = s
        .client
        .enqueue("cancel", &NewTask::new("ok", &()))
        .await
        .unwrap()
        .task;
    eventually("the next task ran in the freed slot", || async {
        s.client.get(next.id).await.unwrap().state == TaskState::Succeeded
    })
    .await;
    stop.send(()).unwrap();
    let stats = worker.await.unwrap().unwrap();
    assert_eq!(
        (
            stats.cancelled,
            stats.failed,
            stats.lease_lost,
            stats.succeeded
        ),
        (1, 0, 0, 1),
        "{stats:?}"
    );
    let after = s.client.get(t.id).await.unwrap();
    assert_eq!(after.state, TaskState::Cancelled);
    assert_eq!(after.attempt, 1, "not claimed again");
    assert!(
        after.errors.is_empty(),
        "no failure reported: {:?}",
        after.errors
    );
}

#[tokio::test]
async fn a_refused_result_fails_only_its_own_task() {
    let s = server().await;
    // One attempt: a retried huge task would wait at the gate alone and be counted however
    // shutdown found it.
    let tasks = vec![
        NewTask::new("small", &()),
        NewTask::new("huge", &()).max_attempts(1),
    ];
    let ids: Vec<_> = s
        .client
        .enqueue_batch("sizes", &tasks)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.task.id)
        .collect();
    let (stop, shutdown) = stopper();
    // Both finish together, so their completions travel in one batch.
    let gate = Arc::new(tokio::sync::Barrier::new(2));
    let worker = tokio::spawn(Worker::new(s.client.clone(), "sizes").concurrency(2).run(
        move |t| {
            let gate = gate.clone();
            async move {
                gate.wait().await;
                let size = if t.kind == "huge" { 2 << 20 } else { 10 };
                Ok(Some(
                    serde_json::value::to_raw_value(&"x".repeat(size)).unwrap(),
                ))
            }
        },
        shutdown,
    ));
    // The huge task's failed attempt is recorded (and, with one attempt, it is dead).
    eventually("both tasks settled", || async {
        let q = s.client.queue("sizes").await.unwrap();
        let huge = s.client.get(ids[1]).await.unwrap();
        q.counts.succeeded == 1 && !huge.errors.is_empty()
    })
    .await;
    stop.send(()).unwrap();
    let stats = worker.await.unwrap().unwrap();
    assert_eq!((stats.succeeded, stats.failed), (1, 1));
    assert_eq!(
        s.client.get(ids[0]).await.unwrap().state,
        TaskState::Succeeded
    );
    let huge = s.client.get(ids[1]).await.unwrap();
    assert!(
        huge.errors[0].message.contains("refused the task's result"),
        "{:?}",
        huge.errors
    );
}

#[tokio::test]
async fn a_refused_claim_stops_the_worker_with_the_error() {
    let s = server().await;
    let (_stop, shutdown) = stopper();
    let out = Worker::new(s.client.clone(), "not a queue name")
        .run(|_t| async { Ok(None) }, shutdown)
        .await;
    match out {
        Err(rota_client::Error::Invalid { message }) => {
            assert!(message.contains("queue name"), "{message}")
        }
        other => panic!("expected the server's refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn concurrency_beyond_one_claim_still_fills_every_slot() {
    let s = server().await;
    let tasks: Vec<NewTask> = (0..150).map(|i| NewTask::new("job", &i)).collect();
    s.client.enqueue_batch("wide", &tasks).await.unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let all_in = Arc::new(tokio::sync::Notify::new());
    let (stop, shutdown) = stopper();
    let (r, a) = (running.clone(), all_in.clone());
    // 150 slots: more than one claim may ask for; every task must be running at once.
    let worker = tokio::spawn(
        Worker::new(s.client.clone(), "wide")
            .concurrency(5_000)
            .run(
                move |_t| {
                    let (r, a) = (r.clone(), a.clone());
                    async move {
                        if r.fetch_add(1, Ordering::SeqCst) + 1 == 150 {
                            a.notify_waiters();
                        } else {
                            let notified = a.notified();
                            if r.load(Ordering::SeqCst) < 150 {
                                notified.await;
                            }
                        }
                        Ok(None)
                    }
                },
                shutdown,
            ),
    );
    eventually("150 succeeded", || async {
        count(&s.client, "wide", TaskState::Succeeded).await == 150
    })
    .await;
    stop.send(()).unwrap();
    assert_eq!(worker.await.unwrap().unwrap().succeeded, 150);
}

/// `debounce` sends `on_duplicate: replace`: a waiting task with the key takes the new payload
/// and delay in place, and the answer says so, one by one and in a batch.
#[tokio::test]
async fn debounce_replaces_a_waiting_task_and_says_so() {
    let s = server().await;
    let delay = Duration::from_secs(3_600);
    let first = s
        .client
        .enqueue(
            "dq",
            &NewTask::new("index", &1).debounce("doc-1").delay(delay),
        )
        .await
        .unwrap();
    assert!(!first.duplicate && !first.replaced);
    let again = s
        .client
        .enqueue(
            "dq",
            &NewTask::new("index", &2).debounce("doc-1").delay(delay),
        )
        .await
        .unwrap();
    assert!(again.duplicate && again.replaced);
    assert_eq!(again.task.id, first.task.id);
    assert_eq!(again.task.payload.get(), "2");
    let kept = s
        .client
        .enqueue("dq", &NewTask::new("index", &3).unique_key("doc-1"))
        .await
        .unwrap();
    assert!(kept.duplicate && !kept.replaced);
    assert_eq!(kept.task.payload.get(), "2");
    let batch = s
        .client
        .enqueue_batch(
            "dq",
            &[
                NewTask::new("index", &4).debounce("doc-1"),
                NewTask::new("index", &5).debounce("doc-2"),
            ],
        )
        .await
        .unwrap();
    assert!(batch[0].replaced && !batch[1].duplicate);
    assert_eq!(batch[0].task.payload.get(), "4");
}

/// `run_jobs` hands the handler what a claim carries: a join gets its inputs' results, a
/// batch's callback how the members ended.
#[tokio::test]
async fn a_job_carries_its_inputs_and_its_batch() {
    use rota_client::{Job, WorkflowTaskDef};
    let s = server().await;
    let wf = s
        .client
        .submit_workflow(&[
            WorkflowTaskDef::new("a", "inputs", NewTask::new("a", &1)),
            WorkflowTaskDef::new("b", "inputs", NewTask::new("b", &2)),
            WorkflowTaskDef::new("join", "joins", NewTask::new("join", &()))
                .after("a")
                .after("b"),
        ])
        .await
        .unwrap();
    let batch = s
        .client
        .submit_batch_body(&serde_json::json!({
            "tasks": [{"queue": "inputs", "kind": "m"}],
            "callback": {"queue": "joins", "kind": "done"}
        }))
        .await
        .unwrap();
    let seen: Arc<std::sync::Mutex<Vec<Job>>> = Default::default();
    let (stop, shutdown) = stopper();
    let (stop_inputs, inputs_done) = stopper();
    let inputs = tokio::spawn(Worker::new(s.client.clone(), "inputs").run(
        |task| async move {
            let n: serde_json::Value = serde_json::from_str(task.payload.get()).unwrap();
            Ok(Some(serde_json::value::to_raw_value(&n).unwrap()))
        },
        inputs_done,
    ));
    let got = seen.clone();
    let joins = tokio::spawn(Worker::new(s.client.clone(), "joins").run_jobs(
        move |job| {
            got.lock().unwrap().push(job);
            async { Ok(None) }
        },
        shutdown,
    ));
    eventually("the join and the callback ran", || async {
        count(&s.client, "joins", TaskState::Succeeded).await == 2
    })
    .await;
    let _ = stop.send(());
    let _ = stop_inputs.send(());
    joins.await.unwrap().unwrap();
    inputs.await.unwrap().unwrap();
    let jobs = seen.lock().unwrap().clone();
    let join = jobs.iter().find(|j| j.task.kind == "join").unwrap();
    let results: Vec<String> = join
        .dependencies
        .iter()
        .map(|d| d.result.as_ref().unwrap().get().to_owned())
        .collect();
    assert_eq!(results, ["1", "2"]);
    assert_eq!(join.task.workflow.as_deref(), Some(wf.id.as_str()));
    assert!(join.batch.is_none());
    let cb = jobs.iter().find(|j| j.task.kind == "done").unwrap();
    let summary = cb.batch.as_ref().expect("the callback carries its batch");
    assert_eq!(summary.id, batch.id);
    assert_eq!(summary.succeeded.len(), 1);
}

/// A handler that finds work at run time spawns it and returns; the runtime reports nothing
/// for that run, and the task runs again with the spawned tasks' results. An open batch takes
/// members until it is closed.
#[tokio::test]
async fn a_handler_spawns_pages_then_merges_and_an_open_batch_closes() {
    use rota_client::{AddedTask, Job};
    let s = server().await;
    s.client
        .enqueue("lists", &NewTask::new("list", &3))
        .await
        .unwrap();
    let merged: Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let (stop, shutdown) = stopper();
    let (stop_pages, pages_done) = stopper();
    let pages = tokio::spawn(Worker::new(s.client.clone(), "pages").run(
        |task| async move { Ok(Some(task.payload.clone())) },
        pages_done,
    ));
    let (client, out) = (s.client.clone(), merged.clone());
    let lists = tokio::spawn(Worker::new(s.client.clone(), "lists").run_jobs(
        move |job: Job| {
            let (client, out) = (client.clone(), out.clone());
            async move {
                if job.dependencies.is_empty() {
                    let n: usize = serde_json::from_str(job.task.payload.get()).unwrap();
                    let fetches: Vec<AddedTask> = (0..n)
                        .map(|i| AddedTask::new("pages", NewTask::new("fetch", &i)))
                        .collect();
                    client.spawn(&job, &fetches, None).await?;
                    return Ok(None);
                }
                let mut got: Vec<String> = job
                    .dependencies
                    .iter()
                    .map(|d| d.result.as_ref().unwrap().get().to_owned())
                    .collect();
                got.sort();
                out.lock().unwrap().extend(got);
                Ok(None)
            }
        },
        shutdown,
    ));
    eventually("the list merged its pages", || async {
        count(&s.client, "lists", TaskState::Succeeded).await == 1
    })
    .await;
    let _ = stop.send(());
    let _ = stop_pages.send(());
    let stats = lists.await.unwrap().unwrap();
    pages.await.unwrap().unwrap();
    assert_eq!(*merged.lock().unwrap(), ["0", "1", "2"]);
    assert_eq!(
        (stats.spawned, stats.succeeded, stats.lease_lost),
        (1, 1, 0)
    );

    let cb = AddedTask::new("reports", NewTask::new("report", &()));
    let batch = s.client.submit_batch(&[], &cb, false, true).await.unwrap();
    assert_eq!(batch.open, Some(true));
    let rows = [AddedTask::new("rows", NewTask::new("row", &1))];
    let added = s.client.add_to_batch(&batch.id, &rows).await.unwrap();
    assert_eq!(added.len(), 1);
    let closed = s.client.close_batch(&batch.id).await.unwrap();
    assert_eq!(closed.open, Some(false));
    let refused = s.client.add_to_batch(&batch.id, &rows).await.unwrap_err();
    assert!(
        matches!(refused, rota_client::Error::Conflict { .. }),
        "{refused:?}"
    );
}
