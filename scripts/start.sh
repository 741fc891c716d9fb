#!/usr/bin/env bash
# `make start`: Prism on this machine, in the foreground. Prepares services, the
# `prism` database (migrated) and a development signing key, prints where Swagger UI
# is and a token to paste into it, then runs prism-worker (background) and prism-api
# until Ctrl-C, which stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/prism/target}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/prism}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export REDIS_NAMESPACE="${REDIS_NAMESPACE:-prism}"
export PORT="${PORT:-8080}"
export WORKER_PORT="${WORKER_PORT:-8081}"
export ENV="${ENV:-development}"
export ALLOWED_ORIGINS="${ALLOWED_ORIGINS:-http://localhost:5173,http://localhost:3000}"
DEV_DIR="$PWD/.dev"
export CLERK_JWKS_FILE="${CLERK_JWKS_FILE:-$DEV_DIR/jwks.json}"

# A second `make start` while one runs: say so before building or printing anything.
for port_var in PORT WORKER_PORT; do
  port="${!port_var}"
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "[start] port $port ($port_var) is already in use: is Prism already running (another \`make start\`)?" >&2
    echo "[start] stop it with Ctrl-C in its terminal, or give this one other ports: PORT=<port> WORKER_PORT=<port> make start" >&2
    exit 1
  fi
done

scripts/services.sh

db_name="${DATABASE_URL##*/}"; db_name="${db_name%%\?*}"
if [ "$(psql "${DATABASE_URL%/*}/postgres" -Atqc "SELECT count(*) FROM pg_database WHERE datname = '$db_name'")" = 0 ]; then
  echo "[start] creating database $db_name"
  psql "${DATABASE_URL%/*}/postgres" -qc "CREATE DATABASE \"$db_name\""
fi

bin="$CARGO_TARGET_DIR/debug/prism-api"
worker_bin="$CARGO_TARGET_DIR/debug/prism-worker"
if [ -x "$bin" ] && [ -x "$worker_bin" ]; then
  echo "[start] building prism-api and prism-worker (cargo's progress below)"
else
  echo "[start] building prism-api and prism-worker for the first time: this takes several minutes"
  echo "[start] (about 8 on two cores); cargo shows its progress below, later builds take seconds"
fi
cargo build --bin prism-api --bin prism-worker

mkdir -p "$DEV_DIR"
if [ ! -f "$DEV_DIR/jwt-private.pem" ]; then
  echo "[start] making a development signing key in .dev/"
  openssl genrsa -out "$DEV_DIR/jwt-private.pem" 2048 2>/dev/null
fi
"$bin" dev jwks --key "$DEV_DIR/jwt-private.pem" > "$DEV_DIR/jwks.json"

echo "[start] applying migrations"
"$bin" migrate up

token=$("$bin" dev token --key "$DEV_DIR/jwt-private.pem" --org org_dev --user user_dev \
  --scopes "buildings:read buildings:write comps:read comps:write audit:read projections:admin")
cat <<MSG

  Prism API      http://localhost:$PORT
  Swagger UI     http://localhost:$PORT/docs   (Authorize → paste the token below)
  OpenAPI        http://localhost:$PORT/openapi.json
  Worker         http://localhost:$WORKER_PORT/ready   (projections, cache views)

  Development token (organisation org_dev, user user_dev, 12 hours; \`make token\` makes another):

$token

MSG
"$worker_bin" &
worker_pid=$!
trap 'kill "$worker_pid" 2>/dev/null; wait "$worker_pid" 2>/dev/null' EXIT INT TERM
"$bin" serve
