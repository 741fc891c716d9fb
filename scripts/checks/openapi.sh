#!/usr/bin/env bash
# The API's contract as a front end sees it: `@redocly/cli lint` of api/openapi.json
# with the recommended rules (api/redocly.yaml) must report no error and no warning;
# the TypeScript client's types (clients/typescript/src/schema.d.ts, openapi-typescript)
# must be what the committed document generates; and the client with its usage
# examples must type-check under `strict`. Installs the pinned tools from the npm
# registry (package-lock.json) when they are missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

log() { printf '[openapi] %s\n' "$*"; }
client=clients/typescript
command -v npm >/dev/null || { log "FAILED: npm is not installed (Node.js 20 or later)"; exit 1; }
if [ ! -d "$client/node_modules" ] || [ "$client/package-lock.json" -nt "$client/node_modules" ]; then
  log "installing the client's tools (npm ci)"
  (cd "$client" && npm ci --no-audit --no-fund --loglevel=error)
  touch "$client/node_modules"
fi
bin="$client/node_modules/.bin"

lint=$("$bin/redocly" lint api/openapi.json --config api/redocly.yaml --format=summary 2>&1) || true
if ! grep -q "Your API description is valid" <<<"$lint" || grep -Eq "^(warning|error) " <<<"$lint"; then
  printf '%s\n' "$lint"
  log "FAILED: redocly lint reports problems in api/openapi.json"
  exit 1
fi
log "ok: redocly lint (recommended rules): 0 errors, 0 warnings"

generated=$(mktemp)
trap 'rm -f "$generated"' EXIT
"$bin/openapi-typescript" api/openapi.json --output "$generated" >/dev/null 2>&1
if ! diff -q "$generated" "$client/src/schema.d.ts" >/dev/null; then
  diff -u "$client/src/schema.d.ts" "$generated" | head -40
  log "FAILED: $client/src/schema.d.ts is out of date: run 'make client' and commit it"
  exit 1
fi
log "ok: $client/src/schema.d.ts matches api/openapi.json"

(cd "$client" && node_modules/.bin/tsc --noEmit -p .)
log "ok: the client and its usage type-check under strict"
