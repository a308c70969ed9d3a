//! `rota backup` under load and `rota restore`: the copy holds every task acknowledged before
//! the backup began (in whichever shard file it is), a server starts on the restored directory,
//! and bad input changes nothing.

mod common;

use common::cli::{fails, ok};
use rota_client::{Client, NewTask};
use rota_core::TaskId;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ADMIN: &str = "rota_backupadmin_0123456789abcdef0123456789ab";

fn rota() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("rota").unwrap();
    c.env_remove("ROTA_DATABASE_URL")
        .env_remove("ROTA_DATA_DIR");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_every_acknowledged_task() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [("ROTA_ADMIN_TOKEN", ADMIN), ("ROTA_SHARDS", "4")];
    let s = common::start_with(&data, &env).await;

    // Producers enqueue one task per request into their own queues (spread over the shards),
    // recording each acknowledged id.
    let acked: Arc<Mutex<Vec<TaskId>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut producers = Vec::new();
    for p in 0..4 {
        let (client, acked, stop) = (s.client.clone(), acked.clone(), stop.clone());
        producers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = NewTask::new("load", &serde_json::json!({"p": p, "n": n}));
                let done = client.enqueue(&format!("orders{p}"), &t).await.unwrap();
                acked.lock().unwrap().push(done.task.id);
                n += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before: Vec<TaskId> = acked.lock().unwrap().clone();
    assert!(before.len() > 50, "the producers are running");
    let file = dir.path().join("rota-backup.db");
    let (data2, file2) = (data.clone(), file.clone());
    let out = tokio::task::spawn_blocking(move || {
        ok(rota()
            .args(["backup", file2.to_str().unwrap(), "--data-dir"])
            .arg(&data2))
    })
    .await
    .unwrap();
    let during = acked.lock().unwrap().len();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for p in producers {
        p.await.unwrap();
    }
    assert!(
        out.contains("backed up") && out.contains("(4 files,"),
        "{out}"
    );
    assert!(
        during > before.len(),
        "the server went on acknowledging enqueues while the backup ran"
    );

    // A second backup to the same file is refused; the first is untouched.
    let size = std::fs::metadata(&file).unwrap().len();
    let err = fails(
        rota()
            .args(["backup", file.to_str().unwrap(), "--data-dir"])
            .arg(&data),
    );
    assert!(err.contains("exists"), "{err}");
    assert_eq!(std::fs::metadata(&file).unwrap().len(), size);

    // Restore into a new directory and serve it.
    let restored = dir.path().join("restored");
    let out = ok(rota()
        .args(["restore", file.to_str().unwrap(), "--data-dir"])
        .arg(&restored));
    assert!(out.contains("rota serve --data-dir"), "{out}");
    drop(s);
    let r = common::start_with(&restored, &[("ROTA_ADMIN_TOKEN", ADMIN)]).await;
    let client: &Client = &r.client;
    for id in &before {
        client
            .get(*id)
            .await
            .unwrap_or_else(|e| panic!("task {id}, acknowledged before the backup: {e}"));
    }
    let mut ready = 0;
    for p in 0..4 {
        ready += client
            .queue(&format!("orders{p}"))
            .await
            .unwrap()
            .counts
            .ready as usize;
    }
    assert!(ready >= before.len());
    assert!(ready <= during);

    // Restore refuses a directory in use and a file that is not a backup.
    let err = fails(
        rota()
            .args(["restore", file.to_str().unwrap(), "--data-dir"])
            .arg(&restored),
    );
    assert!(err.contains("not empty"), "{err}");
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database at all, just some bytes").unwrap();
    let err = fails(
        rota()
            .args(["restore", junk.to_str().unwrap(), "--data-dir"])
            .arg(dir.path().join("elsewhere")),
    );
    assert!(err.contains("is not a Rota backup"), "{err}");
    assert!(!dir.path().join("elsewhere").exists());
}

#[test]
fn backup_and_restore_point_postgresql_users_to_its_tools() {
    let err = fails(
        rota()
            .env("ROTA_DATABASE_URL", "postgres://rota@localhost/rota")
            .args(["backup", "x.db"]),
    );
    assert!(err.contains("pg_dump"), "{err}");
}
