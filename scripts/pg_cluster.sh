# A throwaway PostgreSQL cluster on 127.0.0.1 for the test run. Source it, then `pg_cluster_start` (exports
# EMA_TEST_PG_URL) and `pg_cluster_stop` (stops it and removes its directory; test.sh calls it from a trap).
# Installs Debian's `postgresql` when no initdb is found. As root, the cluster runs as the `postgres` user (or
# `nobody`), since PostgreSQL refuses to run as root.

pg_bin_dir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

pg_cluster_start() {
  local bin
  if ! bin=$(pg_bin_dir); then
    echo "installing: postgresql" >&2
    local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
    bin=$(pg_bin_dir) || { echo "PostgreSQL did not install" >&2; return 1; }
  fi
  PG_TEST_DIR=$(mktemp -d /tmp/ema-pg.XXXXXX)
  chmod 755 "$PG_TEST_DIR"
  local as=()
  if [ "$(id -u)" -eq 0 ]; then
    local user=postgres
    id "$user" >/dev/null 2>&1 || user=nobody
    chown "$user" "$PG_TEST_DIR"
    as=(runuser -u "$user" --)
  fi
  # A free port: ask the kernel for one.
  PG_TEST_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  PG_TEST_AS=("${as[@]}")
  PG_TEST_BIN=$bin
  "${as[@]}" "$bin/initdb" -D "$PG_TEST_DIR/data" -U ema --auth=trust -E UTF8 >"$PG_TEST_DIR/initdb.log" 2>&1 ||
    { cat "$PG_TEST_DIR/initdb.log" >&2; return 1; }
  "${as[@]}" "$bin/pg_ctl" -D "$PG_TEST_DIR/data" -l "$PG_TEST_DIR/server.log" -w -t 30 \
    -o "-h 127.0.0.1 -p $PG_TEST_PORT -k $PG_TEST_DIR -c fsync=off -c max_connections=200" start >/dev/null ||
    { cat "$PG_TEST_DIR/server.log" >&2; return 1; }
  "${as[@]}" "$bin/createdb" -h 127.0.0.1 -p "$PG_TEST_PORT" -U ema ema_test
  # The password is ignored (trust on loopback) but present, so the tests prove it never shows.
  export EMA_TEST_PG_URL="postgresql://ema:test-secret-pw@127.0.0.1:$PG_TEST_PORT/ema_test"
  echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_TEST_PORT (database ema_test)" >&2
}

pg_cluster_stop() {
  [ -n "${PG_TEST_DIR:-}" ] || return 0
  "${PG_TEST_AS[@]}" "$PG_TEST_BIN/pg_ctl" -D "$PG_TEST_DIR/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  rm -rf "$PG_TEST_DIR"
  PG_TEST_DIR=""
}
