#!/usr/bin/env bash
# Checks the closing line scripts/test.sh prints for the cargo run
# (scripts/lib/cargo-summary.sh) against cargo output of every kind of ending: all
# green, failing tests, a crate that does not compile, a test binary that aborts, a
# failure with no output at all, colour codes. Above all: a non-zero exit is never
# summed up as "0 failed". Needs bash and awk only. One line per case; exits non-zero
# when any case fails.
set -euo pipefail
cd "$(dirname "$0")/../.."

# shellcheck source=scripts/lib/cargo-summary.sh
. scripts/lib/cargo-summary.sh

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0

# case NAME STATUS EXPECTED_FIRST_LINE EXPECTED_SECOND_LINE < cargo output
case_() {
  local name=$1 status=$2 first=$3 second=$4 out
  cat > "$work/log"
  out=$(cargo_test_summary "$work/log" "$status")
  local got_first got_second
  got_first=$(sed -n 1p <<<"$out")
  got_second=$(sed -n 2p <<<"$out")
  if [ "$got_first" = "$first" ] && [ "$got_second" = "$second" ] \
      && { [ "$status" = 0 ] || ! grep -q ' 0 failed' <<<"$got_first"; }; then
    printf '[test-summary] ok    %s: %s\n' "$name" "$got_first"
  else
    printf '[test-summary] FAIL  %s\n  expected: %s | %s\n  got:      %s | %s\n' \
      "$name" "$first" "$second" "$got_first" "$got_second"
    failed=$((failed + 1))
  fi
}

case_ "all green" 0 "tests: 15 passed, 0 failed, 1 ignored" "" <<'LOG'
   Compiling domain v0.1.0 (/src/domain)
    Finished `test` profile [unoptimized + debuginfo] target(s) in 9.21s
     Running unittests src/lib.rs (/t/debug/deps/domain-2009826e2a59087a)

running 13 tests
test result: ok. 13 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s

     Running tests/schema.rs (/t/debug/deps/schema-acb60e39aed648de)

running 2 tests
test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 3.92s

LOG

case_ "failing tests" 101 "tests: 3 passed, 2 failed, 0 ignored" \
  "cargo test: exit 101; 2 test(s) failed" <<'LOG'
     Running tests/api/main.rs (/t/debug/deps/api-422aa682cdb5a223)

running 5 tests
test buildings::register ... FAILED
test buildings::relocate ... FAILED
test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.20s

error: test failed, to rerun pass `-p api --test api`
error: 1 target failed:
    `-p api --test api`
LOG

case_ "a crate does not compile" 101 "tests: 0 passed, 1 failed, 0 ignored" \
  "cargo test: exit 101; 1 crate(s) did not compile" <<'LOG'
   Compiling api v0.1.0 (/src/api)
error[E0425]: cannot find value `settings` in this scope
  --> api/src/startup.rs:42:9
   |
42 |         settings.port
   |         ^^^^^^^^ not found in this scope

For more information about this error, try `rustc --explain E0425`.
error: could not compile `api` (lib test) due to 1 previous error
warning: build failed, waiting for other jobs to finish...
LOG

case_ "a test binary aborts" 101 "tests: 13 passed, 1 failed, 0 ignored" \
  "cargo test: exit 101; 1 test binary(ies) ended without a result (aborted or killed)" <<'LOG'
     Running unittests src/lib.rs (/t/debug/deps/domain-2009826e2a59087a)

running 13 tests
test result: ok. 13 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

     Running tests/system/main.rs (/t/debug/deps/system-5925f7a9e2033933)

running 18 tests
test faults::worker_killed_mid_batch ... ok

thread 'faults::redis_dies' has overflowed its stack
fatal runtime error: stack overflow
error: test failed, to rerun pass `-p worker --test system`

Caused by:
  process didn't exit successfully: `/t/debug/deps/system-5925f7a9e2033933` (signal: 6, SIGABRT: process abort signal)
error: 1 target failed:
    `-p worker --test system`
LOG

case_ "failed with no output" 101 "tests: 0 passed, 1 failed, 0 ignored" \
  "cargo test: exit 101; no test result explains it (counted as 1 failure)" < /dev/null

case_ "colour codes" 101 "tests: 4 passed, 1 failed, 0 ignored" \
  "cargo test: exit 101; 1 test(s) failed" <<LOG
$(printf '     \033[1m\033[32mRunning\033[0m tests/schema.rs (/t/debug/deps/schema-acb60e39aed648de)')
$(printf 'test result: \033[31mFAILED\033[0m. 4 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 3.92s')
LOG

if [ "$failed" = 0 ]; then
  echo "[test-summary] all cases passed"
else
  echo "[test-summary] $failed case(s) failed"
  exit 1
fi
