#!/usr/bin/env bash
# Supply-chain gate: `cargo deny check` against deny.toml and Cargo.lock — licences,
# bans (one sqlx, one redis), sources (crates.io only) and RustSec advisories.
# cargo-deny is installed by scripts/lib/cargo-tools.sh when missing (pinned version,
# into ~/.cache/prism/cargo-tools).
#
# Advisories need the RustSec database, a git repository on GitHub. Where it cannot be
# fetched (these build machines reach package registries only) the check uses the copy
# an earlier run fetched, if any, else says SKIP for advisories and checks the rest.
# PRISM_DENY_REQUIRE_ADVISORIES=true (set by backend-ci, which reaches GitHub) turns
# that into a failure. Exits non-zero when any check fails.
set -euo pipefail
cd "$(dirname "$0")/../.."

CARGO_DENY_VERSION=0.20.2

log() { printf '[deny] %s\n' "$*"; }
# shellcheck source=scripts/lib/cargo-tools.sh
. scripts/lib/cargo-tools.sh
cargo_tool cargo-deny "$CARGO_DENY_VERSION"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
db_dir="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
failed=0

log "$(cargo deny --version) with deny.toml"

# Licences, bans and sources: crates.io is enough.
if cargo deny --locked check bans licenses sources; then
  log "ok    bans, licenses, sources"
else
  log "FAIL  bans, licenses or sources (findings above)"
  failed=1
fi

# Advisories: a fresh database when it can be fetched.
if cargo deny --locked fetch db >"$work/fetch.log" 2>&1; then
  if cargo deny --locked check advisories; then
    log "ok    advisories (RustSec database fetched now)"
  else
    log "FAIL  advisories (findings above)"
    failed=1
  fi
elif [ "${PRISM_DENY_REQUIRE_ADVISORIES:-false}" = true ]; then
  tail -n 5 "$work/fetch.log" | sed 's/^/        /'
  log "FAIL  advisories: the RustSec database could not be fetched (PRISM_DENY_REQUIRE_ADVISORIES=true)"
  failed=1
elif compgen -G "$db_dir/*/crates" >/dev/null; then
  # A database an earlier run fetched (its crates/ folder of advisories), not only
  # the lock file a failed fetch leaves.
  # --offline: no fetch, and cargo-deny refuses a copy older than 90 days.
  if cargo deny --locked --offline check advisories; then
    log "ok    advisories (RustSec database from an earlier fetch, in $db_dir: it could not be refreshed)"
  else
    log "FAIL  advisories (findings above; the database in $db_dir could not be refreshed)"
    failed=1
  fi
else
  log "SKIP  advisories: the RustSec database cannot be fetched from this machine ($(grep -v '^[[:space:]]*$' "$work/fetch.log" | tail -n 1 | cut -c1-160)); backend-ci checks them and fails on any"
fi

if [ "$failed" = 0 ]; then log "all checks passed"; else log "checks FAILED"; fi
exit "$failed"
