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

SCHEMATHESIS_VERSION=4.32.5
VENV="${PRISM_VENV:-$HOME/.cache/prism/venv}"
EXAMPLES="${FUZZ_EXAMPLES:-25}"
# shellcheck source=scripts/lib/stack.sh
. scripts/lib/stack.sh
trap stack_stop EXIT

log() { printf '[fuzz] %s\n' "$*"; }

if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

stack_start fuzz
# Real resources for the operations on one building or comp (random ids only reach 404).
stack_seed
building_id=$STACK_BUILDING comp_id=$STACK_COMP token=$STACK_TOKEN work=$STACK_DIR
port=${STACK_API##*:}
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
