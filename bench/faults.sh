#!/usr/bin/env bash
# Fault scenarios for the digest send engine, on PostgreSQL, into
# bench/fault_sink.py (a Python SMTP sink that logs every accepted
# recipient, so missed readers and duplicates can be counted).
#
#   bash bench/faults.sh                                # all scenarios, 20,000 readers
#   TIDINGS_BIN=/tmp/tidings-old bash bench/faults.sh   # a given binary
#   SCENARIOS="kill refuse" READERS=5000 bash bench/faults.sh
#
# Scenarios (SCENARIOS, default all five):
#   kill    kill -9 of `tidings serve` when a third is delivered, restart it
#   multi   three instances on one database, one killed when a third is delivered
#   slow    a relay that takes 1 s per message, send_concurrency 8, SLOW_READERS readers
#   dbcut   PostgreSQL unreachable for CUT_SECONDS (a proxy resets every
#           connection and refuses new ones) during the digest and a burst of
#           BURST signups (their confirmation emails are counted too)
#   refuse  the relay answers "550 5.7.1 sender not authorized" to MAIL FROM
#           for REFUSE_SECONDS in the middle of the digest; a paused digest
#           is resumed through POST /api/digests/{id}/resume
# Knobs: READERS (20000), SLOW_READERS (1000), CONCURRENCY (8), BURST (500),
# CUT_SECONDS (12), REFUSE_SECONDS (1), SCENARIO_MAX (300: seconds a
# scenario may take from the digest's POST), GRACE (5) and QUIET_MAX (240):
# after completion the sink must take nothing for GRACE seconds (waiting at
# most QUIET_MAX) before the count, so late duplicates are seen,
# KEEP_LOGS=DIR (copy the app, sink and proxy logs there).
#
# "missed" = readers with no message, "dups" = messages beyond one per
# reader, "complete s" = from the POST's answer until the digest is `sent`
# and every reader has it (or, if some never get it, until `sent`; dbcut:
# and the outbox has nothing queued or sending);
# "dups_at_complete" = duplicates by then, "last_msg_s" = when the sink took
# its last message if that came after completion.
source "$(dirname "$0")/lib.sh"
trap cleanup EXIT

SCENARIOS=${SCENARIOS:-kill multi slow dbcut refuse}
READERS=${READERS:-20000}
SLOW_READERS=${SLOW_READERS:-1000}
CONCURRENCY=${CONCURRENCY:-8}
BURST=${BURST:-500}
CUT_SECONDS=${CUT_SECONDS:-12}
REFUSE_SECONDS=${REFUSE_SECONDS:-1}
SCENARIO_MAX=${SCENARIO_MAX:-300}
GRACE=${GRACE:-5}
QUIET_MAX=${QUIET_MAX:-240}
HERE=$(cd "$(dirname "$0")" && pwd)

for tool in psql curl jq python3 bc; do
  command -v "$tool" >/dev/null || { echo "faults.sh needs $tool" >&2; exit 2; }
done
build_release
log "binary: $BIN"

export TIDINGS_SEND_CONCURRENCY=$CONCURRENCY
export TIDINGS_SIGNUP_RATE_PER_MINUTE=0

now() { date +%s.%N; }
secs() { printf '%.1f' "$(echo "$2 - $1" | bc -l)"; }

# The Python sink on a free port; sets SINK_PORT, SINK_PID, SINK_LOG, SINK_CTL.
start_fault_sink() {
  SINK_PORT=$(free_port)
  SINK_LOG=$WORKDIR/sink-$1.rcpts
  SINK_CTL=$WORKDIR/sink-$1.ctl
  : >"$SINK_LOG"
  python3 "$HERE/fault_sink.py" --port "$SINK_PORT" --log "$SINK_LOG" --control "$SINK_CTL" \
    ${2:+--delay "$2"} 2>"$WORKDIR/sink-$1.err" &
  SINK_PID=$!
  PIDS+=("$SINK_PID")
  wait_port "$SINK_PORT"
}


# Messages the sink accepted so far (all recipients).
accepted() { wc -l <"$SINK_LOG"; }
# "distinct total" for addresses matching $1 (an extended regex).
tally() { grep -E "$1" "$SINK_LOG" | sort | uniq -c | awk '{d++; t+=$1} END {print d+0, t+0}'; }

# Starts an instance on the scenario's database; appends to APPS/APP_PIDS.
APP_PORTS=(); APP_PIDS=()
launch() {
  local url=$1 name=$2
  start_app "$url" "$WORKDIR/app-$name.log"
  APP_PORTS+=("$APP_PORT"); APP_PIDS+=("$APP_PID")
}

# Token, one article, POST /api/digests on port $2; sets DIGEST_ID, T_POST.
compose() {
  local url=$1 port=$2 post
  TOKEN=$(TIDINGS_DATABASE_URL=$url RUST_LOG=warn "$BIN" token create faults | tail -n1)
  API="http://127.0.0.1:$port/api"
  curl -fsS -m 30 -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"url":"https://news.example/2026/fault-story","title":"A story worth a fault","summary":"What happened, why it matters, and what comes next: a summary of about the length a news site writes."}' \
    "$API/articles"
  post=$(curl -fsS -m 300 -H "Authorization: Bearer $TOKEN" -X POST "$API/digests")
  T_POST=$(now)
  DIGEST_ID=$(jq -r .id <<<"$post")
  log "digest $DIGEST_ID composed for $(jq -r .recipients <<<"$post") readers"
}

digest_status() { db_query "$DB_URL" "SELECT status FROM digests WHERE id = $DIGEST_ID" 2>/dev/null || echo '?'; }

# Waits (bounded) until the sink accepted $1 messages; false on timeout.
wait_accepted() {
  local want=$1 deadline
  deadline=$(echo "$(now) + $SCENARIO_MAX" | bc -l)
  while [ "$(accepted)" -lt "$want" ]; do
    [ "$(echo "$(now) > $deadline" | bc -l)" = 1 ] && { log "only $(accepted) of $want accepted"; return 1; }
    sleep 0.05
  done
}

# Waits until the digest is `sent` and every one of $1 readers has it, or it
# is `sent` / paused / cancelled with readers missing, or SCENARIO_MAX
# seconds from T_POST have passed. Sets STATUS, T_DONE ("" on timeout),
# T_ALL (when the last reader got it, "" if never) and T_DIGEST (when the
# digest was sent to all, whatever $2 said). $2: extra condition (a
# command that must succeed too), e.g. the outbox drained.
wait_complete() {
  local n=$1 extra=${2:-true} deadline got
  deadline=$(echo "$T_POST + $SCENARIO_MAX" | bc -l)
  T_DONE=""; T_ALL=""; T_DIGEST=""
  while :; do
    STATUS=$(digest_status)
    got=$(sort -u "$SINK_LOG" | grep -c '^reader' || true)
    if [ -z "$T_ALL" ] && [ "$got" -ge "$n" ]; then T_ALL=$(now); fi
    if [ -z "$T_DIGEST" ] && [ "$STATUS" = sent ] && [ -n "$T_ALL" ]; then T_DIGEST=$(now); fi
    if [ "$STATUS" = sent ] && [ -n "$T_ALL" ] && $extra; then T_DONE=$(now); break; fi
    case $STATUS in
      sent) $extra && { T_DONE=$(now); log "digest sent with $((n - got)) readers missing"; break; } ;;
      paused|cancelled|failed) log "digest $STATUS"; break ;;
    esac
    if [ "$(echo "$(now) > $deadline" | bc -l)" = 1 ]; then
      log "timed out after ${SCENARIO_MAX}s: status $STATUS, $got of $n readers reached"; break
    fi
    sleep 0.25
  done
}

RESULTS=$WORKDIR/results.txt
: >"$RESULTS"
# Waits until the sink has taken nothing for GRACE seconds (at most
# QUIET_MAX), so sends that go on after the digest is `sent` count too.
# Sets DUPS_DONE (duplicates at completion) and T_LAST (the last message, if
# it came after completion).
quiesce() {
  local dt tot last c quiet_since deadline
  read -r dt tot < <(tally '^reader[0-9]+@bench\.example$')
  DUPS_DONE=$((tot - dt)); T_LAST=""
  last=$(accepted); quiet_since=$(now)
  deadline=$(echo "$(now) + $QUIET_MAX" | bc -l)
  while :; do
    sleep 0.5
    c=$(accepted)
    if [ "$c" != "$last" ]; then last=$c; quiet_since=$(now); T_LAST=$quiet_since; fi
    [ "$(echo "$(now) - $quiet_since >= $GRACE" | bc -l)" = 1 ] && break
    if [ "$(echo "$(now) > $deadline" | bc -l)" = 1 ]; then log "sink still busy after ${QUIET_MAX}s"; break; fi
  done
  QUIESCED=1
}

# Missed readers and duplicates of the digest among $2 readers, plus $3.
report() {
  local scenario=$1 n=$2 extra=$3 dt tot missed dups complete
  [ "${QUIESCED:-0}" = 1 ] || quiesce
  QUIESCED=0
  read -r dt tot < <(tally '^reader[0-9]+@bench\.example$')
  missed=$((n - dt)); dups=$((tot - dt))
  complete=${T_DONE:+$(secs "$T_POST" "$T_DONE")}
  line="$scenario readers=$n missed=$missed dups=$dups complete_s=${complete:-timeout} status=$STATUS dups_at_complete=$DUPS_DONE${T_LAST:+ last_msg_s=$(secs "$T_POST" "$T_LAST")} $extra"
  log "$line"
  echo "$line" >>"$RESULTS"
}

end_scenario() {
  local name=$1 pid
  if [ -n "${KEEP_LOGS:-}" ]; then
    mkdir -p "$KEEP_LOGS"; cp "$WORKDIR"/*.log "$WORKDIR"/*.err "$KEEP_LOGS"/ 2>/dev/null || true
    cp "$SINK_LOG" "$KEEP_LOGS/$name.rcpts" 2>/dev/null || true
  fi
  for pid in "${APP_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${APP_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  APP_PIDS=(); APP_PORTS=()
  stop_sink
  [ -n "${PROXY_PID:-}" ] && { kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; PROXY_PID=""; }
  drop_pg_db "tidings_faults_$$"
  rm -f "$WORKDIR"/*.log "$WORKDIR"/*.err "$WORKDIR"/sink-*
}

fresh_db() { DB_URL=$(new_pg_db "tidings_faults_$$"); }

# a. kill -9 when a third is delivered, then restart.
scenario_kill() {
  local n=$READERS t_kill t_restart at_kill
  fresh_db; start_fault_sink kill; launch "$DB_URL" kill-1
  seed_confirmed "$DB_URL" "$n"; compose "$DB_URL" "${APP_PORTS[0]}"
  wait_accepted $((n / 3)) || true
  kill -9 "${APP_PIDS[0]}"; t_kill=$(now); at_kill=$(accepted)
  wait "${APP_PIDS[0]}" 2>/dev/null || true
  log "killed at $at_kill accepted; restarting"
  launch "$DB_URL" kill-2; t_restart=$(now)
  wait_complete "$n"
  report kill "$n" "at_kill=$at_kill restart_to_complete_s=${T_DONE:+$(secs "$t_restart" "$T_DONE")} kill_to_restart_s=$(secs "$t_kill" "$t_restart")"
  end_scenario kill
}

# b. three instances, one killed when a third is delivered.
scenario_multi() {
  local n=$READERS t_kill at_kill leased
  fresh_db; start_fault_sink multi
  launch "$DB_URL" multi-1; launch "$DB_URL" multi-2; launch "$DB_URL" multi-3
  seed_confirmed "$DB_URL" "$n"; compose "$DB_URL" "${APP_PORTS[0]}"
  wait_accepted $((n / 3)) || true
  kill -9 "${APP_PIDS[2]}"; t_kill=$(now); at_kill=$(accepted)
  wait "${APP_PIDS[2]}" 2>/dev/null || true
  log "instance 3 killed at $at_kill accepted"
  wait_complete "$n"
  report multi "$n" "at_kill=$at_kill kill_to_complete_s=${T_DONE:+$(secs "$t_kill" "$T_DONE")}"
  end_scenario multi
}

# c. a relay that takes 1 s per message.
scenario_slow() {
  local n=$SLOW_READERS
  fresh_db; start_fault_sink slow 1.0; launch "$DB_URL" slow
  seed_confirmed "$DB_URL" "$n"; compose "$DB_URL" "${APP_PORTS[0]}"
  wait_complete "$n"
  report slow "$n" "delay_s=1 concurrency=$CONCURRENCY"
  end_scenario slow
}

# d. PostgreSQL unreachable for CUT_SECONDS during the digest and a burst of
# BURST signups.
scenario_dbcut() {
  local n=$READERS proxy_port url_app pg_at t_cut t_back burst_pid codes expected burst_sent bd bt late
  fresh_db; start_fault_sink dbcut
  proxy_port=$(free_port)
  pg_at=${PG_ADMIN_URL#*@}; pg_at=${pg_at%%/*}
  python3 "$HERE/fault_proxy.py" --port "$proxy_port" --target "$pg_at" --cut-seconds "$CUT_SECONDS" \
    2>"$WORKDIR/proxy.err" &
  PROXY_PID=$!; PIDS+=("$PROXY_PID")
  wait_port "$proxy_port"
  # The app reaches PostgreSQL through the proxy; the script goes direct.
  url_app=$(sed -E "s#@[^/]+/#@127.0.0.1:$proxy_port/#" <<<"$DB_URL")
  launch "$url_app" dbcut
  seed_confirmed "$DB_URL" "$n"; compose "$DB_URL" "${APP_PORTS[0]}"
  wait_accepted $((n / 3)) || true
  # The burst: BURST signups from 32 threads; the cut comes 0.3 s into it.
  python3 - "${APP_PORTS[0]}" "$BURST" >"$WORKDIR/burst.codes" <<'EOF' &
import sys, urllib.request, urllib.error, urllib.parse
from concurrent.futures import ThreadPoolExecutor
port, n = int(sys.argv[1]), int(sys.argv[2])
def one(i):
    body = urllib.parse.urlencode({"email": f"burst{i}@burst.example", "name": f"Burst {i}"}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/subscriptions", data=body,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception:
        return 0
with ThreadPoolExecutor(32) as ex:
    for code in ex.map(one, range(1, n + 1)):
        print(code)
EOF
  burst_pid=$!
  sleep 0.3
  kill -USR1 "$PROXY_PID"; t_cut=$(now)
  log "database cut at $(accepted) accepted"
  wait "$burst_pid" || true
  t_back=$(echo "$t_cut + $CUT_SECONDS" | bc -l)
  codes=$(sort "$WORKDIR/burst.codes" | uniq -c | awk '{printf "%s%s:%s", sep, $2, $1; sep=","}')
  outbox_drained() { [ "$(db_query "$DB_URL" "SELECT count(*) FROM outbox WHERE status IN ('queued','sending')" 2>/dev/null || echo 1)" = 0 ]; }
  wait_complete "$n" outbox_drained
  # The confirmation emails due: every burst signup the database holds.
  expected=$(db_query "$DB_URL" "SELECT count(*) FROM subscribers WHERE email LIKE '%@burst.example'")
  quiesce
  burst_sent=$(db_query "$DB_URL" "SELECT count(*) FROM outbox WHERE status = 'sent'")
  read -r bd bt < <(tally '^burst[0-9]+@burst\.example$')
  # Confirmation emails that came only after the digest's last message.
  late=$(awk '/^reader/ {r = NR} {line[NR] = $0} END {n = 0; for (i = r + 1; i <= NR; i++) if (line[i] ~ /^burst/) n++; print n}' "$SINK_LOG")
  report dbcut "$n" "cut_s=$CUT_SECONDS back_to_complete_s=${T_DONE:+$(secs "$t_back" "$T_DONE")} back_to_digest_sent_s=${T_DIGEST:+$(secs "$t_back" "$T_DIGEST")} burst_http=$codes burst_in_db=$expected burst_missed=$((expected - bd)) burst_dups=$((bt - bd)) burst_after_digest=$late outbox_sent=$burst_sent"
  end_scenario dbcut
}

# e. 550 to MAIL FROM for REFUSE_SECONDS mid-digest; resume if paused.
scenario_refuse() {
  local n=$READERS bounced status_at reason refused code t_resume
  fresh_db; start_fault_sink refuse; launch "$DB_URL" refuse
  seed_confirmed "$DB_URL" "$n"; compose "$DB_URL" "${APP_PORTS[0]}"
  wait_accepted $((n / 3)) || true
  echo '550 5.7.1 sender not authorized' >"$SINK_CTL"
  log "relay refusing MAIL FROM at $(accepted) accepted"
  sleep "$REFUSE_SECONDS"; rm -f "$SINK_CTL"
  wait_complete "$n"
  status_at=$STATUS
  reason=$(curl -fsS -m 30 -H "Authorization: Bearer $TOKEN" "$API/digests/$DIGEST_ID" | jq -r '.reason // "-"' 2>/dev/null || echo '?')
  code=-
  if [ "$status_at" = paused ]; then
    code=$(curl -sS -m 30 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" -X POST "$API/digests/$DIGEST_ID/resume" || echo 0)
    t_resume=$(now)
    log "resume answered $code"
    wait_complete "$n"
  fi
  quiesce
  bounced=$(db_query "$DB_URL" "SELECT count(*) FROM subscribers WHERE status = 'bounced'")
  refused=$(wc -l <"$SINK_LOG.refused" 2>/dev/null || echo 0)
  report refuse "$n" "refused_mail=$refused bounced=$bounced status_after_refusals=$status_at reason=\"$reason\" resume_http=$code${t_resume:+ resume_to_complete_s=${T_DONE:+$(secs "$t_resume" "$T_DONE")}}"
  end_scenario refuse
}

for s in $SCENARIOS; do
  log "scenario $s"
  "scenario_$s"
done

echo
echo "Faults, PostgreSQL, send_concurrency=$CONCURRENCY, binary $BIN"
printf '%-8s %8s %8s %8s %11s %-8s  %s\n' scenario readers missed dups "complete s" status details
while read -r scenario rest; do
  f() { grep -o "\b$1=[^ ]*" <<<"$rest" | head -n1 | cut -d= -f2; }
  details=$(sed -E 's/\b(readers|missed|dups|complete_s|status)=[^ ]* ?//g' <<<"$rest")
  printf '%-8s %8s %8s %8s %11s %-8s  %s\n' "$scenario" "$(f readers)" "$(f missed)" "$(f dups)" "$(f complete_s)" "$(f status)" "$details"
done <"$RESULTS"
