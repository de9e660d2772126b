#!/usr/bin/env bash
# The HTTP API against its OpenAPI document: a live `tidings serve` on a
# fresh database (sqlite or postgres, $1), the document checked by
# openapi-spec-validator, then schemathesis with a fixed seed and a bounded
# number of examples: no 5xx, every documented response as documented.
# Installs its tools from PyPI into target/ci-venv; fails loudly.
set -euo pipefail
cd "$(dirname "$0")/.."
backend="$1"
pgurl="postgres://postgres@127.0.0.1:5432/postgres"

venv=target/ci-venv
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q schemathesis==4.32.5 openapi-spec-validator==0.7.1
fi

cargo build --locked -q
bin="$PWD/target/debug/tidings"
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
db_name=""
case "$backend" in
  sqlite) export TIDINGS_DATABASE_URL="sqlite://$work/tidings.db" ;;
  postgres)
    db_name="tidings_contract_$$"
    psql "$pgurl" -qtAc "CREATE DATABASE $db_name" >/dev/null
    export TIDINGS_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db_name" ;;
  *) echo "usage: $0 sqlite|postgres"; exit 2 ;;
esac
export TIDINGS_LISTEN="127.0.0.1:$port" TIDINGS_BASE_URL="http://127.0.0.1:$port"
export TIDINGS_OUTBOX_DIR="$work/outbox"

server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  [ -n "$db_name" ] && psql "$pgurl" -qtAc "DROP DATABASE IF EXISTS $db_name WITH (FORCE)" >/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

token=$("$bin" --create token create contract 2>/dev/null | tail -1)
"$bin" serve >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 60); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$port/api/openapi.json" -o "$work/openapi.json"
"$venv/bin/openapi-spec-validator" "$work/openapi.json"
if ! "$venv/bin/schemathesis" run "http://127.0.0.1:$port/api/openapi.json" \
    --checks not_a_server_error,response_schema_conformance \
    --max-examples 20 --seed 15 \
    --header "Authorization: Bearer $token"; then
  echo "FATAL: the API does not keep its OpenAPI document ($backend); server log:"
  tail -50 "$work/serve.log"
  exit 1
fi
