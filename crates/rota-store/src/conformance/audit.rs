//! The audit log: an entry waiting in a scope is written by the administrative change it goes
//! with, in that change's transaction, and only if the change succeeds; reads filter, page
//! newest first and survive reopen; retention trims old entries.

use super::*;
use crate::audit::{scope, AuditPage};
use rota_core::audit::{AuditCursor, AuditEntry, AuditFilter};
use rota_core::flow::GroupSettings;

fn entry(key: i64, at: i64, tenant: &str, actor: &str, action: &str, target: &str) -> AuditEntry {
    AuditEntry {
        id: AuditEntry::id_of(key),
        at: Timestamp(at),
        tenant: tenant.into(),
        actor: actor.into(),
        action: action.into(),
        target: target.into(),
        before: Some(serde_json::json!({"paused": false})),
        after: Some(serde_json::json!({"paused": true})),
        request_id: Some(format!("req-{key}")),
        source: Some("127.0.0.1".into()),
    }
}

fn by_action(action: &str) -> AuditFilter {
    AuditFilter {
        action: Some(action.into()),
        limit: 100,
        ..Default::default()
    }
}

async fn read(s: &DynStore, f: AuditFilter) -> AuditPage {
    s.audit(f).await.unwrap()
}

/// The entries of `action`: exactly the one given, kept whole.
async fn logged_once(s: &DynStore, action: &str, key: i64) {
    let page = read(s, by_action(action)).await;
    assert_eq!(page.entries.len(), 1, "{action}: {:?}", page.entries);
    let e = &page.entries[0];
    assert_eq!(e.key(), key, "{action}");
    assert_eq!(e.request_id.as_deref(), Some(format!("req-{key}").as_str()));
    assert_eq!(e.after, Some(serde_json::json!({"paused": true})));
}

pub async fn each_administrative_change_writes_its_audit_entry_with_it<H: Harness>() {
    let (h, clock, s) = setup::<H>().await;
    create_tenant(&s, "acme").await;
    let a = QueueKey::new("acme", "emails");
    let t = enqueue_one(&s, &a, task("send")).await;
    // Several queues, so a sharded engine writes in more than one shard.
    let queues: Vec<QueueKey> = (0..4)
        .map(|i| QueueKey::new("acme", format!("q{i}")))
        .collect();
    let paused = QueuePatch {
        paused: Some(true),
        ..Default::default()
    };
    let mut key = 1;
    let mut next = |action: &str, target: &str| {
        key += 1;
        entry(key, T0 + key, "acme", "key:k1", action, target)
    };
    for (i, q) in queues.iter().enumerate() {
        let e = next(&format!("queue.update{i}"), &format!("queues/{}", q.name));
        scope(e, s.update_queue(q, paused.clone())).await.unwrap();
    }
    scope(
        next("queue.pause", "queues/emails"),
        s.update_queue(&a, paused.clone()),
    )
    .await
    .unwrap();
    let e = next("group.put", "queues/emails/groups/g");
    scope(e, s.put_group(&a, "g", GroupSettings::default()))
        .await
        .unwrap();
    scope(
        next("task.cancel", "tasks/x"),
        s.change("acme", t.id, Change::Cancel),
    )
    .await
    .unwrap();
    scope(
        next("queue.purge", "queues/emails"),
        s.purge(&a, TaskState::Cancelled),
    )
    .await
    .unwrap();
    let role = super::tenants::role_record("acme", "ops");
    scope(
        next("role.put", "roles/ops"),
        s.change_auth(AuthChange::PutRole(role)),
    )
    .await
    .unwrap();
    let rec = super::schedules::record("acme", "nightly", Some(T0 + 60_000));
    scope(
        next("schedule.put", "schedules/nightly"),
        s.put_schedule(rec),
    )
    .await
    .unwrap();
    let e = next("schedule.delete", "schedules/nightly");
    scope(e, s.delete_schedule("acme", "nightly"))
        .await
        .unwrap();
    let w = super::webhooks::hook("acme", "wh_1", &[], &[]);
    scope(next("webhook.create", "webhooks/wh_1"), s.put_webhook(w))
        .await
        .unwrap();
    let e = next("webhook.delete", "webhooks/wh_1");
    scope(e, s.delete_webhook("acme", "wh_1")).await.unwrap();
    let last = key;

    // A change that fails writes no entry; a write outside a scope writes none either.
    let failed = scope(
        entry(900, T0, "acme", "key:k1", "task.retry", "tasks/none"),
        s.change("acme", rota_core::TaskId(12345 << 20), Change::Retry),
    )
    .await;
    assert!(failed.is_err());
    let failed = scope(
        entry(
            901,
            T0,
            "acme",
            "key:k1",
            "schedule.delete",
            "schedules/gone",
        ),
        s.delete_schedule("acme", "gone"),
    )
    .await;
    assert!(failed.is_err());
    s.update_queue(&a, QueuePatch::default()).await.unwrap();
    enqueue_one(&s, &a, task("send")).await;

    // Once reopened, every entry is there, once.
    s.close().await;
    let s = h.open(clock.clone()).await;
    for (i, k) in (2..=last).enumerate() {
        let action = match i {
            0..=3 => format!("queue.update{i}"),
            4 => "queue.pause".into(),
            5 => "group.put".into(),
            6 => "task.cancel".into(),
            7 => "queue.purge".into(),
            8 => "role.put".into(),
            9 => "schedule.put".into(),
            10 => "schedule.delete".into(),
            11 => "webhook.create".into(),
            _ => "webhook.delete".into(),
        };
        logged_once(&s, &action, k).await;
    }
    let all = read(
        &s,
        AuditFilter {
            limit: 500,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(all.entries.len(), (last - 1) as usize, "{:?}", all.entries);
    assert!(!all.more);
    s.close().await;
}

pub async fn the_audit_log_filters_pages_newest_first_and_trims_by_age<H: Harness>() {
    let (h, clock, s) = setup::<H>().await;
    // 60 entries over two tenants, two actors and three actions, 1 s apart; two share a time.
    let actions = ["key.create", "key.revoke", "queue.update"];
    for i in 0..60i64 {
        let tenant = if i % 2 == 0 { "acme" } else { "beta" };
        let actor = if i % 3 == 0 { "key:a" } else { "jwt:ops" };
        let at = T0 + (i.min(58)) * 1_000;
        let e = entry(
            100 + i,
            at,
            tenant,
            actor,
            actions[(i % 3) as usize],
            "keys/k",
        );
        s.record_audit(e).await.unwrap();
    }
    // Paging through everything, 7 at a time: each entry once, newest first.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = read(
            &s,
            AuditFilter {
                after,
                limit: 7,
                ..Default::default()
            },
        )
        .await;
        seen.extend(page.entries.iter().map(|e| (e.at, e.key())));
        if !page.more {
            break;
        }
        after = Some(AuditCursor::of(page.entries.last().unwrap()));
    }
    assert_eq!(seen.len(), 60);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted);
    sorted.dedup();
    assert_eq!(sorted.len(), 60);

    let count = |f: AuditFilter| {
        let s = s.clone();
        async move {
            let page = s.audit(f.clone()).await.unwrap();
            assert!(page.entries.iter().all(|e| f.keeps(e)), "{f:?}");
            page.entries.len()
        }
    };
    let f = |tenant: Option<&str>, actor: Option<&str>, action: Option<&str>| AuditFilter {
        tenant: tenant.map(str::to_owned),
        actor: actor.map(str::to_owned),
        action: action.map(str::to_owned),
        limit: 500,
        ..Default::default()
    };
    assert_eq!(count(f(Some("acme"), None, None)).await, 30);
    assert_eq!(count(f(None, Some("key:a"), None)).await, 20);
    assert_eq!(count(f(None, None, Some("key."))).await, 40);
    assert_eq!(count(f(None, None, Some("key.create"))).await, 20);
    assert_eq!(count(f(None, None, Some("key"))).await, 0);
    assert_eq!(
        count(f(Some("acme"), Some("key:a"), Some("key.create"))).await,
        10
    );
    let window = AuditFilter {
        since: Some(Timestamp(T0 + 10_000)),
        until: Some(Timestamp(T0 + 20_000)),
        limit: 500,
        ..Default::default()
    };
    assert_eq!(count(window).await, 10);

    // Kept across reopen; past the retention (a year by default) trimmed by maintenance.
    s.close().await;
    let s = h.open(clock.clone()).await;
    assert_eq!(read(&s, f(None, None, None)).await.entries.len(), 60);
    clock.set(Timestamp(
        T0 + 30_000 + rota_core::audit::DEFAULT_AUDIT_RETENTION_MS as i64,
    ));
    s.run_maintenance().await.unwrap();
    let left = read(&s, f(None, None, None)).await.entries;
    assert_eq!(left.len(), 30, "entries at or after T0 + 30 s stay");
    assert!(left.iter().all(|e| e.at.0 >= T0 + 30_000));
    s.close().await;
}
