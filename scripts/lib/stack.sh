# shellcheck shell=bash
# Sourced by scripts that need a running Prism of their own (fuzzing, ops checks):
# a fresh database and Redis namespace, a signing key and a token with every scope,
# prism-api and prism-worker on free ports; `stack_stop` (run on EXIT) removes it all.
# After `stack_start`: $STACK_API (base URL), $STACK_WORKER (base URL), $STACK_TOKEN,
# $STACK_DIR (scratch directory).

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/prism/target}"
STACK_ADMIN_URL="${PRISM_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
STACK_REDIS_URL="${PRISM_TEST_REDIS_URL:-redis://127.0.0.1:6379}"
STACK_ISSUER="https://clerk.stack.test"
STACK_SCOPES="buildings:read buildings:write comps:read comps:write audit:read projections:admin"
stack_pids=()

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# stack_start NAME [extra api env assignments...]; STACK_PROFILE=release builds
# optimised binaries (load tests), the default is the debug build the tests use.
stack_start() {
  local name="$1"; shift
  local profile="${STACK_PROFILE:-debug}"
  if [ "$profile" = release ]; then
    cargo build --quiet --release --bin prism-api --bin prism-worker
  else
    cargo build --quiet --bin prism-api --bin prism-worker
  fi
  local bin="$CARGO_TARGET_DIR/$profile"
  STACK_DIR=$(mktemp -d)
  STACK_DB="prism_${name}_$$"
  STACK_NAMESPACE="prism-${name}-$$"
  psql "$STACK_ADMIN_URL" -qc "CREATE DATABASE $STACK_DB"
  export DATABASE_URL="${STACK_ADMIN_URL%/*}/$STACK_DB"
  export REDIS_URL="$STACK_REDIS_URL" REDIS_NAMESPACE="$STACK_NAMESPACE" ENV=test HOST=127.0.0.1 RUST_LOG=warn
  "$bin/prism-api" migrate up >/dev/null
  openssl genrsa -out "$STACK_DIR/key.pem" 2048 2>/dev/null
  "$bin/prism-api" dev jwks --key "$STACK_DIR/key.pem" > "$STACK_DIR/jwks.json"
  STACK_TOKEN=$("$bin/prism-api" dev token --key "$STACK_DIR/key.pem" --org "org_$name" \
    --user "user_$name" --issuer "$STACK_ISSUER" --scopes "$STACK_SCOPES")
  local api_port worker_port
  api_port=$(free_port); worker_port=$(free_port)
  WORKER_PORT="$worker_port" METRICS_SAMPLE_MS=1000 "$bin/prism-worker" > "$STACK_DIR/worker.log" 2>&1 &
  STACK_WORKER_PID=$!
  stack_pids+=("$STACK_WORKER_PID")
  env PORT="$api_port" CLERK_JWKS_FILE="$STACK_DIR/jwks.json" CLERK_ISSUER="$STACK_ISSUER" \
    STRICT_CLERK_SCOPES=true RATE_LIMIT_PER_MINUTE=0 "$@" \
    "$bin/prism-api" > "$STACK_DIR/api.log" 2>&1 &
  stack_pids+=($!)
  STACK_API="http://127.0.0.1:$api_port"
  STACK_WORKER="http://127.0.0.1:$worker_port"
  local _
  for _ in $(seq 1 150); do
    curl -fsS "$STACK_API/health" >/dev/null 2>&1 && curl -fsS "$STACK_WORKER/health" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "the stack did not start; api log:" >&2; tail -n 30 "$STACK_DIR/api.log" >&2
  return 1
}

# stack_post PATH JSON: POSTs with the token, prints the created id.
stack_post() {
  curl -fsS -X POST "$STACK_API$1" -H "Authorization: Bearer $STACK_TOKEN" \
    -H 'content-type: application/json' -d "$2" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}

# stack_seed: one building with a lease comp; sets $STACK_BUILDING and $STACK_COMP.
# shellcheck disable=SC2034 # STACK_COMP is for the sourcing script
stack_seed() {
  STACK_BUILDING=$(stack_post /v1/buildings '{"name":"Stack Tower","address":{"street":"1 Main St","city":"Austin","country":"US"},
    "location":{"lat":30.2672,"lon":-97.7431},"property_type":"office","rentable_area_sqft":250000,"submarket":"CBD"}')
  STACK_COMP=$(stack_post /v1/comps/lease "{\"building_id\":\"$STACK_BUILDING\",\"tenant\":\"Acme\",\"leased_area_sqft\":10000,
    \"starting_rent_psf\":\"55.00\",\"lease_type\":\"gross\",\"term_months\":60,\"commencement_date\":\"2026-01-01\"}")
}

stack_stop() {
  local pid
  # SIGCONT first: a process a test left stopped (SIGSTOP) would keep a TERM pending
  # and `wait` would never return.
  for pid in "${stack_pids[@]}"; do kill -CONT "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${STACK_DB:-}" ]; then
    psql "$STACK_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $STACK_DB WITH (FORCE)" >/dev/null 2>&1 || true
    redis-cli -u "$STACK_REDIS_URL" --scan --pattern "$STACK_NAMESPACE:*" \
      | xargs -r redis-cli -u "$STACK_REDIS_URL" DEL >/dev/null || true
  fi
  [ -n "${STACK_DIR:-}" ] && rm -rf "$STACK_DIR"
  return 0
}
