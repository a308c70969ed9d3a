#!/usr/bin/env bash
# Enqueue->start latency at a paced rate, Rota against BullMQ, interleaved on one machine:
# rota, bullmq, rota, bullmq, ... RUNS times each (default 3); prints each run and the medians.
#
# - Rota: `rota bench --mode latency --quiet --rate RATE --latency-secs SECS`, which starts its
#   own fresh `rota serve` on a temporary data dir for each run (ROTA_BIN, else
#   target/release/rota).
# - BullMQ: latency.mjs here (BullMQ 6.7.6, ioredis 5.11.1, pinned in package-lock.json) against
#   a fresh Debian redis-server for each run, on a free loopback port and a temporary dir, with
#   `--appendonly yes --appendfsync everysec`: AOF on (Redis's default is off) with its default
#   fsync policy, one fsync a second; RDB snapshots off (`--save ''`).
#
#   ROTA_BIN=/path/to/rota bash bench/peers/bullmq-latency/run.sh [RUNS]
#
# Environment: RATE (1000 tasks/s), SECS (10 measured seconds, after 1 of warm-up); MAX_LOAD and
# MAX_WAIT (seconds): before the first run, wait up to MAX_WAIT for the 1-minute load average to
# drop below MAX_LOAD (default: no wait).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
runs="${1:-3}"
rate="${RATE:-1000}"
secs="${SECS:-10}"

command -v redis-server >/dev/null 2>&1 || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
}
source "$here/../common.sh"
find_rota
(cd "$here" && npm ci --no-audit --no-fund --silent)

work="$(mktemp -d)"
redis_pid=""
cleanup() {
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

wait_for_quiet

rota_run() {
  local l out
  l="$(load1)"
  out="$("$ROTA_BIN" bench --mode latency --quiet --rate "$rate" --latency-secs "$secs" 2>&1)" \
    || { echo "$out" >&2; return 1; }
  echo "$out" | awk -v load="$l" '
    /latency: tasks sent per second/ { rate = $(NF-1) }
    /latency: tasks measured/ { count = $(NF-1) }
    /enqueue->start p50/ { p50 = $(NF-1) }
    /enqueue->start p99/ { p99 = $(NF-1) }
    /enqueue->start max/ { max = $(NF-1) }
    END { printf "{\"system\":\"rota\",\"rate\":%s,\"count\":%d,\"p50_ms\":%s,\"p90_ms\":null,\"p99_ms\":%s,\"max_ms\":%s,\"load\":%s}\n", rate, count, p50, p99, max, load }'
}

bullmq_run() {
  local i="$1" port l
  port="$(free_port)"
  mkdir -p "$work/redis-$i"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$work/redis-$i" --appendonly yes \
    --appendfsync everysec --save '' --daemonize no --logfile "$work/redis-$i/log" >/dev/null &
  redis_pid=$!
  for _ in $(seq 1 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  l="$(load1)"
  node "$here/latency.mjs" --redis-port "$port" --rate "$rate" --secs "$secs" --json \
    | node -e 'const r = JSON.parse(require("fs").readFileSync(0, "utf8")); r.load = Number(process.argv[1]); console.log(JSON.stringify(r))' "$l"
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  wait "$redis_pid" 2>/dev/null || true
  redis_pid=""
}

echo "rota: $("$ROTA_BIN" --version 2>/dev/null || echo "$ROTA_BIN"); $(redis-server --version | cut -d' ' -f1-3);" \
  "bullmq $(node -p 'require("'"$here"'/node_modules/bullmq/package.json").version'); node $(node --version);" \
  "$(nproc) cores; $rate tasks/s, $secs s measured; $(date -u +%FT%TZ)"
echo "uptime at start: $(uptime)"
results="$work/results"
for i in $(seq 1 "$runs"); do
  rota_run >>"$results"
  bullmq_run "$i" >>"$results"
done
echo "uptime at end:   $(uptime)"
node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
  const f = (v) => (v === null || v === undefined || Number.isNaN(v) ? "-" : String(v));
  const cols = ["rate", "count", "p50_ms", "p90_ms", "p99_ms", "max_ms", "load"];
  console.log(`| run | system | sent/s | measured | p50 ms | p90 ms | p99 ms | max ms | load (1 min) |`);
  console.log(`|---|---|---|---|---|---|---|---|---|`);
  const seen = {};
  for (const l of lines) {
    seen[l.system] = (seen[l.system] || 0) + 1;
    console.log(`| ${seen[l.system]} | ${l.system} | ${cols.map((c) => f(l[c])).join(" | ")} |`);
  }
  const median = (xs) => {
    xs = xs.filter((x) => x !== null && x !== undefined).sort((a, b) => a - b);
    if (!xs.length) return null;
    const m = Math.floor(xs.length / 2);
    return xs.length % 2 ? xs[m] : Number(((xs[m - 1] + xs[m]) / 2).toFixed(2));
  };
  const med = {};
  for (const system of ["rota", "bullmq"]) {
    const ls = lines.filter((l) => l.system === system);
    med[system] = Object.fromEntries(cols.map((c) => [c, median(ls.map((l) => l[c]))]));
    console.log(`| **median** | **${system}** | ${cols.map((c) => f(med[system][c])).join(" | ")} |`);
  }
  const p50 = med.rota.p50_ms < med.bullmq.p50_ms, p99 = med.rota.p99_ms < 3;
  console.log(`\nissue 23: rota p50 ${med.rota.p50_ms} ms ${p50 ? "<" : ">="} bullmq p50 ${med.bullmq.p50_ms} ms (${p50 ? "met" : "not met"});` +
    ` rota p99 ${med.rota.p99_ms} ms ${p99 ? "<" : ">="} 3 ms (${p99 ? "met" : "not met"})`);
' "$results"
