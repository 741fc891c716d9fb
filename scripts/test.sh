#!/usr/bin/env bash
# `make test`'s test run: every crate's tests, then one closing line that totals them
# ("tests: N passed, N failed, N ignored"), also written to
# $CARGO_TARGET_DIR/test-summary.txt for CI to repeat as its last line.
set -uo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target"
log="$target/test-output.log"

cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

summary=$(awk '/^test result:/ {
    for (i = 1; i <= NF; i++) {
      if ($(i+1) ~ /^passed;?$/) passed += $i
      if ($(i+1) ~ /^failed;?$/) failed += $i
      if ($(i+1) ~ /^ignored;?$/) ignored += $i
    }
  } END { printf "tests: %d passed, %d failed, %d ignored\n", passed, failed, ignored }' "$log")
echo "$summary" | tee "$target/test-summary.txt"
exit "$status"
