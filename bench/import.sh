#!/usr/bin/env bash
# Import benchmark: `tidings subscribers import` of a generated CSV into a
# fresh PostgreSQL database and a fresh SQLite file, with the release build.
# Prints rows/s per run and the median per backend.
#
#   bash bench/import.sh                 # 200,000 rows, 3 runs per backend
#   ROWS=50000 RUNS=5 bash bench/import.sh
#   PG=postgres://postgres@127.0.0.1:5432 bash bench/import.sh
#
# Needs psql and a PostgreSQL server that lets the user create databases.
# Each run gets its own database (created, then dropped) and SQLite file, and
# runs `tidings migrate` first, so the timing covers the import alone.
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${ROWS:-200000}
RUNS=${RUNS:-3}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}

cargo build --release --quiet
BIN="$CARGO_TARGET_DIR/release/tidings"

WORK=$(mktemp -d)
DB=""
cleanup() {
  if [ -n "$DB" ]; then psql "$PG/postgres" -qtAc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

CSV="$WORK/readers.csv"
{
  echo "email,name,signed_up"
  # A name on two rows of three, one bad address per 1,000 rows.
  awk -v n="$ROWS" 'BEGIN {
    for (i = 1; i <= n; i++) {
      if (i % 1000 == 0) { printf "broken-%d.example.com,,2024-01-01\n", i; continue }
      if (i % 3 == 0) printf "reader%d@bench.example,,2024-01-01\n", i
      else printf "reader%d@bench.example,Reader %d,2024-01-01\n", i, i
    }
  }'
} > "$CSV"
echo "CSV: $ROWS rows, $(du -h "$CSV" | cut -f1), $(nproc) CPUs, $("$BIN" --version)"

# Runs one import against TIDINGS_DATABASE_URL=$1 and prints rows/s.
run_one() {
  local url=$1
  TIDINGS_DATABASE_URL="$url" "$BIN" migrate >/dev/null
  local start end summary
  start=$(date +%s.%N)
  summary=$(TIDINGS_DATABASE_URL="$url" "$BIN" subscribers import "$CSV" --source "bench" 2>/dev/null)
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" -v n="$ROWS" -v sum="$summary" \
    'BEGIN { printf "%.0f rows/s  (%.2f s; %s)\n", n / (e - s), e - s, sum }' >&2
  awk -v s="$start" -v e="$end" -v n="$ROWS" 'BEGIN { printf "%.0f\n", n / (e - s) }'
}

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "== PostgreSQL ($PG)"
pg_rates=""
for r in $(seq 1 "$RUNS"); do
  DB="tidings_bench_$$_$r"
  psql "$PG/postgres" -qtAc "CREATE DATABASE $DB" >/dev/null
  pg_rates+="$(run_one "$PG/$DB")"$'\n'
  psql "$PG/postgres" -qtAc "DROP DATABASE $DB WITH (FORCE)" >/dev/null
  DB=""
done

echo "== SQLite"
sqlite_rates=""
for r in $(seq 1 "$RUNS"); do
  sqlite_rates+="$(run_one "sqlite://$WORK/bench-$r.db")"$'\n'
done

echo "median PostgreSQL: $(printf '%s' "$pg_rates" | median) rows/s"
echo "median SQLite:     $(printf '%s' "$sqlite_rates" | median) rows/s"
