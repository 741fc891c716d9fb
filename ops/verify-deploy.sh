#!/usr/bin/env bash
# Post-deploy verification of a running prism-api: health, readiness, the token check,
# authenticated reads, the OpenAPI document, security headers and (optionally) the
# protected /metrics. Prints PASS, FAIL or SKIP per check; exits 1 when any check
# failed. Needs curl and python3 only. Runbook: docs/ops/deploy.md.
set -euo pipefail

usage() {
  cat <<'HELP'
usage: ops/verify-deploy.sh BASE_URL

Checks a deployed prism-api at BASE_URL (for example https://api.example.com, no
trailing path) and prints PASS, FAIL or SKIP for each check:

  GET /health                    200, {"status": "ok"}
  GET /ready                     200, {"status": "ready"} (polled up to VERIFY_READY_WAIT s)
  GET /v1/buildings, no token    401 application/problem+json with WWW-Authenticate
  GET /v1/buildings, token       200 with "items"                      (PRISM_VERIFY_TOKEN)
  GET /v1/comps, token           200 with "items"                      (PRISM_VERIFY_TOKEN)
  GET /openapi.json              200 with "paths"
  security headers               X-Content-Type-Options: nosniff, X-Frame-Options: DENY
  GET /metrics, scrape token     200 containing http_requests_total    (METRICS_SCRAPE_TOKEN)

Environment:
  PRISM_VERIFY_TOKEN    a Clerk session token of an organisation, with the scopes
                        buildings:read and comps:read. Unset: the two authenticated
                        checks are skipped (SKIP), not failed.
  METRICS_SCRAPE_TOKEN  the api's scrape token. Unset: the /metrics check is skipped.
  VERIFY_READY_WAIT     seconds to wait for /ready to answer 200 (default 30).
  VERIFY_TIMEOUT        seconds per request (default 10).

Tokens are passed to curl through a private temporary file, never on its command
line, and are never printed.

Exit status: 0 when no check failed, 1 when one did, 2 on a usage error.
HELP
}

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  "") usage >&2; exit 2 ;;
esac
[ "$#" = 1 ] || { usage >&2; exit 2; }
BASE_URL="${1%/}"
case "$BASE_URL" in
  http://* | https://*) ;;
  *) echo "BASE_URL must start with http:// or https://, not: $BASE_URL" >&2; exit 2 ;;
esac

for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "verify-deploy needs $tool" >&2; exit 2; }
done

READY_WAIT="${VERIFY_READY_WAIT:-30}"
TIMEOUT="${VERIFY_TIMEOUT:-10}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"

failures=0
pass() { printf 'PASS  %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; failures=$((failures + 1)); }
skip() { printf 'SKIP  %s\n' "$*"; }

# fetch NAME PATH [BEARER]: GET BASE_URL/PATH; the body goes to $work/NAME.body, the
# headers to $work/NAME.headers; prints the status code (000 when no answer came).
fetch() {
  local name="$1" path="$2" bearer="${3:-}"
  local args=(-sS --max-time "$TIMEOUT" -o "$work/$name.body" -D "$work/$name.headers" -w '%{http_code}')
  : > "$work/$name.body"; : > "$work/$name.headers"
  if [ -n "$bearer" ]; then
    (umask 077; printf 'Authorization: Bearer %s\n' "$bearer" > "$work/$name.auth")
    args+=(-H "@$work/$name.auth")
  fi
  curl "${args[@]}" "$BASE_URL$path" 2>"$work/$name.err" || true
  rm -f "$work/$name.auth"
}

# header NAME HEADER: the value of HEADER in the last header block of NAME's response.
header() {
  python3 - "$work/$1.headers" "$2" <<'PY'
import sys
blocks, current = [], []
for line in open(sys.argv[1], encoding="latin-1").read().splitlines():
    if not line.strip():
        if current:
            blocks.append(current)
        current = []
    else:
        current.append(line)
if current:
    blocks.append(current)
wanted = sys.argv[2].lower()
for line in (blocks[-1][1:] if blocks else []):
    name, _, value = line.partition(":")
    if name.strip().lower() == wanted:
        print(value.strip())
        break
PY
}

# body NAME CHECK: whether NAME's body passes CHECK (a Python expression over `doc`,
# the parsed JSON). Prints nothing; the exit status is the answer.
body() {
  python3 - "$work/$1.body" "$2" <<'PY'
import json, sys
try:
    doc = json.load(open(sys.argv[1], encoding="utf-8"))
except ValueError:
    sys.exit(1)
sys.exit(0 if eval(sys.argv[2], {"doc": doc}) else 1)
PY
}

# why NAME CODE: a short reason for a failed request, for the FAIL line.
why() {
  if [ "$2" = 000 ]; then
    printf 'no answer: %s' "$(tr '\n' ' ' < "$work/$1.err" | cut -c1-160)"
  else
    printf 'status %s, body: %s' "$2" "$(head -c 160 "$work/$1.body" | tr '\n' ' ')"
  fi
}

echo "verifying $BASE_URL"

# 1. Liveness.
code=$(fetch health /health)
if [ "$code" = 200 ] && body health 'doc.get("status") == "ok"'; then
  pass 'GET /health: 200 {"status": "ok"}'
else
  fail "GET /health: expected 200 {\"status\": \"ok\"}; $(why health "$code")"
fi

# 2. Readiness: Postgres answers with every migration applied, Redis answers.
deadline=$((SECONDS + READY_WAIT))
while :; do
  code=$(fetch ready /ready)
  { [ "$code" = 200 ] || [ "$SECONDS" -ge "$deadline" ]; } && break
  sleep 2
done
if [ "$code" = 200 ] && body ready 'doc.get("status") == "ready"'; then
  pass 'GET /ready: 200 {"status": "ready"}'
else
  fail "GET /ready: expected 200 {\"status\": \"ready\"} within ${READY_WAIT}s; $(why ready "$code")"
fi

# 3. No token: 401 problem with a Bearer challenge.
code=$(fetch anonymous /v1/buildings)
content_type=$(header anonymous content-type)
challenge=$(header anonymous www-authenticate)
if [ "$code" = 401 ] && [[ "$content_type" == application/problem+json* ]] && [[ "$challenge" == Bearer* ]]; then
  pass "GET /v1/buildings without a token: 401 problem+json, WWW-Authenticate: $challenge"
else
  fail "GET /v1/buildings without a token: expected 401 application/problem+json with WWW-Authenticate: Bearer; got status $code, content-type '${content_type}', WWW-Authenticate '${challenge}'"
fi

# 4-5. Authenticated reads.
if [ -n "${PRISM_VERIFY_TOKEN:-}" ]; then
  for path in /v1/buildings /v1/comps; do
    name="auth${path//\//_}"
    code=$(fetch "$name" "$path" "$PRISM_VERIFY_TOKEN")
    if [ "$code" = 200 ] && body "$name" 'isinstance(doc.get("items"), list)'; then
      pass "GET $path with the token: 200 with items"
    else
      fail "GET $path with the token: expected 200 with items; $(why "$name" "$code")"
    fi
  done
else
  skip "GET /v1/buildings and GET /v1/comps with a token: PRISM_VERIFY_TOKEN is not set"
fi

# 6. The OpenAPI document.
code=$(fetch openapi /openapi.json)
if [ "$code" = 200 ] && body openapi 'isinstance(doc.get("paths"), dict) and len(doc["paths"]) > 0'; then
  pass "GET /openapi.json: 200 with paths"
else
  fail "GET /openapi.json: expected 200 with paths; $(why openapi "$code")"
fi

# 7. Security headers (on every response; checked on /health's).
nosniff=$(header health x-content-type-options)
frame=$(header health x-frame-options)
if [ "${nosniff,,}" = nosniff ] && [ "${frame^^}" = DENY ]; then
  pass "security headers: X-Content-Type-Options: nosniff, X-Frame-Options: DENY"
else
  fail "security headers: expected X-Content-Type-Options: nosniff and X-Frame-Options: DENY; got '${nosniff}' and '${frame}'"
fi
hsts=$(header health strict-transport-security)
echo "INFO  Strict-Transport-Security: ${hsts:-absent} (the api sends it only with ENV=production)"

# 8. Metrics with the scrape token.
if [ -n "${METRICS_SCRAPE_TOKEN:-}" ]; then
  code=$(fetch metrics /metrics "$METRICS_SCRAPE_TOKEN")
  if [ "$code" = 200 ] && grep -q 'http_requests_total' "$work/metrics.body"; then
    pass "GET /metrics with the scrape token: 200 with http_requests_total"
  else
    fail "GET /metrics with the scrape token: expected 200 with http_requests_total; status $code"
  fi
else
  skip "GET /metrics: METRICS_SCRAPE_TOKEN is not set"
fi

if [ "$failures" = 0 ]; then
  echo "verify-deploy: all checks passed"
else
  echo "verify-deploy: $failures check(s) failed"
  exit 1
fi
