//! Schedules: stored per tenant, and each tick fired exactly once, whoever fires it.

use super::*;
use rota_core::schedule::{CatchUp, Overlap, ScheduleRun, ScheduleSpec};

fn spec(queue: &str) -> ScheduleSpec {
    ScheduleSpec {
        queue: queue.into(),
        kind: "sync".into(),
        payload: Some(json(r#"{"mirror":"crates"}"#)),
        priority: 3,
        max_attempts: Some(2),
        cron: None,
        every_ms: Some(60_000),
        timezone: "UTC".into(),
        overlap: Overlap::Allow,
        catch_up: CatchUp::Latest,
        jitter_ms: 0,
        paused: false,
        group: None,
    }
}

pub(super) fn record(tenant: &str, name: &str, next: Option<i64>) -> ScheduleRecord {
    ScheduleRecord {
        tenant: tenant.into(),
        name: name.into(),
        spec: spec("mirrors"),
        next_run_at: next.map(Timestamp),
        runs: vec![],
        created_at: Timestamp(T0),
        updated_at: Timestamp(T0),
    }
}

fn tick(name: &str, at: i64, skipped: Option<&str>) -> Tick {
    let run = ScheduleRun {
        tick: Timestamp(at),
        fired_at: Timestamp(at),
        task_id: None,
        trigger: None,
        skipped: skipped.map(str::to_owned),
    };
    Tick {
        tick: Timestamp(at),
        task: skipped
            .is_none()
            .then(|| spec("mirrors").task(name, Timestamp(at))),
        run,
    }
}

fn firing(name: &str, expect: Option<i64>, next: Option<i64>, ticks: Vec<Tick>) -> Firing {
    Firing {
        tenant: "default".into(),
        name: name.into(),
        expect: expect.map(Timestamp),
        next_run_at: next.map(Timestamp),
        ticks,
    }
}

pub async fn schedules_round_trip_per_tenant_and_survive_reopen<H: Harness>() {
    let (h, clock, s) = setup::<H>().await;
    create_tenant(&s, "acme").await;
    let (rec, created) = s
        .put_schedule(record("default", "nightly", Some(T0 + 60_000)))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(rec.spec.kind, "sync");
    s.put_schedule(record("acme", "nightly", None))
        .await
        .unwrap();
    // Firing records a run; replacing the definition keeps runs and created_at.
    s.fire_schedule(firing(
        "nightly",
        None,
        None,
        vec![tick("nightly", T0, None)],
    ))
    .await
    .unwrap()
    .unwrap();
    let mut changed = record("default", "nightly", Some(T0 + 120_000));
    changed.spec.priority = 9;
    changed.created_at = Timestamp(T0 + 5);
    changed.updated_at = Timestamp(T0 + 5);
    let (rec, created) = s.put_schedule(changed).await.unwrap();
    assert!(!created);
    assert_eq!((rec.spec.priority, rec.created_at), (9, Timestamp(T0)));
    assert_eq!(rec.runs.len(), 1);
    s.close().await;

    let s = h.open(clock.clone()).await;
    let mine = s.schedules("default", None).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].spec.priority, 9);
    assert_eq!(mine[0].next_run_at, Some(Timestamp(T0 + 120_000)));
    assert_eq!(mine[0].runs.len(), 1);
    assert_eq!(
        mine[0].spec.payload.as_ref().map(|p| p.get()),
        Some(r#"{"mirror":"crates"}"#)
    );
    let theirs = s.schedules("acme", Some("nightly")).await.unwrap();
    assert_eq!((theirs.len(), theirs[0].next_run_at), (1, None));
    assert_eq!(
        s.schedules("default", Some("weekly")).await.unwrap_err(),
        StoreError::ScheduleNotFound("weekly".into())
    );
    // A tenant that does not exist has none and gets none.
    let e = s
        .put_schedule(record("ghost", "x", None))
        .await
        .unwrap_err();
    assert_eq!(e, StoreError::TenantNotFound("ghost".into()));
    s.delete_schedule("default", "nightly").await.unwrap();
    assert_eq!(
        s.delete_schedule("default", "nightly").await.unwrap_err(),
        StoreError::ScheduleNotFound("nightly".into())
    );
    assert_eq!(s.schedules("acme", None).await.unwrap().len(), 1);
    s.change_auth(AuthChange::DeleteTenant("acme".into()))
        .await
        .unwrap();
    assert!(s.schedules("acme", None).await.unwrap().is_empty());
    s.close().await;
}

pub async fn firing_a_tick_enqueues_once_and_moves_next_run_at<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    s.put_schedule(record("default", "sync", Some(T0)))
        .await
        .unwrap();
    s.put_schedule(record("default", "later", Some(T0 + 3_600_000)))
        .await
        .unwrap();
    s.put_schedule(record("default", "paused", None))
        .await
        .unwrap();
    let due = s.due_schedules(Timestamp(T0), 10).await.unwrap();
    assert_eq!(due.due.len(), 1);
    assert_eq!(due.due[0].name, "sync");
    assert_eq!(due.next, Some(Timestamp(T0 + 3_600_000)));

    let fired = s
        .fire_schedule(firing(
            "sync",
            Some(T0),
            Some(T0 + 60_000),
            vec![tick("sync", T0, None)],
        ))
        .await
        .unwrap()
        .expect("the first firing wins");
    assert_eq!(fired.next_run_at, Some(Timestamp(T0 + 60_000)));
    let id = fired.runs[0].task_id.expect("the run names its task");
    let task = s.get("default", id).await.unwrap();
    assert_eq!(
        (task.queue.as_str(), task.kind.as_str()),
        ("mirrors", "sync")
    );
    assert_eq!((task.priority, task.max_attempts), (3, 2));
    assert_eq!(
        task.unique_key.as_deref(),
        Some(format!("schedule:sync:{T0}").as_str())
    );
    // The same tick again (a second server, a restart): nothing happens.
    let again = s
        .fire_schedule(firing(
            "sync",
            Some(T0),
            Some(T0 + 60_000),
            vec![tick("sync", T0, None)],
        ))
        .await
        .unwrap();
    assert!(again.is_none());
    assert_eq!(s.queue(&q("mirrors")).await.unwrap().counts.ready, 1);
    assert!(s
        .due_schedules(Timestamp(T0), 10)
        .await
        .unwrap()
        .due
        .is_empty());

    // A skipped tick records why and enqueues nothing; a manual trigger leaves next_run_at.
    let skipped = s
        .fire_schedule(firing(
            "sync",
            Some(T0 + 60_000),
            Some(T0 + 120_000),
            vec![tick("sync", T0 + 60_000, Some("overlap"))],
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(skipped.runs[0].skipped.as_deref(), Some("overlap"));
    assert_eq!(skipped.runs[0].task_id, None);
    let manual = s
        .fire_schedule(firing(
            "sync",
            None,
            None,
            vec![tick("sync", T0 + 70_000, None)],
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(manual.next_run_at, Some(Timestamp(T0 + 120_000)));
    assert_eq!(manual.runs.len(), 3);
    assert!(manual.runs[0].task_id.is_some());
    let counts = s.queue(&q("mirrors")).await.unwrap().counts;
    assert_eq!((counts.ready, counts.scheduled), (1, 1));
    // Each tick is logged after the task it enqueued: fired with the task, or skipped.
    let keep: EventKeep = Arc::new(|e: &rota_core::events::Event| e.event_type.is_schedule());
    let logged = s.events("default", 0, 100, keep).await.unwrap().events;
    let seen: Vec<_> = logged
        .iter()
        .map(|e| (e.event_type.as_str(), e.due, e.task_id, e.error.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            ("schedule.fired", Some(Timestamp(T0)), id, None),
            (
                "schedule.skipped",
                Some(Timestamp(T0 + 60_000)),
                TaskId::NONE,
                Some("overlap")
            ),
            (
                "schedule.fired",
                Some(Timestamp(T0 + 70_000)),
                manual.runs[0].task_id.unwrap(),
                None
            ),
        ]
    );
    let e = &logged[0];
    assert_eq!((e.queue.as_str(), e.kind.as_str()), ("mirrors", "sync"));
    assert_eq!(
        e.subject,
        Some(rota_core::events::Subject::Schedule("sync".into()))
    );
    let all: EventKeep = Arc::new(|_: &rota_core::events::Event| true);
    let everything = s.events("default", 0, 100, all).await.unwrap().events;
    let enqueued = everything.iter().position(|e| e.task_id == id).unwrap();
    assert_eq!(
        everything[enqueued + 1].event_type.as_str(),
        "schedule.fired",
        "the tick's event follows its task's"
    );
    assert_eq!(
        s.fire_schedule(firing("gone", None, None, vec![]))
            .await
            .unwrap_err(),
        StoreError::ScheduleNotFound("gone".into())
    );
}

pub async fn a_tick_fired_through_two_stores_at_once_runs_once<H: Harness>() {
    let (h, clock, a) = setup::<H>().await;
    let b = h
        .open_peer(clock.clone())
        .await
        .unwrap_or_else(|| a.clone());
    for round in 0..10i64 {
        let name = format!("s{round}");
        a.put_schedule(record("default", &name, Some(T0)))
            .await
            .unwrap();
        let fire = |s: DynStore, name: String| async move {
            s.fire_schedule(firing(
                &name,
                Some(T0),
                Some(T0 + 60_000),
                vec![tick(&name, T0, None)],
            ))
            .await
            .unwrap()
        };
        let (x, y) = tokio::join!(fire(a.clone(), name.clone()), fire(b.clone(), name.clone()));
        assert_eq!(
            x.is_some() as u8 + y.is_some() as u8,
            1,
            "exactly one firing wins"
        );
    }
    assert_eq!(a.queue(&q("mirrors")).await.unwrap().counts.ready, 10);
}
