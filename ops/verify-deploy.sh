#!/usr/bin/env bash
# Post-deploy verification of a running prism-api: health, readiness, the token check,
# authenticated reads, the OpenAPI document, HSTS and the other security headers, and
# /metrics (refused without the scrape token, served with it). Prints PASS, FAIL or
# SKIP per check; exits 1 when any check failed. Needs curl and python3 only.
# Runbook: docs/ops/deploy.md; the deploy workflow runs it after every production
# rollout (.github/workflows/deploy.yml).
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
  HSTS                           Strict-Transport-Security with max-age >= 31536000 and
                                 includeSubDomains (ENV=production sends it)
  security headers               on a 200 (/health) and on an error (the 401 above):
                                 X-Content-Type-Options: nosniff, X-Frame-Options: DENY,
                                 Referrer-Policy: no-referrer,
                                 Cross-Origin-Resource-Policy: same-site,
                                 Content-Security-Policy: default-src 'none'; frame-ancestors 'none'
  GET /metrics, no token         refused: 401 from the api, or 403/404 where the edge
                                 blocks it; a 200 fails (anyone could read every metric)
  GET /metrics, scrape token     200 containing http_requests_total    (METRICS_SCRAPE_TOKEN)

Environment:
  PRISM_VERIFY_TOKEN    a Clerk session token of an organisation, with the scopes
                        buildings:read and comps:read. Unset: the two authenticated
                        checks are skipped (SKIP), not failed.
  METRICS_SCRAPE_TOKEN  the api's scrape token. Unset: the /metrics check with the
                        token is skipped.
  VERIFY_REQUIRE_TOKENS true: an unset PRISM_VERIFY_TOKEN or METRICS_SCRAPE_TOKEN fails
                        instead of skipping (the deploy workflow sets it).
  VERIFY_METRICS_URL    where /metrics is scraped, when the public BASE_URL blocks it
                        (docs/ops/tls-cloudflare.md): e.g. http://10.0.0.5:8080. Both
                        /metrics checks also run there. Unset, and BASE_URL's /metrics
                        blocked at the edge: the check with the token is skipped.
  VERIFY_EXPECT_HSTS    false: HSTS is not expected (a local stack with
                        ENV=development); its check says SKIP. Default true.
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
REQUIRE_TOKENS="${VERIFY_REQUIRE_TOKENS:-false}"
EXPECT_HSTS="${VERIFY_EXPECT_HSTS:-true}"
METRICS_URL="${VERIFY_METRICS_URL:-}"
METRICS_URL="${METRICS_URL%/}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"

failures=0
pass() { printf 'PASS  %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; failures=$((failures + 1)); }
skip() { printf 'SKIP  %s\n' "$*"; }

# missing_token WHAT: SKIP, or FAIL with VERIFY_REQUIRE_TOKENS=true.
missing_token() {
  if [ "$REQUIRE_TOKENS" = true ]; then fail "$1 (VERIFY_REQUIRE_TOKENS=true)"; else skip "$1"; fi
}

# fetch NAME PATH [BEARER]: GET BASE_URL/PATH (or PATH itself when it is a URL); the
# body goes to $work/NAME.body, the headers to $work/NAME.headers; prints the status
# code (000 when no answer came).
fetch() {
  local name="$1" path="$2" bearer="${3:-}" url
  case "$path" in http://* | https://*) url="$path" ;; *) url="$BASE_URL$path" ;; esac
  local args=(-sS --max-time "$TIMEOUT" -o "$work/$name.body" -D "$work/$name.headers" -w '%{http_code}')
  : > "$work/$name.body"; : > "$work/$name.headers"
  if [ -n "$bearer" ]; then
    (umask 077; printf 'Authorization: Bearer %s\n' "$bearer" > "$work/$name.auth")
    args+=(-H "@$work/$name.auth")
  fi
  curl "${args[@]}" "$url" 2>"$work/$name.err" || true
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
  missing_token "GET /v1/buildings and GET /v1/comps with a token: PRISM_VERIFY_TOKEN is not set"
fi

# 6. The OpenAPI document.
code=$(fetch openapi /openapi.json)
if [ "$code" = 200 ] && body openapi 'isinstance(doc.get("paths"), dict) and len(doc["paths"]) > 0'; then
  pass "GET /openapi.json: 200 with paths"
else
  fail "GET /openapi.json: expected 200 with paths; $(why openapi "$code")"
fi

# 7. HSTS: browsers use only HTTPS for the api host (and its subdomains) for a year.
hsts=$(header health strict-transport-security)
if [ "$EXPECT_HSTS" = false ]; then
  skip "Strict-Transport-Security: not expected (VERIFY_EXPECT_HSTS=false); got '${hsts:-nothing}'"
elif max_age=$(sed -nE 's/.*max-age="?([0-9]+)"?.*/\1/ip' <<<"$hsts") \
    && [ -n "$max_age" ] && [ "$max_age" -ge 31536000 ] && grep -qi 'includesubdomains' <<<"$hsts"; then
  pass "Strict-Transport-Security: $hsts"
else
  fail "Strict-Transport-Security: expected max-age >= 31536000 and includeSubDomains (sent with ENV=production); got '${hsts:-nothing}'"
fi

# 8. The other security headers, on a success (/health) and on an error (the 401).
security_headers() {
  local name=$1 what=$2 wrong=() value
  value=$(header "$name" x-content-type-options)
  [ "${value,,}" = nosniff ] || wrong+=("X-Content-Type-Options '${value}'")
  value=$(header "$name" x-frame-options)
  [ "${value^^}" = DENY ] || wrong+=("X-Frame-Options '${value}'")
  value=$(header "$name" referrer-policy)
  [ "${value,,}" = no-referrer ] || wrong+=("Referrer-Policy '${value}'")
  value=$(header "$name" cross-origin-resource-policy)
  [ "${value,,}" = same-site ] || wrong+=("Cross-Origin-Resource-Policy '${value}'")
  value=$(header "$name" content-security-policy)
  [[ "$value" == *"default-src 'none'"* && "$value" == *"frame-ancestors 'none'"* ]] \
    || wrong+=("Content-Security-Policy '${value}'")
  if [ "${#wrong[@]}" = 0 ]; then
    pass "security headers on $what: nosniff, DENY, no-referrer, same-site, CSP default-src 'none'"
  else
    fail "security headers on $what: wrong or missing: $(printf '%s; ' "${wrong[@]}" | sed 's/; $//')"
  fi
}
security_headers health "GET /health (200)"
security_headers anonymous "GET /v1/buildings without a token (401)"

# 9. /metrics refused without the scrape token, on the public URL and where it is
#    scraped. 401 is the api's answer; 403 or 404 is an edge that blocks the path.
edge_blocked=""
metrics_refused() { # NAME URL_OR_PATH LABEL
  local code
  code=$(fetch "$1" "$2")
  case "$code" in
    401) pass "GET $3 without a token: 401 (the scrape token is required)" ;;
    403 | 404)
      pass "GET $3 without a token: $code (blocked in front of the api)"
      edge_blocked=1
      ;;
    200) fail "GET $3 without a token: 200, every metric is public (METRICS_SCRAPE_TOKEN unset, or ENV is not production)" ;;
    *) fail "GET $3 without a token: expected 401 (or 403/404 from the edge); $(why "$1" "$code")" ;;
  esac
}
metrics_refused metrics_public /metrics "$BASE_URL/metrics"
metrics_base="$BASE_URL"
if [ -n "$METRICS_URL" ]; then
  edge_blocked=""
  metrics_refused metrics_direct "$METRICS_URL/metrics" "$METRICS_URL/metrics"
  metrics_base="$METRICS_URL"
fi

# 10. /metrics with the scrape token.
if [ -z "${METRICS_SCRAPE_TOKEN:-}" ]; then
  missing_token "GET /metrics with the scrape token: METRICS_SCRAPE_TOKEN is not set"
else
  code=$(fetch metrics "$metrics_base/metrics" "$METRICS_SCRAPE_TOKEN")
  if [ "$code" = 200 ] && grep -q 'http_requests_total' "$work/metrics.body"; then
    pass "GET $metrics_base/metrics with the scrape token: 200 with http_requests_total"
  elif [ -n "$edge_blocked" ] && { [ "$code" = 403 ] || [ "$code" = 404 ]; }; then
    skip "GET $metrics_base/metrics with the scrape token: blocked in front of the api ($code); set VERIFY_METRICS_URL to the address Prometheus scrapes"
  else
    fail "GET $metrics_base/metrics with the scrape token: expected 200 with http_requests_total; status $code"
  fi
fi

if [ "$failures" = 0 ]; then
  echo "verify-deploy: all checks passed"
else
  echo "verify-deploy: $failures check(s) failed"
  exit 1
fi
