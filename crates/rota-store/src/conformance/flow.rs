//! Bodies for flow control: concurrency and rates of a queue and of its groups, the groups'
//! turns, group settings and listing, wake-ups when room appears. Limits raced through two
//! stores are in `flow_peers.rs`.

use super::*;
use rota_core::flow::{GroupSettings, Hold, Rate};

pub(super) fn grouped(kind: &str, group: &str) -> NewTask {
    let mut t = task(kind);
    t.group = (!group.is_empty()).then(|| group.to_owned());
    t
}

pub(super) async fn set(s: &DynStore, queue: &QueueKey, patch: QueuePatch) {
    s.update_queue(queue, patch).await.unwrap();
}

pub(super) fn rate(limit: u32, period_ms: u64, burst: u32) -> Rate {
    Rate {
        limit,
        period_ms,
        burst,
    }
}

/// `(group, kind)` of each task, in the order the claim returned them.
fn taken(tasks: &[Task]) -> Vec<(String, String)> {
    tasks
        .iter()
        .map(|t| (t.group.clone().unwrap_or_default(), t.kind.clone()))
        .collect()
}

pub async fn queue_concurrency_caps_running_tasks<H: Harness>() {
    let (_h, clock, s) = setup::<H>().await;
    let queue = q("capped");
    set(
        &s,
        &queue,
        QueuePatch {
            concurrency: Some(Some(2)),
            ..Default::default()
        },
    )
    .await;
    s.enqueue(&queue, (0..8).map(|i| task(&format!("k{i}"))).collect())
        .await
        .unwrap();
    let first = s.claim(&queue, claim_req(10)).await.unwrap();
    assert_eq!(first.len(), 2, "concurrency 2 leases two of eight");
    assert!(s.claim(&queue, claim_req(10)).await.unwrap().is_empty());
    // A completion makes room for one.
    complete(&s, &first[0]).await.unwrap();
    let second = s.claim(&queue, claim_req(10)).await.unwrap();
    assert_eq!(second.len(), 1);
    // So does a failure (the task waits for its retry), and a cancel.
    fail(&s, &first[1], Some(60_000), false).await.unwrap();
    let third = claim_one(&s, &queue).await;
    s.change("default", second[0].id, Change::Cancel)
        .await
        .unwrap();
    let fourth = claim_one(&s, &queue).await;
    assert!(s.claim(&queue, claim_req(10)).await.unwrap().is_empty());
    // And a lease that expires.
    clock.advance_ms(10_001);
    s.run_maintenance().await.unwrap();
    let after_expiry = s.claim(&queue, claim_req(10)).await.unwrap();
    assert_eq!(after_expiry.len(), 2, "both expired leases made room");
    assert!(after_expiry
        .iter()
        .all(|t| t.id != third.id && t.id != fourth.id));
    // Raising the limit lets more start at once; clearing it lifts it.
    set(
        &s,
        &queue,
        QueuePatch {
            concurrency: Some(None),
            ..Default::default()
        },
    )
    .await;
    let info = s.queue(&queue).await.unwrap();
    assert_eq!(info.settings.concurrency, None);
    assert_eq!(
        s.claim(&queue, claim_req(10)).await.unwrap().len() as u64,
        info.counts.ready
    );
}

pub async fn queue_rate_spaces_starts_and_says_when_the_next_may_start<H: Harness>() {
    let (_h, clock, s) = setup::<H>().await;
    let queue = q("paced");
    set(
        &s,
        &queue,
        QueuePatch {
            rate: Some(Some(rate(2, 1_000, 1))),
            ..Default::default()
        },
    )
    .await;
    s.enqueue(&queue, (0..10).map(|_| task("x")).collect())
        .await
        .unwrap();
    let got = s.claim_batch(&queue, claim_req(10)).await.unwrap();
    assert_eq!(got.tasks.len(), 1, "two per second, evenly: one now");
    assert_eq!(got.next_start_at, Some(Timestamp(T0 + 500)));
    let none = s.claim_batch(&queue, claim_req(10)).await.unwrap();
    assert!(none.tasks.is_empty());
    assert_eq!(none.next_start_at, Some(Timestamp(T0 + 500)));
    let info = s.queue(&queue).await.unwrap();
    assert_eq!(
        info.next_start_at,
        Some(Timestamp(T0 + 500)),
        "stats show the hold"
    );
    clock.advance_ms(499);
    assert!(s.claim(&queue, claim_req(10)).await.unwrap().is_empty());
    clock.advance_ms(1);
    assert_eq!(s.queue(&queue).await.unwrap().next_start_at, None);
    assert_eq!(s.claim(&queue, claim_req(10)).await.unwrap().len(), 1);
    // A queue with nothing ready holds nothing back and promises nothing.
    let empty = q("paced-empty");
    set(
        &s,
        &empty,
        QueuePatch {
            rate: Some(Some(rate(2, 1_000, 1))),
            ..Default::default()
        },
    )
    .await;
    let got = s.claim_batch(&empty, claim_req(10)).await.unwrap();
    assert!(got.tasks.is_empty() && got.next_start_at.is_none());

    // A burst starts at once, then the pace is what is left of the limit.
    let bursty = q("bursty");
    set(
        &s,
        &bursty,
        QueuePatch {
            rate: Some(Some(rate(3, 1_000, 3))),
            ..Default::default()
        },
    )
    .await;
    s.enqueue(&bursty, (0..10).map(|_| task("x")).collect())
        .await
        .unwrap();
    let got = s.claim_batch(&bursty, claim_req(10)).await.unwrap();
    assert_eq!(got.tasks.len(), 3);
    let next = got.next_start_at.expect("held back by the rate");
    clock.set(next);
    assert_eq!(s.claim(&bursty, claim_req(10)).await.unwrap().len(), 1);
}

/// The rate's state is stored: reopening the store does not start a fresh window.
pub async fn a_rate_window_survives_reopen<H: Harness>() {
    let h = H::new().await;
    let clock = ManualClock::new(Timestamp(T0));
    let queue = q("paced");
    {
        let s = h.open(clock.clone()).await;
        set(
            &s,
            &queue,
            QueuePatch {
                rate: Some(Some(rate(1, 60_000, 1))),
                ..Default::default()
            },
        )
        .await;
        s.enqueue(&queue, (0..3).map(|_| task("x")).collect())
            .await
            .unwrap();
        assert_eq!(s.claim(&queue, claim_req(10)).await.unwrap().len(), 1);
        s.close().await;
    }
    let s = h.open(clock.clone()).await;
    let got = s.claim_batch(&queue, claim_req(10)).await.unwrap();
    assert!(got.tasks.is_empty(), "the window did not restart");
    assert_eq!(got.next_start_at, Some(Timestamp(T0 + 60_000)));
}

pub async fn groups_take_turns_and_priority_orders_within_a_group<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let queue = q("fair");
    let mut tasks = vec![];
    for i in 0..5 {
        tasks.push(grouped(&format!("a{i}"), "a"));
    }
    tasks.push(grouped("b0", "b"));
    tasks.push(grouped("b1", "b"));
    tasks.push(grouped("c0", "c"));
    tasks.push(grouped("u0", ""));
    tasks.push(grouped("u1", ""));
    // Priority orders within a group, not across groups.
    let mut urgent = grouped("a-urgent", "a");
    urgent.priority = 10;
    tasks.push(urgent);
    s.enqueue(&queue, tasks).await.unwrap();
    // The tasks with no group take their turn first, then groups by name, round and round.
    let one = s.claim(&queue, claim_req(1)).await.unwrap();
    assert_eq!(taken(&one), [("".into(), "u0".into())]);
    let one = s.claim(&queue, claim_req(1)).await.unwrap();
    assert_eq!(taken(&one), [("a".into(), "a-urgent".into())]);
    let rest = s.claim(&queue, claim_req(20)).await.unwrap();
    let kinds: Vec<String> = rest.iter().map(|t| t.kind.clone()).collect();
    assert_eq!(
        kinds,
        ["b0", "c0", "u1", "a0", "b1", "a1", "a2", "a3", "a4"],
        "one task per group per turn, in the order taken"
    );
    assert!(rest.iter().all(|t| t.state == TaskState::Running));
    let stored = s.get("default", rest[0].id).await.unwrap();
    assert_eq!(stored.group.as_deref(), Some("b"));
}

pub async fn group_limits_overrides_pause_and_weight<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let queue = q("per-client");
    set(
        &s,
        &queue,
        QueuePatch {
            group_concurrency: Some(Some(1)),
            ..Default::default()
        },
    )
    .await;
    let mut tasks = vec![];
    for g in ["a", "b", "c"] {
        for i in 0..4 {
            tasks.push(grouped(&format!("{g}{i}"), g));
        }
    }
    tasks.push(grouped("u0", ""));
    tasks.push(grouped("u1", ""));
    s.enqueue(&queue, tasks).await.unwrap();
    let first = s.claim(&queue, claim_req(20)).await.unwrap();
    // One per group; the tasks with no group are not limited per group.
    let mut kinds: Vec<&str> = first.iter().map(|t| t.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["a0", "b0", "c0", "u0", "u1"]);
    assert!(s.claim(&queue, claim_req(20)).await.unwrap().is_empty());

    // Group a gets a bigger limit of its own.
    let a = s
        .put_group(
            &queue,
            "a",
            GroupSettings {
                concurrency: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((a.group.as_str(), a.running, a.ready), ("a", 1, 3));
    assert_eq!(a.concurrency, Some(3));
    let more = s.claim(&queue, claim_req(20)).await.unwrap();
    assert_eq!(
        taken(&more),
        [("a".into(), "a1".into()), ("a".into(), "a2".into())]
    );

    // Pausing b holds its tasks even when it has room.
    s.put_group(
        &queue,
        "b",
        GroupSettings {
            paused: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let b0 = first.iter().find(|t| t.kind == "b0").unwrap();
    complete(&s, b0).await.unwrap();
    assert!(s.claim(&queue, claim_req(20)).await.unwrap().is_empty());
    let page = s.groups(&queue, None, 10).await.unwrap();
    let b = page.groups.iter().find(|g| g.group == "b").unwrap();
    assert_eq!((b.ready, b.running, b.held_by), (3, 0, Some(Hold::Paused)));
    let c = page.groups.iter().find(|g| g.group == "c").unwrap();
    assert_eq!(
        (c.ready, c.running, c.held_by),
        (3, 1, Some(Hold::Concurrency))
    );
    // Settings back to the defaults: b takes its turn again.
    s.put_group(&queue, "b", GroupSettings::default())
        .await
        .unwrap();
    let got = s.claim(&queue, claim_req(20)).await.unwrap();
    assert_eq!(taken(&got), [("b".into(), "b1".into())]);

    // A weight of 3 takes three tasks per turn.
    let w = q("weighted");
    let mut tasks = vec![];
    for g in ["big", "small"] {
        for i in 0..6 {
            tasks.push(grouped(&format!("{g}{i}"), g));
        }
    }
    s.enqueue(&w, tasks).await.unwrap();
    s.put_group(
        &w,
        "big",
        GroupSettings {
            weight: 3,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let got = s.claim(&w, claim_req(8)).await.unwrap();
    let kinds: Vec<&str> = got.iter().map(|t| t.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["big0", "big1", "big2", "small0", "big3", "big4", "big5", "small1"]
    );
}

pub async fn group_rates_limit_each_group_and_the_queue_rate_all<H: Harness>() {
    let (_h, clock, s) = setup::<H>().await;
    let queue = q("tokens");
    set(
        &s,
        &queue,
        QueuePatch {
            group_rate: Some(Some(rate(1, 1_000, 1))),
            ..Default::default()
        },
    )
    .await;
    let mut tasks = vec![];
    for g in ["t1", "t2"] {
        for i in 0..3 {
            tasks.push(grouped(&format!("{g}-{i}"), g));
        }
    }
    s.enqueue(&queue, tasks).await.unwrap();
    let got = s.claim_batch(&queue, claim_req(10)).await.unwrap();
    assert_eq!(got.tasks.len(), 2, "one per group per second");
    assert_eq!(got.next_start_at, Some(Timestamp(T0 + 1_000)));
    let page = s.groups(&queue, None, 10).await.unwrap();
    assert!(page
        .groups
        .iter()
        .all(|g| g.held_by == Some(Hold::Rate) && g.next_start_at == Some(Timestamp(T0 + 1_000))));
    clock.advance_ms(1_000);
    assert_eq!(s.claim(&queue, claim_req(10)).await.unwrap().len(), 2);
    // One group's own rate over the queue's group rate.
    s.put_group(
        &queue,
        "t1",
        GroupSettings {
            rate: Some(rate(10, 1_000, 10)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let got = s.claim(&queue, claim_req(10)).await.unwrap();
    assert_eq!(taken(&got), [("t1".into(), "t1-2".into())]);

    // The queue's rate bounds all groups together.
    let all = q("all");
    set(
        &s,
        &all,
        QueuePatch {
            rate: Some(Some(rate(3, 1_000, 3))),
            ..Default::default()
        },
    )
    .await;
    let tasks = (0..4)
        .flat_map(|i| {
            [
                grouped(&format!("x{i}"), "x"),
                grouped(&format!("y{i}"), "y"),
            ]
        })
        .collect();
    s.enqueue(&all, tasks).await.unwrap();
    let got = s.claim_batch(&all, claim_req(10)).await.unwrap();
    assert_eq!(got.tasks.len(), 3);
    assert!(got.next_start_at.is_some());
}

/// One group with a large backlog, then many small groups: every small group's tasks start
/// before a few percent of the big group's have.
pub async fn a_big_group_does_not_hold_up_small_ones<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let queue = q("tenants");
    for chunk in 0..4 {
        s.enqueue(
            &queue,
            (0..500)
                .map(|i| grouped(&format!("big{}", chunk * 500 + i), "big"))
                .collect(),
        )
        .await
        .unwrap();
    }
    let small: Vec<NewTask> = (0..40)
        .flat_map(|g| (0..3).map(move |i| grouped(&format!("s{g}-{i}"), &format!("small{g:02}"))))
        .collect();
    s.enqueue(&queue, small).await.unwrap();
    let (mut big_started, mut small_left) = (0usize, 120usize);
    while small_left > 0 {
        let got = s.claim(&queue, claim_req(25)).await.unwrap();
        assert!(!got.is_empty());
        for t in got {
            if t.group.as_deref() == Some("big") {
                big_started += 1;
            } else {
                small_left -= 1;
            }
        }
    }
    assert!(
        big_started <= 40,
        "{big_started} of the big group's 2,000 started before the small groups were done"
    );
}

/// Hundreds of groups: the turns go on across claims and round the ring, a group at its
/// concurrency is passed over, and a claim for one kind takes each group's task of that kind.
/// (An engine that reads groups ahead in pages must give the same answers.)
pub async fn many_groups_take_turns_round_the_ring<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let queue = q("many-groups");
    set(
        &s,
        &queue,
        QueuePatch {
            group_concurrency: Some(Some(2)),
            ..Default::default()
        },
    )
    .await;
    let groups: Vec<String> = (0..300).map(|g| format!("g{g:03}")).collect();
    // Each group: two tasks of kind x, then one of kind y.
    for i in 0..3 {
        let kind = if i < 2 { "x" } else { "y" };
        let tasks = groups.iter().map(|g| grouped(kind, g)).collect();
        s.enqueue(&queue, tasks).await.unwrap();
    }
    let names = |tasks: &[Task]| -> Vec<String> {
        tasks.iter().map(|t| t.group.clone().unwrap()).collect()
    };
    let first = s.claim(&queue, claim_req(150)).await.unwrap();
    assert_eq!(names(&first), groups[..150]);
    assert!(first.iter().all(|t| t.kind == "x"));
    // On from where the last claim stopped, then round again from the first group.
    let second = s.claim(&queue, claim_req(200)).await.unwrap();
    let expected: Vec<String> = groups[150..].iter().chain(&groups[..50]).cloned().collect();
    assert_eq!(names(&second), expected);
    assert!(second.iter().all(|t| t.kind == "x"));
    // g000..g049 now run two each (their limit); the others one, and have a y left.
    let only_y = ClaimRequest {
        kinds: vec!["y".into()],
        ..claim_req(1_000)
    };
    let third = s.claim(&queue, only_y).await.unwrap();
    assert_eq!(names(&third), groups[50..]);
    assert!(third.iter().all(|t| t.kind == "y"));
    // Nothing of kind x is left where there is room, and the full groups give nothing.
    let rest = s.claim(&queue, claim_req(1_000)).await.unwrap();
    assert!(rest.is_empty(), "{:?}", names(&rest));
}

pub async fn groups_are_listed_with_counts_and_paged<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let queue = q("listed");
    let mut tasks = vec![];
    for (g, n) in [("g1", 2), ("g2", 1), ("g3", 3)] {
        for i in 0..n {
            tasks.push(grouped(&format!("{g}-{i}"), g));
        }
    }
    tasks.push(grouped("none", ""));
    s.enqueue(&queue, tasks).await.unwrap();
    claim_one(&s, &queue).await; // the ungrouped task's turn
    claim_one(&s, &queue).await; // g1's
                                 // A group with settings of its own and no tasks is listed too.
    s.put_group(
        &queue,
        "g0",
        GroupSettings {
            weight: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let p1 = s.groups(&queue, None, 2).await.unwrap();
    let names: Vec<&str> = p1.groups.iter().map(|g| g.group.as_str()).collect();
    assert_eq!(names, ["g0", "g1"]);
    assert_eq!(p1.groups[0].settings.weight, 2);
    assert_eq!((p1.groups[1].ready, p1.groups[1].running), (1, 1));
    let p2 = s.groups(&queue, p1.next.as_deref(), 2).await.unwrap();
    let names: Vec<&str> = p2.groups.iter().map(|g| g.group.as_str()).collect();
    assert_eq!(names, ["g2", "g3"]);
    assert_eq!(p2.groups[1].ready, 3);
    assert!(p2.groups.iter().all(|g| g.held_by.is_none()));
    let p3 = s.groups(&queue, p2.next.as_deref(), 2).await.unwrap();
    assert!(p3.groups.is_empty() && p3.next.is_none());
    // Another tenant's queue of the same name has none of them.
    create_tenant(&s, "globex").await;
    let other = QueueKey::new("globex", "listed");
    assert!(matches!(
        s.groups(&other, None, 10).await,
        Err(StoreError::QueueNotFound(_))
    ));
}

/// A task ending in a queue at its concurrency wakes the claims waiting on it.
pub async fn room_made_by_a_task_ending_wakes_waiting_claims<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    let queue = q("full");
    set(
        &s,
        &queue,
        QueuePatch {
            concurrency: Some(Some(1)),
            ..Default::default()
        },
    )
    .await;
    s.enqueue(&queue, vec![task("a"), task("b")]).await.unwrap();
    let running = claim_one(&s, &queue).await;
    let signal = s.ready_signal(&queue);
    let woken = signal.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    complete(&s, &running).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), woken)
        .await
        .expect("the completion woke the waiting claim");
    claim_one(&s, &queue).await;
}
