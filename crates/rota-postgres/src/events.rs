//! The event log in PostgreSQL (see the schema's "event log" migration for the cursor rule).
//! Events made in Rust are appended with [`append`]; the enqueue, claim and completion
//! statements add theirs in SQL with [`CURSOR`], in the same statement.

use crate::db;
use crate::rows::{state_from_sql, state_to_sql};
use deadpool_postgres::GenericClient;
use rota_core::events::{Event, EventType, Subject};
use rota_core::{TaskId, Timestamp};
use rota_store::{
    EventPage, EventRetention, StoreError, StoreResult, TrimMarks, TrimRow, EVENT_SCAN,
};
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

/// The cursor of the event at place `ord` (1, 2, …) in the writing transaction.
pub const CURSOR: &str = "((pg_current_xact_id()::text::bigint << 20) + ";

/// Events one transaction may log: the place in it has 20 bits.
pub const MAX_PER_TRANSACTION: usize = (1 << 20) - 1;

/// The cursor below which every transaction has ended, as of this statement's snapshot.
const HORIZON: &str = "(pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 20)";

/// One statement's run of events alike (see the schema's "event runs" migration): the SELECT
/// that an `INSERT INTO rota_events ({RUN_COLUMNS})` takes, logging one row for the tasks of
/// `tasks`, or one per queue of theirs.
pub(crate) struct Run<'a> {
    /// The tasks, a relation read as `s` with `id`, `kind` and `attempt` (and `queue_id` when
    /// `per_queue`).
    pub tasks: &'a str,
    /// Their order in the run, over `s`.
    pub order: &'a str,
    /// The run's first place in the transaction (SQL).
    pub place: &'a str,
    /// One run per `s.queue_id`, in queue order; else one run.
    pub per_queue: bool,
    /// The events' fields, SQL; `queue` may read `r.queue_id` when `per_queue`.
    pub tenant: &'a str,
    pub at: &'a str,
    pub queue: &'a str,
    pub ty: &'a str,
    pub state: &'a str,
    pub worker: &'a str,
    /// The events' due time: an aggregate over `s`, the same for every task.
    pub due: &'a str,
}

/// The columns a [`Run`]'s SELECT gives, in its order.
pub(crate) const RUN_COLUMNS: &str =
    "tenant, cursor, at, queue, kind, task_id, attempt, type, state, worker, due, n, tasks, \
     kinds, attempts";

impl<'a> Run<'a> {
    /// A claim's `task.claimed` run of the tasks of the CTE `claimed`, in `order`, its
    /// statement's only events; the other fields are SQL (`at`: the claim's time).
    pub(crate) fn claimed(
        tenant: &'a str,
        at: &'a str,
        queue: &'a str,
        worker: &'a str,
        order: &'a str,
    ) -> Self {
        Run {
            tasks: "claimed",
            order,
            place: "1",
            per_queue: false,
            tenant,
            at,
            queue,
            ty: "'task.claimed'",
            state: "NULL::smallint",
            worker,
            due: "max(s.lease_expires_at)",
        }
    }

    pub(crate) fn select(&self) -> String {
        let Run {
            tasks,
            order: o,
            place,
            per_queue,
            tenant,
            at,
            queue,
            ty,
            state,
            worker,
            due,
        } = self;
        let (key, group, place) = if *per_queue {
            (
                "s.queue_id, ",
                " GROUP BY s.queue_id",
                format!("{place} + sum(r.n) OVER (ORDER BY r.queue_id) - r.n"),
            )
        } else {
            ("", "", place.to_string())
        };
        format!(
            "SELECT {tenant}, {CURSOR}{place}), {at}, {queue}, r.kinds[1], r.tasks[1], \
               r.attempts[1], {ty}, {state}, {worker}, r.due, r.n, r.tasks, \
               CASE WHEN r.one_kind THEN NULL ELSE r.kinds END, \
               CASE WHEN r.one_attempt THEN NULL ELSE r.attempts END \
             FROM (SELECT {key}count(*)::int AS n, array_agg(s.id ORDER BY {o}) AS tasks, \
               array_agg(s.kind ORDER BY {o}) AS kinds, \
               array_agg(s.attempt ORDER BY {o}) AS attempts, \
               min(s.kind) = max(s.kind) AS one_kind, \
               min(s.attempt) = max(s.attempt) AS one_attempt, {due} AS due \
               FROM {tasks} s{group}) r \
             WHERE r.n > 0"
        )
    }
}

/// Appends `events` (with their tenants) in order, at places after `logged` (at least as
/// many events as statements of this transaction logged before).
pub async fn append(
    tx: &impl GenericClient,
    events: &[(String, Event)],
    logged: usize,
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    if events.len() + logged > MAX_PER_TRANSACTION {
        return Err(StoreError::Invalid(format!(
            "one write may log at most {MAX_PER_TRANSACTION} events"
        )));
    }
    let mut c = Columns::default();
    for (tenant, e) in events {
        c.tenant.push(tenant.clone());
        c.at.push(e.at.0);
        c.queue.push(e.queue.clone());
        c.kind.push(e.kind.clone());
        c.task_id.push(e.task_id.as_i64());
        c.attempt.push(e.attempt as i32);
        c.ty.push(e.event_type.as_str());
        c.state.push(e.state.map(state_to_sql));
        c.worker.push(e.worker.clone());
        c.error.push(e.error.clone());
        c.due.push(e.due.map(|d| d.0));
        c.subject.push(e.subject.as_ref().map(|s| s.to_column()));
    }
    let sql = format!(
        "INSERT INTO rota_events (tenant, cursor, at, queue, kind, task_id, attempt, type, \
           state, worker, error, due, subject) \
         SELECT u.tenant, {CURSOR}$13 + u.ord), u.at, u.queue, u.kind, u.task_id, u.attempt, \
           u.type, u.state, u.worker, u.error, u.due, u.subject \
         FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], \
           $6::int[], $7::text[], $8::smallint[], $9::text[], $10::text[], $11::bigint[], \
           $12::text[]) WITH ORDINALITY AS u(tenant, at, queue, kind, task_id, attempt, type, \
           state, worker, error, due, subject, ord)"
    );
    let logged = logged as i64;
    tx.execute(
        &sql,
        &[
            &c.tenant, &c.at, &c.queue, &c.kind, &c.task_id, &c.attempt, &c.ty, &c.state,
            &c.worker, &c.error, &c.due, &c.subject, &logged,
        ],
    )
    .await
    .map_err(db)?;
    Ok(())
}

#[derive(Default)]
struct Columns {
    tenant: Vec<String>,
    at: Vec<i64>,
    queue: Vec<String>,
    kind: Vec<String>,
    task_id: Vec<i64>,
    attempt: Vec<i32>,
    ty: Vec<&'static str>,
    state: Vec<Option<i16>>,
    worker: Vec<Option<String>>,
    error: Vec<Option<String>>,
    subject: Vec<Option<String>>,
    due: Vec<Option<i64>>,
}

/// Deletes events past their tenant's retention (the server's `default_ms` unless the tenant
/// has its own), each retention's rows read from its mark, at most `max` of them, through the
/// index on `at` (see [`rota_store::TrimMarks`]); `true` when more may be due.
pub async fn trim(
    client: &impl GenericClient,
    marks: &Mutex<TrimMarks>,
    default_ms: u64,
    now: Timestamp,
    max: usize,
) -> StoreResult<bool> {
    let field = rota_core::auth::EVENT_RETENTION_FIELD;
    let tenants = client
        .query(
            "SELECT name, (doc::jsonb ->> $1)::bigint FROM rota_tenants WHERE doc::jsonb ? $1",
            &[&field],
        )
        .await
        .map_err(db)?
        .into_iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1).max(0) as u64))
        .collect();
    let retention = EventRetention {
        default_ms,
        tenants,
    };
    let lock = || marks.lock().unwrap_or_else(|e| e.into_inner());
    let steps = lock().steps(&retention, now);
    let mut more = false;
    for step in steps {
        let rows: Vec<TrimRow> = client
            .query(
                "SELECT cursor, at, tenant FROM rota_events WHERE at < $1 AND cursor > $2 \
                 ORDER BY cursor LIMIT $3",
                &[&step.cutoff.0, &step.after, &(max as i64)],
            )
            .await
            .map_err(db)?
            .into_iter()
            .map(|r| TrimRow {
                cursor: r.get(0),
                at: Timestamp(r.get(1)),
                tenant: Some(r.get(2)),
            })
            .collect();
        let t = lock().judge(&retention, step, &rows, rows.len() == max);
        more |= t.more;
        if t.delete.is_empty() {
            continue;
        }
        // By the primary key, (tenant, cursor).
        let delete: HashSet<i64> = t.delete.into_iter().collect();
        let (tenants, cursors): (Vec<&str>, Vec<i64>) = rows
            .iter()
            .filter(|r| delete.contains(&r.cursor))
            .map(|r| (r.tenant.as_deref().unwrap_or_default(), r.cursor))
            .unzip();
        client
            .execute(
                "DELETE FROM rota_events WHERE (tenant, cursor) IN \
                 (SELECT * FROM unnest($1::text[], $2::bigint[]))",
                &[&tenants, &cursors],
            )
            .await
            .map_err(db)?;
    }
    Ok(more)
}

/// How long a read waits for logged events to pass the horizon when none has yet.
const HORIZON_WAIT: Duration = Duration::from_millis(250);

/// The tenant's events after `after`, up to `limit` of those `keep` accepts, reading at most
/// [`EVENT_SCAN`] rows. Only cursors below the horizon are read (so none smaller can appear
/// later); when events that committed before this read are still above it (an older
/// transaction, anywhere in the cluster, is running), waits a little for them, so a reader
/// sees every commit that finished before its read.
pub async fn read(
    client: &impl GenericClient,
    tenant: &str,
    after: i64,
    limit: usize,
    keep: &(dyn Fn(&Event) -> bool + Send + Sync),
) -> StoreResult<EventPage> {
    let deadline = tokio::time::Instant::now() + HORIZON_WAIT;
    let mut pause = Duration::from_millis(1);
    // The newest event committed before this read.
    let newest: Option<i64> = client
        .query_opt(
            "SELECT cursor + COALESCE(n, 1) - 1 FROM rota_events WHERE tenant = $1 \
             ORDER BY cursor DESC LIMIT 1",
            &[&tenant],
        )
        .await
        .map_err(db)?
        .map(|r| r.get(0));
    loop {
        let (page, scan_full) = read_visible(client, tenant, after, limit, keep).await?;
        let covered = newest.is_none_or(|n| page.next_cursor >= n);
        if page.events.len() == limit
            || scan_full
            || covered
            || tokio::time::Instant::now() >= deadline
        {
            return Ok(page);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// The events below the horizon, and whether the scan read its whole [`EVENT_SCAN`] events.
/// A run's rows are read whole (its first cursor is within 2^20 of any of its others, all of
/// one transaction), up to the row that brings the scan to [`EVENT_SCAN`] events, and
/// expanded here.
async fn read_visible(
    client: &impl GenericClient,
    tenant: &str,
    after: i64,
    limit: usize,
    keep: &(dyn Fn(&Event) -> bool + Send + Sync),
) -> StoreResult<(EventPage, bool)> {
    let rows = client
        .query(
            &format!(
                "SELECT {EVENT_COLUMNS}, n, tasks, kinds, attempts FROM \
                   (SELECT e.*, sum(COALESCE(e.n, 1)) OVER (ORDER BY e.cursor) AS upto FROM \
                     (SELECT * FROM rota_events WHERE tenant = $1 AND cursor > $4 \
                       AND cursor < {HORIZON} AND cursor + COALESCE(n, 1) - 1 > $2 \
                      ORDER BY cursor LIMIT $3) e) w \
                 WHERE upto - COALESCE(n, 1) < $3 ORDER BY cursor"
            ),
            &[&tenant, &after, &EVENT_SCAN, &after.saturating_sub(1 << 20)],
        )
        .await
        .map_err(db)?;
    let mut page = EventPage {
        events: Vec::new(),
        next_cursor: after,
    };
    let mut scanned = 0i64;
    'rows: for r in &rows {
        let run = events_from_row(r)?;
        scanned += run.len() as i64;
        for e in run {
            if e.cursor <= after {
                continue;
            }
            page.next_cursor = e.cursor;
            if keep(&e) {
                page.events.push(e);
                if page.events.len() == limit {
                    break 'rows;
                }
            }
        }
    }
    Ok((page, scanned >= EVENT_SCAN))
}

/// The events of a row read with [`EVENT_COLUMNS`] and then `n, tasks, kinds, attempts`: the
/// event itself, or each of its run.
fn events_from_row(r: &tokio_postgres::Row) -> StoreResult<Vec<Event>> {
    let first = event_from_row(r)?;
    let Some(tasks) = r.get::<_, Option<Vec<i64>>>(EVENT_COLUMN_COUNT + 1) else {
        return Ok(vec![first]);
    };
    let kinds: Option<Vec<String>> = r.get(EVENT_COLUMN_COUNT + 2);
    let attempts: Option<Vec<i32>> = r.get(EVENT_COLUMN_COUNT + 3);
    let unreadable = || StoreError::Unavailable(format!("unreadable event run {}", first.cursor));
    let n = tasks.len();
    if kinds.as_ref().is_some_and(|k| k.len() != n)
        || attempts.as_ref().is_some_and(|a| a.len() != n)
    {
        return Err(unreadable());
    }
    let mut out = Vec::with_capacity(n);
    for (i, id) in tasks.into_iter().enumerate() {
        let mut e = first.clone();
        e.cursor = first.cursor + i as i64;
        e.task_id = TaskId::from_i64(id);
        if let Some(k) = &kinds {
            e.kind.clone_from(&k[i]);
        }
        if let Some(a) = &attempts {
            e.attempt = a[i].max(0) as u32;
        }
        out.push(e);
    }
    Ok(out)
}

/// An event's columns, in the order [`event_from_row`] reads them (deliveries store the same).
pub(crate) const EVENT_COLUMNS: &str =
    "cursor, at, queue, kind, task_id, attempt, type, state, worker, error, due, subject";

/// How many columns [`EVENT_COLUMNS`] names.
pub(crate) const EVENT_COLUMN_COUNT: usize = 12;

pub(crate) fn event_from_row(r: &tokio_postgres::Row) -> StoreResult<Event> {
    let ty: String = r.get(6);
    let event_type = EventType::parse(&ty)
        .ok_or_else(|| StoreError::Unavailable(format!("unknown event type {ty}")))?;
    let subject = match r.get::<_, Option<String>>(11) {
        Some(s) => Some(
            Subject::from_column(event_type, &s)
                .ok_or_else(|| StoreError::Unavailable(format!("unreadable event subject {s}")))?,
        ),
        None => None,
    };
    Ok(Event {
        cursor: r.get(0),
        at: Timestamp(r.get(1)),
        queue: r.get(2),
        kind: r.get(3),
        task_id: TaskId::from_i64(r.get(4)),
        attempt: r.get::<_, i32>(5).max(0) as u32,
        event_type,
        state: r.get::<_, Option<i16>>(7).map(state_from_sql).transpose()?,
        worker: r.get(8),
        error: r.get(9),
        due: r.get::<_, Option<i64>>(10).map(Timestamp),
        subject,
    })
}
