//! Parked claims on the embedded engine: a waiting claim left with the store is served inside
//! the write that readies its queue, in that write's own commit, and never beyond what a
//! claim of its own would get.

use rota_core::{QueueKey, QueuePatch, SystemClock, TaskState};
use rota_sqlite::{SqliteOptions, SqliteStore};
use rota_store::conformance::task;
use rota_store::{ClaimRequest, Completion, ParkedClaim, Store};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn open(path: &Path, shards: usize) -> Arc<SqliteStore> {
    let options = SqliteOptions {
        shards,
        ..SqliteOptions::default()
    };
    Arc::new(SqliteStore::open(path, Arc::new(SystemClock), options).expect("open"))
}

fn req(kinds: &[&str], max: usize) -> ClaimRequest {
    ClaimRequest {
        worker: "parked".into(),
        kinds: kinds.iter().map(|k| k.to_string()).collect(),
        max,
        lease_ms: None,
    }
}

fn commits(s: &SqliteStore) -> u64 {
    s.writer_status().expect("a writer").commits
}

async fn served(c: &ParkedClaim) -> Vec<rota_core::Task> {
    tokio::time::timeout(Duration::from_secs(5), c.served())
        .await
        .expect("served within 5 s");
    c.withdraw().await.expect("tasks served").1
}

#[tokio::test]
async fn a_parked_claim_is_served_in_the_enqueues_own_commit() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join(rota_sqlite::DB_FILE), 1);
    let q = QueueKey::new("default", "parked");
    // The queue first: its creation is not the measured commit.
    s.enqueue(&q, vec![task("x")]).await.unwrap();
    s.claim(&q, req(&[], 1)).await.unwrap();
    let c = ParkedClaim::new(req(&[], 1));
    assert!(s.park_claim(&q, &c), "the embedded engine parks claims");
    let before = commits(&s);
    let id = s.enqueue(&q, vec![task("x")]).await.unwrap()[0].task.id;
    assert_eq!(
        commits(&s),
        before + 1,
        "one commit for the enqueue and the claim"
    );
    let got = served(&c).await;
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].id, got[0].state), (id, TaskState::Running));
    assert_eq!(got[0].lease.as_ref().unwrap().worker, "parked");
    let stored = s.get("default", id).await.unwrap();
    assert_eq!(stored.state, TaskState::Running);
    assert_eq!(
        stored.lease.unwrap().token,
        got[0].lease.as_ref().unwrap().token
    );
    s.close().await;
}

#[tokio::test]
async fn a_parked_claim_takes_only_its_kinds_and_never_after_withdrawing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join(rota_sqlite::DB_FILE), 1);
    let q = QueueKey::new("default", "kinds");
    let other_kind = ParkedClaim::new(req(&["b"], 1));
    let gone = ParkedClaim::new(req(&[], 1));
    s.park_claim(&q, &other_kind);
    s.park_claim(&q, &gone);
    gone.abandon();
    let id = s.enqueue(&q, vec![task("a")]).await.unwrap()[0].task.id;
    assert!(other_kind.withdraw().await.is_none(), "kind a is not b");
    assert!(
        gone.withdraw().await.is_none(),
        "an abandoned claim gets nothing"
    );
    assert_eq!(s.get("default", id).await.unwrap().state, TaskState::Ready);
    s.close().await;
}

#[tokio::test]
async fn parked_claims_get_what_is_there_oldest_first_and_the_rest_wait() {
    let dir = tempfile::tempdir().unwrap();
    // Four shards: the claim parks with the shard that holds the queue.
    let s = open(&dir.path().join(rota_sqlite::DB_FILE), 4);
    let q = QueueKey::new("default", "three");
    let claims: Vec<_> = (0..3).map(|_| ParkedClaim::new(req(&[], 1))).collect();
    for c in &claims {
        s.park_claim(&q, c);
    }
    s.enqueue(&q, vec![task("x"), task("x")]).await.unwrap();
    assert_eq!(served(&claims[0]).await.len(), 1);
    assert_eq!(served(&claims[1]).await.len(), 1);
    assert!(
        claims[2].take(),
        "the third still waits: nothing was left for it"
    );
    claims[2].fill(&q, vec![]);
    s.enqueue(&q, vec![task("x")]).await.unwrap();
    assert_eq!(
        served(&claims[2]).await.len(),
        1,
        "and the next enqueue serves it"
    );
    s.close().await;
}

#[tokio::test]
async fn a_paused_queue_serves_no_parked_claim() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join(rota_sqlite::DB_FILE), 1);
    let q = QueueKey::new("default", "paused");
    let pause = QueuePatch {
        paused: Some(true),
        ..Default::default()
    };
    s.update_queue(&q, pause).await.unwrap();
    let c = ParkedClaim::new(req(&[], 1));
    s.park_claim(&q, &c);
    let id = s.enqueue(&q, vec![task("x")]).await.unwrap()[0].task.id;
    assert!(c.withdraw().await.is_none());
    assert_eq!(s.get("default", id).await.unwrap().state, TaskState::Ready);
    s.close().await;
}

/// In a queue at its concurrency limit, the completion that makes room starts the next task
/// for a parked claim in its own commit, and never a task beyond the limit.
#[tokio::test]
async fn room_made_under_a_limit_serves_a_parked_claim_within_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join(rota_sqlite::DB_FILE), 1);
    let q = QueueKey::new("default", "limited");
    let one = QueuePatch {
        concurrency: Some(Some(1)),
        ..Default::default()
    };
    s.update_queue(&q, one).await.unwrap();
    s.enqueue(&q, vec![task("x"), task("x"), task("x")])
        .await
        .unwrap();
    let first = s.claim(&q, req(&[], 5)).await.unwrap();
    assert_eq!(first.len(), 1, "the limit holds");
    let c = ParkedClaim::new(req(&[], 5));
    s.park_claim(&q, &c);
    let before = commits(&s);
    let done = Completion {
        id: first[0].id,
        lease: first[0].lease.as_ref().unwrap().token.clone(),
        result: None,
    };
    s.complete("default", vec![done]).await.remove(0).unwrap();
    assert_eq!(commits(&s), before + 1);
    assert_eq!(served(&c).await.len(), 1, "room for one, not five");
    assert_eq!(s.queue(&q).await.unwrap().counts.running, 1);
    s.close().await;
}
