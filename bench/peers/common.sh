# Sourced by the peer comparisons (bullmq-latency/run.sh, pg-queues/pg.sh and run.sh): what
# they share. Needs $root (the repository).

# ROTA_BIN as given, else target/release/rota, else target/debug/rota; exits when none runs.
find_rota() {
  if [ -z "${ROTA_BIN:-}" ]; then
    for b in "$root/target/release/rota" "$root/target/debug/rota"; do
      [ -x "$b" ] && ROTA_BIN="$b" && break
    done
  fi
  [ -x "${ROTA_BIN:-}" ] || { echo "no rota binary: set ROTA_BIN or cargo build --release -p rota" >&2; exit 1; }
}

# A free TCP port on loopback.
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# The 1-minute load average.
load1() { cut -d' ' -f1 /proc/loadavg; }

# With MAX_LOAD set: waits up to MAX_WAIT seconds (default 600) for the 1-minute load average
# to drop below it.
wait_for_quiet() {
  [ -n "${MAX_LOAD:-}" ] || return 0
  local waited=0
  while awk -v l="$(load1)" -v m="$MAX_LOAD" 'BEGIN { exit !(l >= m) }' && [ "$waited" -lt "${MAX_WAIT:-600}" ]; do
    [ "$waited" -eq 0 ] && echo "load average $(load1) >= $MAX_LOAD: waiting up to ${MAX_WAIT:-600} s" >&2
    sleep 10
    waited=$((waited + 10))
  done
}
