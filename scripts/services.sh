#!/usr/bin/env bash
# Makes sure what Prism needs on this machine is there and running: Postgres with
# PostGIS and its client tools, Redis, openssl. Installs from Debian's packages when
# something is missing (needs root or sudo), starts local services that are down.
# Idempotent: on a prepared machine it only checks.
set -euo pipefail

PGHOST_ADDR="${PGHOST_ADDR:-127.0.0.1}"
PGPORT_NUM="${PGPORT_NUM:-5432}"
PG_ADMIN_USER="${PG_ADMIN_USER:-postgres}"

log() { printf '[services] %s\n' "$*"; }

# shellcheck source=scripts/lib/apt.sh
. "$(dirname "$0")/lib/apt.sh"

psql_admin() { psql -h "$PGHOST_ADDR" -p "$PGPORT_NUM" -U "$PG_ADMIN_USER" -d postgres -Atq "$@"; }

# Postgres: running and answering.
if ! pg_isready -h "$PGHOST_ADDR" -p "$PGPORT_NUM" -q 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    for cluster in /etc/postgresql/*/; do
      version=$(basename "$cluster")
      log "starting PostgreSQL $version"
      as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
  fi
  for _ in $(seq 1 30); do
    pg_isready -h "$PGHOST_ADDR" -p "$PGPORT_NUM" -q 2>/dev/null && break
    sleep 1
  done
fi
pg_isready -h "$PGHOST_ADDR" -p "$PGPORT_NUM" -q || { log "PostgreSQL is not reachable on $PGHOST_ADDR:$PGPORT_NUM"; exit 1; }

server_major=$(( $(psql_admin -c 'SHOW server_version_num') / 10000 ))

# PostGIS for the server's major version.
if [ "$(psql_admin -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis'")" = 0 ]; then
  apt_install "postgresql-${server_major}-postgis-3"
fi
[ "$(psql_admin -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis'")" = 1 ] \
  || { log "PostGIS is still not available"; exit 1; }

# pg_dump of the server's version (the migration tests compare schema dumps).
if ! pg_dump --version 2>/dev/null | grep -q " ${server_major}\."; then
  apt_install "postgresql-client-${server_major}"
fi

# Redis.
if ! command -v redis-cli >/dev/null; then apt_install redis-server; fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/prism.log
  for _ in $(seq 1 20); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { log "Redis is not reachable on 127.0.0.1:6379"; exit 1; }

# openssl makes the development signing key.
command -v openssl >/dev/null || apt_install openssl
# curl and a Python with venv drive the API fuzzing (scripts/fuzz.sh); Prometheus
# (with promtool) checks the metrics and ops/ queries (scripts/ops-check.sh).
command -v prometheus >/dev/null || apt_install prometheus
python3 -c 'import yaml' 2>/dev/null || apt_install python3-yaml
command -v curl >/dev/null || apt_install curl
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv

log "ready: PostgreSQL ${server_major} with PostGIS, Redis"
