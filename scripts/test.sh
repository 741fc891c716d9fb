#!/usr/bin/env bash
# `make test`'s test run: every crate's tests, then the API fuzzing, the checks, the ops
# check, the restore drill and the browser test, then closing lines that total them
# ("tests: N passed, N failed, N ignored", schemathesis's counts, one line per part),
# also written to $CARGO_TARGET_DIR/test-summary.txt for CI to repeat at the end. A
# cargo run that failed without a failing test (a compile error, an aborted test
# binary) is counted as failed there, never as "0 failed".
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target"
log="$target/test-output.log"

cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# "tests: N passed, N failed, N ignored", and why when cargo failed: a compile error or
# an aborted test binary prints no "test result:" line, yet it is a failure.
# shellcheck source=scripts/lib/cargo-summary.sh
. scripts/lib/cargo-summary.sh
summary=$(cargo_test_summary "$log" "$status")

# API fuzzing against the running api and worker (schemathesis; scripts/fuzz.sh).
fuzz_log="$target/fuzz-output.log"
scripts/fuzz.sh 2>&1 | tee "$fuzz_log"
fuzz_status=${PIPESTATUS[0]}
fuzz_cases=$(grep -Eo '[0-9]+ generated, [0-9]+ passed[^=]*' "$fuzz_log" | tail -n 1)
fuzz_summary="schemathesis: exit $fuzz_status; ${fuzz_cases:-no cases run}"

# Every scripts/checks/*.sh: operations as code, each file proven by its tool (compose
# files and Dockerfile with docker-compose config, alert rules with promtool tests,
# Alertmanager with amtool, dashboards' structure and PromQL, the workflows with
# actionlint, shell scripts with ShellCheck), the supply chain (cargo deny), CI's path
# filters against the tracked files, and this script's own summary parsing.
checks_log="$target/ops-files-output.log"
: > "$checks_log"
checks_failed=0; checks_run=0
for check in scripts/checks/*.sh; do
  checks_run=$((checks_run + 1))
  "$check" 2>&1 | tee -a "$checks_log" || { checks_failed=$((checks_failed + 1)); echo "FAILED: $check" | tee -a "$checks_log"; }
done
checks_summary="checks: $checks_run scripts, $checks_failed failed"

# A real Prometheus scraping a running api and worker (scripts/ops-check.sh).
ops_log="$target/ops-check-output.log"
scripts/ops-check.sh 2>&1 | tee "$ops_log"
ops_status=${PIPESTATUS[0]}
ops_summary="ops-check: exit $ops_status; $(grep -Eo '[0-9]+ expressions, [0-9]+ failed' "$ops_log" | tail -n 1)"

# The backup restored on the same server and into a cluster whose transaction counter
# is behind it: the worker's refusal, the runbook's recovery, rebuilt projections equal
# to the source's (scripts/restore-drill.sh; about 10 s).
drill_log="$target/restore-drill-output.log"
scripts/restore-drill.sh 2>&1 < /dev/null | tee "$drill_log"
drill_status=${PIPESTATUS[0]}
drill_summary="restore-drill: exit $drill_status; $(grep -Eo 'passed in [0-9]+ s' "$drill_log" | tail -n 1)"

# Debian's Chromium runs a page on another origin through the typed client: commands,
# min_position, a 304 from the browser's cache, 409/422 problems, a 429's Retry-After,
# CORS and its preflights (scripts/browser-test.sh; about 15 s once the binaries are built).
browser_log="$target/browser-test-output.log"
scripts/browser-test.sh 2>&1 < /dev/null | tee "$browser_log"
browser_status=${PIPESTATUS[0]}
browser_steps=$(grep -Eo '[0-9]+ steps passed, [0-9]+ failed' "$browser_log" | tail -n 1)
browser_summary="browser: exit $browser_status; ${browser_steps:-no steps run}"

printf '%s\n%s\n%s\n%s\n%s\n%s\n' "$summary" "$fuzz_summary" "$checks_summary" "$ops_summary" "$drill_summary" \
  "$browser_summary" | tee "$target/test-summary.txt"
[ "$status" = 0 ] && [ "$fuzz_status" = 0 ] && [ "$checks_failed" = 0 ] && [ "$ops_status" = 0 ] \
  && [ "$drill_status" = 0 ] && [ "$browser_status" = 0 ]
