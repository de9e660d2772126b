#!/usr/bin/env bash
# Login flood memory: the release build's peak resident size (VmHWM, from
# /proc/PID/status) once started and after LOGINS concurrent wrong admin
# logins, each from its own address (X-Forwarded-For from a trusted proxy,
# so neither throttle stops them: every attempt costs an argon2 check).
# Half try the real admin's name, half unknown names (a dummy hash).
# No allocator settings are passed: this is what ops get.
#
#   bash bench/login_memory.sh                     # 200 logins, SQLite and PostgreSQL
#   LOGINS=50 BACKENDS=sqlite bash bench/login_memory.sh
#   TIDINGS_BIN=/tmp/old/tidings bash bench/login_memory.sh   # an older build
#
# Needs curl (7.66+, for --parallel), and psql for the PostgreSQL run.
source "$(dirname "$0")/lib.sh"
trap cleanup EXIT

LOGINS=${LOGINS:-200}
BACKENDS=${BACKENDS:-sqlite postgres}
unset MALLOC_ARENA_MAX MALLOC_TRIM_THRESHOLD_ MALLOC_MMAP_THRESHOLD_ MALLOC_TOP_PAD_ \
  GLIBC_TUNABLES LD_PRELOAD

build_release

# A kB field of /proc/PID/status: status_kb PID VmHWM.
status_kb() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }

# Writes a curl config with one POST per attempt, each with its own
# address, login cookie and CSRF token (read from its own GET of the form).
# The cookie goes as a header: parallel transfers share one cookie store.
login_posts() {
  local port=$1 cfg=$2 i ip jar token name
  : >"$cfg"
  for i in $(seq 1 "$LOGINS"); do
    ip="10.$((i / 65536 % 256)).$((i / 256 % 256)).$((i % 256))"
    jar=$WORKDIR/jar.$i
    token=$(curl -sf -c "$jar" -H "X-Forwarded-For: $ip" "http://127.0.0.1:$port/admin/login" |
      sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' | head -1)
    name=editor
    if (( i % 2 )); then name=nobody$i; fi
    if (( i > 1 )); then echo next >>"$cfg"; fi
    cat >>"$cfg" <<EOF
url = "http://127.0.0.1:$port/admin/login"
header = "X-Forwarded-For: $ip"
header = "Cookie: tidings_login=$(awk '$6 == "tidings_login" {print $7}' "$jar")"
data = "name=$name&password=not+the+password&csrf_token=$token"
output = "/dev/null"
write-out = "%{http_code}\n"
EOF
  done
}

run() {
  local backend=$1 url port pid before after files start secs codes
  case $backend in
    sqlite) url=sqlite://$WORKDIR/login.db ;;
    postgres) url=$(new_pg_db tidings_bench_login) ;;
    *) log "unknown backend $backend"; return 1 ;;
  esac
  port=$(free_port)
  export TIDINGS_DATABASE_URL=$url TIDINGS_LISTEN=127.0.0.1:$port \
    TIDINGS_BASE_URL=http://127.0.0.1:$port TIDINGS_OUTBOX_DIR=$WORKDIR/outbox \
    TIDINGS_TRUSTED_PROXIES=127.0.0.1 RUST_LOG=${RUST_LOG:-error}
  TIDINGS_ADMIN_PASSWORD='correct horse battery staple' "$BIN" admin create editor >/dev/null
  "$BIN" serve >"$WORKDIR/$backend.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_port "$port"
  before=$(status_kb "$pid" VmHWM)
  login_posts "$port" "$WORKDIR/posts.cfg"
  start=$(date +%s.%N)
  codes=$(curl -s --parallel --parallel-immediate --parallel-max "$LOGINS" -K "$WORKDIR/posts.cfg" 2>/dev/null |
    sort | uniq -c | awk '{printf "%s%s×%s", sep, $2, $1; sep=", "}')
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  after=$(status_kb "$pid" VmHWM)
  files=$(status_kb "$pid" RssFile)
  printf '%-8s %d concurrent logins: VmHWM %d MB started, %d MB after, %d MB of it mapped files (answers %s, %.1f s)\n' \
    "$backend" "$LOGINS" $((before / 1024)) $((after / 1024)) $((files / 1024)) "$codes" "$secs"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

for backend in $BACKENDS; do
  run "$backend"
done
