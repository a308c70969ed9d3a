#!/usr/bin/env bash
# The TypeScript worker against BullMQ, side by side: each drains N no-op tasks (default
# 100,000) with concurrency 100, interleaved (rota, bullmq, rota, bullmq, ...), RUNS times
# (default 3); prints each run and the medians. A fresh `rota serve` (ROTA_BIN, else
# target/release/rota, else target/debug/rota) and a fresh Debian redis-server with
# appendonly yes, each on a free port.
#
#   bash clients/typescript/bench/run.sh [N] [RUNS]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
n="${1:-100000}"
runs="${2:-3}"

command -v redis-server >/dev/null 2>&1 || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
}
if [ -z "${ROTA_BIN:-}" ]; then
  for b in "$root/target/release/rota" "$root/target/debug/rota"; do
    [ -x "$b" ] && ROTA_BIN="$b" && break
  done
fi
[ -x "${ROTA_BIN:-}" ] || { echo "no rota binary: set ROTA_BIN or cargo build --release -p rota" >&2; exit 1; }

(cd "$here/.." && npm ci --no-audit --no-fund --silent)
(cd "$here" && npm ci --no-audit --no-fund --silent)

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

rota_port="$(free_port)"
ROTA_LOG=warn "$ROTA_BIN" serve --listen "127.0.0.1:$rota_port" --data-dir "$work/rota" >/dev/null &
pids+=($!)
redis_port="$(free_port)"
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --appendonly yes \
  --save '' --daemonize no --logfile "$work/redis.log" &
pids+=($!)
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$rota_port/healthz" >/dev/null 2>&1 && [ -s "$work/rota/admin-token" ] \
    && redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
token="$(cat "$work/rota/admin-token")"

echo "rota: $("$ROTA_BIN" --version 2>/dev/null || echo "$ROTA_BIN"); $(redis-server --version | cut -d' ' -f1-3);" \
  "bullmq $(node -p 'require("'"$here"'/node_modules/bullmq/package.json").version'); node $(node --version); $(nproc) cores"
results="$work/results"
for i in $(seq 1 "$runs"); do
  node "$here/drain.mjs" rota "http://127.0.0.1:$rota_port" "$token" "bench-$i" "$n" | tee -a "$results"
  node "$here/drain.mjs" bullmq "$redis_port" "bench-$i" "$n" | tee -a "$results"
done
node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
  for (const system of ["rota", "bullmq"]) {
    const s = lines.filter((l) => l.system === system).map((l) => l.seconds).sort((a, b) => a - b);
    const median = s[Math.floor(s.length / 2)];
    console.log(`median ${system}: ${median} s, ${Math.round(lines[0].n / median)} tasks/s`);
  }
' "$results"
