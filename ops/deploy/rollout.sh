#!/usr/bin/env bash
# Rolls Prism's compose stack on the Docker host to an image tag, the steps of
# docs/ops/deploy.md ("Order of a deploy") as one command. The deploy workflow
# (.github/workflows/deploy.yml) runs it over SSH without copying it to the host:
#
#   ssh <host> bash -s -- ACTION DIR [TAG] < ops/deploy/rollout.sh
#
# DIR is the host's deploy directory: docker-compose.yml and the .env rendered from
# the secret store (PRISM_IMAGE_REPO, PRISM_VERSION, DATABASE_URL, …). An operator
# can run it the same way, or on the host as `bash rollout.sh ACTION DIR [TAG]`.
#
#   current DIR         prints the PRISM_VERSION the stack runs now (empty if none)
#   deploy DIR TAG      backup (pg_dump into DIR/backups), PRISM_VERSION=TAG in .env,
#                       the release's compose file (DIR/docker-compose.yml.next, if the
#                       workflow copied one) in place, pull, `migrate up`, `up -d`, then
#                       waits until api and worker report healthy
#   rollback DIR TAG    PRISM_VERSION=TAG and the compose file of before the deploy,
#                       `up -d`, waits until healthy. An app rollback: when the failed
#                       release applied a migration, the older `migrate` refuses to run
#                       and this fails; then follow docs/ops/rollback.md.
#
# Exits non-zero on the first failed step, saying which. A failure before `up -d`
# leaves the running release untouched. Needs bash, docker with Compose v2 and, for
# deploy, pg_dump of the database server's major version (or newer).
set -euo pipefail

HEALTH_WAIT="${ROLLOUT_HEALTH_WAIT:-180}"

log() { printf '[rollout] %s\n' "$*" >&2; }
# undo: set by deploy until `up -d`; puts .env and the compose file back as they were,
# so a failed pull or migration leaves the host exactly as it found it.
undo=""
die() {
  log "FAILED: $*"
  if [ -n "$undo" ]; then "$undo"; fi
  exit 1
}

usage() {
  sed -n '2,24p' "${BASH_SOURCE[0]:-/dev/null}" 2>/dev/null | sed 's/^# \{0,1\}//' >&2 || true
  exit 2
}

action="${1:-}"
dir="${2:-}"
tag="${3:-}"
if [ -z "$action" ] || [ -z "$dir" ]; then usage; fi
[ -d "$dir" ] || die "no deploy directory $dir"
cd "$dir"
[ -f .env ] || die "$dir/.env is missing (render it from the secret store first)"

# valid_tag TAG: a Docker tag (letters, digits, . _ -, at most 128, not starting with
# . or -), so that it is safe in .env and on a command line.
valid_tag() { [[ "$1" =~ ^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$ ]]; }

# env_value NAME: the value of NAME in .env, surrounding quotes removed.
env_value() {
  local line value
  line=$(grep -E "^[[:space:]]*$1=" .env | tail -n 1) || return 0
  value="${line#*=}"
  value="${value%\"}"; value="${value#\"}"
  value="${value%\'}"; value="${value#\'}"
  printf '%s' "$value"
}

set_version() {
  local new=$1 tmp
  tmp=$(mktemp .env.XXXXXX)
  chmod --reference=.env "$tmp" 2>/dev/null || chmod 600 "$tmp"
  if grep -qE '^[[:space:]]*PRISM_VERSION=' .env; then
    sed -E "s|^[[:space:]]*PRISM_VERSION=.*|PRISM_VERSION=$new|" .env > "$tmp"
  else
    { cat .env; printf 'PRISM_VERSION=%s\n' "$new"; } > "$tmp"
  fi
  mv "$tmp" .env
  log "PRISM_VERSION=$new in $dir/.env"
}

# wait_healthy: api and worker running the tag in .env and healthy (their image's
# HEALTHCHECK, /health) within HEALTH_WAIT seconds.
wait_healthy() {
  local want deadline service id image state
  want=$(env_value PRISM_VERSION)
  deadline=$((SECONDS + HEALTH_WAIT))
  for service in api worker; do
    while :; do
      id=$(docker compose ps -q "$service" 2>/dev/null | head -n 1)
      state=""
      image=""
      if [ -n "$id" ]; then
        state=$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" 2>/dev/null || true)
        image=$(docker inspect --format '{{.Config.Image}}' "$id" 2>/dev/null || true)
      fi
      if [ "$state" = healthy ] && [[ "$image" == *":$want" ]]; then
        log "$service is healthy ($image)"
        break
      fi
      if [ "$SECONDS" -ge "$deadline" ]; then
        docker compose logs --tail 30 "$service" >&2 || true
        die "$service is not healthy after ${HEALTH_WAIT}s (state '${state:-none}', image '${image:-none}')"
      fi
      sleep 3
    done
  done
}

case "$action" in
  current)
    env_value PRISM_VERSION
    echo
    ;;

  deploy)
    valid_tag "$tag" || die "not an image tag: '$tag'"
    command -v docker >/dev/null || die "docker is not installed"
    docker compose version >/dev/null 2>&1 || die "docker compose (Compose v2) is not available"
    previous=$(env_value PRISM_VERSION)
    log "deploying $tag (running now: ${previous:-nothing})"

    # 1. Backup: the point a restore goes back to (docs/ops/rollback.md).
    command -v pg_dump >/dev/null || die "pg_dump is not installed on the host (postgresql-client of the server's major version)"
    database_url=$(env_value DATABASE_URL)
    [ -n "$database_url" ] || die "DATABASE_URL is not set in .env"
    mkdir -p backups
    backup="backups/prism-$(date -u +%Y%m%dT%H%M%SZ)-before-${tag:0:12}.dump"
    pg_dump -Fc -f "$backup" "$database_url" || die "pg_dump (no change was made)"
    chmod 600 "$backup"
    log "backup $dir/$backup ($(du -h "$backup" | cut -f1))"

    # The compose file of this release; the one it replaces is kept for a rollback.
    swapped=""
    if [ -f docker-compose.yml.next ]; then
      [ -f docker-compose.yml ] && cp docker-compose.yml docker-compose.yml.previous
      mv docker-compose.yml.next docker-compose.yml
      swapped=1
      log "docker-compose.yml of $tag in place (the previous one: docker-compose.yml.previous)"
    fi

    # 2. Migrate. A failure here leaves the running release serving, and the files as
    #    they were.
    undo_prepare() {
      undo=""
      if [ -n "$swapped" ] && [ -f docker-compose.yml.previous ]; then
        mv docker-compose.yml.previous docker-compose.yml
      fi
      if [ -n "$previous" ]; then set_version "$previous"; fi
      log "the running release (${previous:-none}) is untouched; .env and docker-compose.yml restored"
    }
    undo=undo_prepare
    set_version "$tag"
    docker compose pull --quiet || die "docker compose pull ($tag): is the image pushed, and is the host logged in to the registry?"
    docker compose run --rm migrate || die "prism-api migrate up ($tag)"
    status=$(docker compose run --rm migrate migrate status) || die "prism-api migrate status"
    printf '%s\n' "$status" >&2
    if grep -qi pending <<<"$status"; then die "migrations still pending after migrate up"; fi

    # 3. Roll the api and the worker. From here a failure needs a rollback (the deploy
    #    workflow runs `rollback` with the tag that ran before).
    undo=""
    docker compose up -d --remove-orphans || die "docker compose up -d ($tag)"
    wait_healthy
    log "deployed $tag"
    ;;

  rollback)
    valid_tag "$tag" || die "not an image tag: '$tag'"
    log "rolling back to $tag (running now: $(env_value PRISM_VERSION))"
    if [ -f docker-compose.yml.previous ]; then
      cp docker-compose.yml docker-compose.yml.failed 2>/dev/null || true
      mv docker-compose.yml.previous docker-compose.yml
      log "docker-compose.yml of before the deploy restored"
    fi
    set_version "$tag"
    docker compose pull --quiet || die "docker compose pull ($tag)"
    docker compose up -d --remove-orphans \
      || die "docker compose up -d ($tag): if 'migrate' failed, the failed release applied a migration $tag does not know: docs/ops/rollback.md"
    wait_healthy
    log "rolled back to $tag"
    ;;

  *) usage ;;
esac
