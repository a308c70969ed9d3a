//! The file's schema and its migrations, tracked in `PRAGMA user_version`.

use rusqlite::Connection;

/// Each entry migrates from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE queues (
    id            INTEGER PRIMARY KEY,
    tenant        TEXT NOT NULL,
    name          TEXT NOT NULL,
    settings      TEXT NOT NULL,          -- JSON QueueSettings
    created_at    INTEGER NOT NULL,       -- ms since epoch, like every time here
    last_claim_at INTEGER,
    UNIQUE (tenant, name)
);

CREATE TABLE tasks (
    id               INTEGER PRIMARY KEY, -- rota_core::TaskId: unix_ms << 20 | sequence
    queue_id         INTEGER NOT NULL REFERENCES queues (id),
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    priority         INTEGER NOT NULL,
    state            TEXT NOT NULL,
    run_at           INTEGER NOT NULL,
    attempt          INTEGER NOT NULL,
    max_attempts     INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    lease_worker     TEXT,
    lease_token      INTEGER,
    lease_expires_at INTEGER,
    progress         TEXT,
    result           TEXT,
    errors           TEXT,                -- JSON [{attempt, message, at}], NULL when none
    unique_key       TEXT,
    tags             TEXT                 -- JSON array, NULL when none
);

-- Claims: the next ready task of a queue (of a kind) is the first index entry.
CREATE INDEX tasks_ready ON tasks (queue_id, priority DESC, id) WHERE state = 'ready';
CREATE INDEX tasks_ready_kind ON tasks (queue_id, kind, priority DESC, id) WHERE state = 'ready';
-- Maintenance: due scheduled tasks, expired leases, final tasks past retention.
CREATE INDEX tasks_scheduled ON tasks (run_at) WHERE state = 'scheduled';
CREATE INDEX tasks_running ON tasks (lease_expires_at) WHERE state = 'running';
CREATE INDEX tasks_finished ON tasks (queue_id, finished_at) WHERE finished_at IS NOT NULL;
-- Listing, newest first, with and without a state filter.
CREATE INDEX tasks_queue ON tasks (queue_id, id);
CREATE INDEX tasks_queue_state ON tasks (queue_id, state, id);
-- Finds the live task holding a unique key. Not a UNIQUE index: the single writer checks before
-- every insert and retry, and a UNIQUE index would make each state change open a statement
-- journal (measured: ~10% of the writer's time in the drain benchmark).
CREATE INDEX tasks_unique_live ON tasks (queue_id, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'ready', 'running');
"#,
    r#"
-- Access control. Each row's `doc` is the JSON record (rota_core::auth); the few rows here are
-- loaded into memory at start and written only on changes.
CREATE TABLE tenants (
    name TEXT PRIMARY KEY,
    doc  TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE api_keys (
    id     TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    doc    TEXT NOT NULL             -- holds the SHA-256 of the token, never the token
) WITHOUT ROWID;
CREATE TABLE roles (
    tenant TEXT NOT NULL,
    name   TEXT NOT NULL,
    doc    TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
) WITHOUT ROWID;
-- Whatever existed before tenants did belongs to `default`, as do the queues' own tenants.
INSERT INTO tenants (name, doc)
SELECT name, json_object('name', name, 'created_at', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
FROM (SELECT 'default' AS name UNION SELECT DISTINCT tenant FROM queues);
"#,
    r#"
-- Retention by due time: each finished task carries when it is deleted (finished_at + its
-- queue's retention_ms), so a maintenance pass reads only what is due instead of visiting every
-- queue. A retention change rewrites the queue's purge_at.
ALTER TABLE tasks ADD COLUMN purge_at INTEGER;
UPDATE tasks SET purge_at = finished_at + COALESCE(
    (SELECT json_extract(q.settings, '$.retention_ms') FROM queues q WHERE q.id = tasks.queue_id),
    604800000)
WHERE finished_at IS NOT NULL;
DROP INDEX tasks_finished;
CREATE INDEX tasks_purge ON tasks (purge_at) WHERE purge_at IS NOT NULL;
-- One row, rewritten by each readiness probe: proves a write commits.
CREATE TABLE probe (id INTEGER PRIMARY KEY, at INTEGER NOT NULL);
"#,
    r#"
-- The event log: one row per task transition, written in the transaction of the change.
-- AUTOINCREMENT so a cursor is never given twice, even after retention emptied the table.
-- No secondary index: readers scan a bounded range of cursors, retention trims the head.
CREATE TABLE events (
    cursor INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    queue TEXT NOT NULL,
    kind TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    type TEXT NOT NULL,
    state TEXT,
    worker TEXT,
    error TEXT,
    due INTEGER
);
"#,
    r#"
-- Schedules: the definition as JSON (rota_core::schedule::ScheduleSpec), the next tick to fire
-- (NULL while paused), and the latest runs as a JSON array, newest first.
CREATE TABLE schedules (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    doc TEXT NOT NULL,
    next_run_at INTEGER,
    runs TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE next_run_at IS NOT NULL;
"#,
    r#"
-- Webhooks (JSON rota_core::webhooks::Webhook) and their deliveries. A delivery copies its
-- event's columns (events are trimmed by retention; a delivery may outlive its event).
CREATE TABLE webhooks (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    cursor INTEGER NOT NULL,
    at INTEGER NOT NULL,
    queue TEXT NOT NULL,
    kind TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    type TEXT NOT NULL,
    state TEXT,
    worker TEXT,
    error TEXT,
    due INTEGER,
    dstate TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER,
    last_status INTEGER,
    last_error TEXT,
    latency_ms INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    delivered_at INTEGER
);
CREATE INDEX deliveries_due ON deliveries (next_at) WHERE dstate IN ('pending', 'failed');
CREATE INDEX deliveries_webhook ON deliveries (tenant, webhook_id, id);
CREATE INDEX deliveries_finished ON deliveries (updated_at) WHERE dstate IN ('delivered', 'dead');
"#,
    r#"
-- Narrower event rows: the queue by id (tenant and name from queues) and the type as its code
-- (its place in rota_core::events::EventType::ALL). The cursor sequence carries over, so
-- cursors keep growing past every one ever given.
CREATE TABLE events_new (
    cursor INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    queue_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    type INTEGER NOT NULL,
    state TEXT,
    worker TEXT,
    error TEXT,
    due INTEGER
);
INSERT INTO events_new (cursor, at, queue_id, kind, task_id, attempt, type, state, worker, error, due)
SELECT e.cursor, e.at, q.id, e.kind, e.task_id, e.attempt,
    CASE e.type WHEN 'task.enqueued' THEN 0 WHEN 'task.claimed' THEN 1 WHEN 'task.succeeded' THEN 2 WHEN 'task.failed' THEN 3 WHEN 'task.dead' THEN 4 WHEN 'task.cancelled' THEN 5 WHEN 'task.retried' THEN 6 WHEN 'task.lease_expired' THEN 7 WHEN 'task.deleted' THEN 8 END,
    e.state, e.worker, e.error, e.due
FROM events e JOIN queues q ON q.tenant = e.tenant AND q.name = e.queue;
INSERT INTO sqlite_sequence (name, seq)
SELECT 'events_new', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'events_new');
UPDATE sqlite_sequence SET seq = max(seq, COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0))
WHERE name = 'events_new';
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
"#,
    r#"
-- Task results: where a task's final outcome is POSTed, and a delivery's own target (a task's
-- callback; a webhook's deliveries go to the webhook's URL).
ALTER TABLE tasks ADD COLUMN callback_url TEXT;
ALTER TABLE deliveries ADD COLUMN url TEXT;
"#,
    r#"
-- Events about schedules and deliveries name what they are about
-- (rota_core::events::Subject::to_column); a delivery keeps its event's.
ALTER TABLE events ADD COLUMN subject TEXT;
ALTER TABLE deliveries ADD COLUMN subject TEXT;
"#,
    r#"
-- Server-wide settings by name, as JSON: `maintenance` (rota_core::maintenance::Maintenance),
-- and each shard's `store_id` and `copies_generation` (see identity.rs).
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
"#,
    r#"
-- Tenants deleted, by name: a deletion reaches shard 0 first, and when the store opens, a
-- shard still holding a tenant is told to delete it only when shard 0 names it here (never
-- because shard 0 lacks it: an older rota.db put back lacks newer tenants too). A tenant made
-- again under the same name removes its row.
CREATE TABLE tenant_tombstones (
    name TEXT PRIMARY KEY,
    deleted_at INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    r#"
-- Flow control (docs/flow-control.md). A task's group; ready tasks are in exactly one of two
-- indexes: the ungrouped ones in tasks_ready (so a queue without groups claims as before), the
-- grouped ones by group. Running tasks are counted per group by their own partial index;
-- tasks_grouped finds, at open, the queues that have grouped tasks. Only grouped tasks pay for
-- the new indexes.
ALTER TABLE tasks ADD COLUMN grp TEXT;
DROP INDEX tasks_ready;
DROP INDEX tasks_ready_kind;
CREATE INDEX tasks_ready ON tasks (queue_id, priority DESC, id)
    WHERE state = 'ready' AND grp IS NULL;
CREATE INDEX tasks_ready_kind ON tasks (queue_id, kind, priority DESC, id)
    WHERE state = 'ready' AND grp IS NULL;
CREATE INDEX tasks_ready_group ON tasks (queue_id, grp, priority DESC, id)
    WHERE state = 'ready' AND grp IS NOT NULL;
CREATE INDEX tasks_running_group ON tasks (queue_id, grp)
    WHERE state = 'running' AND grp IS NOT NULL;
CREATE INDEX tasks_grouped ON tasks (queue_id) WHERE grp IS NOT NULL;
-- The queue's rate state (GCRA's theoretical arrival time, in microseconds).
ALTER TABLE queues ADD COLUMN rate_tat_us INTEGER NOT NULL DEFAULT 0;
-- A group's own settings (JSON rota_core::flow::GroupSettings; NULL: the queue's) and its rate
-- state. A row with neither (NULL settings, a TAT in the past) says nothing and is deleted by
-- maintenance.
CREATE TABLE task_groups (
    queue_id    INTEGER NOT NULL,
    name        TEXT NOT NULL,
    settings    TEXT,
    rate_tat_us INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (queue_id, name)
) WITHOUT ROWID;
"#,
    r#"
-- Every ready task in one index, by group: the ungrouped tasks are its `grp IS NULL` prefix,
-- in the order tasks_ready kept them, and a group's are its `grp = ?` stretch. One partial
-- index fewer for SQLite to open on every change of a task's state (the plain drain ran
-- 0.91x of its speed before flow control with two, 0.94x with one; BENCHMARKS.md).
DROP INDEX tasks_ready;
DROP INDEX tasks_ready_group;
CREATE INDEX tasks_ready ON tasks (queue_id, grp, priority DESC, id) WHERE state = 'ready';
"#,
    r#"
-- Dependencies and workflows (docs/workflows.md). A task's own: the ids it waits for (JSON
-- array, NULL when none), how it takes a failed dependency ('run', NULL for cancel), and its
-- workflow's id.
ALTER TABLE tasks ADD COLUMN depends_on TEXT;
ALTER TABLE tasks ADD COLUMN dep_policy TEXT;
ALTER TABLE tasks ADD COLUMN workflow INTEGER;
CREATE INDEX tasks_workflow ON tasks (workflow) WHERE workflow IS NOT NULL;
-- In the dependent's shard: one row per dependency that has not ended yet. A waiting task is
-- released when its last row goes. dep_id 0 is a hold: the task belongs to a workflow whose
-- parts in other shards are not all written yet.
CREATE TABLE task_waits (
    task_id INTEGER NOT NULL,
    dep_id  INTEGER NOT NULL,
    PRIMARY KEY (task_id, dep_id)
) WITHOUT ROWID;
-- In the dependency's shard: whom to tell when it ends.
CREATE TABLE task_dependents (
    dep_id  INTEGER NOT NULL,
    task_id INTEGER NOT NULL,
    PRIMARY KEY (dep_id, task_id)
) WITHOUT ROWID;
-- Endings bound for a dependent in another shard, written in the ending's transaction; the
-- relay applies each there (where it is idempotent) and then deletes it here.
CREATE TABLE release_outbox (
    id        INTEGER PRIMARY KEY,
    task_id   INTEGER NOT NULL,
    dep_id    INTEGER NOT NULL,
    dep_state TEXT NOT NULL
);
-- Workflows submitted as one graph; the row lives in the shard its id names, and its presence
-- is what commits a workflow written across shards.
CREATE TABLE workflows (
    id         INTEGER PRIMARY KEY,
    tenant     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    names      TEXT NOT NULL,        -- JSON [[name, task id], ...] in submission order
    callback   INTEGER               -- a batch's callback task; NULL for a workflow
);
CREATE INDEX workflows_tenant ON workflows (tenant, id);
-- A waiting task holds its unique key as a scheduled one does.
DROP INDEX tasks_unique_live;
CREATE INDEX tasks_unique_live ON tasks (queue_id, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'ready', 'running', 'waiting');
"#,
    r#"
-- A workflow's end (docs/workflows.md, "Events"): when maintenance found every task of it
-- final and logged its workflow.* event. Workflows submitted before this migration count as
-- ended (no event is logged for them).
ALTER TABLE workflows ADD COLUMN ended_at INTEGER;
UPDATE workflows SET ended_at = created_at;
CREATE INDEX workflows_running ON workflows (id) WHERE ended_at IS NULL;
"#,
    r#"
-- When a task's latest attempt was claimed (its run time ends at its outcome).
ALTER TABLE tasks ADD COLUMN started_at INTEGER;
"#,
    r#"
-- The W3C trace context a task continues (docs/telemetry.md).
ALTER TABLE tasks ADD COLUMN traceparent TEXT;
ALTER TABLE tasks ADD COLUMN tracestate TEXT;
"#,
    r#"
-- Inbound webhooks (docs/inbound-webhooks.md): credentials like keys, kept in shard 0.
CREATE TABLE hooks (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX hooks_tenant ON hooks (tenant);
"#,
    r#"
-- The audit log (docs/audit.md): each entry in the shard whose transaction made its change,
-- newest first by (at, id); reads merge the shards.
CREATE TABLE audit (
    at     INTEGER NOT NULL,
    id     INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    doc    TEXT NOT NULL,        -- JSON rota_core::audit::AuditEntry
    PRIMARY KEY (at, id)
) WITHOUT ROWID;
CREATE INDEX audit_tenant ON audit (tenant, at, id);
"#,
    r#"
-- Events of a tenant in no queue (key.*, docs/events.md): queue_id 0 and the tenant here
-- (NULL for every event of a queue, whose tenant is its queue's).
ALTER TABLE events ADD COLUMN tenant TEXT;
"#,
];

pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

pub fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Applies the migrations this file lacks, each in its own transaction.
pub fn migrate(conn: &mut Connection) -> Result<(), String> {
    let found = version(conn).map_err(|e| e.to_string())?;
    if found > CURRENT_VERSION {
        return Err(format!(
            "the data file has schema version {found}, newer than this Rota understands ({CURRENT_VERSION}); upgrade Rota"
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction().map_err(|e| e.to_string())?;
        tx.execute_batch(sql)
            .and_then(|_| tx.pragma_update(None, "user_version", i as i64 + 1))
            .map_err(|e| format!("migration {} failed: {e}", i + 1))?;
        tx.commit().map_err(|e| e.to_string())?;
    }
    Ok(())
}
