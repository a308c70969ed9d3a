//! A producer: enqueues thumbnail jobs, one alone and the rest as a batch.
//!
//! Run a server (`cargo run --release -p rota -- serve`), then, from the same directory:
//! `ROTA_TOKEN=$(cat rota-data/admin-token) cargo run -p rota-client --example producer -- 25`
//! (`ROTA_URL` names another server; see `Client::from_env`).

use rota_client::{Client, NewTask};
use rota_core::TaskId;
use serde_json::json;

/// Enqueues `n` jobs on `images` and returns their ids.
pub async fn produce(client: &Client, n: usize) -> rota_client::Result<Vec<TaskId>> {
    let job = |i: usize| {
        NewTask::new(
            "thumbnail",
            &json!({"image": format!("photo-{i}.jpg"), "width": 128}),
        )
    };
    let mut ids = vec![
        client
            .enqueue("images", &job(0).priority(10))
            .await?
            .task
            .id,
    ];
    if n > 1 {
        let rest: Vec<NewTask> = (1..n).map(job).collect();
        ids.extend(
            client
                .enqueue_batch("images", &rest)
                .await?
                .into_iter()
                .map(|e| e.task.id),
        );
    }
    Ok(ids)
}

#[tokio::main]
#[allow(dead_code)] // the tests call `produce` directly
async fn main() -> rota_client::Result<()> {
    let n = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let ids = produce(&Client::from_env()?, n).await?;
    println!("enqueued {} jobs on `images`, first {}", ids.len(), ids[0]);
    Ok(())
}
