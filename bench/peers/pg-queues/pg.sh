# Sourced by run.sh and profile.sh: finds the rota binary, installs the pinned peers, and starts
# one throwaway PostgreSQL (`synchronous_commit=on fsync=on shared_buffers=512MB
# max_connections=200`, plus PG_EXTRA's options) in a temporary dir on a free loopback port,
# stopped and removed on exit. As root, initdb and postgres run as $pg_user (PostgreSQL refuses
# root). Needs $here, $root, $pg_bin and $pg_user; sets $ROTA_BIN, $work, $port and psql(),
# drop_db().

[ -x "$pg_bin/postgres" ] || { echo "no PostgreSQL in $pg_bin: set PG_BIN" >&2; exit 1; }
source "$here/../common.sh"
find_rota
(cd "$here" && npm ci --no-audit --no-fund --silent)

work="$(mktemp -d)"
pg_started=""
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u "$pg_user" -- "$@"; else "$@"; fi
}
cleanup() {
  [ -n "$pg_started" ] && as_pg "$pg_bin/pg_ctl" -D "$work/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

[ "$(id -u)" -eq 0 ] && chown "$pg_user" "$work"
port="$(free_port)"
as_pg "$pg_bin/initdb" -D "$work/data" -U postgres -A trust -E UTF8 >"$work/initdb.log" 2>&1 \
  || { cat "$work/initdb.log" >&2; exit 1; }
as_pg "$pg_bin/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w -o \
  "-p $port -c listen_addresses=127.0.0.1 -k $work -c synchronous_commit=on -c fsync=on -c shared_buffers=512MB -c max_connections=200 ${PG_EXTRA:-}" \
  start >/dev/null || { cat "$work/postgres.log" >&2; exit 1; }
pg_started=1
psql() { "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"; }
drop_db() { psql -c "DROP DATABASE $1 WITH (FORCE)" >/dev/null; }
