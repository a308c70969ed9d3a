//! A worker: makes (pretend) thumbnails for the `images` queue until Ctrl-C.
//!
//! `ROTA_TOKEN=$(cat rota-data/admin-token) cargo run -p rota-client --example worker`
//! (`ROTA_URL` names another server; see `Client::from_env`).

use rota_client::worker::{HandlerError, Worker, WorkerStats};
use rota_client::Client;
use rota_core::Task;
use serde_json::{json, Value};
use std::future::Future;

/// The handler: reads the payload, does the work, returns a result or says why not.
pub async fn thumbnail(task: Task) -> Result<Option<rota_core::Json>, HandlerError> {
    let job: Value = serde_json::from_str(task.payload.get())?;
    let image = job["image"]
        .as_str()
        .ok_or_else(|| HandlerError::new("payload has no `image`").dead())?;
    let width = job["width"].as_u64().unwrap_or(256);
    let result = json!({"thumbnail": format!("thumbs/{width}/{image}")});
    Ok(Some(serde_json::value::to_raw_value(&result)?))
}

/// Runs the worker on `images` until `shutdown` resolves.
pub async fn work(
    client: Client,
    shutdown: impl Future<Output = ()> + Send,
) -> rota_client::Result<WorkerStats> {
    Worker::new(client, "images")
        .kinds(["thumbnail"])
        .concurrency(4)
        .run(thumbnail, shutdown)
        .await
}

#[tokio::main]
#[allow(dead_code)] // the tests call `work` directly
async fn main() -> rota_client::Result<()> {
    let stats = work(Client::from_env()?, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    println!("done: {stats:?}");
    Ok(())
}
