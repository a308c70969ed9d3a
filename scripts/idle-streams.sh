#!/usr/bin/env bash
# What idle event streams of one tenant cost another: starts `rota serve` from BIN on a fresh
# data directory, opens STREAMS idle event streams (curl) in tenant `idle`, and runs
# `rota bench --mode single` (enqueue, claim, complete: three commits that log events per
# cycle) as tenant `busy`, with no streams open and then with them. Prints both rates.
#
#     scripts/idle-streams.sh target/release/rota 100 20000
#
# Compare two builds back to back on the same machine (the ratio is what carries over).
set -euo pipefail
BIN=$(realpath "$1")
STREAMS=${2:-100}
CYCLES=${3:-20000}
ADMIN=bench-admin-token-0123456789abcdef0123456789
PORT=$((20000 + RANDOM % 20000))
URL=http://127.0.0.1:$PORT
DIR=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

ROTA_ADMIN_TOKEN=$ADMIN "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$DIR/data" \
  >"$DIR/serve.log" 2>&1 &
PIDS+=($!)
until curl -sf "$URL/readyz" >/dev/null; do sleep 0.1; done

api() { curl -sf -H "Authorization: Bearer $ADMIN" -H 'content-type: application/json' "$@"; }
key() { # tenant, roles (JSON) -> token
  api -X POST -H "rota-tenant: $1" "$URL/v1/keys" -d "{\"roles\": $2}" |
    sed -E 's/.*"token":"([^"]+)".*/\1/'
}
api -X POST "$URL/v1/admin/tenants" -d '{"name": "idle"}' >/dev/null
api -X POST "$URL/v1/admin/tenants" -d '{"name": "busy"}' >/dev/null
IDLE=$(key idle '["reader"]')
BUSY=$(key busy '["producer", "worker"]')

rate() {
  "$BIN" bench --mode single --url "$URL" --token "$BUSY" --cycles "$CYCLES" --clients 16 \
    --quiet 2>/dev/null | awk '/single: enqueue\+claim\+complete cycles/ {print $(NF-1)}'
}

echo "no streams:        $(rate) cycles/s"
for _ in $(seq "$STREAMS"); do
  curl -sN -H "Authorization: Bearer $IDLE" "$URL/v1/events/stream" >/dev/null &
  PIDS+=($!)
done
sleep 1
echo "$STREAMS idle streams: $(rate) cycles/s"
