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
//!   - `prism_buildings_nearest(…)`: a nearest-first page (a map) in one call — the
//!     ids and distances within the radius that pass the list's plain filters, after
//!     the cursor, at most `lim` — so the candidates are read once;
//!   - `prism_buildings_in_box(min_lon, min_lat, max_lon, max_lat)`: ids in a map
//!     viewport, west > east crossing the antimeridian (a GIST index on organisation
//!     and the point's geometry);
//!   - `prism_buildings_matching(patterns)`: ids whose search text is `LIKE` every
//!     pattern (the trigram index intersects the words' trigrams).
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
                // A map's nearest-first page in one call: the organisation's buildings
                // within the radius that pass the list's plain filters, ordered by
                // distance and id, after the cursor, at most `lim`. The rows the GIST
                // index finds are read once here; the caller looks up only the page.
                r#"CREATE FUNCTION prism_buildings_nearest(
                       lat float8, lon float8, radius_m float8, want_archived boolean,
                       want_type text, want_class text, want_city text, want_submarket text,
                       after_distance float8, after_id uuid, lim integer)
                   RETURNS TABLE (id uuid, distance_m float8)
                   LANGUAGE sql STABLE SECURITY DEFINER ROWS 26
                   SET search_path = public, pg_temp
                   AS $$
                     SELECT n.id, n.distance_m
                       FROM (SELECT b.id, ST_Distance(b.location, p.point) AS distance_m
                               FROM buildings b,
                                    (SELECT ST_SetSRID(ST_MakePoint($2, $1), 4326)::geography AS point) p
                              WHERE b.org_id = current_setting('prism.org_id', true)
                                AND ST_DWithin(b.location, p.point, $3)
                                AND b.archived = $4
                                AND ($5 IS NULL OR b.property_type = $5)
                                AND ($6 IS NULL OR b.building_class = $6)
                                AND ($7 IS NULL OR lower(b.city) = lower($7))
                                AND ($8 IS NULL OR lower(b.submarket) = lower($8))) n
                      WHERE $9 IS NULL OR (n.distance_m, n.id) > ($9, $10)
                      ORDER BY n.distance_m, n.id
                      LIMIT $11
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
                // One `LIKE` per word (up to eight), planned for the words given: the
                // trigram index intersects them all; any further words are checked on
                // the rows it finds.
                r#"CREATE FUNCTION prism_buildings_matching(text[])
                   RETURNS TABLE (id uuid)
                   LANGUAGE plpgsql STABLE SECURITY DEFINER ROWS 200
                   SET search_path = public, pg_temp
                   AS $$
                   DECLARE
                     words integer := coalesce(array_length($1, 1), 0);
                     conditions text := '';
                   BEGIN
                     IF words = 0 THEN
                       RETURN;
                     END IF;
                     FOR i IN 1 .. least(words, 8) LOOP
                       conditions := conditions || format(' AND b.search_text LIKE $1[%s]', i);
                     END LOOP;
                     RETURN QUERY EXECUTE
                       'SELECT b.id FROM buildings b
                         WHERE b.org_id = current_setting(''prism.org_id'', true)'
                       || conditions || ' AND b.search_text LIKE ALL ($1)'
                       USING $1;
                   END $$"#,
                "REVOKE ALL ON FUNCTION prism_buildings_within(float8, float8, float8) FROM PUBLIC",
                "REVOKE ALL ON FUNCTION prism_buildings_nearest(float8, float8, float8, boolean, text, text, text, text, float8, uuid, integer) FROM PUBLIC",
                "REVOKE ALL ON FUNCTION prism_buildings_in_box(float8, float8, float8, float8) FROM PUBLIC",
                "REVOKE ALL ON FUNCTION prism_buildings_matching(text[]) FROM PUBLIC",
                "GRANT EXECUTE ON FUNCTION prism_buildings_within(float8, float8, float8) TO prism_app",
                "GRANT EXECUTE ON FUNCTION prism_buildings_nearest(float8, float8, float8, boolean, text, text, text, text, float8, uuid, integer) TO prism_app",
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
                "DROP FUNCTION IF EXISTS prism_buildings_nearest(float8, float8, float8, boolean, text, text, text, text, float8, uuid, integer)",
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
