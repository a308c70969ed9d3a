#!/usr/bin/env bash
# The Python worker against Celery, Dramatiq and RQ on Redis: drains N no-op tasks with each,
# interleaved, median of 3 rounds. Usage: bench/run.sh [--tasks N] [--rounds R] [--only PREFIXES]
# Redis: Debian's redis-server on a free loopback port, appendonly yes + appendfsync everysec
# (each write reaches the disk within a second). Rota: `rota serve` on its embedded store
# with its default durability. ROTA_BIN names the server binary (default target/debug/rota).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"

if ! command -v redis-server >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
fi
rota_bin="${ROTA_BIN:-$repo/target/debug/rota}"
[ -x "$rota_bin" ] || (cd "$repo" && cargo build --quiet -p rota)

venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
"$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "$here/.."

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

redis_port="$(free_port)"
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --appendonly yes \
  --appendfsync everysec --save "" --daemonize no >"$work/redis.log" 2>&1 &
pids+=($!)
rota_port="$(free_port)"
ROTA_LOG=warn "$rota_bin" serve --listen "127.0.0.1:$rota_port" --data-dir "$work/rota" >"$work/rota.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$rota_port/healthz" >/dev/null 2>&1 && redis-cli -p "$redis_port" ping >/dev/null 2>&1; then
    break
  fi
  sleep 0.1
done

export REDIS_URL="redis://127.0.0.1:$redis_port/0"
export BENCH_DONE_KEY="bench:done"
export ROTA_URL="http://127.0.0.1:$rota_port"
export ROTA_TOKEN="$(cat "$work/rota/admin-token")"
cd "$here"
"$venv/bin/python" drain.py "$@"
