//! The examples, run against a real server: the producer's jobs are all done by the worker.

#[path = "../examples/producer.rs"]
mod producer;
#[path = "../examples/worker.rs"]
mod worker;

use rota_client::Client;
use rota_core::{SystemClock, TaskState};
use rota_sqlite::{SqliteOptions, SqliteStore};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test]
async fn the_producer_and_worker_examples_work_together() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(
            &dir.path().join("rota.db"),
            Arc::new(SystemClock),
            SqliteOptions::default(),
        )
        .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = Client::new(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(rota_server::run(
        listener,
        store.clone(),
        Default::default(),
        Arc::new(SystemClock),
        async {
            let _ = server_stopped.await;
        },
    ));

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
    stop_server.send(()).unwrap();
    server.await.unwrap().unwrap();
    rota_store::Store::close(&*store).await;
}
