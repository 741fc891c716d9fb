#!/usr/bin/env bash
# The browser test (`make browser-test`, part of `make test`): Debian's Chromium, driven
# by playwright-core (pinned in clients/browser-test/package-lock.json; no browser is
# downloaded), loads a page served from another origin than the API's. The page's
# script (clients/browser-test/page/steps.ts, compiled by the TypeScript client's own
# tsc under `strict`) uses the typed client to register a building, record a comp, find
# both in their lists on the first read with `min_position`, revalidate a detail from
# the browser's own cache (304), read the problems of a 409 and a 422, and read a 429's
# `Retry-After`. A second origin, not in ALLOWED_ORIGINS, is refused by CORS. The
# driver (clients/browser-test/run.mjs) checks the preflights and the 304 on the
# browser's network. One line per step; what each step proves: docs/testing.md
# ("Browser test"). Installs Chromium (Debian's `chromium`) and the npm packages when
# missing.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[browser] %s\n' "$*"; }
# shellcheck source=scripts/lib/apt.sh
. scripts/lib/apt.sh
# shellcheck source=scripts/lib/stack.sh
. scripts/lib/stack.sh
trap stack_stop EXIT
started=$SECONDS

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] || apt_install --no-install-recommends chromium
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  log "FAILED: Node.js 20 or later with npm is needed"
  exit 1
fi
log "$("$CHROMIUM" --version 2>/dev/null | head -n 1)"

client=clients/typescript
suite=clients/browser-test
# npm ci where node_modules is missing or older than its lock; nothing fetches a browser.
for dir in "$client" "$suite"; do
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
    log "installing $dir's packages (npm ci)"
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
    touch "$dir/node_modules"
  fi
done

# The page's script, type-checked and compiled by the client's tsc (its strict settings).
rm -rf "$suite/build"
if ! "$client/node_modules/.bin/tsc" -p "$suite"; then
  log "FAILED: the page's script does not compile against the client's types"
  exit 1
fi

# The page's origin (allowed) and another (refused); the API is on a third port.
page_port=$(free_port)
other_port=$(free_port)
while [ "$other_port" = "$page_port" ]; do other_port=$(free_port); done
# Enough for the steps before the last, which spends the rest of the minute's budget.
rate_limit="${BROWSER_RATE_LIMIT:-20}"
stack_start browser "ALLOWED_ORIGINS=http://127.0.0.1:$page_port" "RATE_LIMIT_PER_MINUTE=$rate_limit"
log "api at $STACK_API; page at http://127.0.0.1:$page_port; refused origin http://127.0.0.1:$other_port"

driven=$SECONDS
status=0
# The worker ($STACK_WORKER_PID) is paused by the driver around the
# min_position step, so that the read side really is behind when the page reads.
PRISM_API="$STACK_API" PRISM_TOKEN="$STACK_TOKEN" PAGE_PORT="$page_port" OTHER_PORT="$other_port" \
  RATE_LIMIT="$rate_limit" WORKER_PID="$STACK_WORKER_PID" CHROMIUM="$CHROMIUM" \
  timeout 120 node "$suite/run.mjs" || status=$?
if [ "$status" != 0 ]; then
  log "FAILED (exit $status); api log:"
  tail -n 40 "$STACK_DIR/api.log" || true
  log "worker log:"
  tail -n 20 "$STACK_DIR/worker.log" || true
fi
log "exit $status: browser steps in $((SECONDS - driven)) s, $((SECONDS - started)) s in all"
exit "$status"
