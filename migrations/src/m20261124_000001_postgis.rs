//! PostGIS, for the read models' `geography(Point, 4326)` columns and GIST indexes.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(manager, &["CREATE EXTENSION IF NOT EXISTS postgis"]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(manager, &["DROP EXTENSION IF EXISTS postgis"]).await
    }
}
