# Prism's tasks. The two a newcomer needs: `make start` and `make test`.
SHELL := /usr/bin/env bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/prism/target
DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/prism
export DATABASE_URL

.PHONY: client bench soak load-smoke ops-check bench-projections rebuild replay start test services fmt fmt-check lint api-docs api-docs-check migrate migrate-status token clean-dev

## start: Postgres+PostGIS and Redis ready, database migrated, prism-api serving on :8080.
start:
	@scripts/start.sh

## test: every test — OpenAPI drift check, then all crates against real Postgres and Redis.
test: services api-docs-check
	@scripts/test.sh

## services: install (if missing) and start Postgres+PostGIS and Redis.
services:
	@scripts/services.sh

fmt:
	cargo fmt --all

fmt-check:
	cargo fmt --all -- --check

## lint: formatting and clippy with warnings as errors.
lint: fmt-check
	cargo clippy --workspace --all-targets -- -D warnings

## api-docs: rewrite api/openapi.json from the code (commit the result).
api-docs:
	cargo run --quiet --bin prism-api -- openapi > api/openapi.json

## client: regenerate the TypeScript client's types from api/openapi.json (commit the result).
client:
	cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error && npm run --silent generate

## api-docs-check: fail when the code's OpenAPI document differs from api/openapi.json.
api-docs-check:
	@mkdir -p "$(CARGO_TARGET_DIR)"
	cargo run --quiet --bin prism-api -- openapi > "$(CARGO_TARGET_DIR)/openapi.json"
	@diff -u api/openapi.json "$(CARGO_TARGET_DIR)/openapi.json" \
	  || { echo "api/openapi.json is out of date: run 'make api-docs' and commit it"; exit 1; }
	@echo "api/openapi.json matches the code"

## migrate: run a migration command against DATABASE_URL, e.g. make migrate CMD="down 1".
CMD ?= up
migrate:
	cargo run --quiet --bin prism-api -- migrate $(CMD)

migrate-status:
	cargo run --quiet --bin prism-api -- migrate status

## token: a development token for Swagger UI (after `make start` made .dev/).
token:
	@cargo run --quiet --bin prism-api -- dev token --key .dev/jwt-private.pem --org org_dev --user user_dev \
	  --scopes "buildings:read buildings:write comps:read comps:write audit:read projections:admin"

## bench: every hot path beside a baseline from the same run (release build; docs/performance.md).
bench: services
	cargo build --release --bin prism-api --bin prism-worker --bin prism-bench
	BENCH_REPORT="$(CARGO_TARGET_DIR)/bench-report.md" "$(CARGO_TARGET_DIR)/release/prism-bench"

## soak: ten minutes of steady mixed load; fails if the api's or the worker's memory keeps growing (docs/performance.md).
soak: services
	cargo build --release --bin prism-api --bin prism-worker --bin prism-bench
	set -o pipefail; "$(CARGO_TARGET_DIR)/release/prism-bench" soak | tee "$(CARGO_TARGET_DIR)/soak-report.md"

## bench-projections: catch-up throughput and commit-to-visible lag beside a raw-insert baseline (docs/performance.md).
bench-projections: services
	cargo bench --quiet -p worker --bench projections

## rebuild: rebuild a projection beside the live one, with progress, e.g. make rebuild P=catalog (replay: its former name).
P ?= catalog
rebuild replay:
	REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379} cargo run --quiet --bin prism-worker -- rebuild $(P)

clean-dev:
	rm -rf .dev

## ops-check: a real Prometheus scrapes a running api and worker under traffic; every promised series and ops/ query must return data.
ops-check: services
	@scripts/ops-check.sh

## load-smoke: the release gate — k6-smoke.js (or prism-loadtest without k6) against BASE_URL or a local release build; fails on a missed SLO.
load-smoke: services
	@scripts/load-smoke.sh

## restore-drill: back up a seeded Prism, restore it on the same server and into a cluster behind its transaction ids; the worker refuses, the runbook recovers, rebuilt projections equal the source's (docs/ops/rollback.md).
.PHONY: restore-drill
restore-drill: services
	@scripts/restore-drill.sh

## browser-test: Debian's Chromium runs a page on another origin through the typed client: commands, min_position, a 304 from the browser's cache, 409/422 problems, a 429's Retry-After, CORS with its preflights (docs/testing.md).
.PHONY: browser-test
browser-test: services
	@scripts/browser-test.sh
