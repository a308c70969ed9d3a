#!/usr/bin/env bash
# Enqueue and drain throughput on PostgreSQL, Rota against graphile-worker and pg-boss, interleaved
# on one machine: rota, graphile-worker, pg-boss, rota, ... RUNS rounds (default 3); prints each
# run, then the medians and Rota's ratio to each peer.
#
# One throwaway PostgreSQL 15 (/usr/lib/postgresql/15/bin, PG_BIN to change) in a temporary dir,
# on a free loopback port, listening on 127.0.0.1 only, trust auth, its socket in the temporary
# dir: `synchronous_commit=on fsync=on shared_buffers=512MB max_connections=200`. PostgreSQL
# refuses to run as root, so as root initdb and postgres run as PG_USER (default cloudsdk). Each
# run gets a fresh database, dropped after it.
#
# - Rota: `rota bench --mode batch --tasks TASKS --quiet --database-url postgres://...`: its own
#   server on that database, 4 producers and 4 consumers, 1,000 tasks per request and per claim
#   (ROTA_BIN, else target/release/rota).
# - graphile-worker: graphile.mjs here (graphile-worker 0.17.3): WorkerUtils.addJobs in batches of
#   1,000, 4 in flight; one `run()` pool with concurrentJobs 24, maxPoolSize 25, localQueue 500,
#   completeJobBatchDelay 0, failJobBatchDelay 0 (the configuration of its performance page).
# - pg-boss: pgboss.mjs here (pg-boss 10.4.2): `insert` in batches of 1,000, 4 in flight; 4
#   `work()` workers with batchSize 1,000 and pollingIntervalSeconds 0.5 (pg-boss's minimum).
# Both pinned with pg 8.23.1 in package-lock.json and installed with `npm ci`.
#
#   ROTA_BIN=/path/to/rota bash bench/peers/pg-queues/run.sh [RUNS]
#
# Environment: TASKS (100000 per run); PRODUCERS (4) and BATCH (1000): enqueue calls in flight and
# tasks per call, for all three (rota's --producers and --batch; its consumers stay 4); PEERS
# (which to run, in order: "rota graphile pgboss"); PG_BIN, PG_USER; MAX_LOAD and MAX_WAIT
# (seconds): before the first run, wait up to MAX_WAIT for the 1-minute load average to drop
# below MAX_LOAD (default: no wait).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
runs="${1:-3}"
tasks="${TASKS:-100000}"
export PRODUCERS="${PRODUCERS:-4}" BATCH="${BATCH:-1000}"
producers="$PRODUCERS"
batch="$BATCH"
pg_bin="${PG_BIN:-/usr/lib/postgresql/15/bin}"
pg_user="${PG_USER:-cloudsdk}"

source "$here/pg.sh"

wait_for_quiet

n=0
fresh_db() { n=$((n + 1)); db="bench_$n"; psql -c "CREATE DATABASE $db" >/dev/null; echo "$db"; }

rota_run() {
  local db="$1" l out
  l="$(load1)"
  out="$("$ROTA_BIN" bench --mode batch --tasks "$tasks" --quiet --producers "$producers" --batch "$batch" \
    --database-url "postgres://postgres@127.0.0.1:$port/$db" 2>&1)" || { echo "$out" >&2; return 1; }
  echo "$out" | awk -v load="$l" -v tasks="$tasks" '
    /batch enqueue/ && /tasks\/s/ { for (i = 1; i < NF; i++) if ($(i+1) ~ /^tasks\/s/) enq = $i }
    /batch drain \(claim \+ complete\)/ && /tasks\/s/ { for (i = 1; i < NF; i++) if ($(i+1) ~ /^tasks\/s/) drain = $i }
    END { gsub(/,/, "", enq); gsub(/,/, "", drain)
          printf "{\"peer\":\"rota\",\"enqueue_per_s\":%d,\"drain_per_s\":%d,\"tasks\":%d,\"load\":%s}\n", enq, drain, tasks, load }'
}

node_run() {
  local script="$1" db="$2" l
  l="$(load1)"
  node "$here/$script" "postgres://postgres@127.0.0.1:$port/$db" "$tasks" \
    | node -e 'const r = JSON.parse(require("fs").readFileSync(0, "utf8")); r.load = Number(process.argv[1]); console.log(JSON.stringify(r))' "$l"
}

echo "rota: $("$ROTA_BIN" --version 2>/dev/null || echo "$ROTA_BIN"); $("$pg_bin/postgres" --version);" \
  "graphile-worker $(node -p 'require("'"$here"'/node_modules/graphile-worker/package.json").version');" \
  "pg-boss $(node -p 'require("'"$here"'/node_modules/pg-boss/package.json").version'); node $(node --version);" \
  "$(nproc) cores; $tasks tasks a run, enqueued $batch a call, $producers in flight; $(date -u +%FT%TZ)"
echo "uptime at start: $(uptime)"
results="$work/results"
for i in $(seq 1 "$runs"); do
  for peer in ${PEERS:-rota graphile pgboss}; do
    db="$(fresh_db)"
    case "$peer" in
      rota) rota_run "$db" ;;
      graphile) node_run graphile.mjs "$db" ;;
      pgboss) node_run pgboss.mjs "$db" ;;
      *) echo "unknown peer $peer (PEERS: rota graphile pgboss)" >&2; exit 1 ;;
    esac | tee -a "$results"
    drop_db "$db"
  done
done
echo "uptime at end:   $(uptime)"
node "$here/summary.mjs" "$results"
