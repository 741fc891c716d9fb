//! A map viewport reads only its own buildings. Migration 000010's
//! `prism_buildings_in_box` tested the box as `A OR (west > east AND B)`, B being the
//! part of a box that crosses the antimeridian. In the function's plan the bounds are
//! parameters, so the planner cannot drop B: its index scan ran on every call and read
//! every building in the box's band of latitude from -180° to the box's east edge
//! (1,500 buffers for a 2 × 2 km box holding 132 buildings at 100k; the box itself
//! reads 7 index pages and its rows). Now each case is its own branch of a
//! `UNION ALL`, gated by a test of the parameters alone, which the executor checks
//! once before running the branch.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(
            manager,
            &[
                r#"CREATE OR REPLACE FUNCTION prism_buildings_in_box(float8, float8, float8, float8)
                   RETURNS TABLE (id uuid)
                   LANGUAGE sql STABLE SECURITY DEFINER ROWS 200
                   SET search_path = public, pg_temp
                   AS $$
                     SELECT b.id
                       FROM buildings b
                      WHERE $1 <= $3
                        AND b.org_id = current_setting('prism.org_id', true)
                        AND b.location::geometry && ST_MakeEnvelope($1, $2, $3, $4, 4326)
                        AND b.lat BETWEEN $2 AND $4
                        AND b.lon BETWEEN $1 AND $3
                     UNION ALL
                     SELECT b.id
                       FROM buildings b
                      WHERE $1 > $3
                        AND b.org_id = current_setting('prism.org_id', true)
                        AND (b.location::geometry && ST_MakeEnvelope($1, $2, 180, $4, 4326)
                             OR b.location::geometry && ST_MakeEnvelope(-180, $2, $3, $4, 4326))
                        AND b.lat BETWEEN $2 AND $4
                        AND (b.lon >= $1 OR b.lon <= $3)
                   $$"#,
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(
            manager,
            &[r#"CREATE OR REPLACE FUNCTION prism_buildings_in_box(float8, float8, float8, float8)
                   RETURNS TABLE (id uuid)
                   LANGUAGE sql STABLE SECURITY DEFINER ROWS 200
                   SET search_path = public, pg_temp
                   AS $$
                     SELECT b.id
                       FROM buildings b
                      WHERE b.org_id = current_setting('prism.org_id', true)
                        AND (b.location::geometry && ST_MakeEnvelope($1, $2, CASE WHEN $1 <= $3 THEN $3 ELSE 180 END, $4, 4326)
                             OR ($1 > $3 AND b.location::geometry && ST_MakeEnvelope(-180, $2, $3, $4, 4326)))
                        AND b.lat BETWEEN $2 AND $4
                        AND (CASE WHEN $1 <= $3 THEN b.lon BETWEEN $1 AND $3 ELSE b.lon >= $1 OR b.lon <= $3 END)
                   $$"#],
        )
        .await
    }
}
