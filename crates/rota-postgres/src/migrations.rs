//! The schema's migrations, oldest first: each migrates from version `i` to `i + 1` and is
//! applied by `schema.rs` (in its own transaction, recorded in `rota_migrations`).

/// Each entry migrates from version `i` to `i + 1`: its name and its SQL.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "initial",
        r#"
CREATE TABLE rota_tenants (
    name TEXT PRIMARY KEY,
    doc  TEXT NOT NULL                  -- JSON rota_core::auth::TenantRecord
);
CREATE TABLE rota_api_keys (
    id     TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    doc    TEXT NOT NULL                -- holds the SHA-256 of the token, never the token
);
CREATE TABLE rota_roles (
    tenant TEXT NOT NULL,
    name   TEXT NOT NULL,
    doc    TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);
INSERT INTO rota_tenants (name, doc)
VALUES ('default', json_build_object('name', 'default',
        'created_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))::text);

CREATE TABLE rota_queues (
    id            BIGSERIAL PRIMARY KEY,
    tenant        TEXT NOT NULL REFERENCES rota_tenants (name),
    name          TEXT NOT NULL,
    -- rota_core::QueueSettings, one column each so statements can use them.
    max_attempts    INTEGER NOT NULL,
    backoff_base_ms BIGINT NOT NULL,
    backoff_max_ms  BIGINT NOT NULL,
    lease_ms        BIGINT NOT NULL,
    retention_ms    BIGINT NOT NULL,
    paused          BOOLEAN NOT NULL,
    created_at    BIGINT NOT NULL,      -- ms since epoch, like every time here
    last_claim_at BIGINT,
    UNIQUE (tenant, name)
);

-- Tasks churn: every transition writes a new row version. fillfactor leaves room on each page
-- for the next version, and autovacuum runs on this table after 1% of it changed (not the
-- default 20%), so dead versions are reclaimed while the table is still small.
CREATE TABLE rota_tasks (
    id               BIGINT PRIMARY KEY, -- rota_core::TaskId: unix_ms << 20 | sequence
    queue_id         BIGINT NOT NULL,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    priority         INTEGER NOT NULL,
    state            SMALLINT NOT NULL,  -- rota_core::TaskState::index()
    run_at           BIGINT NOT NULL,
    attempt          INTEGER NOT NULL,
    max_attempts     INTEGER NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    finished_at      BIGINT,
    lease_worker     TEXT,
    lease_token      BIGINT,
    lease_expires_at BIGINT,
    progress         TEXT,
    result           TEXT,
    errors           TEXT,               -- JSON [{attempt, message, at}], NULL when none
    unique_key       TEXT,
    tags             TEXT,               -- JSON array, NULL when none
    purge_at         BIGINT              -- when a finished task is deleted
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01,
        autovacuum_vacuum_insert_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02,
        autovacuum_vacuum_cost_delay = 0);

-- States: 0 scheduled, 1 ready, 2 running, 3 succeeded, 4 dead, 5 cancelled.
-- Claims: the next ready task of a queue (of a kind) is the first index entry.
CREATE INDEX rota_tasks_ready ON rota_tasks (queue_id, priority DESC, id) WHERE state = 1;
CREATE INDEX rota_tasks_ready_kind ON rota_tasks (queue_id, kind, priority DESC, id)
    WHERE state = 1;
-- Maintenance: due scheduled tasks, expired leases, finished tasks past retention.
CREATE INDEX rota_tasks_scheduled ON rota_tasks (run_at) WHERE state = 0;
CREATE INDEX rota_tasks_running ON rota_tasks (lease_expires_at) WHERE state = 2;
CREATE INDEX rota_tasks_purge ON rota_tasks (purge_at) WHERE purge_at IS NOT NULL;
-- Listing newest first with a state filter, and counts by state.
CREATE INDEX rota_tasks_queue_state ON rota_tasks (queue_id, state, id);
-- A unique key is held by at most one live task: the database enforces it, whichever server
-- writes.
CREATE UNIQUE INDEX rota_tasks_unique_live ON rota_tasks (queue_id, unique_key)
    WHERE unique_key IS NOT NULL AND state IN (0, 1, 2);

-- Task ids: servers reserve disjoint blocks of ids from this row (see ids.rs).
CREATE TABLE rota_id_blocks (
    one  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    next BIGINT NOT NULL
);
INSERT INTO rota_id_blocks (next) VALUES (0);

-- Leadership of background services: one row per service, held by one server until it
-- expires (by the database's clock).
CREATE TABLE rota_leaders (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

-- Servers that are alive, for sharing limits: each renews its row every second.
CREATE TABLE rota_servers (
    id         TEXT PRIMARY KEY,
    seen_at    TIMESTAMPTZ NOT NULL
);

-- One row, rewritten by each readiness probe: proves a write commits.
CREATE TABLE rota_probe (
    id INTEGER PRIMARY KEY,
    at BIGINT NOT NULL
);
"#,
    ),
    (
        "limit demand",
        r#"
-- Each server's requests per limited client (a key, a tenant, a JWT subject) in its last
-- second, rewritten every second: limits are shared among servers by demand.
CREATE TABLE rota_limit_demand (
    server  TEXT NOT NULL,
    client  TEXT NOT NULL,
    demand  BIGINT NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (server, client)
);
"#,
    ),
    (
        "event log",
        r#"
-- The event log, one row per task transition, written in the transaction of the change. The
-- cursor is the writing transaction's id (xid8) times 2^20 plus the event's place in it, and a
-- reader sees only cursors below its snapshot's xmin: every transaction that could still add
-- a smaller cursor has ended, so a cursor read is never followed by a smaller one.
CREATE TABLE rota_events (
    tenant  TEXT NOT NULL,
    cursor  BIGINT NOT NULL,
    at      BIGINT NOT NULL,
    queue   TEXT NOT NULL,
    kind    TEXT NOT NULL,
    task_id BIGINT NOT NULL,
    attempt INT NOT NULL,
    type    TEXT NOT NULL,
    state   SMALLINT,
    worker  TEXT,
    error   TEXT,
    due     BIGINT,
    PRIMARY KEY (tenant, cursor)
);
-- Retention trims by time; rows arrive in time order, so a BRIN index is enough.
CREATE INDEX rota_events_at ON rota_events USING brin (at);
"#,
    ),
    (
        "schedules",
        r#"
-- Schedules: the definition as JSON (rota_core::schedule::ScheduleSpec), the next tick to fire
-- (NULL while paused), and the latest runs as a JSON array, newest first.
CREATE TABLE rota_schedules (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    doc         TEXT NOT NULL,
    next_run_at BIGINT,
    runs        TEXT NOT NULL DEFAULT '[]',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE INDEX rota_schedules_due ON rota_schedules (next_run_at) WHERE next_run_at IS NOT NULL;
"#,
    ),
    (
        "webhooks",
        r#"
-- Webhooks (JSON rota_core::webhooks::Webhook, with its filter as LIKE patterns for the
-- fan-out) and their deliveries, which copy their event's columns.
CREATE TABLE rota_webhooks (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    doc         TEXT NOT NULL,
    enabled     BOOLEAN NOT NULL,
    type_likes  TEXT[] NOT NULL,
    queue_likes TEXT[] NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE TABLE rota_deliveries (
    id           BIGSERIAL PRIMARY KEY,
    tenant       TEXT NOT NULL,
    webhook_id   TEXT NOT NULL,
    cursor       BIGINT NOT NULL,
    at           BIGINT NOT NULL,
    queue        TEXT NOT NULL,
    kind         TEXT NOT NULL,
    task_id      BIGINT NOT NULL,
    attempt      INT NOT NULL,
    type         TEXT NOT NULL,
    state        SMALLINT,
    worker       TEXT,
    error        TEXT,
    due          BIGINT,
    dstate       TEXT NOT NULL,
    attempts     INT NOT NULL DEFAULT 0,
    next_at      BIGINT,
    last_status  INT,
    last_error   TEXT,
    latency_ms   BIGINT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX rota_deliveries_due ON rota_deliveries (next_at) WHERE dstate IN ('pending', 'failed');
CREATE INDEX rota_deliveries_webhook ON rota_deliveries (tenant, webhook_id, id);
CREATE INDEX rota_deliveries_finished ON rota_deliveries (updated_at)
    WHERE dstate IN ('delivered', 'dead');
-- Every statement that logs events makes their deliveries in the same transaction.
CREATE FUNCTION rota_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rota_deliveries (tenant, webhook_id, cursor, at, queue, kind, task_id, attempt,
        type, state, worker, error, due, dstate, attempts, next_at, created_at, updated_at)
    SELECT e.tenant, w.id, e.cursor, e.at, e.queue, e.kind, e.task_id, e.attempt, e.type,
        e.state, e.worker, e.error, e.due, 'pending', 0, e.at, e.at, e.at
    FROM new_events e JOIN rota_webhooks w ON w.tenant = e.tenant AND w.enabled
    WHERE e.type LIKE ANY (w.type_likes)
      AND (cardinality(w.queue_likes) = 0 OR e.queue LIKE ANY (w.queue_likes));
    RETURN NULL;
END $$;
CREATE TRIGGER rota_events_fan_out AFTER INSERT ON rota_events
    REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION rota_fan_out();
"#,
    ),
    (
        "task results",
        r#"
-- Task results: where a task's final outcome is POSTed, and a delivery's own target. The
-- fan-out also makes a delivery for each final outcome (succeeded, dead, cancelled) of a task
-- with a callback URL (its own, else its queue's), signed by the tenant's `callbacks` webhook
-- (no signer, no lookups).
ALTER TABLE rota_tasks ADD COLUMN callback_url TEXT;
ALTER TABLE rota_queues ADD COLUMN callback_url TEXT;
ALTER TABLE rota_deliveries ADD COLUMN url TEXT;
CREATE OR REPLACE FUNCTION rota_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rota_deliveries (tenant, webhook_id, cursor, at, queue, kind, task_id, attempt,
        type, state, worker, error, due, dstate, attempts, next_at, created_at, updated_at)
    SELECT e.tenant, w.id, e.cursor, e.at, e.queue, e.kind, e.task_id, e.attempt, e.type,
        e.state, e.worker, e.error, e.due, 'pending', 0, e.at, e.at, e.at
    FROM new_events e JOIN rota_webhooks w ON w.tenant = e.tenant AND w.enabled
    WHERE e.type LIKE ANY (w.type_likes)
      AND (cardinality(w.queue_likes) = 0 OR e.queue LIKE ANY (w.queue_likes));
    INSERT INTO rota_deliveries (tenant, webhook_id, url, cursor, at, queue, kind, task_id,
        attempt, type, state, worker, error, due, dstate, attempts, next_at, created_at,
        updated_at)
    SELECT e.tenant, w.id, COALESCE(t.callback_url, q.callback_url), e.cursor, e.at, e.queue,
        e.kind, e.task_id, e.attempt, e.type, e.state, e.worker, e.error, e.due, 'pending', 0,
        e.at, e.at, e.at
    FROM new_events e
    JOIN rota_webhooks w ON w.tenant = e.tenant AND w.id = 'callbacks'
    JOIN rota_tasks t ON t.id = e.task_id
    JOIN rota_queues q ON q.id = t.queue_id
    WHERE e.type IN ('task.succeeded', 'task.dead', 'task.cancelled')
      AND COALESCE(t.callback_url, q.callback_url) IS NOT NULL;
    RETURN NULL;
END $$;
"#,
    ),
    (
        "event subjects",
        r#"
-- Events about schedules and deliveries name what they are about
-- (rota_core::events::Subject::to_column: a schedule's name, or `<webhook>/<delivery>`); a
-- delivery keeps its event's. A webhook never receives events about its own deliveries.
ALTER TABLE rota_events ADD COLUMN subject TEXT;
ALTER TABLE rota_deliveries ADD COLUMN subject TEXT;
CREATE OR REPLACE FUNCTION rota_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rota_deliveries (tenant, webhook_id, cursor, at, queue, kind, task_id, attempt,
        type, state, worker, error, due, subject, dstate, attempts, next_at, created_at,
        updated_at)
    SELECT e.tenant, w.id, e.cursor, e.at, e.queue, e.kind, e.task_id, e.attempt, e.type,
        e.state, e.worker, e.error, e.due, e.subject, 'pending', 0, e.at, e.at, e.at
    FROM new_events e JOIN rota_webhooks w ON w.tenant = e.tenant AND w.enabled
    WHERE e.type LIKE ANY (w.type_likes)
      AND (cardinality(w.queue_likes) = 0 OR e.queue LIKE ANY (w.queue_likes))
      AND NOT (e.type IN ('delivery.dead', 'webhook.disabled')
               AND split_part(e.subject, '/', 1) = w.id);
    INSERT INTO rota_deliveries (tenant, webhook_id, url, cursor, at, queue, kind, task_id,
        attempt, type, state, worker, error, due, dstate, attempts, next_at, created_at,
        updated_at)
    SELECT e.tenant, w.id, COALESCE(t.callback_url, q.callback_url), e.cursor, e.at, e.queue,
        e.kind, e.task_id, e.attempt, e.type, e.state, e.worker, e.error, e.due, 'pending', 0,
        e.at, e.at, e.at
    FROM new_events e
    JOIN rota_webhooks w ON w.tenant = e.tenant AND w.id = 'callbacks'
    JOIN rota_tasks t ON t.id = e.task_id
    JOIN rota_queues q ON q.id = t.queue_id
    WHERE e.type IN ('task.succeeded', 'task.dead', 'task.cancelled')
      AND COALESCE(t.callback_url, q.callback_url) IS NOT NULL;
    RETURN NULL;
END $$;
"#,
    ),
    (
        "settings",
        r#"
-- Server-wide settings by name, as JSON: `maintenance` (rota_core::maintenance::Maintenance).
CREATE TABLE rota_settings (
    name TEXT PRIMARY KEY,
    doc  TEXT NOT NULL
);
"#,
    ),
    (
        "flow control",
        r#"
-- Flow control (docs/flow-control.md). A task's group; ready tasks are in exactly one of two
-- indexes: the ungrouped ones in rota_tasks_ready (so a queue without groups claims as
-- before, by one statement), the grouped ones by group. Running tasks are counted per group by
-- their own partial index.
ALTER TABLE rota_tasks ADD COLUMN grp TEXT;
DROP INDEX rota_tasks_ready;
DROP INDEX rota_tasks_ready_kind;
CREATE INDEX rota_tasks_ready ON rota_tasks (queue_id, priority DESC, id)
    WHERE state = 1 AND grp IS NULL;
CREATE INDEX rota_tasks_ready_kind ON rota_tasks (queue_id, kind, priority DESC, id)
    WHERE state = 1 AND grp IS NULL;
CREATE INDEX rota_tasks_ready_group ON rota_tasks (queue_id, grp, priority DESC, id)
    WHERE state = 1 AND grp IS NOT NULL;
CREATE INDEX rota_tasks_running_group ON rota_tasks (queue_id, grp)
    WHERE state = 2 AND grp IS NOT NULL;
-- The queue's limits (rates as JSON rota_core::flow::Rate), its rate state (GCRA's theoretical
-- arrival time, in microseconds), where its groups' round-robin stands (shared by every
-- server: claims of a limited queue lock its row), and whether it ever had grouped tasks (set
-- by the enqueue that brings the first; a queue with neither limits nor groups claims by the
-- one-statement path).
ALTER TABLE rota_queues
    ADD COLUMN concurrency INTEGER,
    ADD COLUMN rate TEXT,
    ADD COLUMN group_concurrency INTEGER,
    ADD COLUMN group_rate TEXT,
    ADD COLUMN rate_tat_us BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN turn_group TEXT,
    ADD COLUMN turn_taken INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN grouped BOOLEAN NOT NULL DEFAULT false;
-- A group's own settings (JSON rota_core::flow::GroupSettings; NULL: the queue's) and its rate
-- state. A row with neither (NULL settings, a TAT in the past) says nothing and is deleted by
-- maintenance.
CREATE TABLE rota_task_groups (
    queue_id    BIGINT NOT NULL,
    name        TEXT NOT NULL,
    settings    TEXT,
    rate_tat_us BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (queue_id, name)
);
"#,
    ),
    (
        "workflows",
        r#"
-- Dependencies and workflows (docs/workflows.md). State 6 is `waiting`. A task's own: the ids
-- it waits for (JSON array), how it takes a failed dependency (1: run; NULL: cancel), its
-- workflow, and whether another task waits for it (set, under its row lock, by the enqueue
-- that adds the waiter: an ending that locks the row after sees it, and its server then
-- releases the waiters in a transaction of their own; maintenance finds those a crash left).
ALTER TABLE rota_tasks
    ADD COLUMN depends_on TEXT,
    ADD COLUMN dep_policy SMALLINT,
    ADD COLUMN workflow BIGINT,
    ADD COLUMN has_dependents BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX rota_tasks_workflow ON rota_tasks (workflow) WHERE workflow IS NOT NULL;
CREATE INDEX rota_tasks_ended_dependents ON rota_tasks (id)
    WHERE has_dependents AND state IN (3, 4, 5);
-- One row per dependency a waiting task still waits for; it is released when its last goes.
CREATE TABLE rota_task_waits (
    task_id BIGINT NOT NULL,
    dep_id  BIGINT NOT NULL,
    PRIMARY KEY (task_id, dep_id)
);
CREATE INDEX rota_task_waits_dep ON rota_task_waits (dep_id);
CREATE TABLE rota_workflows (
    id         BIGINT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    names      TEXT NOT NULL,          -- JSON [[name, task id], ...] in submission order
    callback   BIGINT                  -- a batch's callback task; NULL for a workflow
);
CREATE INDEX rota_workflows_tenant ON rota_workflows (tenant, id);
-- A waiting task holds its unique key as a scheduled one does.
DROP INDEX rota_tasks_unique_live;
CREATE UNIQUE INDEX rota_tasks_unique_live ON rota_tasks (queue_id, unique_key)
    WHERE unique_key IS NOT NULL AND state IN (0, 1, 2, 6);
"#,
    ),
    (
        "workflow ends",
        r#"
-- A workflow's end (docs/workflows.md, "Events"): when maintenance found every task of it
-- final and logged its workflow.* event. Workflows submitted before this migration count as
-- ended (no event is logged for them).
ALTER TABLE rota_workflows ADD COLUMN ended_at BIGINT;
UPDATE rota_workflows SET ended_at = created_at;
CREATE INDEX rota_workflows_running ON rota_workflows (id) WHERE ended_at IS NULL;
"#,
    ),
    (
        "attempt start",
        r#"
-- When a task's latest attempt was claimed (its run time ends at its outcome).
ALTER TABLE rota_tasks ADD COLUMN started_at BIGINT;
"#,
    ),
    (
        "trace context",
        r#"
-- The W3C trace context a task continues (docs/telemetry.md).
ALTER TABLE rota_tasks ADD COLUMN traceparent TEXT;
ALTER TABLE rota_tasks ADD COLUMN tracestate TEXT;
"#,
    ),
    (
        "inbound webhooks",
        r#"
-- Inbound webhooks (docs/inbound-webhooks.md): credentials like keys.
CREATE TABLE rota_hooks (
    id     TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    doc    TEXT NOT NULL
);
CREATE INDEX rota_hooks_tenant ON rota_hooks (tenant);
"#,
    ),
    (
        "audit log",
        r#"
-- The audit log (docs/audit.md): one row per administrative change, written in its
-- transaction; read newest first by (at, id).
CREATE TABLE rota_audit (
    at     BIGINT NOT NULL,
    id     BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    doc    TEXT NOT NULL,
    PRIMARY KEY (at, id)
);
CREATE INDEX rota_audit_tenant ON rota_audit (tenant, at, id);
"#,
    ),
    (
        "event runs",
        r#"
-- A run of events: one row for the events one statement logs about many tasks of one queue
-- alike (enqueued ready, claimed, succeeded), instead of a row (and an index entry) per task;
-- issue 28 measured a fifth of the drain's cost in those rows. A run of `n` events has the
-- cursors `cursor` .. `cursor + n - 1`, its tasks in order in `tasks`, and their kinds and
-- attempts in `kinds` and `attempts`, or NULL when every one is the row's `kind` or
-- `attempt` (the row's task_id, kind and attempt are its first task's). A single event has
-- NULL `n` and arrays. Readers expand runs (events.rs), and so does the fan-out.
ALTER TABLE rota_events
    ADD COLUMN n INT,
    ADD COLUMN tasks BIGINT[],
    ADD COLUMN kinds TEXT[],
    ADD COLUMN attempts INT[];
-- A run's arrays outgrow a page and are TOASTed; lz4 compresses them for less CPU than pglz
-- (drain +2%), where this PostgreSQL was built with it.
DO $$ BEGIN
    ALTER TABLE rota_events ALTER COLUMN tasks SET COMPRESSION lz4,
        ALTER COLUMN kinds SET COMPRESSION lz4, ALTER COLUMN attempts SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN NULL;
END $$;
-- The events of a row: itself, or each of its run.
CREATE FUNCTION rota_event_each(r_cursor BIGINT, r_kind TEXT, r_task_id BIGINT,
    r_attempt INT, r_tasks BIGINT[], r_kinds TEXT[], r_attempts INT[])
RETURNS TABLE (cursor BIGINT, kind TEXT, task_id BIGINT, attempt INT)
LANGUAGE sql IMMUTABLE AS $$
    SELECT $1 + COALESCE(u.i, 1) - 1, COALESCE(u.kind, $2), COALESCE(u.task_id, $3),
        COALESCE(u.attempt, $4)
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL unnest($5, $6, $7) WITH ORDINALITY AS u(task_id, kind, attempt, i) ON true
$$;
-- The fan-out, as before, of each event of each row; nothing to do (nor expand) for a
-- statement whose tenants have no webhook.
CREATE OR REPLACE FUNCTION rota_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM rota_webhooks w
                   WHERE w.tenant IN (SELECT tenant FROM new_events)) THEN
        RETURN NULL;
    END IF;
    INSERT INTO rota_deliveries (tenant, webhook_id, cursor, at, queue, kind, task_id, attempt,
        type, state, worker, error, due, subject, dstate, attempts, next_at, created_at,
        updated_at)
    SELECT e.tenant, w.id, x.cursor, e.at, e.queue, x.kind, x.task_id, x.attempt, e.type,
        e.state, e.worker, e.error, e.due, e.subject, 'pending', 0, e.at, e.at, e.at
    FROM new_events e CROSS JOIN LATERAL
        rota_event_each(e.cursor, e.kind, e.task_id, e.attempt, e.tasks, e.kinds, e.attempts) x
    JOIN rota_webhooks w ON w.tenant = e.tenant AND w.enabled
    WHERE e.type LIKE ANY (w.type_likes)
      AND (cardinality(w.queue_likes) = 0 OR e.queue LIKE ANY (w.queue_likes))
      AND NOT (e.type IN ('delivery.dead', 'webhook.disabled')
               AND split_part(e.subject, '/', 1) = w.id)
    ORDER BY x.cursor, w.id;
    INSERT INTO rota_deliveries (tenant, webhook_id, url, cursor, at, queue, kind, task_id,
        attempt, type, state, worker, error, due, dstate, attempts, next_at, created_at,
        updated_at)
    SELECT e.tenant, w.id, COALESCE(t.callback_url, q.callback_url), x.cursor, e.at, e.queue,
        x.kind, x.task_id, x.attempt, e.type, e.state, e.worker, e.error, e.due, 'pending', 0,
        e.at, e.at, e.at
    FROM new_events e CROSS JOIN LATERAL
        rota_event_each(e.cursor, e.kind, e.task_id, e.attempt, e.tasks, e.kinds, e.attempts) x
    JOIN rota_webhooks w ON w.tenant = e.tenant AND w.id = 'callbacks'
    JOIN rota_tasks t ON t.id = x.task_id
    JOIN rota_queues q ON q.id = t.queue_id
    WHERE e.type IN ('task.succeeded', 'task.dead', 'task.cancelled')
      AND COALESCE(t.callback_url, q.callback_url) IS NOT NULL
    ORDER BY x.cursor;
    RETURN NULL;
END $$;
"#,
    ),
];
