#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster for the registry tests and print its connection URL.
#
#   export LINE_STATION_TEST_PG_URL=$(bash scripts/pg-test.sh)      # start (idempotent)
#   bash scripts/pg-test.sh stop                                    # stop and delete it
#
# The cluster lives in $LS_PG_DIR (default /tmp/line-station-pg), listens on 127.0.0.1:$LS_PG_PORT
# (default 55432) with trust authentication for local connections only, and is owned by a non-root user
# (postgres refuses to run as root: when run as root the cluster is created as the "postgres" user).
set -euo pipefail
DIR="${LS_PG_DIR:-/tmp/line-station-pg}"
PORT="${LS_PG_PORT:-55432}"
BIN="${LS_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}"
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
  echo "pg-test.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2
  exit 1
fi
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ "${1:-start}" = stop ]; then
  [ -d "$DIR/data" ] && as_owner "$BIN/pg_ctl" -D "$DIR/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
  exit 0
fi
if [ ! -f "$DIR/data/PG_VERSION" ]; then
  mkdir -p "$DIR"
  [ "$(id -u)" = 0 ] && chown postgres: "$DIR"
  as_owner "$BIN/initdb" -D "$DIR/data" -U postgres -A trust --no-sync -E UTF8 >"$DIR/initdb.log" 2>&1
fi
if ! as_owner "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
  as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 30 \
    -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=200" \
    start >/dev/null
fi
echo "postgres://postgres@127.0.0.1:$PORT/postgres"
