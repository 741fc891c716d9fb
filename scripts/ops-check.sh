#!/usr/bin/env bash
# `make ops-check`: a real Prometheus (Debian's `prometheus`) scrapes a running
# prism-api and prism-worker while traffic flows, then every series Prism promises
# (docs/observability.md) and every query in ops/ (Grafana dashboard targets, alert
# rule expressions) is evaluated against it: each must parse and return data.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[ops-check] %s\n' "$*"; }
command -v prometheus >/dev/null || scripts/services.sh
# shellcheck source=lib/stack.sh
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

log "traffic for 8 s (commands, reads, a cache hit, a 404, a refused token)"
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
LIST
python3 - "$exprs" <<'PY'
import glob, json, sys
out = open(sys.argv[1], "a")
for path in sorted(glob.glob("ops/grafana/dashboards/*.json")):
    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                out.write(node["expr"].replace("\n", " ").replace("$__rate_interval", "1m").replace("$__interval", "1m") + "\n")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(json.load(open(path)))
PY

failed=0; checked=0
while IFS= read -r expr; do
  [ -z "$expr" ] && continue
  checked=$((checked + 1))
  answer=$(curl -fsS --get "$PROM/api/v1/query" --data-urlencode "query=$expr" || echo '{"status":"error"}')
  count=$(printf '%s' "$answer" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d["data"]["result"]) if d.get("status")=="success" else -1)')
  if [ "$count" -gt 0 ]; then
    printf '  ok   %3d series  %s\n' "$count" "$expr"
  else
    printf '  FAIL %s (%s)\n' "$expr" "$( [ "$count" = -1 ] && echo "does not parse" || echo "no data")"
    failed=$((failed + 1))
  fi
done < "$exprs"
log "$checked expressions, $failed failed"
curl -fsS "$STACK_API/metrics" > "${CARGO_TARGET_DIR}/api-metrics-sample.txt"
curl -fsS "$STACK_WORKER/metrics" > "${CARGO_TARGET_DIR}/worker-metrics-sample.txt"
[ "$failed" = 0 ]
