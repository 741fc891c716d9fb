#!/usr/bin/env bash
# Checks Prism's alerting (docs/ops/monitoring.md#running-the-rule-tests):
# - the Prometheus rules in ops/prometheus/ load (`promtool check rules`) and pass
#   their unit tests (`promtool test rules`), every alert having a test where it fires
#   and one where it stays quiet, and every runbook_url leading to a section of
#   docs/ops/monitoring.md;
# - the Alertmanager template renders with ops/alertmanager/render.sh (under busybox
#   sh when there is one, like the prom/alertmanager image), refuses missing
#   variables, passes `amtool check-config`, routes critical alerts to slack-critical
#   and warnings to slack-warning, and its Slack messages render.
# Installs Debian's `prometheus` (promtool) and `prometheus-alertmanager` (amtool) when
# missing (needs root or sudo). Prints one line per check and a count; exits non-zero
# when any check fails.
set -euo pipefail
cd "$(dirname "$0")/../.."

log() { printf '[alerts] %s\n' "$*"; }

# shellcheck source=scripts/lib/apt.sh
. scripts/lib/apt.sh

command -v promtool >/dev/null || apt_install prometheus
command -v amtool >/dev/null || apt_install prometheus-alertmanager
command -v python3 >/dev/null || apt_install python3
python3 -c 'import yaml' 2>/dev/null || apt_install python3-yaml

RULES=ops/prometheus/prism-api-alerts.yml
DEV_RULES=ops/prometheus/prism-api-alerts.dev.yml
TESTS=ops/prometheus/tests/prism-api-alerts.test.yml
DEV_TESTS=ops/prometheus/tests/prism-api-alerts.dev.test.yml
TEMPLATE=ops/alertmanager/alertmanager.yml.tmpl
RENDER=ops/alertmanager/render.sh
RUNBOOK=docs/ops/monitoring.md

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
# check DESCRIPTION COMMAND...: runs the command, prints one line; its output only on
# failure.
check() {
  local description=$1 output
  shift
  if output=$("$@" 2>&1); then
    printf '  ok    %s\n' "$description"
    passed=$((passed + 1))
  else
    printf '  FAIL  %s\n' "$description"
    printf '%s\n' "$output" | sed 's/^/        /'
    failed=$((failed + 1))
  fi
}

rule_count() { grep -cE '^[[:space:]]*- alert:' "$1" || true; }
test_count() { grep -cE '^[[:space:]]*alertname:' "$1" || true; }

# promtool only warns when a test's rule_files match nothing, then every "stays
# quiet" test passes vacuously: treat that warning as a failure.
test_rules() {
  local output status=0
  output=$(promtool test rules "$1" 2>&1) || status=$?
  printf '%s\n' "$output"
  [ "$status" = 0 ] && ! grep -q 'WARNING' <<<"$output"
}

# Every alert (name and severity) fires in some test and is absent in another; every
# alert a test names exists.
coverage() {
  python3 - "$1" "$2" <<'PY'
import sys, yaml
rules_file, tests_file = sys.argv[1:3]
rules = [(r["alert"], (r.get("labels") or {}).get("severity"))
         for g in yaml.safe_load(open(rules_file))["groups"] for r in g["rules"] if "alert" in r]
fires, quiet, named = set(), set(), set()
for test in yaml.safe_load(open(tests_file))["tests"]:
    for case in test.get("alert_rule_test") or []:
        name = case["alertname"]
        named.add(name)
        expected = {(e.get("exp_labels") or {}).get("severity") for e in case.get("exp_alerts") or []}
        for rule_name, severity in rules:
            if rule_name == name:
                (fires if severity in expected else quiet).add((name, severity))
problems = [f"{n} ({s}) never fires in a test" for n, s in rules if (n, s) not in fires]
problems += [f"{n} ({s}) is never shown quiet" for n, s in rules if (n, s) not in quiet]
problems += [f"a test names {n}, which is no alert of {rules_file}" for n in sorted(named - {n for n, _ in rules})]
print("\n".join(problems))
sys.exit(1 if problems else 0)
PY
}

# Every runbook_url is docs/ops/monitoring.md#<anchor> and the anchor is a heading
# there (GitHub's anchors: lower case, punctuation dropped, spaces to hyphens).
runbook_anchors() {
  python3 - "$RUNBOOK" "$@" <<'PY'
import re, sys, yaml
runbook, rule_files = sys.argv[1], sys.argv[2:]
prefix = "https://github.com/prism/prism/blob/main/docs/ops/monitoring.md#"
anchors, fenced = set(), False
for line in open(runbook):
    if line.startswith("```"):
        fenced = not fenced
    elif not fenced and re.match(r"#{1,6} ", line):
        text = line.lstrip("#").strip().lower()
        anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
problems = []
for path in rule_files:
    for group in yaml.safe_load(open(path))["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            url = (rule.get("annotations") or {}).get("runbook_url", "")
            if not url.startswith(prefix):
                problems.append(f"{path}: {rule['alert']}: runbook_url {url!r} is not {prefix}<anchor>")
            elif url[len(prefix):] not in anchors:
                problems.append(f"{path}: {rule['alert']}: no heading for #{url[len(prefix):]} in {runbook}")
print("\n".join(problems))
sys.exit(1 if problems else 0)
PY
}

if command -v busybox >/dev/null; then render_shell=(busybox sh); else render_shell=(sh); fi
example_env=(
  SLACK_CRITICAL_CHANNEL='#prism-critical'
  SLACK_WARNING_CHANNEL='#prism-alerts'
  SLACK_CRITICAL_WEBHOOK_URL='https://hooks.slack.com/services/T00000000/B00000000/critical'
  SLACK_WARNING_WEBHOOK_URL='https://hooks.slack.com/services/T00000000/B00000000/warning'
)
CONFIG="$work/alertmanager.yml"
SECRETS="$work/secrets"

render() {
  env "${example_env[@]}" "${render_shell[@]}" "$RENDER" "$TEMPLATE" "$CONFIG" "$SECRETS" &&
    [ "$(cat "$SECRETS/slack-critical-url")" = 'https://hooks.slack.com/services/T00000000/B00000000/critical' ] &&
    [ "$(cat "$SECRETS/slack-warning-url")" = 'https://hooks.slack.com/services/T00000000/B00000000/warning' ] &&
    ! grep -q 'hooks.slack.com' "$CONFIG"
}

refuses_missing() {
  local output
  if output=$(env -u SLACK_WARNING_WEBHOOK_URL -u SLACK_CRITICAL_CHANNEL \
    SLACK_WARNING_CHANNEL='#prism-alerts' SLACK_CRITICAL_WEBHOOK_URL='https://example.invalid/x' \
    "${render_shell[@]}" "$RENDER" "$TEMPLATE" "$work/refused.yml" "$work/refused-secrets" 2>&1); then
    echo "render.sh succeeded without SLACK_CRITICAL_CHANNEL and SLACK_WARNING_WEBHOOK_URL"
    return 1
  fi
  printf '%s\n' "$output"
  grep -q 'SLACK_CRITICAL_CHANNEL is not set' <<<"$output" &&
    grep -q 'SLACK_WARNING_WEBHOOK_URL is not set' <<<"$output" &&
    [ ! -e "$work/refused.yml" ]
}

routes_to() { # RECEIVER LABEL=VALUE...
  local receiver=$1
  shift
  amtool config routes test --config.file="$CONFIG" --verify.receivers="$receiver" "$@"
}

# Renders each Slack field of each receiver with a firing and a resolved alert.
slack_messages() {
  cat > "$work/data.json" <<'JSON'
{"receiver": "slack-critical", "status": "firing",
 "alerts": [
  {"status": "firing",
   "labels": {"alertname": "PrismApiHighLatency", "severity": "critical", "job": "prism-api"},
   "annotations": {"summary": "prism-api P95 latency is above 2s", "description": "P95 request latency of prism-api is 3.125s, above 2s for 5 minutes.",
                   "runbook_url": "https://github.com/prism/prism/blob/main/docs/ops/monitoring.md#high-latency"},
   "startsAt": "2026-01-01T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z"},
  {"status": "resolved",
   "labels": {"alertname": "PrismApiHighLatency", "severity": "critical", "job": "prism-api"},
   "annotations": {"summary": "prism-api P95 latency is above 2s", "description": "P95 request latency of prism-api is 2.2s, above 2s for 5 minutes.",
                   "runbook_url": "https://github.com/prism/prism/blob/main/docs/ops/monitoring.md#high-latency"},
   "startsAt": "2026-01-01T09:00:00Z", "endsAt": "2026-01-01T09:30:00Z"}],
 "groupLabels": {"alertname": "PrismApiHighLatency", "severity": "critical", "job": "prism-api"},
 "commonLabels": {"alertname": "PrismApiHighLatency", "severity": "critical", "job": "prism-api"},
 "commonAnnotations": {"summary": "prism-api P95 latency is above 2s", "runbook_url": "https://github.com/prism/prism/blob/main/docs/ops/monitoring.md#high-latency"},
 "externalURL": "http://alertmanager:9093"}
JSON
  : > "$work/none.tmpl"
  python3 - "$CONFIG" "$work" <<'PY'
import subprocess, sys, yaml
config, work = sys.argv[1:3]
failures = 0
for receiver in yaml.safe_load(open(config))["receivers"]:
    for slack in receiver.get("slack_configs") or []:
        for field in ("title", "title_link", "text", "fallback", "color"):
            result = subprocess.run(
                ["amtool", "template", "render", f"--template.glob={work}/none.tmpl",
                 f"--template.text={slack[field]}", f"--template.data={work}/data.json"],
                capture_output=True, text=True)
            ok = result.returncode == 0 and result.stdout.strip() != ""
            if field == "text":
                ok = ok and all(s in result.stdout for s in ("above 2s", "#high-latency", "Resolved"))
            if not ok:
                failures += 1
                print(f"{receiver['name']}.{field}: {result.stdout}{result.stderr}")
sys.exit(1 if failures else 0)
PY
}

log "Prometheus rules ($(promtool --version 2>&1 | head -n1))"
check "promtool check rules $RULES ($(rule_count "$RULES") rules)" promtool check rules "$RULES"
check "promtool check rules $DEV_RULES ($(rule_count "$DEV_RULES") rules)" promtool check rules "$DEV_RULES"
check "promtool test rules $TESTS ($(test_count "$TESTS") alert tests)" test_rules "$TESTS"
check "promtool test rules $DEV_TESTS ($(test_count "$DEV_TESTS") alert tests)" test_rules "$DEV_TESTS"
check "every alert of $RULES fires in a test and stays quiet in another" coverage "$RULES" "$TESTS"
check "every alert of $DEV_RULES fires in a test and stays quiet in another" coverage "$DEV_RULES" "$DEV_TESTS"
check "every runbook_url has its section in $RUNBOOK" runbook_anchors "$RULES" "$DEV_RULES"

log "Alertmanager ($(amtool --version 2>&1 | head -n1))"
check "render.sh (${render_shell[*]}) renders $TEMPLATE with example values" render
check "render.sh refuses to render without its variables" refuses_missing
check "amtool check-config on the rendered config" amtool check-config "$CONFIG"
check "a critical alert routes to slack-critical" \
  routes_to slack-critical alertname=PrismApiDown severity=critical job=prism-api
check "a warning alert routes to slack-warning" \
  routes_to slack-warning alertname=PrismProjectionLag severity=warning job=prism-worker
check "an alert without a known severity routes to slack-warning" \
  routes_to slack-warning alertname=Watchdog severity=none
check "the Slack messages render (title, link, text, fallback, colour)" slack_messages

echo "alerts: $passed passed, $failed failed"
[ "$failed" = 0 ]
