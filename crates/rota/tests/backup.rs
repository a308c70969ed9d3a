//! `rota backup` under load and `rota restore`: the copy (one directory) holds every task
//! acknowledged before the backup began (in whichever shard file it is), a server starts on the
//! restored directory, older single-file backups still restore, and bad input changes nothing.

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
    let file = dir.path().join("backup-2026-12-06");
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
        out.contains("backed up") && out.contains("(4 shard files and manifest.json,"),
        "{out}"
    );
    let mut names: Vec<String> = std::fs::read_dir(&file)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "manifest.json",
            "rota-shard1.db",
            "rota-shard2.db",
            "rota-shard3.db",
            "rota.db"
        ],
        "the backup is one directory holding every shard"
    );
    // The backup is one thing to copy: moving the directory elsewhere keeps it whole.
    let moved = dir.path().join("offsite").join("backup-2026-12-06");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(&file, &moved).unwrap();
    let file = moved;
    assert!(
        during > before.len(),
        "the server went on acknowledging enqueues while the backup ran"
    );

    // A second backup into the same directory is refused; the first is untouched.
    let size = std::fs::metadata(file.join("rota.db")).unwrap().len();
    let err = fails(
        rota()
            .args(["backup", file.to_str().unwrap(), "--data-dir"])
            .arg(&data),
    );
    assert!(err.contains("is not empty"), "{err}");
    assert_eq!(std::fs::metadata(file.join("rota.db")).unwrap().len(), size);

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
    // The audit log holds the backup (recorded in the store before the copy, so the copy has
    // it) and the restore, by the user who ran them.
    let q = rota_client::AuditQuery {
        action: Some("backup.".into()),
        ..Default::default()
    };
    let logged = client.audit(&q).await.unwrap().entries;
    let actions: Vec<&str> = logged.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["backup.restore", "backup.create"]);
    assert!(logged.iter().all(|e| e.actor.starts_with("cli:")));

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

    // A backup directory missing a shard file, or its manifest (a backup cut short), is refused.
    let partial = dir.path().join("partial");
    std::fs::create_dir(&partial).unwrap();
    for name in ["rota.db", "rota-shard1.db", "manifest.json"] {
        std::fs::copy(file.join(name), partial.join(name)).unwrap();
    }
    let err = fails(
        rota()
            .args(["restore", partial.to_str().unwrap(), "--data-dir"])
            .arg(dir.path().join("elsewhere")),
    );
    assert!(err.contains("rota-shard2.db is missing"), "{err}");
    std::fs::remove_file(partial.join("manifest.json")).unwrap();
    let err = fails(
        rota()
            .args(["restore", partial.to_str().unwrap(), "--data-dir"])
            .arg(dir.path().join("elsewhere")),
    );
    assert!(err.contains("is not a finished Rota backup"), "{err}");
    assert!(!dir.path().join("elsewhere").exists());

    // A backup an older Rota wrote as `old.db` with `old-shardN.db` beside it still restores.
    for (from, to) in [
        ("rota.db", "old.db"),
        ("rota-shard1.db", "old-shard1.db"),
        ("rota-shard2.db", "old-shard2.db"),
        ("rota-shard3.db", "old-shard3.db"),
    ] {
        std::fs::copy(file.join(from), dir.path().join(to)).unwrap();
    }
    let again = dir.path().join("from-old");
    let out = ok(rota()
        .args([
            "restore",
            dir.path().join("old.db").to_str().unwrap(),
            "--data-dir",
        ])
        .arg(&again));
    assert!(out.contains("(4 files,"), "{out}");
    let r = common::start_with(&again, &[("ROTA_ADMIN_TOKEN", ADMIN)]).await;
    for id in &before {
        r.client.get(*id).await.unwrap();
    }
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
