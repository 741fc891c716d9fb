#!/usr/bin/env bash
# `make ops-check`: a real Prometheus (Debian's `prometheus`) scrapes a running
# prism-api and prism-worker while traffic flows, then every series Prism promises
# (docs/observability.md) and every dashboard query in ops/grafana must parse and
# return data; every alert rule expression in ops/prometheus must parse and every
# metric it selects must have data (a healthy stack fires no alert, so the alert
# expressions themselves are rightly empty).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[ops-check] %s\n' "$*"; }
command -v prometheus >/dev/null || scripts/services.sh
# shellcheck source=scripts/lib/stack.sh
. scripts/lib/stack.sh
prometheus_pid=""
cleanup() { [ -n "$prometheus_pid" ] && kill "$prometheus_pid" 2>/dev/null; stack_stop; }
trap cleanup EXIT

stack_start opscheck
stack_seed
prom_port=$(free_port)
cat > "$STACK_DIR/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prism-api
    static_configs: [{ targets: ["${STACK_API#http://}"] }]
  - job_name: prism-worker
    static_configs: [{ targets: ["${STACK_WORKER#http://}"] }]
YAML
prometheus --config.file="$STACK_DIR/prometheus.yml" --storage.tsdb.path="$STACK_DIR/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn > "$STACK_DIR/prometheus.log" 2>&1 &
prometheus_pid=$!
PROM="http://127.0.0.1:$prom_port"

log "traffic for 8 s (commands, reads, a cache hit, a 404, a refused token, a rebuild)"
# A rebuild of the audit projection runs beside the traffic: its metrics (and the
# dashboard's latest-rebuild panel) have data.
curl -fsS -o /dev/null -X POST -H "Authorization: Bearer $STACK_TOKEN" \
  "$STACK_API/v1/admin/projections/audit/rebuilds"
end=$((SECONDS + 8))
while [ "$SECONDS" -lt "$end" ]; do
  stack_post /v1/comps/lease "{\"building_id\":\"$STACK_BUILDING\",\"tenant\":\"Globex\",\"leased_area_sqft\":5000,
    \"starting_rent_psf\":\"60\",\"lease_type\":\"net\",\"term_months\":36,\"commencement_date\":\"2026-03-01\"}" >/dev/null
  for path in "/v1/buildings" "/v1/buildings/$STACK_BUILDING" "/v1/comps/$STACK_COMP" "/v1/market/stats" "/v1/audit"; do
    curl -fsS -o /dev/null -H "Authorization: Bearer $STACK_TOKEN" "$STACK_API$path"
  done
  curl -sS -o /dev/null "$STACK_API/no/such/route"
  curl -sS -o /dev/null -H "Authorization: Bearer not-a-jwt" "$STACK_API/v1/buildings"
  sleep 0.2
done
sleep 3

# Every expression to check: the promised series, then whatever ops/ holds.
exprs="$STACK_DIR/exprs.txt"
cat > "$exprs" <<'LIST'
http_requests_total{path="/v1/buildings/{id}"}
http_request_duration_seconds_bucket{le="0.005"}
http_request_size_bytes_count
http_response_size_bytes_sum
prism_commands_total{outcome="accepted"}
prism_cache_requests_total{outcome="hit"}
prism_auth_failures_total{reason="malformed"}
process_resident_memory_bytes{job="prism-api"}
process_cpu_seconds_total{job="prism-worker"}
process_open_fds
tokio_alive_tasks
tokio_workers
prism_queue_jobs{queue="projections",state="pending"}
prism_queue_jobs{state="done"}
prism_jobs_total{queue="projections",outcome="ok"}
prism_job_duration_seconds_bucket
prism_projection_position{projection="catalog"} > 0
prism_projection_lag_events{projection="audit"}
prism_projection_lag_seconds
prism_projection_last_batch_size
prism_projection_failing
prism_rebuild_state{projection="catalog",state="failed"}
prism_rebuild_events_applied{projection="audit"}
prism_rebuild_events_total
prism_rebuild_events_per_second
prism_rebuild_stalled_seconds
LIST
python="python3"
python3 -c 'import yaml' 2>/dev/null || python="$HOME/.cache/prism/venv/bin/python"
"$python" - "$exprs" "$PROM" > "$STACK_DIR/results.txt" <<'PY'
"""Evaluates the expressions: promised series and dashboard queries must return data;
alert rule expressions must parse and every series they select must return data (a
healthy stack fires no alert, so the whole expression is empty by design)."""
import glob, json, re, sys, urllib.parse, urllib.request
import yaml

listed, prom = sys.argv[1], sys.argv[2]
checks = [("series", line.strip()) for line in open(listed) if line.strip()]

def dashboard_exprs(node):
    if isinstance(node, dict):
        if isinstance(node.get("expr"), str):
            yield node["expr"]
        for value in node.values():
            yield from dashboard_exprs(value)
    elif isinstance(node, list):
        for value in node:
            yield from dashboard_exprs(value)

for path in sorted(glob.glob("ops/grafana/dashboards/*.json")):
    for expr in dashboard_exprs(json.load(open(path))):
        expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "1m")
        checks.append(("dashboard", " ".join(expr.split())))
for path in sorted(glob.glob("ops/prometheus/*alerts*.yml")):
    for group in yaml.safe_load(open(path))["groups"]:
        for rule in group["rules"]:
            checks.append(("alert " + rule.get("alert", rule.get("record", "?")), " ".join(rule["expr"].split())))

def query(expr):
    url = prom + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            answer = json.load(response)
    except Exception:
        return None
    return len(answer["data"]["result"]) if answer.get("status") == "success" else None

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "inf", "nan", "le", "atan2",
            # aggregation operators, which may take `by (…)` before their parenthesis
            "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
            "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"'                              # a string
    r'|\[[^\]]*\]'                                    # a range or subquery window
    r'|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)'  # label lists
    r'|([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?'     # a name, maybe with matchers
)

def selectors(expr):
    """The metric names an expression selects: names not followed by `(` (functions),
    not keywords or aggregations, not a duration's unit. Names, not whole selectors:
    a selector for errors (`status=~"5.."`) is rightly empty on a healthy stack, but
    the metric itself must exist."""
    found = set()
    for match in TOKEN.finditer(expr):
        name = match.group(1)
        if not name or name in KEYWORDS:
            continue
        if match.start(1) > 0 and expr[match.start(1) - 1].isalnum():
            continue
        if expr[match.end():].lstrip().startswith("("):
            continue
        found.add(name)
    return sorted(found)

failed = 0
for kind, expr in checks:
    if kind.startswith("alert"):
        if query(expr) is None:
            print(f"  FAIL {kind}: does not parse: {expr}")
            failed += 1
            continue
        empty = [s for s in selectors(expr) if not query(f'{{__name__="{s}"}}')]
        if empty:
            print(f"  FAIL {kind}: no data for {', '.join(empty)}")
            failed += 1
        else:
            print(f"  ok   {kind}: {', '.join(selectors(expr))} have data")
    else:
        count = query(expr)
        if count:
            print(f"  ok   {count:3d} series  {expr}")
        else:
            print(f"  FAIL {kind}: {'does not parse' if count is None else 'no data'}: {expr}")
            failed += 1
print(f"RESULT {len(checks)} {failed}")
PY
grep -v '^RESULT' "$STACK_DIR/results.txt"
read -r _ checked failed < <(grep '^RESULT' "$STACK_DIR/results.txt")
log "$checked expressions, $failed failed"

curl -fsS "$STACK_API/metrics" > "${CARGO_TARGET_DIR}/api-metrics-sample.txt"
curl -fsS "$STACK_WORKER/metrics" > "${CARGO_TARGET_DIR}/worker-metrics-sample.txt"
[ "$failed" = 0 ]
