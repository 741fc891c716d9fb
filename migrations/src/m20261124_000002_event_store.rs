//! The event store as postgres-es expects it (its `db/init.sql`): one `events` table
//! for every aggregate, keyed by (type, id, sequence) so a second writer of the same
//! sequence fails, and `snapshots` for aggregates that may later use them.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(
            manager,
            &[
                r#"CREATE TABLE events (
                    aggregate_type text   NOT NULL,
                    aggregate_id   text   NOT NULL,
                    sequence       bigint NOT NULL CHECK (sequence >= 0),
                    event_type     text   NOT NULL,
                    event_version  text   NOT NULL,
                    payload        json   NOT NULL,
                    metadata       json   NOT NULL,
                    CONSTRAINT events_pkey PRIMARY KEY (aggregate_type, aggregate_id, sequence)
                )"#,
                r#"CREATE TABLE snapshots (
                    aggregate_type   text   NOT NULL,
                    aggregate_id     text   NOT NULL,
                    last_sequence    bigint NOT NULL CHECK (last_sequence >= 0),
                    current_snapshot bigint NOT NULL CHECK (current_snapshot >= 0),
                    payload          json   NOT NULL,
                    CONSTRAINT snapshots_pkey PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
                )"#,
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(
            manager,
            &[
                "DROP TABLE IF EXISTS snapshots",
                "DROP TABLE IF EXISTS events",
            ],
        )
        .await
    }
}
