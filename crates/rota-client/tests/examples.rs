//! The examples, run against a real server: the producer's jobs are all done by the worker.

mod common;

#[path = "../examples/producer.rs"]
mod producer;
#[path = "../examples/worker.rs"]
mod worker;

use rota_core::TaskState;
use std::time::{Duration, Instant};

#[tokio::test]
async fn the_producer_and_worker_examples_work_together() {
    let server = common::server().await;
    let client = server.client.clone();

    let ids = producer::produce(&client, 25).await.unwrap();
    assert_eq!(ids.len(), 25);
    let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(worker::work(client.clone(), async {
        let _ = worker_stopped.await;
    }));
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.queue("images").await.unwrap().counts.succeeded < 25 {
        assert!(
            Instant::now() < deadline,
            "the worker did not finish the jobs"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_worker.send(()).unwrap();
    assert_eq!(worker.await.unwrap().unwrap().succeeded, 25);
    let first = client.get(ids[0]).await.unwrap();
    assert_eq!(first.state, TaskState::Succeeded);
    assert_eq!(
        first.result.unwrap().get(),
        r#"{"thumbnail":"thumbs/128/photo-0.jpg"}"#
    );
}
