#!/usr/bin/env bash
# API fuzzing: schemathesis (pinned, in a venv under ~/.cache/prism) against a running
# prism-api and prism-worker on a database and Redis namespace of their own, with a
# valid token carrying every scope. It fails on any 5xx, any status, content type,
# header or body outside the OpenAPI document, and any operation that serves a request
# without credentials. Bounded: FUZZ_EXAMPLES generated requests per operation in the
# fuzzing phase (default 25) after the examples and coverage phases; a fixed seed.
# What it covers: docs/testing.md ("API fuzzing").
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/prism/target}"
SCHEMATHESIS_VERSION=4.32.5
VENV="${PRISM_VENV:-$HOME/.cache/prism/venv}"
EXAMPLES="${FUZZ_EXAMPLES:-25}"
ADMIN_URL="${PRISM_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
REDIS_URL="${PRISM_TEST_REDIS_URL:-redis://127.0.0.1:6379}"

log() { printf '[fuzz] %s\n' "$*"; }

if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --quiet --bin prism-api --bin prism-worker
bin="$CARGO_TARGET_DIR/debug"

work=$(mktemp -d)
db="prism_fuzz_$$"
namespace="prism-fuzz-$$"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  redis-cli -u "$REDIS_URL" --scan --pattern "$namespace:*" | xargs -r redis-cli -u "$REDIS_URL" DEL >/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

psql "$ADMIN_URL" -qc "CREATE DATABASE $db"
export DATABASE_URL="${ADMIN_URL%/*}/$db"
export REDIS_URL REDIS_NAMESPACE="$namespace" ENV=test HOST=127.0.0.1 RUST_LOG=warn
"$bin/prism-api" migrate up >/dev/null

openssl genrsa -out "$work/key.pem" 2048 2>/dev/null
"$bin/prism-api" dev jwks --key "$work/key.pem" > "$work/jwks.json"
issuer="https://clerk.fuzz.test"
token=$("$bin/prism-api" dev token --key "$work/key.pem" --org org_fuzz --user user_fuzz \
  --issuer "$issuer" \
  --scopes "buildings:read buildings:write comps:read comps:write audit:read projections:admin")

port=$(free_port)
WORKER_PORT=$(free_port) "$bin/prism-worker" > "$work/worker.log" 2>&1 &
pids+=($!)
PORT="$port" CLERK_JWKS_FILE="$work/jwks.json" CLERK_ISSUER="$issuer" \
  STRICT_CLERK_SCOPES=true RATE_LIMIT_PER_MINUTE=0 \
  "$bin/prism-api" > "$work/api.log" 2>&1 &
pids+=($!)

# Real resources for the operations on one building or comp (random ids only reach 404).
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do curl -fsS "$base/health" >/dev/null 2>&1 && break; sleep 0.2; done
post() {
  curl -fsS -X POST "$base$1" -H "Authorization: Bearer $token" -H 'content-type: application/json' -d "$2" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
building_id=$(post /v1/buildings '{"name":"Fuzz Tower","address":{"street":"1 Main St","city":"Austin","country":"US"},
  "location":{"lat":30.2672,"lon":-97.7431},"property_type":"office","rentable_area_sqft":250000,"submarket":"CBD"}')
comp_id=$(post /v1/comps/lease "{\"building_id\":\"$building_id\",\"tenant\":\"Acme\",\"leased_area_sqft\":10000,
  \"starting_rent_psf\":\"55.00\",\"lease_type\":\"gross\",\"term_months\":60,\"commencement_date\":\"2026-01-01\"}")
log "seeded building $building_id and comp $comp_id"

cat > "$work/schemathesis.toml" <<TOML
[cache]
enabled = false

[phases.stateful]
enabled = false

[checks]
enabled = false
not_a_server_error.enabled = true
status_code_conformance.enabled = true
content_type_conformance.enabled = true
response_headers_conformance.enabled = true
response_schema_conformance.enabled = true
ignored_auth.enabled = true

[[operations]]
include-path-regex = "^/v1/buildings/\\\\{id\\\\}"
parameters = { id = "$building_id" }

[[operations]]
include-path-regex = "^/v1/comps/\\\\{id\\\\}"
parameters = { id = "$comp_id" }
TOML

report="$CARGO_TARGET_DIR/schemathesis-junit.xml"
log "fuzzing http://127.0.0.1:$port ($EXAMPLES examples per operation)"
status=0
(
  cd "$work"
  HYPOTHESIS_STORAGE_DIRECTORY="$work/hypothesis" "$VENV/bin/st" --config-file "$work/schemathesis.toml" \
    run "http://127.0.0.1:$port/openapi.json" \
    --wait-for-schema 60 \
    -H "Authorization: Bearer $token" \
    --phases examples,coverage,fuzzing \
    --max-examples "$EXAMPLES" --seed 20261125 --generation-database none \
    --workers 1 --no-color \
    --report junit --report-junit-path "$report"
) || status=$?

if [ "$status" != 0 ]; then
  log "schemathesis failed (exit $status); api log:"
  tail -n 50 "$work/api.log" || true
fi
exit "$status"
