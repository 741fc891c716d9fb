//! Rebuilds beside the live projection: one row per rebuild an operator (or a new
//! projection's backfill) asked for, with its state, progress and shadow checkpoint.
//! The rebuild itself builds the projection's tables in a schema of its own and swaps
//! them in (`projections::rebuild`); this table is how the api, the worker and the
//! CLI share it. At most one rebuild of a projection is active at a time.
//!
//! Each projection's checkpoint also gets a `generation`, raised by every swap, so an
//! operator sees when the tables serving reads were last replaced.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(
            manager,
            &[
                r#"CREATE TABLE projection_rebuilds (
                    id               uuid        PRIMARY KEY,
                    projection       text        NOT NULL,
                    state            text        NOT NULL CHECK (state IN
                        ('queued', 'running', 'verifying', 'swapped', 'failed', 'cancelled')),
                    requested_by     text,
                    requested_at     timestamptz NOT NULL DEFAULT now(),
                    started_at       timestamptz,
                    finished_at      timestamptz,
                    events_applied   bigint      NOT NULL DEFAULT 0,
                    events_total     bigint      NOT NULL DEFAULT 0,
                    transaction_id   xid8        NOT NULL DEFAULT '0',
                    position         bigint      NOT NULL DEFAULT 0,
                    cancel_requested boolean     NOT NULL DEFAULT false,
                    error            text,
                    updated_at       timestamptz NOT NULL DEFAULT now()
                )"#,
                "CREATE UNIQUE INDEX projection_rebuilds_one_active ON projection_rebuilds (projection) \
                 WHERE state IN ('queued', 'running', 'verifying')",
                "CREATE INDEX projection_rebuilds_requested_idx ON projection_rebuilds (requested_at DESC, id)",
                "ALTER TABLE projection_checkpoints ADD COLUMN generation bigint NOT NULL DEFAULT 0",
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(
            manager,
            &[
                "ALTER TABLE projection_checkpoints DROP COLUMN IF EXISTS generation",
                "DROP TABLE IF EXISTS projection_rebuilds",
            ],
        )
        .await
    }
}
