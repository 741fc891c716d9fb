//! Reads that keep their indexes under row-level security.
//!
//! As `prism_app`, a query's conditions may only run before the policy's filter when
//! their operators are `LEAKPROOF`. PostGIS's geography operators, `LIKE` and numeric
//! comparisons are not, so the planner could not use the GIST, trigram and area
//! indexes: a near query scanned every row of the organisation. Two changes:
//!
//! - the candidate sets of the spatial and text searches come from three
//!   `SECURITY DEFINER` functions, reviewed here and nowhere else. Each returns only ids
//!   of the organisation the transaction is set to (`prism.org_id`, exactly as the
//!   policies read it; unset matches nothing), so they show nothing the policies would
//!   hide, and the api's query looks their ids up in `buildings` by primary key, under
//!   row-level security. Only `prism_app` may call them.
//!   - `prism_buildings_within(lat, lon, radius_m)`: ids within the radius (a GIST
//!     index on organisation and location, with `btree_gist`);
//!   - `prism_buildings_in_box(min_lon, min_lat, max_lon, max_lat)`: ids in a map
//!     viewport, west > east crossing the antimeridian (a GIST index on organisation
//!     and the point's geometry);
//!   - `prism_buildings_matching(patterns)`: ids whose search text is `LIKE` every
//!     pattern (the trigram index finds the first pattern's candidates; pass the most
//!     selective, the longest, first).
//! - the area sort pages on `rentable_area_order`, the area as `float8` (leakproof
//!   comparisons; every area Prism accepts converts exactly enough to keep its order).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(
            manager,
            &[
                "CREATE EXTENSION IF NOT EXISTS btree_gist",
                "DROP INDEX buildings_location_idx",
                "CREATE INDEX buildings_org_location_idx ON buildings USING gist (org_id, location)",
                "CREATE INDEX buildings_org_point_idx ON buildings \
                 USING gist (org_id, (location::geometry))",
                "ALTER TABLE buildings ADD COLUMN rentable_area_order float8 \
                 GENERATED ALWAYS AS (rentable_area_sqft::float8) STORED",
                "DROP INDEX buildings_org_area_idx",
                "CREATE INDEX buildings_org_area_idx ON buildings (org_id, rentable_area_order, id)",
                r#"CREATE FUNCTION prism_buildings_within(float8, float8, float8)
                   RETURNS TABLE (id uuid)
                   LANGUAGE sql STABLE SECURITY DEFINER ROWS 200
                   SET search_path = public, pg_temp
                   AS $$
                     SELECT b.id
                       FROM buildings b
                      WHERE b.org_id = current_setting('prism.org_id', true)
                        AND ST_DWithin(b.location, ST_SetSRID(ST_MakePoint($2, $1), 4326)::geography, $3)
                   $$"#,
                r#"CREATE FUNCTION prism_buildings_in_box(float8, float8, float8, float8)
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
                   $$"#,
                // The trigram index first (the fence keeps the planner to it), then the
                // organisation and every pattern.
                r#"CREATE FUNCTION prism_buildings_matching(text[])
                   RETURNS TABLE (id uuid)
                   LANGUAGE sql STABLE SECURITY DEFINER ROWS 200
                   SET search_path = public, pg_temp
                   AS $$
                     SELECT c.id
                       FROM (SELECT b.id, b.org_id, b.search_text FROM buildings b
                              WHERE b.search_text LIKE $1[1] OFFSET 0) c
                      WHERE c.org_id = current_setting('prism.org_id', true)
                        AND c.search_text LIKE ALL ($1)
                   $$"#,
                "REVOKE ALL ON FUNCTION prism_buildings_within(float8, float8, float8) FROM PUBLIC",
                "REVOKE ALL ON FUNCTION prism_buildings_in_box(float8, float8, float8, float8) FROM PUBLIC",
                "REVOKE ALL ON FUNCTION prism_buildings_matching(text[]) FROM PUBLIC",
                "GRANT EXECUTE ON FUNCTION prism_buildings_within(float8, float8, float8) TO prism_app",
                "GRANT EXECUTE ON FUNCTION prism_buildings_in_box(float8, float8, float8, float8) TO prism_app",
                "GRANT EXECUTE ON FUNCTION prism_buildings_matching(text[]) TO prism_app",
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(
            manager,
            &[
                "DROP FUNCTION IF EXISTS prism_buildings_matching(text[])",
                "DROP FUNCTION IF EXISTS prism_buildings_in_box(float8, float8, float8, float8)",
                "DROP FUNCTION IF EXISTS prism_buildings_within(float8, float8, float8)",
                "DROP INDEX IF EXISTS buildings_org_area_idx",
                "ALTER TABLE buildings DROP COLUMN IF EXISTS rentable_area_order",
                "CREATE INDEX buildings_org_area_idx ON buildings (org_id, rentable_area_sqft, id)",
                "DROP INDEX IF EXISTS buildings_org_point_idx",
                "DROP INDEX IF EXISTS buildings_org_location_idx",
                "CREATE INDEX buildings_location_idx ON buildings USING gist (location)",
                "DROP EXTENSION IF EXISTS btree_gist",
            ],
        )
        .await
    }
}
