//! Shard files that do not belong together are refused at open, changing nothing: an older
//! `rota.db` put back beside newer shards, or a shard file of another store. Tenants are
//! deleted from a shard only by a tombstone, never because `rota.db` lacks them.

use rota_core::{QueueKey, SystemClock, TaskId, Timestamp};
use rota_sqlite::{shard_path, SqliteOptions, SqliteStore};
use rota_store::conformance::task;
use rota_store::{AuthChange, Store};
use std::path::Path;
use std::sync::Arc;

fn options(shards: usize) -> SqliteOptions {
    SqliteOptions {
        shards,
        ..SqliteOptions::default()
    }
}

fn open(path: &Path, shards: usize) -> Result<SqliteStore, String> {
    SqliteStore::open(path, Arc::new(SystemClock), options(shards))
}

fn tenant(name: &str) -> rota_store::TenantRecord {
    rota_store::TenantRecord {
        name: name.into(),
        created_at: Timestamp(1),
        limits: Default::default(),
        event_retention_ms: None,
    }
}

/// How many tasks of `tenant` the file holds, read from the file itself.
fn tasks_in_file(file: &Path, tenant: &str) -> i64 {
    let conn = rusqlite::Connection::open(file).unwrap();
    conn.query_row(
        "SELECT count(*) FROM tasks t JOIN queues q ON q.id = t.queue_id WHERE q.tenant = ?1",
        [tenant],
        |r| r.get(0),
    )
    .unwrap()
}

/// Bytes of every file of the store, to show a refusal wrote nothing.
fn snapshot(home: &Path, shards: usize) -> Vec<Vec<u8>> {
    (0..shards)
        .map(|i| std::fs::read(shard_path(home, i)).unwrap())
        .collect()
}

/// Makes tenant `name` with tasks in several queues, until shard 1 holds some; answers the ids.
async fn fill(s: &SqliteStore, name: &str) -> Vec<TaskId> {
    s.change_auth(AuthChange::PutTenant(tenant(name)))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..8 {
        let q = QueueKey::new(name, format!("q{i}"));
        let made = s.enqueue(&q, vec![task("x"), task("y")]).await.unwrap();
        ids.extend(made.into_iter().map(|e| e.task.id));
    }
    ids
}

#[tokio::test]
async fn an_older_rota_db_put_back_is_refused_and_the_shards_keep_their_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join(rota_sqlite::DB_FILE);
    let s = open(&home, 2).unwrap();
    fill(&s, "old").await;
    s.close().await;
    let aside = dir.path().join("yesterday.db");
    std::fs::copy(&home, &aside).unwrap();

    let s = open(&home, 2).unwrap();
    let ids = fill(&s, "acme").await;
    s.close().await;
    let in_shard1 = tasks_in_file(&shard_path(&home, 1), "acme");
    assert!(in_shard1 > 0, "some of acme's queues are in shard 1");

    // A closed store leaves no WAL beside its files, so each file is the whole of its shard.
    assert!(!dir.path().join("rota.db-wal").exists());
    let today = dir.path().join("today.db");
    std::fs::rename(&home, &today).unwrap();
    std::fs::copy(&aside, &home).unwrap();
    let before = snapshot(&home, 2);
    let err = open(&home, 2).err().expect("refused");
    assert!(
        err.contains("rota-shard1.db is newer than") && err.contains("Restore a whole backup"),
        "{err}"
    );
    assert!(err.contains("Nothing was changed"), "{err}");
    assert_eq!(snapshot(&home, 2), before, "a refused open writes nothing");
    assert_eq!(
        tasks_in_file(&shard_path(&home, 1), "acme"),
        in_shard1,
        "shard 1 keeps acme's tasks"
    );

    // With the rota.db that belongs to them, every task is there.
    std::fs::rename(&today, &home).unwrap();
    let s = open(&home, 2).unwrap();
    for id in ids {
        s.get("acme", id).await.unwrap();
    }
    s.close().await;
}

#[tokio::test]
async fn a_shard_file_of_another_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("a").join(rota_sqlite::DB_FILE);
    let theirs = dir.path().join("b").join(rota_sqlite::DB_FILE);
    std::fs::create_dir_all(ours.parent().unwrap()).unwrap();
    std::fs::create_dir_all(theirs.parent().unwrap()).unwrap();
    for home in [&ours, &theirs] {
        let s = open(home, 2).unwrap();
        fill(&s, "acme").await;
        s.close().await;
    }
    std::fs::remove_file(shard_path(&ours, 1)).unwrap();
    std::fs::copy(shard_path(&theirs, 1), shard_path(&ours, 1)).unwrap();
    let before = snapshot(&ours, 2);
    let err = open(&ours, 2).err().expect("refused");
    assert!(
        err.contains("rota-shard1.db belongs to another store"),
        "{err}"
    );
    assert_eq!(snapshot(&ours, 2), before, "a refused open writes nothing");
}

/// A store from before store ids gets one at its first open, in every shard; after that its
/// `rota.db` from before is refused beside them.
#[tokio::test]
async fn a_store_from_before_store_ids_gets_one() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join(rota_sqlite::DB_FILE);
    let s = open(&home, 2).unwrap();
    let ids = fill(&s, "acme").await;
    s.close().await;
    for i in 0..2 {
        let conn = rusqlite::Connection::open(shard_path(&home, i)).unwrap();
        conn.execute(
            "DELETE FROM settings WHERE name IN ('store_id', 'copies_generation')",
            [],
        )
        .unwrap();
    }
    let legacy = dir.path().join("legacy.db");
    std::fs::copy(&home, &legacy).unwrap();
    let s = open(&home, 2).unwrap();
    for id in &ids {
        s.get("acme", *id).await.unwrap();
    }
    s.close().await;
    let id_of = |file: &Path| -> String {
        let conn = rusqlite::Connection::open(file).unwrap();
        conn.query_row(
            "SELECT doc FROM settings WHERE name = 'store_id'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    let id = id_of(&home);
    assert_eq!(id.len(), 32, "{id}");
    assert_eq!(id_of(&shard_path(&home, 1)), id);
    std::fs::copy(&legacy, &home).unwrap();
    let err = open(&home, 2).err().expect("refused");
    assert!(err.contains("from before store ids"), "{err}");
}

/// A tenant a shard holds but `rota.db` neither has nor deleted (no tombstone) is kept, with
/// its tasks, and becomes a tenant of the store again.
#[tokio::test]
async fn a_tenant_rota_db_lacks_without_a_tombstone_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join(rota_sqlite::DB_FILE);
    let s = open(&home, 2).unwrap();
    let ids = fill(&s, "acme").await;
    s.close().await;
    let conn = rusqlite::Connection::open(&home).unwrap();
    conn.execute_batch(
        "DELETE FROM tasks WHERE queue_id IN (SELECT id FROM queues WHERE tenant = 'acme'); \
         DELETE FROM queues WHERE tenant = 'acme'; DELETE FROM tenants WHERE name = 'acme';",
    )
    .unwrap();
    drop(conn);
    let kept = tasks_in_file(&shard_path(&home, 1), "acme");
    assert!(kept > 0);
    let s = open(&home, 2).unwrap();
    let mut found = 0;
    for id in ids {
        found += s.get("acme", id).await.is_ok() as i64;
    }
    assert_eq!(found, kept, "shard 1's tasks of acme are all there");
    let auth = s.load_auth().await.unwrap();
    assert!(auth.tenants.iter().any(|t| t.name == "acme"));
    s.close().await;
}

/// Backups taken while tenants are being made copy `rota.db` last, so each restores and opens:
/// copied first, `rota.db` would miss tenants a later-copied shard has, and be refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_taken_while_tenants_change_open() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join(rota_sqlite::DB_FILE);
    let s = Arc::new(open(&home, 2).unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let maker = {
        let (s, stop) = (s.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                s.change_auth(AuthChange::PutTenant(tenant(&format!("t{n}"))))
                    .await
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    for i in 0..10 {
        let (home, to) = (home.clone(), dir.path().join(format!("backup{i}")));
        tokio::task::spawn_blocking(move || rota_sqlite::backup::backup(&home, &to).unwrap())
            .await
            .unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let made = maker.await.unwrap();
    assert!(made > 10, "tenants were made during the backups ({made})");
    s.close().await;
    for i in 0..10 {
        let restored = dir.path().join(format!("restored{i}"));
        rota_sqlite::backup::restore(&dir.path().join(format!("backup{i}")), &restored).unwrap();
        let r = open(&restored.join(rota_sqlite::DB_FILE), 2)
            .unwrap_or_else(|e| panic!("backup {i} does not open: {e}"));
        r.close().await;
    }
}
