# Shared helpers for the benchmark scripts (sourced, not run).
# Everything listens on 127.0.0.1; every process started here is killed by
# `cleanup` (registered as an EXIT trap by the caller).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# TIDINGS_BIN: measure a given binary (e.g. an older build) instead of building.
BIN=${TIDINGS_BIN:-$TARGET_DIR/release/tidings}
PG_ADMIN_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PIDS=()
PG_DBS=()
WORKDIR=$(mktemp -d /tmp/tidings-bench.XXXXXX)
chmod 755 "$WORKDIR"

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

cleanup() {
  [ -n "${KEEP_LOGS:-}" ] && cp "$WORKDIR"/*.log "$KEEP_LOGS"/ 2>/dev/null
  set +e
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
  done
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && wait "$pid" 2>/dev/null
  done
  # new_pg_db usually runs in $(...), a subshell: its names are in a file.
  for db in "${PG_DBS[@]:-}" $(cat "$WORKDIR/pg_dbs" 2>/dev/null); do
    [ -n "$db" ] && psql "$PG_ADMIN_URL" -qtAc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  done
  rm -rf "$WORKDIR"
}

# Installs wrk / smtp-sink / smtp-source when missing (Debian). The postfix
# daemon itself is never started: only its test tools are used.
ensure_tools() {
  local missing=()
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
  command -v smtp-sink >/dev/null 2>&1 || missing+=(postfix)
  command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
  command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v jq >/dev/null 2>&1 || missing+=(jq)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

build_release() {
  [ -n "${TIDINGS_BIN:-}" ] && return 0
  log "cargo build --release (target dir $TARGET_DIR)"
  (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --quiet)
}

# A free TCP port on loopback (bound once by the kernel, then released).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Waits (bounded) until something accepts on 127.0.0.1:$1.
wait_port() {
  local port=$1 i
  for i in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  log "nothing listens on port $port"; return 1
}

# smtp-sink on a free port; sets SINK_PORT and SINK_PID.
start_sink() {
  SINK_PORT=$(free_port)
  # -u nobody: smtp-sink refuses to run as root otherwise. Backlog 256.
  smtp-sink -u nobody 127.0.0.1:"$SINK_PORT" 256 &
  SINK_PID=$!
  PIDS+=("$SINK_PID")
  wait_port "$SINK_PORT"
}

# Creates a fresh PostgreSQL database; prints its URL.
new_pg_db() {
  local name=$1
  psql "$PG_ADMIN_URL" -qtAc "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null
  psql "$PG_ADMIN_URL" -qtAc "CREATE DATABASE $name" >/dev/null
  PG_DBS+=("$name")
  echo "$name" >>"$WORKDIR/pg_dbs"
  echo "${PG_ADMIN_URL%/*}/$name"
}

drop_pg_db() {
  psql "$PG_ADMIN_URL" -qtAc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null
}

# Runs one SQL statement against a tidings database URL; prints the result.
db_query() {
  local url=$1 sql=$2
  case "$url" in
    postgres://*) psql "$url" -qtAc "$sql" ;;
    sqlite://*) sqlite3 -cmd ".timeout 10000" "${url#sqlite://}" "$sql" ;;
  esac
}

# Starts tidings serve with the given database URL on a free port; sets
# APP_PORT and APP_PID. Extra env comes from the caller's environment.
start_app() {
  local url=$1 log_file=$2
  APP_PORT=$(free_port)
  TIDINGS_LISTEN=127.0.0.1:$APP_PORT \
  TIDINGS_BASE_URL=http://127.0.0.1:$APP_PORT \
  TIDINGS_DATABASE_URL=$url \
  TIDINGS_SMTP_URL="smtp://127.0.0.1:$SINK_PORT?tls=none" \
  TIDINGS_OUTBOX_DIR=$WORKDIR/outbox \
  RUST_LOG=${RUST_LOG:-warn} \
    "$BIN" serve >"$log_file" 2>&1 &
  APP_PID=$!
  PIDS+=("$APP_PID")
  wait_port "$APP_PORT" || { cat "$log_file" >&2; return 1; }
}

stop_app() {
  kill "$APP_PID" 2>/dev/null || true
  wait "$APP_PID" 2>/dev/null || true
}

stop_sink() {
  kill "$SINK_PID" 2>/dev/null || true
  wait "$SINK_PID" 2>/dev/null || true
}

# Jiffies the whole machine spent busy so far (user, nice, system, irq,
# softirq, steal), from /proc/stat.
busy_jiffies() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

# CPU jiffies (user + system, all threads) used so far by the live processes
# named $1 (comm, as ps shows it), e.g. "postgres" for every backend.
comm_jiffies() {
  local name=$1 total=0 f line fields
  for f in /proc/[0-9]*/stat; do
    read -r line <"$f" 2>/dev/null || continue
    [[ $line == *"($name) "* ]] || continue
    # after "(comm) ": state is field 0, utime 11, stime 12
    read -ra fields <<<"${line##*) }"
    total=$(( total + fields[11] + fields[12] ))
  done
  echo "$total"
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# Readers with ids the way Tidings makes them (UUIDv7: a millisecond
# timestamp, then random bits), one millisecond apart.
seed_confirmed() {
  local url=$1 n=$2
  case "$url" in
    postgres://*)
      db_query "$url" "INSERT INTO subscribers (id, email, email_key, name, status, created_at, updated_at, confirmed_at)
        SELECT substr(t, 1, 8) || '-' || substr(t, 9, 4) || '-7' || substr(r, 1, 3) || '-8' || substr(r, 4, 3) || '-' || substr(r, 7, 12),
               'reader' || g || '@bench.example', 'reader' || g || '@bench.example',
               CASE WHEN g % 3 = 0 THEN 'Reader ' || g END, 'confirmed', now(), now(), now()
        FROM generate_series(1, $n) AS g,
             LATERAL (SELECT lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint - $n + g), 12, '0') AS t,
                             md5(g::text || random()::text) AS r) AS id_parts" >/dev/null
      db_query "$url" "VACUUM ANALYZE subscribers" >/dev/null ;;
    sqlite://*)
      db_query "$url" "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < $n)
        INSERT INTO subscribers (id, email, email_key, name, status, created_at, updated_at, confirmed_at)
        SELECT printf('%s-%s-7%s-8%s-%s', substr(t, 1, 8), substr(t, 9, 4), substr(r, 1, 3), substr(r, 4, 3), substr(r, 7, 12)),
               'reader' || i || '@bench.example', 'reader' || i || '@bench.example',
               CASE WHEN i % 3 = 0 THEN 'Reader ' || i END, 'confirmed',
               strftime('%Y-%m-%d %H:%M:%f', 'now'), strftime('%Y-%m-%d %H:%M:%f', 'now'), strftime('%Y-%m-%d %H:%M:%f', 'now')
        FROM (SELECT i, printf('%012x', CAST(strftime('%s', 'now') AS INTEGER) * 1000 - $n + i) AS t,
                     lower(hex(randomblob(10))) AS r FROM g)" >/dev/null ;;
  esac
}
