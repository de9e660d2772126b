#!/usr/bin/env bash
# Benchmark of issue #3: POST /subscriptions under load, on PostgreSQL and on
# SQLite, with the confirmation mail flowing into smtp-sink meanwhile.
#
#   bash bench/signup.sh            # both backends, RUNS=3 runs each
#   RUNS=1 BACKENDS=pg bash bench/signup.sh
#   HONEYPOT=1 RUNS=1 BACKENDS=pg bash bench/signup.sh   # HTTP alone
#
# Knobs: RUNS (3), DURATION (20s), CONNS (32), THREADS (2), BACKENDS
# ("pg sqlite"), RUST_LOG (warn), BENCH_PG_URL (postgres://postgres@127.0.0.1:5432/postgres).
# Bounded: each run is DURATION of wrk plus at most DRAIN_MAX (120) seconds
# of waiting for the outbox to drain.
source "$(dirname "$0")/lib.sh"
trap cleanup EXIT

RUNS=${RUNS:-3}
DURATION=${DURATION:-20s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
BACKENDS=${BACKENDS:-pg sqlite}
DRAIN_MAX=${DRAIN_MAX:-120}

ensure_tools
build_release

# Seconds until no outbox row is queued or in flight (bounded by DRAIN_MAX).
drain_time() {
  local url=$1 start now left
  start=$(date +%s.%N)
  while :; do
    left=$(db_query "$url" "SELECT count(*) FROM outbox WHERE status IN ('queued','sending')")
    now=$(date +%s.%N)
    if [ "$left" = 0 ]; then
      echo "$now - $start" | bc -l | xargs printf '%.1f'
      return
    fi
    if [ "$(echo "$now - $start > $DRAIN_MAX" | bc -l)" = 1 ]; then
      echo "none(${left}_left_after_${DRAIN_MAX}s)"
      return
    fi
    sleep 0.2
  done
}

RESULTS=$WORKDIR/results.txt
: >"$RESULTS"
for backend in $BACKENDS; do
  for run in $(seq 1 "$RUNS"); do
    case $backend in
      pg) url=$(new_pg_db "tidings_bench_signup_$$") ;;
      sqlite) rm -f "$WORKDIR"/signup.db*; url="sqlite://$WORKDIR/signup.db" ;;
      *) echo "unknown backend $backend" >&2; exit 2 ;;
    esac
    start_sink
    TIDINGS_SIGNUP_RATE_PER_MINUTE=0 start_app "$url" "$WORKDIR/app-$backend-$run.log"
    log "$backend run $run: wrk -t$THREADS -c$CONNS -d$DURATION on port $APP_PORT"
    busy_before=$(busy_jiffies)
    # The process is named after the binary (TIDINGS_BIN may be a copy),
    # cut to the kernel's 15 characters.
    app_comm=$(basename "$BIN" | cut -c1-15)
    app_before=$(comm_jiffies "$app_comm")
    pg_before=$(comm_jiffies postgres)
    sink_before=$(comm_jiffies smtp-sink)
    TIMEFORMAT='%U %S'
    { time timeout 120 wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency \
      -s "$ROOT/bench/signup.lua" "http://127.0.0.1:$APP_PORT/subscriptions" \
      >"$WORKDIR/wrk.out"; } 2>"$WORKDIR/wrk.time"
    out=$(cat "$WORKDIR/wrk.out")
    drained=$(drain_time "$url")
    # Machine CPU (all processes: wrk, Tidings, the database, smtp-sink) per
    # signup, from the run's start until the outbox drained: steadier than
    # req/s on a box whose speed drifts, and comparable across builds. Then
    # the same split by process ("other" is the kernel's own threads and
    # whatever else ran).
    busy=$(( $(busy_jiffies) - busy_before ))
    requests=$(grep -o 'requests=[0-9]*' <<<"$out" | cut -d= -f2)
    per_req() { echo "($1) * 1000000 / $(getconf CLK_TCK) / $requests" | bc; }
    cpu_us=$(per_req "$busy")
    app_us=$(per_req "$(comm_jiffies "$app_comm") - $app_before")
    pg_us=$(per_req "$(comm_jiffies postgres) - $pg_before")
    sink_us=$(per_req "$(comm_jiffies smtp-sink) - $sink_before")
    wrk_us=$(echo "($(tr ' ' + <"$WORKDIR/wrk.time")) * 1000000 / $requests" | bc)
    other_us=$(( cpu_us - app_us - pg_us - sink_us - wrk_us ))
    rss=$(awk '/VmHWM/ {print $2}' "/proc/$APP_PID/status")
    sent=$(db_query "$url" "SELECT count(*) FROM outbox WHERE status = 'sent'")
    line=$(grep '^RESULT' <<<"$out")
    split="app_us=$app_us db_us=$pg_us sink_us=$sink_us wrk_us=$wrk_us other_us=$other_us"
    log "$line drain=${drained}s sent=$sent vmhwm_kb=$rss cpu_us=$cpu_us $split"
    echo "$backend $run $line drain=$drained sent=$sent vmhwm_kb=$rss cpu_us=$cpu_us $split" >>"$RESULTS"
    stop_app
    stop_sink
    [ "$backend" = pg ] && drop_pg_db "tidings_bench_signup_$$"
  done
done

field() { grep -o "$1=[^ ]*" | cut -d= -f2; }
echo
echo "POST /subscriptions, wrk -t$THREADS -c$CONNS -d$DURATION, $RUNS run(s) per backend (medians)"
printf '%-8s %10s %9s %9s %8s %12s %10s %9s %11s\n' backend "req/s" "p50 ms" "p99 ms" non-2xx "drain s" "mails sent" "RSS MB" "CPU us/req"
for backend in $BACKENDS; do
  rows=$(grep "^$backend " "$RESULTS")
  printf '%-8s %10s %9s %9s %8s %12s %10s %9s %11s\n' "$backend" \
    "$(field rps <<<"$rows" | median)" \
    "$(field p50_ms <<<"$rows" | median)" \
    "$(field p99_ms <<<"$rows" | median)" \
    "$(field non2xx <<<"$rows" | median)" \
    "$(field drain <<<"$rows" | grep -E '^[0-9.]+$' | median)" \
    "$(field sent <<<"$rows" | median)" \
    "$(( $(field vmhwm_kb <<<"$rows" | median | cut -d. -f1) / 1024 ))" \
    "$(field cpu_us <<<"$rows" | median)"
done
echo
echo "CPU per signup by process, us (medians)"
printf '%-8s %8s %8s %10s %8s %8s\n' backend tidings database smtp-sink wrk other
for backend in $BACKENDS; do
  rows=$(grep "^$backend " "$RESULTS")
  printf '%-8s %8s %8s %10s %8s %8s\n' "$backend" \
    "$(field app_us <<<"$rows" | median)" \
    "$(field db_us <<<"$rows" | median)" \
    "$(field sink_us <<<"$rows" | median)" \
    "$(field wrk_us <<<"$rows" | median)" \
    "$(field other_us <<<"$rows" | median)"
done
echo
echo "all runs:"
cat "$RESULTS"
