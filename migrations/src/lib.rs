//! Prism's database schema as ordered sea-orm migrations, each with `up` and `down`.
//! `prism-api migrate up|down|status|fresh` runs them; tests prove that every step
//! reverses and that a database migrated step by step equals one migrated at once.
//!
//! Layout (one migration per file, applied in this order):
//! - `m20261124_000001_postgis`: the PostGIS extension for the read models' geography;
//! - `m20261124_000002_event_store`: postgres-es's `events` and `snapshots` tables;
//! - `m20261124_000003_event_global_order`: `position`, `transaction_id` (`xid8`) and
//!   `recorded_at` on `events`, the order catch-up readers follow;
//! - `m20261124_000004_command_idempotency`: first results of keyed commands;
//! - `m20261124_000005_roles`: the `authenticated` and `prism_app` roles;
//! - `m20261125_000006_read_models`: projection checkpoints, the read models (buildings,
//!   comps, comp and market statistics, audit log) and the cache-refresh outbox;
//! - `m20261125_000007_row_level_security`: per-organisation policies on the read
//!   models for the `prism_app` role the api's queries run as;
//! - `m20261130_000008_market_running_totals`: market statistics as running totals;
//! - `m20261130_000009_event_writers`: event writers announce themselves (the
//!   delivery horizon waits only for them);
//! - `m20261130_000010_index_friendly_reads`: spatial and text candidates from
//!   reviewed security-definer functions, and a leakproof area order, so reads keep
//!   their indexes under row-level security;
//! - `m20261130_000011_projection_rebuilds`: rebuilds beside the live projection, and
//!   each projection's generation (raised by a swap);
//! - `m20261130_000012_nearest_by_index_order`: distances on the sphere, and a
//!   nearest-first page that walks the spatial index in distance order;
//! - `m20261130_000013_outbox_order`: the cache-refresh outbox is read oldest first
//!   through an index;
//! - `m20261130_000014_box_without_second_arm`: a map viewport reads only its own
//!   buildings (the antimeridian case is a branch of its own).

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_postgis;
mod m20261124_000002_event_store;
mod m20261124_000003_event_global_order;
mod m20261124_000004_command_idempotency;
mod m20261124_000005_roles;
mod m20261125_000006_read_models;
mod m20261125_000007_row_level_security;
mod m20261130_000008_market_running_totals;
mod m20261130_000009_event_writers;
mod m20261130_000010_index_friendly_reads;
mod m20261130_000011_projection_rebuilds;
mod m20261130_000012_nearest_by_index_order;
mod m20261130_000013_outbox_order;
mod m20261130_000014_box_without_second_arm;

/// Changes whenever a migration source changes (computed by `build.rs`).
pub const FINGERPRINT: &str = env!("PRISM_MIGRATIONS_FINGERPRINT");

#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_postgis::Migration),
            Box::new(m20261124_000002_event_store::Migration),
            Box::new(m20261124_000003_event_global_order::Migration),
            Box::new(m20261124_000004_command_idempotency::Migration),
            Box::new(m20261124_000005_roles::Migration),
            Box::new(m20261125_000006_read_models::Migration),
            Box::new(m20261125_000007_row_level_security::Migration),
            Box::new(m20261130_000008_market_running_totals::Migration),
            Box::new(m20261130_000009_event_writers::Migration),
            Box::new(m20261130_000010_index_friendly_reads::Migration),
            Box::new(m20261130_000011_projection_rebuilds::Migration),
            Box::new(m20261130_000012_nearest_by_index_order::Migration),
            Box::new(m20261130_000013_outbox_order::Migration),
            Box::new(m20261130_000014_box_without_second_arm::Migration),
        ]
    }
}

/// The migrations this build knows that the database has not applied, in order.
/// Unlike sea-orm's status calls, a database that has applied *newer* migrations than
/// this build knows (during a rolling deploy, the old instances) is not an error: the
/// schema this build needs is there. Readiness probes use it.
pub async fn missing(
    db: &sea_orm_migration::sea_orm::DatabaseConnection,
) -> Result<Vec<String>, DbErr> {
    use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};
    let exists = db
        .query_one(Statement::from_string(
            DbBackend::Postgres,
            "SELECT to_regclass('seaql_migrations') IS NOT NULL AS present",
        ))
        .await?
        .map(|row| row.try_get::<bool>("", "present"))
        .transpose()?
        .unwrap_or(false);
    let applied: std::collections::HashSet<String> = if exists {
        db.query_all(Statement::from_string(
            DbBackend::Postgres,
            "SELECT version FROM seaql_migrations",
        ))
        .await?
        .into_iter()
        .map(|row| row.try_get::<String>("", "version"))
        .collect::<Result<_, _>>()?
    } else {
        Default::default()
    };
    Ok(Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .filter(|name| !applied.contains(name))
        .collect())
}

/// Runs each statement of a migration step in order.
async fn run(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for statement in statements {
        db.execute_unprepared(statement).await?;
    }
    Ok(())
}

#[cfg(feature = "testing")]
pub mod testing;
