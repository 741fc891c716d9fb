# shellcheck shell=bash
# Sourced by scripts/test.sh (and exercised by scripts/checks/test-summary.sh).
# `cargo_test_summary LOG STATUS` prints the closing line of a `cargo test` run from its
# output in LOG and cargo's exit status STATUS:
#
#   tests: N passed, N failed, N ignored
#
# and, when cargo exited non-zero, a second line saying why. The counts come from the
# "test result:" lines, which only test binaries that ran to the end print. A run can
# also fail without one: a crate that does not compile, a test binary that aborts
# (SIGABRT, a stack overflow, a panic while panicking) or is killed. Each of those
# counts as one failure, and a non-zero exit that nothing in the log explains counts as
# one too, so the line never says "0 failed" for a failed run.
cargo_test_summary() {
  local log=$1 status=$2
  awk -v status="$status" '
    { gsub(/\033\[[0-9;]*[A-Za-z]/, "") }    # colour codes, if cargo was told to colour
    /^test result:/ {
      results++
      for (i = 1; i <= NF; i++) {
        if ($(i+1) ~ /^passed;?$/) passed += $i
        if ($(i+1) ~ /^failed;?$/) failed += $i
        if ($(i+1) ~ /^ignored;?$/) ignored += $i
      }
      next
    }
    # Each test binary cargo starts announces itself; each that finishes prints one
    # "test result:" line.
    /^[[:space:]]+Running [^ ]/ || /^[[:space:]]+Doc-tests [^ ]/ { started++; next }
    /^error: could not compile/ { uncompiled++; next }
  END {
    # A run cargo calls successful failed nothing (a test that starts cargo itself
    # could print lines that look like the ones above).
    aborted = (status != 0) ? started - results : 0
    if (aborted < 0) aborted = 0
    if (status == 0) uncompiled = 0
    total_failed = failed + aborted + uncompiled
    unexplained = (status != 0 && total_failed == 0)
    if (unexplained) total_failed = 1
    printf "tests: %d passed, %d failed, %d ignored\n", passed, total_failed, ignored
    if (status != 0) {
      why = ""
      if (failed) why = why sprintf("; %d test(s) failed", failed)
      if (aborted) why = why sprintf("; %d test binary(ies) ended without a result (aborted or killed)", aborted)
      if (uncompiled) why = why sprintf("; %d crate(s) did not compile", uncompiled)
      if (unexplained) why = "; no test result explains it (counted as 1 failure)"
      printf "cargo test: exit %d%s\n", status, why
    }
  }' "$log"
}
