//! The read side: projection checkpoints, the read models the api queries (buildings
//! with a PostGIS geography, comps with derived rent metrics, per-building comp
//! statistics, market statistics, the audit log) and the cache-refresh outbox.
//!
//! Every read-model row carries `org_id`; rows built from one aggregate also carry the
//! aggregate `version` they reflect. Timestamps come from the events (`recorded_at`),
//! never from the clock of the worker that applied them, so a rebuild from the log
//! gives exactly the live rows.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(
            manager,
            &[
                // Trigram indexes serve the building list's text search (`q`).
                "CREATE EXTENSION IF NOT EXISTS pg_trgm",
                // Where each projection has read the log up to: the last applied event's
                // (transaction_id, position), advanced in the batch's own transaction.
                r#"CREATE TABLE projection_checkpoints (
                    name                 text        PRIMARY KEY,
                    transaction_id       xid8        NOT NULL DEFAULT '0',
                    position             bigint      NOT NULL DEFAULT 0,
                    events_applied       bigint      NOT NULL DEFAULT 0,
                    last_batch_size      integer     NOT NULL DEFAULT 0,
                    last_event_at        timestamptz,
                    updated_at           timestamptz NOT NULL DEFAULT now(),
                    rebuilt_at           timestamptz,
                    failing_since        timestamptz,
                    failed_position      bigint,
                    last_error           text
                )"#,
                "INSERT INTO projection_checkpoints (name) VALUES ('catalog'), ('audit')",
                r#"CREATE TABLE buildings (
                    id                 uuid             PRIMARY KEY,
                    org_id             text             NOT NULL,
                    version            bigint           NOT NULL,
                    name               text             NOT NULL,
                    street             text             NOT NULL,
                    city               text             NOT NULL,
                    region             text,
                    postal_code        text,
                    country            text             NOT NULL,
                    lat                double precision NOT NULL,
                    lon                double precision NOT NULL,
                    location           geography(Point, 4326) NOT NULL,
                    property_type      text             NOT NULL,
                    building_class     text,
                    rentable_area_sqft numeric          NOT NULL,
                    year_built         integer,
                    floors             integer,
                    submarket          text,
                    archived           boolean          NOT NULL DEFAULT false,
                    archive_reason     text,
                    registered_at      timestamptz      NOT NULL,
                    updated_at         timestamptz      NOT NULL,
                    search_text        text GENERATED ALWAYS AS (lower(
                        name || ' ' || street || ' ' || city || ' ' || coalesce(region, '')
                        || ' ' || coalesce(postal_code, ''))) STORED
                )"#,
                "CREATE INDEX buildings_location_idx ON buildings USING gist (location)",
                "CREATE INDEX buildings_org_name_idx ON buildings (org_id, name, id)",
                "CREATE INDEX buildings_org_registered_idx ON buildings (org_id, registered_at, id)",
                "CREATE INDEX buildings_org_area_idx ON buildings (org_id, rentable_area_sqft, id)",
                "CREATE INDEX buildings_search_idx ON buildings USING gin (search_text gin_trgm_ops)",
                r#"CREATE TABLE comps (
                    id                     uuid        PRIMARY KEY,
                    org_id                 text        NOT NULL,
                    building_id            uuid        NOT NULL,
                    version                bigint      NOT NULL,
                    kind                   text        NOT NULL CHECK (kind IN ('lease', 'sale')),
                    deal_date              date        NOT NULL,
                    tenant                 text,
                    suite                  text,
                    leased_area_sqft       numeric,
                    starting_rent_psf      numeric,
                    lease_type             text,
                    term_months            integer,
                    free_rent_months       integer,
                    ti_allowance_psf       numeric,
                    escalation_pct         numeric,
                    net_effective_rent_psf numeric,
                    sale_price             numeric,
                    buyer                  text,
                    seller                 text,
                    cap_rate_pct           numeric,
                    price_psf              numeric,
                    verified               boolean     NOT NULL DEFAULT false,
                    retracted              boolean     NOT NULL DEFAULT false,
                    retract_reason         text,
                    recorded_at            timestamptz NOT NULL,
                    updated_at             timestamptz NOT NULL
                )"#,
                "CREATE INDEX comps_org_deal_idx ON comps (org_id, deal_date DESC, id DESC)",
                "CREATE INDEX comps_building_idx ON comps (building_id, deal_date DESC, id DESC)",
                r#"CREATE TABLE building_comp_stats (
                    building_id               uuid    PRIMARY KEY,
                    org_id                    text    NOT NULL,
                    comp_count                integer NOT NULL,
                    lease_count               integer NOT NULL,
                    sale_count                integer NOT NULL,
                    latest_comp_date          date,
                    rent_window_start         date,
                    rent_window_end           date,
                    rent_window_count         integer NOT NULL,
                    avg_effective_rent_psf    numeric,
                    median_effective_rent_psf numeric
                )"#,
                r#"CREATE TABLE market_stats (
                    org_id                 text    NOT NULL,
                    submarket              text    NOT NULL,
                    property_type          text    NOT NULL,
                    quarter_start          date    NOT NULL,
                    lease_count            integer NOT NULL,
                    leased_area_sqft       numeric,
                    avg_starting_rent_psf  numeric,
                    avg_effective_rent_psf numeric,
                    sale_count             integer NOT NULL,
                    sale_volume            numeric,
                    avg_price_psf          numeric,
                    avg_cap_rate_pct       numeric,
                    CONSTRAINT market_stats_pkey PRIMARY KEY (org_id, submarket, property_type, quarter_start)
                )"#,
                r#"CREATE TABLE audit_log (
                    position        bigint      PRIMARY KEY,
                    org_id          text        NOT NULL,
                    aggregate_type  text        NOT NULL,
                    aggregate_id    text        NOT NULL,
                    sequence        bigint      NOT NULL,
                    event_type      text        NOT NULL,
                    event_version   text        NOT NULL,
                    user_id         text,
                    request_id      text,
                    idempotency_key text,
                    recorded_at     timestamptz NOT NULL,
                    payload         jsonb       NOT NULL
                )"#,
                "CREATE INDEX audit_log_org_idx ON audit_log (org_id, position DESC)",
                "CREATE INDEX audit_log_aggregate_idx ON audit_log (org_id, aggregate_id, sequence)",
                // Cache views to refresh, written in the batch's transaction and removed once
                // Redis has the new value: a worker killed between commit and refresh, or a
                // Redis outage, leaves them here for the next pass.
                r#"CREATE TABLE cache_refresh_outbox (
                    org_id     text        NOT NULL,
                    view       text        NOT NULL,
                    view_id    text        NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    CONSTRAINT cache_refresh_outbox_pkey PRIMARY KEY (view, view_id, org_id)
                )"#,
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(
            manager,
            &[
                "DROP TABLE IF EXISTS cache_refresh_outbox",
                "DROP TABLE IF EXISTS audit_log",
                "DROP TABLE IF EXISTS market_stats",
                "DROP TABLE IF EXISTS building_comp_stats",
                "DROP TABLE IF EXISTS comps",
                "DROP TABLE IF EXISTS buildings",
                "DROP TABLE IF EXISTS projection_checkpoints",
                "DROP EXTENSION IF EXISTS pg_trgm",
            ],
        )
        .await
    }
}
