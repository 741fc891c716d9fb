# shellcheck shell=bash
# Sourced by the scripts that need a cargo-installed tool (checks/deny.sh). Expects a
# `log` function. `cargo_tool NAME VERSION` makes sure NAME at exactly VERSION is in
# $PRISM_CARGO_TOOLS/bin (default ~/.cache/prism/cargo-tools, outside the clone, so
# reruns and new clones on the machine reuse it) and puts that directory first on PATH.
# A missing or different version is built with `cargo install --locked` from crates.io
# (minutes on two cores; only the first run pays), in a build directory of its own
# that is removed afterwards, so the project's target directory stays the project's.

PRISM_CARGO_TOOLS="${PRISM_CARGO_TOOLS:-$HOME/.cache/prism/cargo-tools}"

cargo_tool() {
  local name=$1 version=$2
  local bin="$PRISM_CARGO_TOOLS/bin/$name"
  export PATH="$PRISM_CARGO_TOOLS/bin:$PATH"
  if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q " $version\$"; then
    return 0
  fi
  log "installing $name $version into $PRISM_CARGO_TOOLS (cargo install --locked; first run only)"
  local build
  build=$(mktemp -d "${TMPDIR:-/tmp}/prism-cargo-tool.XXXXXX")
  if ! CARGO_TARGET_DIR="$build" cargo install --quiet --locked --force \
      --root "$PRISM_CARGO_TOOLS" "$name@$version"; then
    rm -rf "$build"
    log "FAILED: cargo install $name@$version"
    return 1
  fi
  rm -rf "$build"
  "$bin" --version >/dev/null
}
