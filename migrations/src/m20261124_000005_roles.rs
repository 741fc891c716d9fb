//! The roles read models are protected with: `authenticated` (a signed-in user's
//! requests) and `prism_app` (the api's query connections, a member of
//! `authenticated`). Neither logs in; the api's connection user switches to them per
//! transaction. Roles belong to the whole server, not one database: `up` tolerates
//! their existing (another database, or a concurrent migrator, made them), and `down`
//! drops them only when no other database still uses them.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(
            manager,
            &[
                r#"DO $$ BEGIN
                    CREATE ROLE authenticated NOLOGIN;
                EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
                END $$"#,
                r#"DO $$ BEGIN
                    CREATE ROLE prism_app NOLOGIN;
                EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
                END $$"#,
                r#"DO $$ BEGIN
                    GRANT authenticated TO prism_app;
                EXCEPTION WHEN unique_violation THEN NULL;
                END $$"#,
                "GRANT USAGE ON SCHEMA public TO authenticated, prism_app",
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(
            manager,
            &[
                "REVOKE USAGE ON SCHEMA public FROM authenticated, prism_app",
                r#"DO $$ BEGIN
                    DROP ROLE IF EXISTS prism_app;
                    DROP ROLE IF EXISTS authenticated;
                EXCEPTION WHEN dependent_objects_still_exist THEN
                    RAISE NOTICE 'roles kept: another database still uses them';
                END $$"#,
            ],
        )
        .await
    }
}
