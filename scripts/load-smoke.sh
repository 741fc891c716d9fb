#!/usr/bin/env bash
# `make load-smoke`: the load-smoke release gate. Against BASE_URL (with PRISM_TOKEN)
# when given, otherwise against a Prism of its own started here (release build).
# Runs loadtest/k6-smoke.js where k6 is installed, else prism-loadtest with the same
# scenario and thresholds; exits non-zero when an SLO is missed.
# Thresholds and how to read the result: docs/ops/k6-smoke-test.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/prism/target}"

if [ -z "${BASE_URL:-}" ]; then
  # shellcheck source=scripts/lib/stack.sh
  . scripts/lib/stack.sh
  trap stack_stop EXIT
  STACK_PROFILE=release stack_start loadsmoke
  export BASE_URL="$STACK_API" PRISM_TOKEN="$STACK_TOKEN"
fi
: "${PRISM_TOKEN:?PRISM_TOKEN is required with BASE_URL}"

if command -v k6 >/dev/null; then
  echo "[load-smoke] k6 run loadtest/k6-smoke.js against $BASE_URL"
  k6 run loadtest/k6-smoke.js
else
  echo "[load-smoke] k6 is not installed: prism-loadtest against $BASE_URL"
  cargo build --quiet --release --bin prism-loadtest
  SUMMARY_FILE="${SUMMARY_FILE:-$CARGO_TARGET_DIR/load-smoke-summary.json}" \
    "$CARGO_TARGET_DIR/release/prism-loadtest"
fi
