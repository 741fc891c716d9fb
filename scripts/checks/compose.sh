#!/usr/bin/env bash
# Checks the container build and the compose stacks without a Docker engine:
#   - each compose file renders with its .env.example (Debian's docker-compose 1.29,
#     installed when missing; needs root or sudo) and substitutes no unset variable;
#   - every ${VARIABLE} a compose file reads is listed in its .env.example;
#   - every build target a compose file names is a Dockerfile stage, and every file or
#     directory it mounts or builds from exists in the repository;
#   - the Dockerfile's final stages (api, worker) run as a non-root USER and have a
#     HEALTHCHECK;
#   - ops/prometheus/prometheus.yml passes `promtool check config` (its rule files
#     included), when promtool is installed.
# One line per check; exits non-zero when any fails.
set -euo pipefail
cd "$(dirname "$0")/../.."

log() { printf '[compose] %s\n' "$*"; }

# shellcheck source=scripts/lib/apt.sh
. scripts/lib/apt.sh

failed=0
ok() { printf '[compose] ok    %s\n' "$*"; }
fail() { printf '[compose] FAIL  %s\n' "$*"; failed=$((failed + 1)); }
skip() { printf '[compose] skip  %s\n' "$*"; }
# Indents a command's output under the FAIL line it explains.
indent() { sed 's/^/          /'; }

# Compose files and the env file each is validated with.
stacks=(
  "ops/docker-compose.yml ops/.env.example"
  "ops/deploy/docker-compose.yml ops/deploy/.env.example"
)
# Bind-mount sources that are generated on the developer's machine, not committed:
# .dev/ holds the development signing key and JWKS (`make start`, or the steps in
# ops/docker-compose.yml's header).
generated_paths=(".dev")

if ! command -v docker-compose >/dev/null; then
  # --no-install-recommends: the package recommends docker.io (the engine), not needed
  # to render and validate files.
  apt_install --no-install-recommends docker-compose
fi
log "$(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /')"

for stack in "${stacks[@]}"; do
  read -r file env_file <<<"$stack"
  if [ ! -f "$file" ] || [ ! -f "$env_file" ]; then
    fail "$file with $env_file: file missing"
    continue
  fi

  # 1. Renders. docker-compose only warns (exit 0) about an unset variable, which here
  #    means .env.example is incomplete, so a warning fails the check too.
  if out=$(docker-compose --env-file "$env_file" -f "$file" config -q 2>&1) \
      && ! grep -qi 'warning' <<<"$out"; then
    ok "$file renders with $env_file"
  else
    fail "$file does not render with $env_file:"
    indent <<<"$out"
  fi

  # 2. Every variable the file substitutes is listed ($$ escapes excluded).
  missing=()
  while IFS= read -r name; do
    [ -n "$name" ] || continue
    grep -Eq "^${name}=" "$env_file" || missing+=("$name")
  done < <(grep -v '^[[:space:]]*#' "$file" \
             | grep -oP '(?<!\$)\$\{\K[A-Za-z_][A-Za-z0-9_]*' | sort -u)
  if [ "${#missing[@]}" = 0 ]; then
    ok "$env_file lists every variable $file reads"
  else
    fail "$env_file does not list: ${missing[*]}"
  fi

  # 3. Build targets are Dockerfile stages; mounted and built-from paths exist.
  #    Parsed from the rendered file, where paths are absolute.
  if ! rendered=$(docker-compose --env-file "$env_file" -f "$file" config 2>/dev/null); then
    fail "$file: cannot render to check its paths"
    continue
  fi
  report=$(RENDERED="$rendered" REPO="$PWD" GENERATED="${generated_paths[*]}" python3 - "$file" <<'PY'
import os, re, sys
import yaml  # python3-yaml: a dependency of docker-compose

compose_file = sys.argv[1]
repo = os.environ["REPO"]
generated = [os.path.join(repo, p) for p in os.environ["GENERATED"].split()]
config = yaml.safe_load(os.environ["RENDERED"])
lines = []

def rel(path):
    return os.path.relpath(path, repo)

def check_path(service, what, path):
    if any(path == g or path.startswith(g + os.sep) for g in generated):
        lines.append(f"skip  {compose_file}: {service} {what} {rel(path)} (generated locally, not committed)")
    elif os.path.exists(path):
        lines.append(f"ok    {compose_file}: {service} {what} {rel(path)} exists")
    else:
        lines.append(f"FAIL  {compose_file}: {service} {what} {rel(path)} does not exist")

def stages(dockerfile):
    names = set()
    with open(dockerfile) as f:
        for line in f:
            m = re.match(r"\s*FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
            if m:
                names.add(m.group(1).lower())
    return names

for service, spec in sorted((config.get("services") or {}).items()):
    build = spec.get("build")
    if isinstance(build, dict):
        context = build.get("context", ".")
        check_path(service, "build context", context)
        dockerfile = os.path.join(context, build.get("dockerfile", "Dockerfile"))
        check_path(service, "Dockerfile", dockerfile)
        target = build.get("target")
        if target and os.path.exists(dockerfile):
            if target.lower() in stages(dockerfile):
                lines.append(f"ok    {compose_file}: {service} build target '{target}' is a stage of {rel(dockerfile)}")
            else:
                lines.append(f"FAIL  {compose_file}: {service} build target '{target}' is not a stage of {rel(dockerfile)}")
    for env_file in spec.get("env_file") or []:
        check_path(service, "env_file", env_file if isinstance(env_file, str) else env_file.get("path"))
    binds = {}  # container path -> host path
    for volume in spec.get("volumes") or []:
        if isinstance(volume, dict):
            source, target = (volume.get("source"), volume.get("target")) if volume.get("type") == "bind" else (None, None)
        else:
            parts = volume.split(":")
            source, target = (parts[0], parts[1]) if len(parts) >= 2 else (None, None)
        # Named volumes have no path; binds are absolute once rendered.
        if source and os.path.isabs(source):
            check_path(service, "mount", source)
            binds[target.rstrip("/")] = source
    # Files the service is told to read inside a bind-mounted directory (a command's
    # --config.file=/etc/…, an environment value such as CLERK_JWKS_FILE) must exist
    # in that directory too.
    command = spec.get("command") or []
    if isinstance(command, str):
        command = command.split()
    environment = spec.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(e.split("=", 1) for e in environment if "=" in e)
    values = list(command) + [v for v in environment.values() if isinstance(v, str)]
    # A shell command (`sh -c "…"`) is one value: look at each word.
    words = [word for value in values for word in value.split()]
    for word in words:
        candidate = word.split("=", 1)[1] if word.startswith("-") and "=" in word else word
        for target, source in binds.items():
            if candidate.startswith(target + "/"):
                check_path(service, f"file named in its settings ({candidate}):", source + candidate[len(target):])
print("\n".join(lines))
PY
) || { fail "$file: path check did not run"; continue; }
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    case "$line" in
      FAIL*) printf '[compose] %s\n' "$line"; failed=$((failed + 1)) ;;
      *) printf '[compose] %s\n' "$line" ;;
    esac
  done <<<"$report"
done

# 4. Dockerfile: each final stage runs as a non-root user and has a HEALTHCHECK
#    (inherited from the stage it is built FROM counts).
if [ -f Dockerfile ]; then
  for stage in api worker; do
    verdict=$(awk -v want="$stage" '
      toupper($1) == "FROM" {
        current = ""
        if (NF >= 4 && toupper($3) == "AS") current = tolower($4)
        base = tolower($2)
        user[current] = (base in user) ? user[base] : ""
        hc[current] = (base in hc) ? hc[base] : ""
        next
      }
      toupper($1) == "USER" && current != "" { user[current] = $2 }
      toupper($1) == "HEALTHCHECK" && current != "" { hc[current] = (toupper($2) == "NONE") ? "" : "yes" }
      END {
        if (!(want in user)) { print "no stage"; exit }
        u = user[want]; sub(/:.*/, "", u)
        if (u == "" || u == "root" || u == "0") print "runs as root"
        else if (hc[want] != "yes") print "has no HEALTHCHECK"
        else print "ok user=" user[want]
      }' Dockerfile)
    case "$verdict" in
      ok*) ok "Dockerfile stage '$stage' runs as non-root ${verdict#ok }, has a HEALTHCHECK" ;;
      *) fail "Dockerfile stage '$stage': $verdict" ;;
    esac
  done
else
  fail "Dockerfile missing"
fi

# 5. Prometheus configuration, rule files included (paths relative to the config file,
#    as in the container, where ops/prometheus is /etc/prometheus).
if command -v promtool >/dev/null; then
  if out=$(promtool check config ops/prometheus/prometheus.yml 2>&1); then
    ok "ops/prometheus/prometheus.yml passes promtool check config ($(promtool --version 2>&1 | head -n 1 | awk '{print $3}'))"
  else
    fail "ops/prometheus/prometheus.yml fails promtool check config:"
    indent <<<"$out"
  fi
else
  skip "promtool not installed: ops/prometheus/prometheus.yml not checked"
fi

if [ "$failed" = 0 ]; then
  log "all checks passed"
else
  log "$failed check(s) failed"
  exit 1
fi
