//! The cache-refresh outbox is read oldest first, a few hundred rows at a time
//! (`ORDER BY created_at LIMIT … FOR UPDATE SKIP LOCKED`). Without an index on
//! `created_at` every pass sorted the whole outbox: after a catch-up of 730k events
//! (a backlog of about a million views) each pass took more than a second, and draining
//! took minutes. With the index a pass reads its own rows.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(
            manager,
            &["CREATE INDEX IF NOT EXISTS cache_refresh_outbox_created_idx
                   ON cache_refresh_outbox (created_at)"],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(
            manager,
            &["DROP INDEX IF EXISTS cache_refresh_outbox_created_idx"],
        )
        .await
    }
}
