#!/usr/bin/env bash
# ShellCheck on every shell script of the project (scripts/, ops/, .ci/run), following
# sourced files. Installs Debian's `shellcheck` when missing (needs root or sudo).
set -euo pipefail
cd "$(dirname "$0")/../.."

log() { printf '[shell] %s\n' "$*"; }
# shellcheck source=scripts/lib/apt.sh
. scripts/lib/apt.sh
command -v shellcheck >/dev/null || apt_install shellcheck

shopt -s nullglob
scripts=(scripts/*.sh scripts/checks/*.sh scripts/lib/*.sh ops/*.sh ops/alertmanager/*.sh ops/deploy/*.sh .ci/run)
if shellcheck -x "${scripts[@]}"; then
  log "ok: ${#scripts[@]} scripts, no findings"
else
  log "FAILED: shellcheck reported the findings above"
  exit 1
fi
