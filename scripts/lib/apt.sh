# shellcheck shell=bash
# Sourced by the scripts that install what they need from Debian's packages
# (services.sh, checks/*.sh). Expects a `log` function. `apt_install [apt options]
# PACKAGE…` runs `apt-get update` once per script, then installs quietly; both need
# root or sudo.

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; return 1; fi
}

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    log "apt-get update"
    as_root apt-get update -qq
    apt_updated=1
  fi
  log "installing $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
