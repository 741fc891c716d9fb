//! Row-level security on the read models: the second lock on the organisation door.
//!
//! Every read-model table carries `org_id`. The api's query transactions switch to the
//! `prism_app` role and set `prism.org_id` to the caller's organisation
//! (`projections::queries::begin_as`); the policies below then show that role only the
//! organisation's rows, so a query that forgets its `org_id` filter still leaks
//! nothing. `prism_app` may only read. The tables' owner (the migrating user, which
//! the worker's projectors run as) is not subject to the policies; RLS is not forced.
//! An unset `prism.org_id` matches no row.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The read models, each with an `org_id` column.
const TABLES: [&str; 6] = [
    "buildings",
    "comps",
    "building_comp_stats",
    "market_stats",
    "audit_log",
    "cache_refresh_outbox",
];

/// The tables `prism_app` reads (the outbox is the worker's alone).
const READABLE: [&str; 5] = [
    "buildings",
    "comps",
    "building_comp_stats",
    "market_stats",
    "audit_log",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut statements = Vec::new();
        for table in TABLES {
            statements.push(format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"));
            statements.push(format!(
                "CREATE POLICY {table}_org_isolation ON {table} FOR SELECT TO prism_app \
                 USING (org_id = current_setting('prism.org_id', true))"
            ));
        }
        for table in READABLE {
            statements.push(format!("GRANT SELECT ON {table} TO prism_app"));
        }
        // Read-model freshness stamps (no organisation data).
        statements.push("GRANT SELECT ON projection_checkpoints TO prism_app".into());
        let statements: Vec<&str> = statements.iter().map(String::as_str).collect();
        crate::run(manager, &statements).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut statements =
            vec!["REVOKE SELECT ON projection_checkpoints FROM prism_app".to_owned()];
        for table in READABLE {
            statements.push(format!("REVOKE SELECT ON {table} FROM prism_app"));
        }
        for table in TABLES {
            statements.push(format!(
                "DROP POLICY IF EXISTS {table}_org_isolation ON {table}"
            ));
            statements.push(format!("ALTER TABLE {table} DISABLE ROW LEVEL SECURITY"));
        }
        let statements: Vec<&str> = statements.iter().map(String::as_str).collect();
        crate::run(manager, &statements).await
    }
}
