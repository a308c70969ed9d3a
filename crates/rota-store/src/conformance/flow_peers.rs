//! Flow-control limits raced through two stores (two servers on one database): a limit is a
//! fact of the store, not a server's share.

use super::flow::{grouped, rate, set};
use super::*;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Eight claimers through two stores never hold more than the queue's concurrency: each
/// counts a task from the moment its claim returns until just before it completes it, so the
/// count is never above what the store has running.
pub async fn concurrency_holds_across_two_stores<H: Harness>() {
    let (h, clock, a) = setup::<H>().await;
    let b = h
        .open_peer(clock.clone())
        .await
        .unwrap_or_else(|| a.clone());
    let queue = q("shared");
    set(
        &a,
        &queue,
        QueuePatch {
            concurrency: Some(Some(3)),
            group_concurrency: Some(Some(1)),
            ..Default::default()
        },
    )
    .await;
    let tasks: Vec<NewTask> = (0..120)
        .map(|i| grouped(&format!("k{i}"), &format!("g{}", i % 5)))
        .collect();
    a.enqueue(&queue, tasks).await.unwrap();
    let holding = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let per_group: Arc<Vec<AtomicUsize>> = Arc::new((0..5).map(|_| AtomicUsize::new(0)).collect());
    let done = Arc::new(AtomicUsize::new(0));
    let mut claimers = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (queue, holding, most, per_group, done) = (
            queue.clone(),
            holding.clone(),
            most.clone(),
            per_group.clone(),
            done.clone(),
        );
        claimers.push(tokio::spawn(async move {
            while done.load(Ordering::SeqCst) < 120 {
                let got = store.claim(&queue, claim_req(2)).await.unwrap();
                for t in &got {
                    let n = holding.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    let g: usize = t.group.as_deref().unwrap()[1..].parse().unwrap();
                    let in_group = per_group[g].fetch_add(1, Ordering::SeqCst) + 1;
                    assert!(in_group <= 1, "group g{g} ran {in_group} at once");
                }
                tokio::task::yield_now().await;
                for t in &got {
                    let g: usize = t.group.as_deref().unwrap()[1..].parse().unwrap();
                    per_group[g].fetch_sub(1, Ordering::SeqCst);
                    holding.fetch_sub(1, Ordering::SeqCst);
                    complete(&store, t).await.unwrap();
                    done.fetch_add(1, Ordering::SeqCst);
                }
                if got.is_empty() {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for c in claimers {
        c.await.unwrap();
    }
    let most = most.load(Ordering::SeqCst);
    assert!(most <= 3, "{most} ran at once under concurrency 3");
    assert!(most >= 2, "the claimers did overlap ({most} at most)");
    assert_eq!(a.queue(&queue).await.unwrap().counts.succeeded, 120);
}

/// Four claimers through two stores, a rate of 100/s, 30 s on the manual clock in 10 ms steps:
/// the starts stay within 2 % of 3,000 and never above the limit in any one-second window.
pub async fn a_rate_holds_across_two_stores<H: Harness>() {
    let (h, clock, a) = setup::<H>().await;
    let b = h
        .open_peer(clock.clone())
        .await
        .unwrap_or_else(|| a.clone());
    let queue = q("api-budget");
    set(
        &a,
        &queue,
        QueuePatch {
            rate: Some(Some(rate(100, 1_000, 1))),
            ..Default::default()
        },
    )
    .await;
    for _ in 0..4 {
        a.enqueue(&queue, (0..1_000).map(|_| task("call")).collect())
            .await
            .unwrap();
    }
    let mut starts: Vec<i64> = Vec::new();
    for step in 0..3_000 {
        let t = T0 + step * 10;
        clock.set(Timestamp(t));
        let mut round = Vec::new();
        for i in 0..4 {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let queue = queue.clone();
            round.push(tokio::spawn(async move {
                store.claim(&queue, claim_req(5)).await.unwrap().len()
            }));
        }
        for r in round {
            let n = r.await.unwrap();
            starts.extend(std::iter::repeat_n(t, n));
        }
    }
    let total = starts.len();
    assert!(
        (2_940..=3_000).contains(&total),
        "{total} started in 30 s at 100/s"
    );
    let most = (0..starts.len())
        .map(|i| {
            starts[i..]
                .iter()
                .take_while(|&&s| s < starts[i] + 1_000)
                .count()
        })
        .max()
        .unwrap();
    assert!(most <= 100, "{most} started within one second");
    let distinct: HashSet<i64> = starts.iter().copied().collect();
    assert!(distinct.len() > 2_900, "starts are spread out, not bunched");
}
