//! WAL checkpoints on the embedded engine run beside the writer, on a thread of their shard,
//! and the WAL still starts over: it never grows much past the size at which the writer
//! checkpoints itself.

use rota_core::NewTask;
use rota_core::{QueueKey, SystemClock};
use rota_sqlite::{SqliteOptions, SqliteStore};
use rota_store::conformance::task;
use rota_store::Store;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn open(path: &Path) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(path, Arc::new(SystemClock), SqliteOptions::default()).unwrap())
}

/// A task of about 2 KiB, so a batch of them dirties a few hundred pages.
fn big(i: usize) -> NewTask {
    let mut t = task("x");
    let body = format!(r#"{{"i":{i},"pad":"{}"}}"#, "p".repeat(2_000));
    t.payload = serde_json::value::RawValue::from_string(body).unwrap();
    t
}

fn wal_bytes(db: &Path) -> u64 {
    let wal = db.with_file_name(format!("{}-wal", db.file_name().unwrap().to_string_lossy()));
    std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
}

#[tokio::test]
async fn checkpoints_run_beside_the_writer_and_the_wal_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(rota_sqlite::DB_FILE);
    let s = open(&db);
    let q = QueueKey::new("default", "wal");
    // About 80 MiB of tasks, 160 MiB of WAL frames with their indexes and events: five times
    // the WAL's hard size (32 MiB of 4 KiB pages), in commits of a few hundred pages each.
    let mut largest_wal = 0;
    for round in 0..80 {
        let batch = (0..500).map(|i| big(round * 500 + i)).collect();
        s.enqueue(&q, batch).await.unwrap();
        largest_wal = largest_wal.max(wal_bytes(&db));
    }
    let status = s.writer_status().unwrap();
    assert_eq!(s.queue(&q).await.unwrap().counts.ready, 40_000);
    // The checkpoint thread ran (SQLite's own automatic checkpoint would have run on the
    // writer and counted nothing here). It is asked, not waited for, so give it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.writer_status().unwrap().checkpoints == 0 {
        assert!(Instant::now() < deadline, "no background checkpoint ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The WAL started over instead of growing with everything written: it holds at most the
    // hard size, a step or two of 1,000 frames when the writer's own checkpoint found the
    // background one running, and a commit's pages. The writer's checkpoint past the hard size
    // alone (no background thread) has its unit test in writer/checkpoint.rs.
    let frame = 4_096 + 24;
    let bound = (8_192 + 2 * 1_000) * frame + 4 * 1024 * 1024;
    assert!(
        largest_wal <= bound,
        "the WAL grew to {largest_wal} bytes ({status:?})"
    );
    // A clean stop still checkpoints and removes the WAL.
    s.close().await;
    drop(s);
    assert_eq!(wal_bytes(&db), 0, "the WAL is gone after a clean stop");
    let s = open(&db);
    assert_eq!(s.queue(&q).await.unwrap().counts.ready, 40_000);
}
