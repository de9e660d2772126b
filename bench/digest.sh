#!/usr/bin/env bash
# Benchmark of issues #4 and #17: one digest to many confirmed readers, into
# smtp-sink on loopback, beside the raw rate of smtp-source into the same
# sink. Prints the fan-out (POST /api/digests) time, the WAL written by the
# fan-out and by the whole send (PostgreSQL; WAL is per cluster, so run it on
# a quiet one), the database growth per digest, emails/s and VmHWM.
#
#   BACKENDS=pg PG_READERS=10000000 SEND_MAX=3600 bash bench/digest.sh   # issue #17's run
#   BACKENDS=sqlite SQLITE_READERS=1000000 bash bench/digest.sh
#
#   bash bench/digest.sh                  # SQLite 100,000 and PostgreSQL 1,000,000 readers
#   RUNS=3 bash bench/digest.sh
#   BACKENDS=pg PG_READERS=200000 bash bench/digest.sh
#
# Knobs: RUNS (1), BACKENDS ("sqlite pg"), SQLITE_READERS (100000),
# PG_READERS (1000000), CONCURRENCY (TIDINGS_SEND_CONCURRENCY, 8),
# SEND_MAX (900: seconds a send may take before the run is abandoned).
source "$(dirname "$0")/lib.sh"
trap cleanup EXIT

RUNS=${RUNS:-1}
BACKENDS=${BACKENDS:-sqlite pg}
SQLITE_READERS=${SQLITE_READERS:-100000}
PG_READERS=${PG_READERS:-1000000}
CONCURRENCY=${CONCURRENCY:-8}
SEND_MAX=${SEND_MAX:-900}

ensure_tools
build_release


# Bytes the sink has read so far (SMTP commands and message data).
sink_bytes() { awk '/^rchar/ {print $2}' "/proc/$SINK_PID/io"; }
# The cluster's WAL position in bytes (0 on SQLite).
wal_at() {
  case "$1" in
    postgres://*) db_query "$1" "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint" ;;
    *) echo 0 ;;
  esac
}
# The database's size in bytes.
db_bytes() {
  case "$1" in
    postgres://*) db_query "$1" "SELECT pg_database_size(current_database())" ;;
    sqlite://*) local f=${1#sqlite://}; { cat "$f"; cat "$f-wal" 2>/dev/null || true; } | wc -c ;;
  esac
}

# CPU time (user + system, clock ticks) a process has used.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# CPU time of the PostgreSQL sessions on the database (0 on SQLite: its
# work is in the app's own time). Sessions that ended are not counted.
db_cpu_ticks() {
  case "$1" in
    postgres://*)
      local total=0 pid
      for pid in $(db_query "$1" "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"); do
        total=$((total + $(cpu_ticks "$pid")))
      done
      echo "$total" ;;
    *) echo 0 ;;
  esac
}
# Microseconds of CPU per email from two tick counts.
us_per() { local n=$3; [ "$n" -gt 0 ] || n=1; echo $(( ($2 - $1) * 1000000 / $(getconf CLK_TCK) / n )); }

# The mean of a delivery histogram in the last scrape of /metrics, times $2.
mean_of() {
  awk -v h="tidings_$1" -v k="$2" '
    index($0, h "_sum{worker=\"delivery\"}") == 1 { s = $2 }
    index($0, h "_count{worker=\"delivery\"}") == 1 { c = $2 }
    END { if (c > 0) printf "%.2f", s / c * k; else print "-" }' <<<"$metrics"
}

RESULTS=$WORKDIR/results.txt
: >"$RESULTS"
for backend in $BACKENDS; do
  for run in $(seq 1 "$RUNS"); do
    case $backend in
      pg) n=$PG_READERS; url=$(new_pg_db "tidings_bench_digest_$$") ;;
      sqlite) n=$SQLITE_READERS; rm -f "$WORKDIR"/digest.db*; url="sqlite://$WORKDIR/digest.db" ;;
      *) echo "unknown backend $backend" >&2; exit 2 ;;
    esac
    start_sink
    export TIDINGS_SEND_CONCURRENCY=$CONCURRENCY
    start_app "$url" "$WORKDIR/app-$backend-$run.log"
    log "$backend run $run: seeding $n confirmed readers"
    t0=$(date +%s.%N); seed_confirmed "$url" "$n"
    log "seeded in $(echo "$(date +%s.%N) - $t0" | bc -l | xargs printf '%.1f') s"
    token=$(TIDINGS_DATABASE_URL=$url RUST_LOG=warn "$BIN" token create bench | tail -n1)
    api="http://127.0.0.1:$APP_PORT/api"
    curl -fsS -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
      -d '{"url":"https://news.example/2026/bench-story","title":"A story worth a benchmark","summary":"What happened, why it matters, and what comes next: a summary of about the length a news site writes."}' \
      "$api/articles"
    bytes0=$(sink_bytes); app_cpu0=$(cpu_ticks "$APP_PID"); sink_cpu0=$(cpu_ticks "$SINK_PID"); db_cpu0=$(db_cpu_ticks "$url")
    db0=$(db_bytes "$url"); wal0=$(wal_at "$url")
    post=$(curl -fsS -m 600 -w ' %{time_total}' -H "Authorization: Bearer $token" -X POST "$api/digests")
    t_start=$(date +%s.%N)
    wal1=$(wal_at "$url")
    fanout=$(awk '{print $NF}' <<<"$post")
    id=$(sed 's/ [0-9.]*$//' <<<"$post" | jq -r .id)
    log "digest $id composed for $(sed 's/ [0-9.]*$//' <<<"$post" | jq -r .recipients) readers in ${fanout}s; sending"
    status=sending
    while [ "$status" != sent ]; do
      sleep "${POLL:-2}"
      status=$(curl -fsS -m 30 -H "Authorization: Bearer $token" "$api/digests/$id" | jq -r .status)
      if [ "$(echo "$(date +%s.%N) - $t_start > $SEND_MAX" | bc -l)" = 1 ]; then
        log "gave up after ${SEND_MAX}s"; break
      fi
    done
    t_end=$(date +%s.%N)
    wal2=$(wal_at "$url"); db1=$(db_bytes "$url")
    progress=$(curl -fsS -H "Authorization: Bearer $token" "$api/digests/$id")
    sent=$(jq -r .sent <<<"$progress")
    secs=$(echo "$t_end - $t_start" | bc -l)
    rate=$(echo "$sent / $secs" | bc -l | xargs printf '%.0f')
    rss=$(awk '/VmHWM/ {print $2}' "/proc/$APP_PID/status")
    size=$(( ($(sink_bytes) - bytes0) / (sent > 0 ? sent : 1) ))
    metrics=$(curl -fsS "http://127.0.0.1:$APP_PORT/metrics")
    echo "$metrics" >"$WORKDIR/metrics-$backend-$run.log"
    app_cpu=$(cpu_ticks "$APP_PID"); sink_cpu=$(cpu_ticks "$SINK_PID"); db_cpu=$(db_cpu_ticks "$url")
    stop_app
    # Physical limit: smtp-source, same sink, same concurrency, same size,
    # reusing connections (-d) as Tidings does; min(n, 200000) messages.
    m=$(( n < 200000 ? n : 200000 ))
    payload=$(( size > 600 ? size - 600 : size ))  # -l excludes headers (~600 bytes of ours)
    r0=$(date +%s.%N)
    timeout 300 smtp-source -d -s "$CONCURRENCY" -m "$m" -l "$payload" \
      -f newsletter@localhost -t reader@bench.example 127.0.0.1:"$SINK_PORT"
    raw=$(echo "$m / ($(date +%s.%N) - $r0)" | bc -l | xargs printf '%.0f')
    stop_sink
    line="$backend $run readers=$n fanout_s=$fanout send_s=$(printf '%.1f' "$secs") sent=$sent failed=$(jq -r .failed <<<"$progress") status=$status rate=$rate raw=$raw ratio=$(echo "$rate / $raw" | bc -l | xargs printf '%.2f') vmhwm_mb=$((rss / 1024)) msg_bytes=$size fanout_wal_mb=$(( (wal1 - wal0) / 1048576 )) send_wal_mb=$(( (wal2 - wal0) / 1048576 )) db_growth_mb=$(( (db1 - db0) / 1048576 )) send_ms=$(mean_of send_seconds 1000) commit_ms=$(mean_of settle_seconds 1000) wait_ms=$(mean_of settle_wait_seconds 1000) per_commit=$(mean_of settle_size 1) app_cpu_us=$(us_per "$app_cpu0" "$app_cpu" "$sent") db_cpu_us=$(us_per "$db_cpu0" "$db_cpu" "$sent") sink_cpu_us=$(us_per "$sink_cpu0" "$sink_cpu" "$sent")"
    log "$line"
    echo "$line" >>"$RESULTS"
    [ "$backend" = pg ] && drop_pg_db "tidings_bench_digest_$$"
  done
done

field() { grep -o " $1=[^ ]*" | cut -d= -f2; }
echo
echo "Digest fan-out and delivery into smtp-sink, send_concurrency=$CONCURRENCY, $RUNS run(s) per backend (medians)"
printf '%-8s %9s %10s %9s %10s %10s %8s %8s %10s %10s %10s %10s\n' backend readers "fan-out s" "send s" "emails/s" "raw msg/s" "ratio" "RSS MB" "msg bytes" "fanout WAL" "send WAL" "db growth"
for backend in $BACKENDS; do
  rows=$(grep "^$backend " "$RESULTS")
  printf '%-8s %9s %10s %9s %10s %10s %8s %8s %10s %10s %10s %10s\n' "$backend" \
    "$(field readers <<<"$rows" | median)" "$(field fanout_s <<<"$rows" | median)" \
    "$(field send_s <<<"$rows" | median)" "$(field rate <<<"$rows" | median)" \
    "$(field raw <<<"$rows" | median)" "$(field ratio <<<"$rows" | median)" \
    "$(field vmhwm_mb <<<"$rows" | median)" "$(field msg_bytes <<<"$rows" | median)" \
    "$(field fanout_wal_mb <<<"$rows" | median)" "$(field send_wal_mb <<<"$rows" | median)" \
    "$(field db_growth_mb <<<"$rows" | median)"
done
echo
echo "all runs:"
cat "$RESULTS"
