//! A global order over all events. `position` is handed out at insert time, so alone it
//! lets a reader skip a transaction that commits late; `transaction_id` (the writer's
//! `xid8`) lets a catch-up reader take only rows below `pg_snapshot_xmin` of its
//! snapshot, ordered by (transaction_id, position), and so never skip one.
//! `recorded_at` is the writing transaction's time. postgres-es names its insert
//! columns, so these defaults fill in by themselves.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(
            manager,
            &[
                "ALTER TABLE events ADD COLUMN position bigint GENERATED ALWAYS AS IDENTITY",
                "ALTER TABLE events ADD COLUMN transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id()",
                "ALTER TABLE events ADD COLUMN recorded_at timestamptz NOT NULL DEFAULT now()",
                "ALTER TABLE events ADD CONSTRAINT events_position_key UNIQUE (position)",
                "CREATE INDEX events_global_order_idx ON events (transaction_id, position)",
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(
            manager,
            &[
                "DROP INDEX IF EXISTS events_global_order_idx",
                "ALTER TABLE events DROP CONSTRAINT IF EXISTS events_position_key",
                "ALTER TABLE events DROP COLUMN IF EXISTS recorded_at",
                "ALTER TABLE events DROP COLUMN IF EXISTS transaction_id",
                "ALTER TABLE events DROP COLUMN IF EXISTS position",
            ],
        )
        .await
    }
}
