//! The first result of every command sent with an `Idempotency-Key`, written in the
//! same transaction as its events: a retry finds it even when the first response was
//! lost, and the primary key makes a concurrent duplicate fail instead of appending.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(
            manager,
            &[
                r#"CREATE TABLE command_idempotency (
                    org_id          text        NOT NULL,
                    idempotency_key text        NOT NULL,
                    request_hash    text        NOT NULL,
                    aggregate_type  text        NOT NULL,
                    aggregate_id    text        NOT NULL,
                    version         bigint      NOT NULL,
                    status          smallint    NOT NULL,
                    created_at      timestamptz NOT NULL DEFAULT now(),
                    CONSTRAINT command_idempotency_pkey PRIMARY KEY (org_id, idempotency_key)
                )"#,
                "CREATE INDEX command_idempotency_created_at_idx ON command_idempotency (created_at)",
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(manager, &["DROP TABLE IF EXISTS command_idempotency"]).await
    }
}
