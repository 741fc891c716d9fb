//! A map's nearest-first page reads only what it shows. Migration 000010's
//! `prism_buildings_nearest` read every building within the radius (about 450 within
//! 2 km over 100k buildings in a metro area, each on its own heap page), measured each
//! distance on the ellipsoid and sorted them to return 26. Now:
//!
//! - distances are on the sphere (PostGIS's `<->` and `ST_Distance(…, false)`, the
//!   mean Earth radius; within 0.5% of the ellipsoid's), everywhere a list measures one,
//!   so the order the index gives is the order the api shows;
//! - `prism_buildings_nearest` walks the GIST index on (organisation, location) in
//!   distance order (`ORDER BY location <-> point`) and stops at the first building
//!   beyond the page, or beyond the radius: a first page reads about its own rows. Ties
//!   in distance are ordered by id, as the keyset cursor (distance, id) expects; a later
//!   page walks past the earlier ones;
//! - `prism_buildings_within` (the candidates of `near` combined with `q` or `bbox`)
//!   tests the radius on the sphere too.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(
            manager,
            &[
                r#"CREATE OR REPLACE FUNCTION prism_buildings_within(float8, float8, float8)
                   RETURNS TABLE (id uuid)
                   LANGUAGE sql STABLE SECURITY DEFINER ROWS 200
                   SET search_path = public, pg_temp
                   AS $$
                     SELECT b.id
                       FROM buildings b
                      WHERE b.org_id = current_setting('prism.org_id', true)
                        AND ST_DWithin(b.location, ST_SetSRID(ST_MakePoint($2, $1), 4326)::geography, $3, false)
                   $$"#,
                // The index yields buildings nearest first (`<->` is the sphere
                // distance, exact for points); the loop keeps those that pass the
                // filters and the cursor, and stops at the first one farther than the
                // radius, or than the page's last distance once the page is full (the
                // ties at that distance are kept, then the page is ordered by distance
                // and id and cut to `lim`). The planner cannot know how soon the loop
                // stops, and would rather sort the whole organisation: inside this
                // function, the index's order is its only choice.
                r#"CREATE OR REPLACE FUNCTION prism_buildings_nearest(
                       lat float8, lon float8, radius_m float8, want_archived boolean,
                       want_type text, want_class text, want_city text, want_submarket text,
                       after_distance float8, after_id uuid, lim integer)
                   RETURNS TABLE (id uuid, distance_m float8)
                   LANGUAGE plpgsql STABLE SECURITY DEFINER ROWS 26
                   SET search_path = public, pg_temp
                   SET enable_seqscan = off
                   SET enable_bitmapscan = off
                   SET enable_sort = off
                   AS $$
                   DECLARE
                     point geography := ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography;
                     candidate record;
                     ids uuid[] := '{}';
                     distances float8[] := '{}';
                     last_distance float8;
                   BEGIN
                     FOR candidate IN
                       SELECT b.id, b.location <-> point AS distance
                         FROM buildings b
                        WHERE b.org_id = current_setting('prism.org_id', true)
                          AND b.archived = want_archived
                          AND (want_type IS NULL OR b.property_type = want_type)
                          AND (want_class IS NULL OR b.building_class = want_class)
                          AND (want_city IS NULL OR lower(b.city) = lower(want_city))
                          AND (want_submarket IS NULL OR lower(b.submarket) = lower(want_submarket))
                        ORDER BY b.location <-> point
                     LOOP
                       EXIT WHEN candidate.distance > radius_m;
                       EXIT WHEN cardinality(ids) >= lim AND candidate.distance > last_distance;
                       CONTINUE WHEN after_distance IS NOT NULL
                         AND (candidate.distance, candidate.id) <= (after_distance, after_id);
                       ids := ids || candidate.id;
                       distances := distances || candidate.distance;
                       last_distance := candidate.distance;
                     END LOOP;
                     RETURN QUERY
                       SELECT page.id, page.distance
                         FROM unnest(ids, distances) AS page(id, distance)
                        ORDER BY page.distance, page.id
                        LIMIT lim;
                   END $$"#,
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run(
            manager,
            &[
                r#"CREATE OR REPLACE FUNCTION prism_buildings_within(float8, float8, float8)
                   RETURNS TABLE (id uuid)
                   LANGUAGE sql STABLE SECURITY DEFINER ROWS 200
                   SET search_path = public, pg_temp
                   AS $$
                     SELECT b.id
                       FROM buildings b
                      WHERE b.org_id = current_setting('prism.org_id', true)
                        AND ST_DWithin(b.location, ST_SetSRID(ST_MakePoint($2, $1), 4326)::geography, $3)
                   $$"#,
                r#"CREATE OR REPLACE FUNCTION prism_buildings_nearest(
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
            ],
        )
        .await
    }
}
