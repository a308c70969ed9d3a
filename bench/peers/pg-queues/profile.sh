#!/usr/bin/env bash
# Where a task's cost goes on PostgreSQL: for Rota and graphile-worker, the statements, transactions,
# row writes and WAL of one run of TASKS tasks (default 100000), per task, and the statements that
# took the most time (pg_stat_statements).
#
# The same throwaway PostgreSQL 15 as run.sh (its settings, copied from there), plus
# `shared_preload_libraries=pg_stat_statements pg_stat_statements.track=all`. Each system gets a
# fresh database with `CREATE EXTENSION pg_stat_statements` and its schema created first
# (`rota migrate up`; graphile.mjs with PHASE=migrate). Then, for each measured phase: CHECKPOINT,
# `pg_stat_statements_reset()`, read the WAL position, pg_stat_wal and the database's
# pg_stat_database row; run the phase; wait 2 s (backends flush their counters on exit and at most
# once a second); read them again and print the differences divided by TASKS, the top statements
# by total_exec_time in that database, and its tables' row writes (pg_stat_user_tables, reset with
# pg_stat_reset() at the phase's start) with their number of indexes.
#
# Phases: `rota bench` enqueues and drains in one command and has no flag to stop between the
# two, so Rota is measured as `both` (enqueue + drain, its `--mode batch` run, which also creates
# its tenant and API key). graphile-worker is measured the same way (PHASE=both), and then, on a
# second fresh database, split: PHASE=enqueue, then PHASE=drain.
#
#   ROTA_BIN=/path/to/rota bash bench/peers/pg-queues/profile.sh
#
# Environment: TASKS (100000); PRODUCERS (4) and BATCH (1000) as in run.sh; PEERS (which to run, in
# order: "rota graphile graphile-split"); TOP (statements listed, 10); PG_BIN, PG_USER.
# Counters from pg_stat_wal and the WAL position are the whole cluster's (autovacuum and the
# checkpointer included); only one system runs at a time.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
tasks="${TASKS:-100000}"
export PRODUCERS="${PRODUCERS:-4}" BATCH="${BATCH:-1000}"
top="${TOP:-10}"
pg_bin="${PG_BIN:-/usr/lib/postgresql/15/bin}"
pg_user="${PG_USER:-cloudsdk}"

pg_lib="$("$pg_bin/pg_config" --pkglibdir 2>/dev/null || echo /usr/lib/postgresql/15/lib)"
[ -f "$pg_lib/pg_stat_statements.so" ] || { echo "no pg_stat_statements.so in $pg_lib" >&2; exit 1; }
PG_EXTRA="-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
source "$here/pg.sh"
psql -c "CREATE EXTENSION pg_stat_statements" >/dev/null

n=0
fresh_db() { # sets db
  n=$((n + 1)); db="prof_$n"
  psql -c "CREATE DATABASE $db" >/dev/null
  psql -d "$db" -c "CREATE EXTENSION pg_stat_statements" >/dev/null
}
url() { echo "postgres://postgres@127.0.0.1:$port/$1"; }

# One line of counters: WAL position (bytes), pg_stat_wal's records, full-page images and bytes, and
# the database's pg_stat_database columns.
counters() {
  psql -At -F ' ' -v db="$1" <<'SQL'
SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint, w.wal_records, w.wal_fpi, w.wal_bytes,
       d.xact_commit, d.xact_rollback, d.tup_inserted, d.tup_updated, d.tup_deleted, d.blks_hit, d.blks_read
FROM pg_stat_wal w, pg_stat_database d WHERE d.datname = :'db'
SQL
}

begin_phase() {
  psql -c "CHECKPOINT" -c "SELECT pg_stat_statements_reset()" >/dev/null
  psql -d "$1" -c "SELECT pg_stat_reset()" >/dev/null # this database's table counters (and its pg_stat_database row)
  before="$(counters "$1")"
}

end_phase() {
  local db="$1" label="$2" after stmts
  sleep 2
  after="$(counters "$db")"
  stmts="$(psql -At -F ' ' -v db="$db" <<'SQL'
SELECT coalesce(sum(calls) FILTER (WHERE toplevel), 0), coalesce(sum(calls), 0),
       coalesce(sum(wal_bytes) FILTER (WHERE toplevel), 0), coalesce(sum(wal_records) FILTER (WHERE toplevel), 0)
FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = :'db')
SQL
)"
  echo
  echo "== $label: $db, $tasks tasks =="
  echo "$before" "$after" "$stmts" | awk -v t="$tasks" '{
    split("lsn wal_records wal_fpi wal_bytes xact_commit xact_rollback tup_inserted tup_updated tup_deleted blks_hit blks_read", k, " ")
    for (i = 1; i <= 11; i++) d[k[i]] = $(i + 11) - $i
    printf "per task: top-level statements %.4f (with nested, track=all: %.4f); transactions committed %.4f (rolled back %.4f)\n", $23 / t, $24 / t, d["xact_commit"] / t, d["xact_rollback"] / t
    printf "per task: rows inserted %.3f, updated %.3f, deleted %.3f; blocks hit %.2f, read %.3f\n", d["tup_inserted"] / t, d["tup_updated"] / t, d["tup_deleted"] / t, d["blks_hit"] / t, d["blks_read"] / t
    printf "per task: WAL bytes %.0f (by position; pg_stat_wal %.0f), WAL records %.2f, full-page images %.3f; top-level statements own %.0f WAL bytes and %.2f records\n", d["lsn"] / t, d["wal_bytes"] / t, d["wal_records"] / t, d["wal_fpi"] / t, $25 / t, $26 / t
    printf "totals: statements %d (nested incl. %d), xacts %d, ins %d upd %d del %d, WAL %d bytes %d records %d fpi\n", $23, $24, d["xact_commit"], d["tup_inserted"], d["tup_updated"], d["tup_deleted"], d["lsn"], d["wal_records"], d["wal_fpi"]
  }'
  psql -P pager=off -v db="$db" -v top="$top" -v t="$tasks" <<'SQL'
SELECT CASE WHEN toplevel THEN 'y' ELSE 'n' END AS top, calls, rows,
       round(total_exec_time)::bigint AS total_ms, round((total_exec_time / calls)::numeric, 3) AS mean_ms,
       round(calls::numeric / :t, 4) AS calls_per_task, round(wal_bytes / :t, 1) AS wal_b_per_task,
       round(wal_records::numeric / :t, 2) AS wal_rec_per_task, shared_blks_hit AS blks_hit, shared_blks_dirtied AS blks_dirtied,
       left(regexp_replace(query, '\s+', ' ', 'g'), 100) AS query
FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = :'db')
ORDER BY total_exec_time DESC LIMIT :top;
SQL
  psql -d "$db" -P pager=off -v t="$tasks" <<'SQL'
SELECT relname AS "table", round(n_tup_ins::numeric / :t, 3) AS ins_per_task, round(n_tup_upd::numeric / :t, 3) AS upd_per_task,
       round(n_tup_hot_upd::numeric / :t, 3) AS hot_upd_per_task, round(n_tup_del::numeric / :t, 3) AS del_per_task,
       (SELECT count(*) FROM pg_index i WHERE i.indrelid = s.relid) AS indexes
FROM pg_stat_user_tables s WHERE n_tup_ins + n_tup_upd + n_tup_del > 0 ORDER BY n_tup_ins + n_tup_upd + n_tup_del DESC;
SQL
}

rota_both() {
  local out
  fresh_db
  "$ROTA_BIN" migrate up --database-url "$(url "$db")" >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log" >&2; return 1; }
  begin_phase "$db"
  out="$("$ROTA_BIN" bench --mode batch --tasks "$tasks" --quiet --producers "$PRODUCERS" --batch "$BATCH" \
    --database-url "$(url "$db")" 2>&1)" || { echo "$out" >&2; return 1; }
  end_phase "$db" "rota, enqueue + drain (rota bench --mode batch)"
  echo "$out" | grep -E 'batch (enqueue|drain)' || true
  drop_db "$db"
}

graphile() {
  fresh_db
  PHASE=migrate node "$here/graphile.mjs" "$(url "$db")" "$tasks"
  for phase in "$@"; do
    begin_phase "$db"
    PHASE="$phase" node "$here/graphile.mjs" "$(url "$db")" "$tasks" >"$work/graphile.out"
    end_phase "$db" "graphile-worker, PHASE=$phase"
    cat "$work/graphile.out"
  done
  drop_db "$db"
}

echo "rota: $("$ROTA_BIN" --version 2>/dev/null || echo "$ROTA_BIN"); $("$pg_bin/postgres" --version);" \
  "graphile-worker $(node -p 'require("'"$here"'/node_modules/graphile-worker/package.json").version'); node $(node --version);" \
  "$(nproc) cores; $tasks tasks, enqueued $BATCH a call, $PRODUCERS in flight; $(date -u +%FT%TZ)"
for peer in ${PEERS:-rota graphile graphile-split}; do
  case "$peer" in
    rota) rota_both ;;
    graphile) graphile both ;;
    graphile-split) graphile enqueue drain ;;
    *) echo "unknown peer $peer (PEERS: rota graphile graphile-split)" >&2; exit 1 ;;
  esac
done
