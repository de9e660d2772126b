#!/usr/bin/env bash
# What the signup benchmark's other processes cost per signup, measured
# without Tidings: the floor under bench/signup.sh's "CPU us/req" that no
# change to Tidings can go below.
#
#   bash bench/signup_floor.sh
#   RUNS=3 GROUPS_="16 32" bash bench/signup_floor.sh
#
# - PostgreSQL: pgbench runs bench/signup_group.sql (the signup group
#   statement and the settle of its emails) from 2 clients for DURATION
#   seconds on a fresh migrated database; CPU is the whole machine's busy
#   time less pgbench's own, per signup. Groups can hold at most as many
#   signups as there are requests in flight: 32 with bench/signup.sh's
#   32 connections is the best case.
# - smtp-sink: smtp-source sends MESSAGES messages of the confirmation
#   email's size over 8 reused connections; CPU is smtp-sink's own.
# - wrk: its CPU per request comes from bench/signup.sh (it depends on the
#   answers it parses), not from here.
source "$(dirname "$0")/lib.sh"
trap cleanup EXIT

RUNS=${RUNS:-3}
GROUPS_=${GROUPS_:-16 32}
DURATION=${DURATION:-15}
MESSAGES=${MESSAGES:-40000}

ensure_tools
command -v pgbench >/dev/null 2>&1 || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-contrib >/dev/null
}
build_release

TIMEFORMAT='%U %S'
RESULTS=$WORKDIR/results.txt
: >"$RESULTS"
for group in $GROUPS_; do
  for run in $(seq 1 "$RUNS"); do
    url=$(new_pg_db "tidings_bench_floor_$$")
    TIDINGS_DATABASE_URL=$url "$BIN" migrate >/dev/null
    before=$(busy_jiffies)
    { time pgbench -n -c 2 -j 2 -T "$DURATION" -D group="$group" \
        -f "$ROOT/bench/signup_group.sql" "$url" >"$WORKDIR/pgbench.out" 2>&1; } 2>"$WORKDIR/pgbench.time"
    busy=$(( $(busy_jiffies) - before ))
    client=$(echo "($(tr ' ' + <"$WORKDIR/pgbench.time")) * $(getconf CLK_TCK)" | bc)
    groups=$(grep -o 'actually processed: [0-9]*' "$WORKDIR/pgbench.out" | grep -o '[0-9]*$')
    signups=$(( groups * group ))
    [ "$signups" -gt 0 ] || { cat "$WORKDIR/pgbench.out" >&2; exit 1; }
    us=$(echo "($busy - $client) * 1000000 / $(getconf CLK_TCK) / $signups" | bc)
    log "group $group run $run: $signups signups in ${DURATION}s, PostgreSQL $us us each"
    echo "pg$group $run per_s=$(( signups / DURATION )) us=$us" >>"$RESULTS"
    drop_pg_db "tidings_bench_floor_$$"
  done
done

for run in $(seq 1 "$RUNS"); do
  start_sink
  before=$(comm_jiffies smtp-sink)
  # About the size of a confirmation email (headers, text and HTML parts).
  smtp-source -d -s 8 -m "$MESSAGES" -l 1800 -f from@bench.example -t to@bench.example \
    127.0.0.1:"$SINK_PORT"
  us=$(echo "($(comm_jiffies smtp-sink) - $before) * 1000000 / $(getconf CLK_TCK) / $MESSAGES" | bc)
  log "smtp-sink run $run: $us us per message"
  echo "sink $run us=$us" >>"$RESULTS"
  stop_sink
done

field() { grep -o "$1=[^ ]*" | cut -d= -f2; }
echo
echo "Floor per signup without Tidings (medians of $RUNS runs)"
printf '%-34s %12s %16s\n' part "CPU us" "signups/s alone"
for group in $GROUPS_; do
  rows=$(grep "^pg$group " "$RESULTS")
  printf '%-34s %12s %16s\n' "PostgreSQL, groups of $group" \
    "$(field us <<<"$rows" | median)" "$(field per_s <<<"$rows" | median)"
done
printf '%-34s %12s %16s\n' "smtp-sink, one message" "$(grep '^sink ' "$RESULTS" | field us | median)" -
echo
echo "Budget at 7,500 signups/s on $(nproc) cores: $(( $(nproc) * 1000000 / 7500 )) us per signup for everything."
echo
echo "all runs:"
cat "$RESULTS"
