#!/bin/sh
# Renders Prism's Alertmanager config from its template and the environment, for the
# alertmanager container's entrypoint (POSIX sh; runs in the busybox-based
# prom/alertmanager image: sed only, no envsubst).
#
#   render.sh <template> <output-config> <secrets-dir>
#
# Reads:
#   SLACK_CRITICAL_CHANNEL, SLACK_WARNING_CHANNEL        Slack channels (#name, name or ID)
#   SLACK_CRITICAL_WEBHOOK_URL, SLACK_WARNING_WEBHOOK_URL incoming-webhook URLs (secrets)
# Writes:
#   <secrets-dir>/slack-critical-url, <secrets-dir>/slack-warning-url  (mode 600; the
#     config points at them with api_url_file, so the URLs never appear in it)
#   <output-config>  the template with ${SLACK_CRITICAL_CHANNEL},
#     ${SLACK_WARNING_CHANNEL} and ${SECRETS_DIR} replaced
# Fails, naming every missing or malformed variable (never printing a URL), before
# writing anything.
set -eu

prog=render.sh
fail() {
  printf '%s: %s\n' "$prog" "$*" >&2
  exit 1
}

[ "$#" -eq 3 ] || {
  printf 'usage: %s <template> <output-config> <secrets-dir>\n' "$prog" >&2
  exit 2
}
template=$1
output=$2
secrets_dir=$3

if [ ! -f "$template" ] || [ ! -r "$template" ]; then fail "cannot read template $template"; fi

nl='
'
tab=$(printf '\t')
problems=""
problem() { problems="$problems$nl  - $*"; }

for name in SLACK_CRITICAL_CHANNEL SLACK_WARNING_CHANNEL \
  SLACK_CRITICAL_WEBHOOK_URL SLACK_WARNING_WEBHOOK_URL; do
  eval "value=\${$name-}"
  if [ -z "$value" ]; then
    problem "$name is not set (or empty)"
    continue
  fi
  case $name in
    *_CHANNEL)
      # Slack channel names: lowercase letters, digits, '-', '_' (and '.'), an optional
      # leading '#' (or '@' for a user); IDs are upper-case letters and digits. Nothing
      # that could break the YAML around it.
      case $value in
        *[!#@A-Za-z0-9._-]*) problem "$name must be a Slack channel such as #prism-alerts (letters, digits, '.', '_', '-', a leading # or @)" ;;
      esac
      ;;
    *_WEBHOOK_URL)
      case $value in
        https://* | http://*) ;;
        *) problem "$name must be an http(s) URL" ;;
      esac
      case $value in
        *" "* | *"$tab"* | *"$nl"*) problem "$name must not contain whitespace" ;;
      esac
      ;;
  esac
done
[ -z "$problems" ] || fail "cannot render $output:$problems"

# Escapes a value for the replacement side of `s|...|...|`.
sed_escape() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }

umask 077
mkdir -p "$secrets_dir" || fail "cannot create $secrets_dir"
secrets_dir=$(cd "$secrets_dir" && pwd) || fail "cannot enter $secrets_dir"
case $secrets_dir in
  *"|"* | *"'"* | *" "*) fail "the secrets directory path must not contain '|', quotes or spaces: $secrets_dir" ;;
esac

write_secret() { # file value
  printf '%s' "$2" > "$secrets_dir/.$1.tmp" || fail "cannot write $secrets_dir/$1"
  mv -f "$secrets_dir/.$1.tmp" "$secrets_dir/$1"
}
write_secret slack-critical-url "$SLACK_CRITICAL_WEBHOOK_URL"
write_secret slack-warning-url "$SLACK_WARNING_WEBHOOK_URL"

tmp_output="$output.tmp.$$"
trap 'rm -f "$tmp_output"' EXIT
# The ${...} in single quotes are the literal placeholders, not shell expansions.
# shellcheck disable=SC2016
sed \
  -e 's|\${SLACK_CRITICAL_CHANNEL}|'"$(sed_escape "$SLACK_CRITICAL_CHANNEL")"'|g' \
  -e 's|\${SLACK_WARNING_CHANNEL}|'"$(sed_escape "$SLACK_WARNING_CHANNEL")"'|g' \
  -e 's|\${SECRETS_DIR}|'"$(sed_escape "$secrets_dir")"'|g' \
  "$template" > "$tmp_output" || fail "cannot write $output"

# A placeholder this script does not know would reach Alertmanager verbatim.
# shellcheck disable=SC2016
if left=$(grep -n '\${[A-Za-z_][A-Za-z0-9_]*}' "$tmp_output"); then
  fail "unknown placeholder(s) left in $output:$nl$left"
fi
chmod 644 "$tmp_output"
mv -f "$tmp_output" "$output"
trap - EXIT
printf '%s: wrote %s (critical -> %s, warning -> %s) and the webhook URLs into %s\n' \
  "$prog" "$output" "$SLACK_CRITICAL_CHANNEL" "$SLACK_WARNING_CHANNEL" "$secrets_dir"
