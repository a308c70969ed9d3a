//! The event log in the file: rows appended by the writer in each batch's transaction, read by
//! cursor range, trimmed from the head by retention. A row names its queue by id (tenant and
//! name come from `queues`) and its type by a small code: about half the bytes of the names,
//! on the hottest write path there is.

use crate::writer::Logged;
use rota_core::auth::EVENT_RETENTION_FIELD;
use rota_core::events::{Event, EventType, Subject};
use rota_core::{TaskId, Timestamp};
use rota_store::{
    EventPage, EventRetention, StoreError, StoreResult, TrimMarks, TrimRow, EVENT_SCAN,
};
use rusqlite::{params, Connection, Transaction};
use std::collections::HashMap;

/// How many columns [`EVENT_COLUMNS`] names.
pub(crate) const EVENT_COLUMN_COUNT: usize = 12;
/// An event's columns, in the order [`event_from_row`] reads them, as deliveries store them.
pub(crate) const EVENT_COLUMNS: &str =
    "cursor, at, queue, kind, task_id, attempt, type, state, worker, error, due, subject";

/// The stored code of an event type: its place in [`EventType::ALL`], which only grows at the
/// end.
pub(crate) fn type_code(t: EventType) -> i64 {
    EventType::ALL
        .iter()
        .position(|x| *x == t)
        .expect("every type is listed") as i64
}

/// Rows per multi-row INSERT; a batch's events go in statements of these sizes, largest first,
/// so a drain batch of 1,000 transitions takes 16 statements, not 1,000 (with AUTOINCREMENT,
/// each statement also reads and writes the table's sequence once).
const CHUNKS: [usize; 3] = [64, 8, 1];

fn insert_sql(rows: usize) -> String {
    let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    format!(
        "INSERT INTO events (cursor, at, queue_id, kind, task_id, attempt, type, state, worker, \
         error, due, subject, tenant) VALUES {}",
        vec![row; rows].join(", ")
    )
}

/// An event's columns that are not stored as the event holds them.
struct Derived {
    at: i64,
    task_id: i64,
    event_type: i64,
    state: Option<&'static str>,
    due: Option<i64>,
    subject: Option<String>,
}

impl Derived {
    fn of(e: &Event) -> Derived {
        Derived {
            at: e.at.0,
            task_id: e.task_id.as_i64(),
            event_type: type_code(e.event_type),
            state: e.state.map(|s| s.as_str()),
            due: e.due.map(|d| d.0),
            subject: e.subject.as_ref().map(|s| s.to_column()),
        }
    }
}

/// Appends a batch's events, in order, with the consecutive cursors from `first` on (taken from
/// [`crate::cursors::Cursors`]); each event learns its cursor.
pub(crate) fn append(
    tx: &Transaction<'_>,
    events: &mut [Logged],
    first: i64,
) -> rusqlite::Result<()> {
    for (i, l) in events.iter_mut().enumerate() {
        l.event.cursor = first + i as i64;
    }
    let mut rest = events;
    for size in CHUNKS {
        while rest.len() >= size {
            let (chunk, tail) = rest.split_at_mut(size);
            let mut stmt = tx.prepare_cached(&insert_sql(size))?;
            let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(size * 13);
            // Values that are computed, kept alive beside the rows they belong to.
            let derived: Vec<Derived> = chunk.iter().map(|l| Derived::of(&l.event)).collect();
            for (l, d) in chunk.iter().zip(&derived) {
                let e = &l.event;
                values.extend_from_slice(&[
                    &e.cursor as &dyn rusqlite::ToSql,
                    &d.at,
                    &l.queue_id,
                    &e.kind,
                    &d.task_id,
                    &e.attempt,
                    &d.event_type,
                    &d.state,
                    &e.worker,
                    &e.error,
                    &d.due,
                    &d.subject,
                    &l.tenant,
                ]);
            }
            stmt.execute(values.as_slice())?;
            rest = tail;
        }
    }
    Ok(())
}

/// Deletes events past their tenant's retention (the server's `default_ms` unless the tenant
/// has its own), walking each retention's rows from its mark in at most `max` rows (see
/// [`rota_store::TrimMarks`]); `true` when more may be due.
pub fn trim(
    tx: &Transaction<'_>,
    marks: &mut TrimMarks,
    default_ms: u64,
    now: Timestamp,
    max: usize,
) -> rusqlite::Result<bool> {
    let retention = EventRetention {
        default_ms,
        tenants: tenant_retention(tx)?,
    };
    let mut more = false;
    for step in marks.steps(&retention, now) {
        let mut rows = Vec::new();
        {
            let mut stmt = tx.prepare_cached(
                "SELECT e.cursor, e.at, COALESCE(q.tenant, e.tenant) FROM events e \
                 LEFT JOIN queues q ON q.id = e.queue_id WHERE e.cursor > ?1 ORDER BY e.cursor",
            )?;
            let mut it = stmt.query(params![step.after])?;
            // Rows come oldest first: stop at the first one the cutoff keeps.
            while rows.len() < max {
                let Some(r) = it.next()? else { break };
                let at = Timestamp(r.get(1)?);
                if at >= step.cutoff {
                    break;
                }
                rows.push(TrimRow {
                    cursor: r.get(0)?,
                    at,
                    tenant: r.get(2)?,
                });
            }
        }
        let t = marks.judge(&retention, step, &rows, rows.len() == max);
        let mut delete = tx.prepare_cached("DELETE FROM events WHERE cursor = ?1")?;
        for c in &t.delete {
            delete.execute([c])?;
        }
        more |= t.more;
    }
    Ok(more)
}

/// Tenants that keep their events for a time of their own.
fn tenant_retention(tx: &Transaction<'_>) -> rusqlite::Result<HashMap<String, u64>> {
    let field = format!("$.{EVENT_RETENTION_FIELD}");
    let mut stmt = tx.prepare_cached(
        "SELECT name, json_extract(doc, ?1) FROM tenants WHERE json_extract(doc, ?1) IS NOT NULL",
    )?;
    let rows = stmt.query_map([field], |r| {
        Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64))
    })?;
    rows.collect()
}

/// Deletes a tenant's events (the tenant is being deleted).
pub fn forget_tenant(tx: &Transaction<'_>, tenant: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "DELETE FROM events WHERE queue_id IN (SELECT id FROM queues WHERE tenant = ?1) \
         OR (queue_id = 0 AND tenant = ?1)",
    )?
    .execute([tenant])?;
    Ok(())
}

/// The tenant's events in the next [`EVENT_SCAN`] cursors below `horizon` (taken before this
/// read began: every cursor below it is committed), so `next_cursor` never passes an event
/// not yet committed.
pub fn read(
    conn: &Connection,
    tenant: &str,
    after: i64,
    horizon: i64,
    limit: usize,
    keep: &(dyn Fn(&Event) -> bool + Send + Sync),
) -> StoreResult<EventPage> {
    let db = |e: rusqlite::Error| StoreError::Unavailable(e.to_string());
    let end = after.saturating_add(EVENT_SCAN).min(horizon - 1);
    let mut page = EventPage {
        events: Vec::new(),
        next_cursor: after.max(end),
    };
    let mut stmt = conn
        .prepare_cached(
            "SELECT e.cursor, e.at, COALESCE(q.name, ''), e.kind, e.task_id, e.attempt, e.type, \
             e.state, e.worker, e.error, e.due, e.subject FROM events e \
             LEFT JOIN queues q ON q.id = e.queue_id \
             WHERE e.cursor > ?1 AND e.cursor <= ?2 \
             AND (q.tenant = ?3 OR (e.queue_id = 0 AND e.tenant = ?3)) ORDER BY e.cursor",
        )
        .map_err(db)?;
    let mut rows = stmt.query(params![after, end, tenant]).map_err(db)?;
    while let Some(r) = rows.next().map_err(db)? {
        let e = event_from_row(r)?;
        if !keep(&e) {
            continue;
        }
        let cursor = e.cursor;
        page.events.push(e);
        if page.events.len() == limit {
            page.next_cursor = cursor;
            break;
        }
    }
    Ok(page)
}

/// The event in columns `cursor, at, queue, kind, task_id, attempt, type, state, worker,
/// error, due, subject` (as [`EVENT_COLUMNS`] lists them; deliveries store the same).
pub(crate) fn event_from_row(r: &rusqlite::Row<'_>) -> StoreResult<Event> {
    let corrupt = |what: &str| StoreError::Unavailable(format!("unreadable event: {what}"));
    let get = |e: rusqlite::Error| StoreError::Unavailable(format!("unreadable event: {e}"));
    // A code in the event log, the name in a delivery.
    let event_type = match r.get_ref(6).map_err(get)? {
        rusqlite::types::ValueRef::Integer(code) => usize::try_from(code)
            .ok()
            .and_then(|i| EventType::ALL.get(i).copied())
            .ok_or_else(|| corrupt(&code.to_string()))?,
        v => {
            let ty = v.as_str().map_err(|e| get(e.into()))?;
            EventType::parse(ty).ok_or_else(|| corrupt(ty))?
        }
    };
    let state: Option<String> = r.get(7).map_err(get)?;
    let state = match state {
        Some(s) => Some(crate::rows::state_from_sql(&s).map_err(get)?),
        None => None,
    };
    Ok(Event {
        cursor: r.get(0).map_err(get)?,
        at: Timestamp(r.get(1).map_err(get)?),
        queue: r.get(2).map_err(get)?,
        kind: r.get(3).map_err(get)?,
        task_id: TaskId::from_i64(r.get(4).map_err(get)?),
        attempt: r.get(5).map_err(get)?,
        event_type,
        state,
        worker: r.get(8).map_err(get)?,
        error: r.get(9).map_err(get)?,
        due: r.get::<_, Option<i64>>(10).map_err(get)?.map(Timestamp),
        subject: match r.get::<_, Option<String>>(11).map_err(get)? {
            Some(s) => Some(Subject::from_column(event_type, &s).ok_or_else(|| corrupt(&s))?),
            None => None,
        },
    })
}
