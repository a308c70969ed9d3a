//! The scheduler: fires each due schedule's ticks (by its `catch_up` and `overlap` rules) and
//! sleeps until the next tick, a change to a schedule, or a second at most (schedules changed
//! through another server are seen within that). It runs only on the elected server; firing
//! is also guarded in the store (see [`rota_store::Firing`]), so a tick is never fired twice.
//! Maintenance mode holds it.

use rota_core::schedule::{self, Overlap, ScheduleRun};
use rota_core::{Clock, Timestamp};
use rota_store::{DynStore, Firing, ScheduleRecord, StoreResult, Tick};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Schedules fired per pass at most; a pass with more due goes on at once.
const PER_PASS: usize = 100;
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Whether firing is held now (maintenance mode is on).
pub type Held = Arc<dyn Fn() -> bool + Send + Sync>;

pub async fn run(
    store: DynStore,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    held: Held,
    shutdown: CancellationToken,
) {
    loop {
        if held() {
            // Ticks that pass meanwhile follow each schedule's `catch_up` afterwards.
            tokio::select! {
                _ = tokio::time::sleep(MAX_SLEEP) => {}
                _ = shutdown.cancelled() => return,
            }
            continue;
        }
        // Listening before the pass: a schedule changed while it runs still wakes the wait.
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let wait = match fire_due(&store, clock.as_ref()).await {
            Ok(Pass { fired, next }) if fired < PER_PASS => next.map_or(MAX_SLEEP, |t| {
                let ms = t.0.saturating_sub(clock.now().0).max(0) as u64;
                Duration::from_millis(ms).min(MAX_SLEEP)
            }),
            Ok(_) => Duration::ZERO,
            Err(e) => {
                tracing::error!(error = %e, "the scheduler could not fire due schedules; retrying");
                MAX_SLEEP
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = woken => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct Pass {
    /// Schedules looked at (fired, skipped or missed).
    pub fired: usize,
    /// The earliest tick still ahead.
    pub next: Option<Timestamp>,
}

/// Fires every schedule due now, once each.
pub async fn fire_due(store: &DynStore, clock: &dyn Clock) -> StoreResult<Pass> {
    let now = clock.now();
    let due = store.due_schedules(now, PER_PASS).await?;
    let mut pass = Pass {
        fired: due.due.len(),
        next: due.next,
    };
    for rec in due.due {
        let next = fire_one(store, &rec, now).await?;
        pass.next = match (pass.next, next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(pass)
}

fn run_of(tick: Timestamp, now: Timestamp, skipped: Option<String>) -> ScheduleRun {
    ScheduleRun {
        tick,
        fired_at: now,
        task_id: None,
        trigger: None,
        skipped,
    }
}

async fn fire_one(
    store: &DynStore,
    rec: &ScheduleRecord,
    now: Timestamp,
) -> StoreResult<Option<Timestamp>> {
    let Some(expect) = rec.next_run_at else {
        return Ok(None);
    };
    let (plan, timing_error) = match rec.spec.timing() {
        Ok(timing) => (
            schedule::plan(&timing, rec.spec.catch_up, expect, now),
            None,
        ),
        // Stored definitions were checked when written; one that no longer parses (a time
        // zone dropped from the database, say) stops, saying why, instead of looping.
        Err(e) => (
            schedule::Plan {
                fire: vec![],
                missed: 1,
                next: None,
            },
            Some(e),
        ),
    };
    let mut ticks = Vec::new();
    if plan.missed > 0 {
        let why = timing_error.unwrap_or_else(|| {
            format!(
                "missed {} tick(s) while the server was down or busy (catch_up: {})",
                plan.missed,
                serde_json::to_value(rec.spec.catch_up).expect("serializes")
            )
        });
        tracing::warn!(tenant = %rec.tenant, schedule = %rec.name, "{why}");
        ticks.push(Tick {
            tick: expect,
            task: None,
            run: run_of(expect, now, Some(why)),
        });
    }
    let live = match rec.spec.overlap {
        Overlap::Allow => None,
        Overlap::Skip => live_run(store, rec).await?,
    };
    for t in &plan.fire {
        ticks.push(match &live {
            Some(why) => Tick {
                tick: *t,
                task: None,
                run: run_of(*t, now, Some(why.clone())),
            },
            None => Tick {
                tick: *t,
                task: Some(rec.spec.task(&rec.name, *t)),
                run: run_of(*t, now, None),
            },
        });
    }
    let firing = Firing {
        tenant: rec.tenant.clone(),
        name: rec.name.clone(),
        expect: Some(expect),
        next_run_at: plan.next,
        ticks,
    };
    // `None`: another firing came first, which is fine.
    store.fire_schedule(firing).await?;
    Ok(plan.next)
}

/// Why a tick is skipped under `overlap: skip`: the latest run's task is not final yet.
async fn live_run(store: &DynStore, rec: &ScheduleRecord) -> StoreResult<Option<String>> {
    let Some(last) = rec.runs.iter().find(|r| r.task_id.is_some()) else {
        return Ok(None);
    };
    let id = last.task_id.expect("found by it");
    match store.get(&rec.tenant, id).await {
        Ok(t) if !t.state.is_final() => Ok(Some(format!(
            "overlap: the run of {} (task {id}) is still {}",
            last.tick,
            t.state.as_str()
        ))),
        Ok(_) | Err(rota_store::StoreError::TaskNotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
