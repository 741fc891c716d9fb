#!/usr/bin/env bash
# `make restore-drill`: restore Prism's backup and prove the read side comes back whole.
#
# 1. A source Prism of its own (scripts/lib/stack.sh: a database, a Redis namespace,
#    prism-api and prism-worker on free ports), seeded through the api by two
#    organisations with every kind of command, many at once, plus two writers
#    interleaved so that a comp's delivery order and position order differ around its
#    building's change of area; waits until every projection has caught up, then
#    takes each projection table's row count and an
#    order-independent digest, and a backup as docs/ops/migrations.md takes it
#    (`pg_dump -Fc`).
# 2. (a) The event store of that dump (no read-model rows, no checkpoints) restored
#    into a new database on the same server, `prism-api migrate up`,
#    `prism-worker rebuild` of every projection: the tables equal the source's; the
#    worker starts.
# 3. (b) The whole dump restored into a private Postgres cluster (initdb, a free port)
#    whose transaction counter is behind the dump's `transaction_id`s, as
#    docs/ops/rollback.md#restore-from-a-backup restores it: the worker refuses to
#    start (its exit status and message are checked), and so does a rebuild; then the
#    recovery of docs/ops/rollback.md#transaction-ids-behind-a-restored-log — its SQL
#    block is read from the runbook and run as it stands — and a rebuild of every
#    projection: the tables equal the source's, the worker starts, and a command sent
#    to an api on the restored database reaches the projections.
#
# Everything it made (databases, Redis keys, the cluster, processes, files) is removed
# on exit, failed or not. Settings: PRISM_TEST_DATABASE_URL / PRISM_TEST_REDIS_URL (the
# shared server and Redis, as the tests use), PG_BIN (initdb and pg_ctl; default
# /usr/lib/postgresql/15/bin), DRILL_BUILDINGS (per organisation, default 40),
# DRILL_MIN_XID (the source's transaction counter is moved at least this far before
# seeding, so that a new cluster is behind it; default 20000).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

log() { printf 'restore-drill: [%3d s] %s\n' "$((SECONDS - started))" "$*" >&2; }
fail() {
  log "FAILED: $*"
  exit 1
}

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
DRILL_BUILDINGS="${DRILL_BUILDINGS:-40}"
DRILL_MIN_XID="${DRILL_MIN_XID:-20000}"
RUNBOOK_ANCHOR="docs/ops/rollback.md#transaction-ids-behind-a-restored-log"
READ_MODELS=(buildings comps building_comp_stats market_stats audit_log)
# Tables whose rows the read side owns: left out of (a)'s restore, which starts from
# the event store alone.
READ_SIDE_DATA=("${READ_MODELS[@]}" cache_refresh_outbox projection_checkpoints projection_rebuilds)

for tool in psql pg_dump pg_restore redis-cli curl python3 openssl "$PG_BIN/initdb" "$PG_BIN/pg_ctl"; do
  command -v "$tool" >/dev/null || fail "$tool is missing (make services installs Postgres and Redis)"
done

# shellcheck source=scripts/lib/stack.sh
. scripts/lib/stack.sh

drill_pids=()
drill_namespaces=()
a_db=""
cluster_dir=""
cleanup() {
  local status=$? pid ns
  set +e
  for pid in "${drill_pids[@]}"; do kill "$pid" 2>/dev/null; done
  if [ -n "$cluster_dir" ] && [ -f "$cluster_dir/data/postmaster.pid" ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$cluster_dir/data" -m immediate -w stop >/dev/null 2>&1
  fi
  [ -n "$cluster_dir" ] && rm -rf "$cluster_dir"
  if [ -n "$a_db" ]; then
    psql "$STACK_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $a_db WITH (FORCE)" >/dev/null 2>&1
  fi
  for ns in "${drill_namespaces[@]}"; do
    redis-cli -u "$STACK_REDIS_URL" --scan --pattern "$ns:*" | xargs -r redis-cli -u "$STACK_REDIS_URL" DEL >/dev/null
  done
  stack_stop
  [ "$status" = 0 ] || log "failed after $((SECONDS - started)) s; everything it made is removed"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# initdb and the server refuse to run as root: as root they run as postgres.
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# digests URL: each read-model table's row count and the sum of per-row hashes of
# its whole rows (order-independent), and the log's count and digest without
# transaction_id (which (b)'s recovery rewrites); one line per table.
digests() {
  local sql="" table
  for table in "${READ_MODELS[@]}"; do
    sql+="SELECT '$table', count(*), coalesce(sum(('x' || left(md5(to_jsonb(t)::text), 15))::bit(60)::bigint), 0) FROM $table t UNION ALL "
  done
  sql+="SELECT 'events', count(*), coalesce(sum(('x' || left(md5(to_jsonb(e)::text), 15))::bit(60)::bigint), 0)
          FROM (SELECT position, aggregate_type, aggregate_id, sequence, event_type, event_version,
                       payload::text, metadata::text, recorded_at FROM events) e"
  psql "$1" -v ON_ERROR_STOP=1 -AtF ' ' -c "$sql"
}

# compare NAME URL: the tables at URL equal the source's.
compare() {
  digests "$2" > "$STACK_DIR/$1.digests"
  if ! diff -u "$STACK_DIR/source.digests" "$STACK_DIR/$1.digests" >&2; then
    fail "$1: the projections differ from the source's (table, rows, digest above)"
  fi
  log "$1: every table equals the source's: $(awk '{printf "%s%s %s", sep, $1, $2; sep=", "}' "$STACK_DIR/$1.digests")"
}

# rebuild_all URL NAMESPACE: `prism-worker rebuild` of every projection; each must swap.
rebuild_all() {
  local projection out
  for projection in catalog audit; do
    out=$(DATABASE_URL="$1" REDIS_NAMESPACE="$2" "$bin/prism-worker" rebuild "$projection" 2>/dev/null) \
      || fail "prism-worker rebuild $projection did not swap: $out"
    case "$out" in *swapped*) ;; *) fail "prism-worker rebuild $projection: $out" ;; esac
    log "  ${out##*$'\r'}"
  done
}

# worker_starts URL NAMESPACE: prism-worker serves /health there; then it is stopped.
worker_starts() {
  local port pid _
  port=$(free_port)
  DATABASE_URL="$1" REDIS_NAMESPACE="$2" WORKER_PORT="$port" "$bin/prism-worker" \
    > "$STACK_DIR/worker-$2.log" 2>&1 &
  pid=$!
  drill_pids+=("$pid")
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
      kill "$pid"
      wait "$pid" 2>/dev/null || true
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || fail "prism-worker exited: $(cat "$STACK_DIR/worker-$2.log")"
    sleep 0.1
  done
  fail "prism-worker did not serve /health within 10 s"
}

# --- 1. The source ----------------------------------------------------------------
log "starting a source Prism (builds prism-api and prism-worker if needed)"
stack_start drill
bin="$CARGO_TARGET_DIR/debug"
source_url="$DATABASE_URL"
drill_namespaces+=("$STACK_NAMESPACE-a" "$STACK_NAMESPACE-b")
token_b=$("$bin/prism-api" dev token --key "$STACK_DIR/key.pem" --org org_drill_b --user user_drill_b \
  --issuer "$STACK_ISSUER" --scopes "$STACK_SCOPES")

# A fresh server hands out transaction ids from a few hundred on, like the new cluster
# of (b): move the source's counter on so that (b) is behind every restored id.
psql "$source_url" -v ON_ERROR_STOP=1 -q -c "SET synchronous_commit = off" -c "DO \$\$
  BEGIN
    WHILE pg_snapshot_xmax(pg_current_snapshot())::text::bigint < $DRILL_MIN_XID LOOP
      PERFORM pg_current_xact_id();
      COMMIT;
    END LOOP;
  END \$\$"

log "seeding: $DRILL_BUILDINGS buildings per organisation, their comps and changes, 8 at a time"
API="$STACK_API" TOKEN_A="$STACK_TOKEN" TOKEN_B="$token_b" BUILDINGS="$DRILL_BUILDINGS" python3 - <<'PY' >&2
import json, os, random, urllib.error, urllib.request
from concurrent.futures import ThreadPoolExecutor

api, n = os.environ["API"], int(os.environ["BUILDINGS"])
tokens = [os.environ["TOKEN_A"], os.environ["TOKEN_B"]]
rng = random.Random(7)
types = ["office", "industrial", "retail", "multifamily", "mixed_use"]
submarkets = ["Midtown", "Downtown", "Brooklyn", "Harbor", None]

def call(method, path, token, body=None):
    request = urllib.request.Request(api + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + token, "content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        raise SystemExit(f"restore-drill: {method} {path}: {error.code} {error.read().decode()}")

def run(calls):
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda c: call(*c), calls))

def building(i):
    body = {"name": f"Drill {i}", "address": {"street": f"{i} Main St", "city": "New York",
            "region": "NY", "country": "US"},
            "location": {"lat": 40.5 + rng.random() * 0.4, "lon": -74.2 + rng.random() * 0.4},
            "property_type": types[i % len(types)], "building_class": "ABC"[i % 3],
            "rentable_area_sqft": 50000 + 1000 * i}
    if submarkets[i % len(submarkets)]:
        body["submarket"] = submarkets[i % len(submarkets)]
    return body

def lease(b, i):
    return {"building_id": b, "tenant": f"Tenant {i}", "leased_area_sqft": str(2000 + 250 * i),
            "starting_rent_psf": f"{40 + i % 30}.{i % 100:02d}", "lease_type": "gross",
            "term_months": 36 + 12 * (i % 8), "commencement_date": f"202{4 + i % 3}-{1 + i % 12:02d}-01",
            "free_rent_months": i % 6, "ti_allowance_psf": str(i % 50), "escalation_pct": f"{i % 4}.5"}

def sale(b, i):
    return {"building_id": b, "sale_price": str(10_000_000 + 125_000 * i),
            "sale_date": f"202{4 + i % 3}-{1 + i % 12:02d}-15", "buyer": f"Buyer {i}",
            "seller": f"Seller {i}", "cap_rate_pct": f"{4 + i % 3}.{i % 100:02d}"}

owned = [(t, i) for t in tokens for i in range(n)]
ids = [r["id"] for r in run([("POST", "/v1/buildings", t, building(i)) for t, i in owned])]
buildings = [(t, b, i) for (t, i), b in zip(owned, ids)]
# Comps and changes to their buildings at the same time: a building's new area or
# submarket races the comps that read it.
calls = []
for t, b, i in buildings:
    calls += [("POST", "/v1/comps/lease", t, lease(b, i)), ("POST", "/v1/comps/lease", t, lease(b, i + 7)),
              ("POST", "/v1/comps/sale", t, sale(b, i))]
    if i % 2 == 0:
        calls.append(("PATCH", f"/v1/buildings/{b}", t, {"rentable_area_sqft": 60000 + 500 * i}))
    if i % 5 == 1:
        calls.append(("PATCH", f"/v1/buildings/{b}", t, {"submarket": "Harbor", "property_type": "office"}))
    if i % 7 == 3:
        calls.append(("POST", f"/v1/buildings/{b}/relocate", t, {"location": {"lat": 40.7, "lon": -73.99}}))
rng.shuffle(calls)
comps = [(c[2], r["id"], c[1]) for c, r in zip(calls, run(calls)) if c[1].startswith("/v1/comps/")]
# One change per comp (a verify racing a retraction of the same comp would be refused).
calls = []
for k, (t, c, kind) in enumerate(comps):
    if k % 6 == 0:
        calls.append(("POST", f"/v1/comps/{c}/verify", t, None))
    elif k % 6 == 2:
        amend = {"starting_rent_psf": "55.25"} if kind.endswith("lease") else {"cap_rate_pct": None}
        calls.append(("PATCH", f"/v1/comps/{c}", t, amend))
    elif k % 12 == 4:
        calls.append(("POST", f"/v1/comps/{c}/retract", t, {"reason": "duplicate"}))
rng.shuffle(calls)
run(calls)
archive = [("POST", f"/v1/buildings/{b}/archive", t, {"reason": "demolished"})
           for t, b, i in buildings if i % 6 == 5]
run(archive)
restore = [("POST", f"/v1/buildings/{b}/restore", t, None) for t, b, i in buildings if i % 12 == 5]
run(restore)
print(f"restore-drill: {len(ids) + len(comps) + len(calls) + len(archive) + len(restore)} commands accepted")
PY

# Commands are appended one statement per transaction, so a log written by one api has
# few events whose position order differs from the delivery order. Make one such pair
# that matters, as two writers can (two api replicas): transaction A takes its id
# first, B then records a sale comp on building Y and commits, and A changes Y's area
# after it. Delivered: A's area change, then the comp (priced at the new area); by
# position — the order (b)'s recovery gives the rebuild — the comp comes first (priced
# at the old area, re-priced by the change). The tables must come out the same.
psql "$source_url" -v ON_ERROR_STOP=1 -q <<'SQL'
CREATE EXTENSION dblink;
SELECT u.aggregate_id AS y, s.position AS sale
  FROM events u JOIN events s ON s.event_type = 'SaleCompRecorded'
   AND s.payload::jsonb -> 'SaleCompRecorded' ->> 'building_id' = u.aggregate_id
 WHERE u.event_type = 'BuildingDetailsUpdated'
   AND NOT EXISTS (SELECT 1 FROM events a WHERE a.aggregate_id = u.aggregate_id
                      AND a.event_type = 'BuildingArchived')
 ORDER BY u.position LIMIT 1 \gset
SELECT dblink_connect('drill_a', 'dbname=' || current_database() || ' host=127.0.0.1 port='
                      || inet_server_port() || ' user=' || current_user) \g /dev/null
SELECT dblink_exec('drill_a', 'BEGIN') \g /dev/null
SELECT dblink_exec('drill_a', $$INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type,
         event_version, payload, metadata)
  SELECT 'building', gen_random_uuid()::text, 1, event_type, event_version,
         jsonb_set(payload::jsonb, '{BuildingRegistered,name}', '"Interleaved"')::json, metadata
    FROM events WHERE event_type = 'BuildingRegistered' ORDER BY position LIMIT 1$$) \g /dev/null
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT 'comp', gen_random_uuid()::text, 1, event_type, event_version, payload, metadata
  FROM events WHERE position = :sale;
SELECT dblink_exec('drill_a', format($$INSERT INTO events (aggregate_type, aggregate_id, sequence,
         event_type, event_version, payload, metadata)
  SELECT 'building', aggregate_id, sequence + 1, 'BuildingDetailsUpdated', u.event_version,
         jsonb_set(u.payload::jsonb, '{BuildingDetailsUpdated,rentable_area_sqft}',
                   CASE jsonb_typeof(u.payload::jsonb #> '{BuildingDetailsUpdated,rentable_area_sqft}')
                        WHEN 'string' THEN '"77777"' ELSE '77777' END::jsonb)::json, metadata
    FROM events e, LATERAL (SELECT event_version, payload FROM events
                             WHERE aggregate_id = %L AND event_type = 'BuildingDetailsUpdated'
                             ORDER BY sequence DESC LIMIT 1) u
   WHERE aggregate_id = %L ORDER BY sequence DESC LIMIT 1$$, :'y', :'y')) \g /dev/null
SELECT dblink_exec('drill_a', 'COMMIT') \g /dev/null
SELECT dblink_disconnect('drill_a') \g /dev/null
DROP EXTENSION dblink;
SQL

log "waiting until every projection has applied every event"
caught_up="SELECT count(*) = 2 AND bool_and(NOT EXISTS (
             SELECT 1 FROM events e WHERE (e.transaction_id, e.position) > (c.transaction_id, c.position)))
             AND NOT EXISTS (SELECT 1 FROM cache_refresh_outbox)
           FROM projection_checkpoints c"
for _ in $(seq 1 300); do
  [ "$(psql "$source_url" -Atc "$caught_up")" = t ] && break
  sleep 0.2
done
[ "$(psql "$source_url" -Atc "$caught_up")" = t ] || fail "the source's projections did not catch up in 60 s"
digests "$source_url" > "$STACK_DIR/source.digests"
read -r events out_of_order < <(psql "$source_url" -AtF ' ' -c "
  SELECT count(*), count(*) FILTER (WHERE position < earlier)
    FROM (SELECT position, max(position) OVER (ORDER BY transaction_id, position
                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS earlier FROM events) e")
[ "$out_of_order" -ge 1 ] || fail "no event of the source was delivered out of position order"
log "source: $events events ($out_of_order delivered after an event of a higher position); $(awk '$1 != "events" {printf "%s%s %s", sep, $1, $2; sep=", "}' "$STACK_DIR/source.digests")"

dump="$STACK_DIR/prism.dump"
pg_dump -Fc -f "$dump" "$source_url"
log "backup: pg_dump -Fc, $(du -k "$dump" | cut -f1) KiB"

# --- 2. (a) The event store into a new database on the same server ----------------
a_db="prism_drill_a_$$"
a_url="${STACK_ADMIN_URL%/*}/$a_db"
log "(a) the event store into $a_db on the same server"
psql "$STACK_ADMIN_URL" -qc "CREATE DATABASE $a_db"
exclude=$(printf '%s|' "${READ_SIDE_DATA[@]}")
pg_restore -l "$dump" | grep -Ev "TABLE DATA public (${exclude%|}) " > "$STACK_DIR/a.list"
pg_restore --no-owner --exit-on-error -L "$STACK_DIR/a.list" -d "$a_url" "$dump"
[ "$(psql "$a_url" -Atc "SELECT (SELECT count(*) FROM buildings) + (SELECT count(*) FROM projection_checkpoints)")" = 0 ] \
  || fail "(a) the restore brought read-side rows"
DATABASE_URL="$a_url" "$bin/prism-api" migrate up >/dev/null
rebuild_all "$a_url" "$STACK_NAMESPACE-a"
compare "(a)" "$a_url"
worker_starts "$a_url" "$STACK_NAMESPACE-a"
log "(a) prism-worker starts on it"

# --- 3. (b) The whole backup into a cluster whose counter is behind ----------------
cluster_dir=$(mktemp -d "${TMPDIR:-/tmp}/prism-drill-cluster.XXXXXX")
if [ "$(id -u)" = 0 ]; then chown postgres "$cluster_dir"; fi
b_port=$(free_port)
b_url="postgres://postgres@127.0.0.1:$b_port/prism_drill"
locale=$(psql "$source_url" -Atc "SELECT datcollate FROM pg_database WHERE datname = current_database()")
log "(b) a private cluster (initdb, port $b_port, locale $locale)"
as_postgres "$PG_BIN/initdb" -D "$cluster_dir/data" -U postgres --auth=trust --no-sync \
  --locale="$locale" -E UTF8 >/dev/null
as_postgres "$PG_BIN/pg_ctl" -D "$cluster_dir/data" -l "$cluster_dir/postgres.log" -w -t 60 \
  -o "-p $b_port -k $cluster_dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
# As docs/ops/rollback.md#restore-from-a-backup restores on another server: the roles
# first, then the whole dump.
psql "postgres://postgres@127.0.0.1:$b_port/postgres" -v ON_ERROR_STOP=1 -q \
  -c "CREATE ROLE authenticated NOLOGIN" -c "CREATE ROLE prism_app NOLOGIN" \
  -c "GRANT authenticated TO prism_app" -c "GRANT prism_app TO postgres" \
  -c "CREATE DATABASE prism_drill"
pg_restore --no-owner --exit-on-error --single-transaction -d "$b_url" "$dump"
read -r next newest < <(psql "$b_url" -AtF ' ' -c \
  "SELECT pg_snapshot_xmax(pg_current_snapshot()), (SELECT max(transaction_id) FROM events)")
log "(b) restored: next transaction id $next, the log's newest $newest"
[ "$(psql "$b_url" -Atc "SELECT pg_snapshot_xmax(pg_current_snapshot()) < min(transaction_id) FROM events")" = t ] \
  || fail "(b) the new cluster is not behind every restored transaction id (raise DRILL_MIN_XID)"
DATABASE_URL="$b_url" "$bin/prism-api" migrate up >/dev/null

status=0
DATABASE_URL="$b_url" REDIS_NAMESPACE="$STACK_NAMESPACE-b" WORKER_PORT="$(free_port)" RUST_BACKTRACE=0 \
  timeout 30 "$bin/prism-worker" > "$STACK_DIR/refused.log" 2>&1 || status=$?
[ "$status" != 0 ] || fail "(b) prism-worker exited 0 instead of refusing"
[ "$status" != 124 ] || fail "(b) prism-worker started instead of refusing: $(cat "$STACK_DIR/refused.log")"
for expected in "prism-worker refuses to start" "checkpoint of catalog is at transaction id" \
  "the log's newest event has transaction id $newest" "never be delivered" "$RUNBOOK_ANCHOR"; do
  grep -qF "$expected" "$STACK_DIR/refused.log" \
    || fail "(b) the refusal does not say \"$expected\": $(cat "$STACK_DIR/refused.log")"
done
log "(b) prism-worker refuses to start (exit $status):"
sed 's/^/restore-drill:   /' "$STACK_DIR/refused.log" >&2
status=0
DATABASE_URL="$b_url" REDIS_NAMESPACE="$STACK_NAMESPACE-b" RUST_BACKTRACE=0 timeout 30 "$bin/prism-worker" rebuild catalog \
  > "$STACK_DIR/rebuild-refused.log" 2>&1 || status=$?
if [ "$status" = 0 ] || [ "$status" = 124 ] || ! grep -qF "refuses to rebuild" "$STACK_DIR/rebuild-refused.log"; then
  fail "(b) prism-worker rebuild did not refuse (exit $status): $(cat "$STACK_DIR/rebuild-refused.log")"
fi
log "(b) so does prism-worker rebuild (exit $status): it would read none of the log"

# The runbook's recovery, its SQL block as it stands in the runbook.
awk '/^ *```sql/ { block = ""; inside = 1; next }
     inside && /^ *```/ { if (found) { printf "%s", block; exit } inside = 0; next }
     inside { block = block $0 "\n"; if ($0 ~ /restore-drill: recovery/) found = 1 }' \
  docs/ops/rollback.md > "$STACK_DIR/recovery.sql"
[ -s "$STACK_DIR/recovery.sql" ] || fail "no SQL block marked 'restore-drill: recovery' in docs/ops/rollback.md"
psql "$b_url" -v ON_ERROR_STOP=1 -q -f "$STACK_DIR/recovery.sql" 2>&1 | sed 's/^/restore-drill:   /' >&2
log "(b) recovered as $RUNBOOK_ANCHOR says; rebuilding every projection"
rebuild_all "$b_url" "$STACK_NAMESPACE-b"
compare "(b)" "$b_url"

# The worker starts, and a new command reaches the projections.
api_port=$(free_port)
DATABASE_URL="$b_url" REDIS_NAMESPACE="$STACK_NAMESPACE-b" PORT="$api_port" \
  CLERK_JWKS_FILE="$STACK_DIR/jwks.json" CLERK_ISSUER="$STACK_ISSUER" STRICT_CLERK_SCOPES=true \
  RATE_LIMIT_PER_MINUTE=0 "$bin/prism-api" > "$STACK_DIR/api-b.log" 2>&1 &
drill_pids+=($!)
worker_port=$(free_port)
DATABASE_URL="$b_url" REDIS_NAMESPACE="$STACK_NAMESPACE-b" WORKER_PORT="$worker_port" \
  "$bin/prism-worker" > "$STACK_DIR/worker-b.log" 2>&1 &
drill_pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$api_port/health" >/dev/null 2>&1 \
    && curl -fsS "http://127.0.0.1:$worker_port/health" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$worker_port/health" >/dev/null 2>&1 \
  || fail "(b) prism-worker did not start after the recovery: $(cat "$STACK_DIR/worker-b.log")"
STACK_API="http://127.0.0.1:$api_port"
new_building=$(stack_post /v1/buildings '{"name":"After the restore","address":{"street":"2 Main St","city":"Austin","country":"US"},
  "location":{"lat":30.27,"lon":-97.74},"property_type":"office","rentable_area_sqft":1000}')
delivered="SELECT (SELECT count(*) FROM buildings WHERE id::text = '$new_building')
                + (SELECT count(*) FROM audit_log WHERE aggregate_id = '$new_building')"
for _ in $(seq 1 100); do
  [ "$(psql "$b_url" -Atc "$delivered")" = 2 ] && break
  sleep 0.1
done
[ "$(psql "$b_url" -Atc "$delivered")" = 2 ] \
  || fail "(b) a command after the recovery did not reach the projections in 10 s"
log "(b) prism-worker starts; a new command's event (transaction id $(psql "$b_url" -Atc \
  "SELECT transaction_id FROM events WHERE aggregate_id = '$new_building'")) reached catalog and audit"

printf 'restore-drill: passed in %d s — %s events; (a) same server: rebuilt tables equal the source'\''s; (b) a cluster behind the log: the worker refused, recovered per %s, rebuilt tables equal, new events delivered\n' \
  "$((SECONDS - started))" "$events" "$RUNBOOK_ANCHOR"
