//! Every list query, run as `prism_app` under row-level security, keeps its index:
//! asserted on the plan Postgres picks for an organisation of 20,000 buildings (the
//! numbers make an index the planner's choice, not only its possibility). The spatial
//! and text searches go through security-definer functions; their own bodies are
//! planned here too, as their owner runs them.

use projections::queries::buildings::{self, BuildingFilter, BuildingSort};
use projections::queries::comps::{self, CompFilter, CompSort};
use projections::queries::{begin_as, BoundingBox, Direction, Near};
use serde_json::Value;
use sqlx::PgPool;
use testkit::TestDatabase;

const ORG: &str = "org_plans";

/// 20,000 buildings of `ORG` (and 2,000 of another organisation) spread over New York,
/// a lease each, statistics gathered.
async fn populated() -> (TestDatabase, PgPool) {
    let db = TestDatabase::migrated().await;
    let pool = projections::connect_pool(db.url(), 2).await.expect("pool");
    sqlx::query(
        "INSERT INTO buildings (id, org_id, version, name, street, city, country, lat, lon,
             location, property_type, rentable_area_sqft, submarket, registered_at, updated_at)
         SELECT md5('b' || i)::uuid, CASE WHEN i % 11 = 0 THEN 'org_other' ELSE $1 END, 1,
                'Tower ' || i || CASE WHEN i % 50 = 0 THEN ' Hudson' ELSE '' END,
                i || ' Main St', 'New York', 'US', lat, lon,
                ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography,
                (ARRAY['office','retail','industrial'])[1 + i % 3], 1000 + i, 'Midtown',
                now() - i * interval '1 minute', now()
           FROM generate_series(1::bigint, 22000) AS i,
                LATERAL (SELECT 40.45 + (i * 7919 % 10000) / 20000.0 AS lat,
                                -74.30 + (i * 104729 % 10000) / 16666.0 AS lon) p",
    )
    .bind(ORG)
    .execute(&pool)
    .await
    .expect("buildings");
    sqlx::query(
        "INSERT INTO comps (id, org_id, building_id, version, kind, deal_date, recorded_at, updated_at)
         SELECT md5('c' || id::text)::uuid, org_id, id, 1, 'lease', date '2025-01-01' + (random() * 700)::int,
                now(), now()
           FROM buildings",
    )
    .execute(&pool)
    .await
    .expect("comps");
    sqlx::query("ANALYZE")
        .execute(&pool)
        .await
        .expect("analyze");
    (db, pool)
}

/// Every node of a plan, depth first.
fn nodes(plan: &Value) -> Vec<&Value> {
    let mut found = vec![plan];
    if let Some(children) = plan["Plans"].as_array() {
        for child in children {
            found.extend(nodes(child));
        }
    }
    found
}

/// The plan's nodes, from `EXPLAIN (FORMAT JSON)` output.
fn plan_nodes(explained: &Value) -> Vec<&Value> {
    nodes(&explained[0]["Plan"])
}

fn describe(explained: &Value) -> String {
    plan_nodes(explained)
        .iter()
        .map(|n| {
            format!(
                "{} {} {}",
                n["Node Type"].as_str().unwrap_or(""),
                n["Relation Name"]
                    .as_str()
                    .or(n["Function Name"].as_str())
                    .unwrap_or(""),
                n["Index Name"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

/// No sequential scan of a read model; `index` used (as an index, an index-only or a
/// bitmap scan) or `function` called.
fn assert_uses(explained: &Value, index: Option<&str>, function: Option<&str>) {
    let nodes = plan_nodes(explained);
    for node in &nodes {
        assert_ne!(
            node["Node Type"],
            "Seq Scan",
            "a sequential scan: {}",
            describe(explained)
        );
    }
    if let Some(index) = index {
        assert!(
            nodes.iter().any(|n| n["Index Name"] == index),
            "{index} unused: {}",
            describe(explained)
        );
    }
    if let Some(function) = function {
        assert!(
            nodes.iter().any(|n| n["Function Name"] == function),
            "{function} not called: {}",
            describe(explained)
        );
    }
}

async fn explain_buildings(
    pool: &PgPool,
    filter: &BuildingFilter,
    sort: BuildingSort,
    cursor: Option<&str>,
) -> Value {
    let mut tx = begin_as(pool, ORG).await.expect("prism_app");
    buildings::explain(&mut *tx, ORG, filter, sort, 25, cursor)
        .await
        .expect("explain")
}

/// A cursor after the first page of `sort`.
async fn second_page(pool: &PgPool, filter: &BuildingFilter, sort: BuildingSort) -> String {
    let mut tx = begin_as(pool, ORG).await.expect("prism_app");
    buildings::list(&mut *tx, ORG, filter, sort, 25, None)
        .await
        .expect("first page")
        .next_cursor
        .expect("a next page")
}

#[tokio::test]
async fn building_lists_keep_their_indexes_under_row_level_security() {
    let (_db, pool) = populated().await;
    let all = BuildingFilter::default();
    for (sort, index) in [
        (
            BuildingSort::Name(Direction::Ascending),
            "buildings_org_name_idx",
        ),
        (
            BuildingSort::RegisteredAt(Direction::Descending),
            "buildings_org_registered_idx",
        ),
        (
            BuildingSort::RentableArea(Direction::Ascending),
            "buildings_org_area_idx",
        ),
    ] {
        let first = explain_buildings(&pool, &all, sort, None).await;
        assert_uses(&first, Some(index), None);
        // A later page starts at its cursor through the index (an index condition),
        // rather than reading the organisation from the start.
        let cursor = second_page(&pool, &all, sort).await;
        let later = explain_buildings(&pool, &all, sort, Some(&cursor)).await;
        assert_uses(&later, Some(index), None);
        let scan = plan_nodes(&later)
            .into_iter()
            .find(|n| n["Index Name"] == index)
            .expect("the index scan");
        assert!(
            scan["Index Cond"]
                .as_str()
                .is_some_and(|c| c.contains("ROW(")),
            "the cursor is not an index condition on {index}: {scan:#}"
        );
    }

    let near = BuildingFilter {
        near: Some(Near {
            lat: 40.7,
            lon: -73.95,
            radius_m: 2000.0,
        }),
        ..BuildingFilter::default()
    };
    // A map's nearest-first page: the candidates read once, the page by primary key.
    let explained = explain_buildings(&pool, &near, BuildingSort::Distance, None).await;
    assert_uses(
        &explained,
        Some("buildings_pkey"),
        Some("prism_buildings_nearest"),
    );
    // Near with words: the candidates by place, then by primary key.
    let near_words = BuildingFilter {
        text: Some("hudson".into()),
        ..near.clone()
    };
    let explained = explain_buildings(&pool, &near_words, BuildingSort::Distance, None).await;
    assert_uses(
        &explained,
        Some("buildings_pkey"),
        Some("prism_buildings_within"),
    );

    let bbox = BuildingFilter {
        bbox: Some(BoundingBox {
            min_lon: -73.99,
            min_lat: 40.70,
            max_lon: -73.96,
            max_lat: 40.73,
        }),
        ..BuildingFilter::default()
    };
    let explained =
        explain_buildings(&pool, &bbox, BuildingSort::Name(Direction::Ascending), None).await;
    assert_uses(&explained, None, Some("prism_buildings_in_box"));

    let text = BuildingFilter {
        text: Some("hudson 1".into()),
        ..BuildingFilter::default()
    };
    let explained =
        explain_buildings(&pool, &text, BuildingSort::Name(Direction::Ascending), None).await;
    assert_uses(&explained, None, Some("prism_buildings_matching"));

    // A batch by ids reads those rows by primary key.
    let batch = BuildingFilter {
        ids: Some((1..=25u128).map(uuid::Uuid::from_u128).collect()),
        ..BuildingFilter::default()
    };
    let explained = explain_buildings(
        &pool,
        &batch,
        BuildingSort::Name(Direction::Ascending),
        None,
    )
    .await;
    assert_uses(&explained, Some("buildings_pkey"), None);
}

#[tokio::test]
async fn comp_lists_keep_their_indexes_under_row_level_security() {
    let (_db, pool) = populated().await;
    let mut tx = begin_as(&pool, ORG).await.expect("prism_app");
    let explained = comps::explain(
        &mut *tx,
        ORG,
        &CompFilter::default(),
        CompSort::DealDate(Direction::Descending),
        25,
        None,
    )
    .await
    .expect("explain");
    assert_uses(&explained, Some("comps_org_deal_idx"), None);
    let near = CompFilter {
        near: Some(Near {
            lat: 40.7,
            lon: -73.95,
            radius_m: 2000.0,
        }),
        ..CompFilter::default()
    };
    let explained = comps::explain(&mut *tx, ORG, &near, CompSort::Distance, 25, None)
        .await
        .expect("explain");
    assert_uses(
        &explained,
        Some("comps_building_idx"),
        Some("prism_buildings_within"),
    );
}

/// The plans of the statements a function runs inside, as its owner runs them when
/// `call` calls it: `auto_explain` sends each nested plan to the client, read here
/// through `psql`.
fn nested_plans(url: &str, call: &str) -> Vec<Value> {
    nested_plans_run(url, call, false)
}

/// [`nested_plans`], run: each node also says how often it ran (`Actual Loops`).
fn nested_plans_run(url: &str, call: &str, analyze: bool) -> Vec<Value> {
    let analyze = if analyze { "on" } else { "off" };
    let script = format!(
        "LOAD 'auto_explain';
         SET auto_explain.log_analyze = {analyze};
         SET auto_explain.log_min_duration = 0;
         SET auto_explain.log_nested_statements = on;
         SET auto_explain.log_level = notice;
         SET auto_explain.log_format = json;
         SET client_min_messages = notice;
         SELECT set_config('prism.org_id', '{ORG}', false);
         {call};"
    );
    let output = std::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            &script,
        ])
        .output()
        .expect("psql runs");
    let notices = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{notices}");
    // Each notice: `NOTICE:  duration: … ms  plan:` then the plan's JSON.
    notices
        .split("NOTICE:")
        .filter_map(|notice| notice.find('{').map(|at| &notice[at..]))
        .filter_map(|json| serde_json::from_str::<Value>(json.trim()).ok())
        .collect()
}

/// The plan of the statement inside a function that reads `buildings`.
fn body_plan(url: &str, call: &str) -> Value {
    let plans = nested_plans(url, call);
    let body = plans
        .into_iter()
        .find(|plan| {
            plan["Query Text"]
                .as_str()
                .is_some_and(|q| q.contains("FROM buildings b"))
        })
        .unwrap_or_else(|| panic!("no plan of the function's body for {call}"));
    serde_json::json!([body])
}

#[tokio::test]
async fn the_search_functions_use_the_spatial_and_trigram_indexes() {
    let (db, pool) = populated().await;
    drop(pool);
    let within = body_plan(
        db.url(),
        "SELECT count(*) FROM prism_buildings_within(40.7, -73.95, 2000)",
    );
    assert_uses(&within, Some("buildings_org_location_idx"), None);
    let nearest = body_plan(
        db.url(),
        "SELECT count(*) FROM prism_buildings_nearest(40.7, -73.95, 2000, false, NULL, NULL, NULL, NULL, NULL, NULL, 26)",
    );
    assert_uses(&nearest, Some("buildings_org_location_idx"), None);
    let in_box = body_plan(
        db.url(),
        "SELECT count(*) FROM prism_buildings_in_box(-73.99, 40.70, -73.96, 40.73)",
    );
    assert_uses(&in_box, Some("buildings_org_point_idx"), None);
    let matching = body_plan(
        db.url(),
        "SELECT count(*) FROM prism_buildings_matching(ARRAY['%hudson%', '%123%'])",
    );
    assert_uses(&matching, Some("buildings_search_idx"), None);
}

#[tokio::test]
async fn a_map_viewport_reads_only_its_own_box() {
    // The box's bounds are parameters of the function's plan: a test of them that the
    // planner cannot fold must gate a branch the executor skips, not an `OR` whose
    // other index scan (the antimeridian's part, every building in the box's band of
    // latitude) runs on every call.
    let (db, pool) = populated().await;
    let body = nested_plans_run(
        db.url(),
        "SELECT count(*) FROM prism_buildings_in_box(-73.99, 40.70, -73.96, 40.73)",
        true,
    )
    .into_iter()
    .find(|plan| {
        plan["Query Text"]
            .as_str()
            .is_some_and(|q| q.contains("FROM buildings b"))
    })
    .expect("the body's plan");
    let body = serde_json::json!([body]);
    let scans_run: Vec<&Value> = plan_nodes(&body)
        .into_iter()
        .filter(|node| {
            node["Node Type"]
                .as_str()
                .is_some_and(|t| t.contains("Index Scan"))
                && node["Actual Loops"].as_u64().unwrap_or(0) > 0
        })
        .collect();
    assert_eq!(
        scans_run.len(),
        1,
        "one index scan runs for a box that does not cross the antimeridian: {}",
        describe(&body)
    );

    // And a box that does cross it finds the buildings on both sides.
    sqlx::query(
        "INSERT INTO buildings (id, org_id, version, name, street, city, country, lat, lon,
             location, property_type, rentable_area_sqft, registered_at, updated_at)
         SELECT gen_random_uuid(), $1, 1, 'Date line ' || lon, '1 Main St', 'Suva', 'FJ', 10, lon,
                ST_SetSRID(ST_MakePoint(lon, 10), 4326)::geography, 'office', 1000, now(), now()
           FROM unnest(ARRAY[179.995, -179.995, 0.0]) AS lon",
    )
    .bind(ORG)
    .execute(&pool)
    .await
    .expect("buildings by the date line");
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("SELECT set_config('prism.org_id', $1, true)")
        .bind(ORG)
        .execute(&mut *tx)
        .await
        .expect("organisation");
    let across: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM prism_buildings_in_box(179.99, 9.99, -179.99, 10.01)",
    )
    .fetch_one(&mut *tx)
    .await
    .expect("a box across the antimeridian");
    assert_eq!(
        across, 2,
        "the buildings on both sides of the date line, not the one at 0°"
    );
}

#[tokio::test]
async fn pooled_connections_run_without_the_jit() {
    let db = TestDatabase::migrated().await;
    let pool = projections::connect_pool(db.url(), 1).await.expect("pool");
    let jit: String = sqlx::query_scalar("SHOW jit")
        .fetch_one(&pool)
        .await
        .expect("show");
    assert_eq!(jit, "off");
}

#[tokio::test]
async fn the_log_is_read_in_the_order_of_its_index() {
    let (_db, pool) = twenty_thousand_events().await;
    let mut conn = pool.acquire().await.expect("connection");
    let explained = projections::testing::explain_log_read(&mut conn, ("0", 0)).await;
    // Transaction ids sort as numbers only in the index: sorted as text, 100000 would
    // come before 99999 and a reader would pass events it never read.
    assert_uses(&explained, Some("events_global_order_idx"), None);
    assert!(
        plan_nodes(&explained)
            .iter()
            .all(|n| n["Node Type"] != "Sort"),
        "the log read sorts: {}",
        describe(&explained)
    );
}

#[tokio::test]
async fn a_short_batch_looks_for_held_back_events_at_the_end_of_the_index() {
    // After every batch that found fewer events than it could take: whether any event
    // is at or above the horizon. There usually is none, and a scan looking for one
    // reads the whole log.
    let (_db, pool) = twenty_thousand_events().await;
    let mut conn = pool.acquire().await.expect("connection");
    let explained = projections::testing::explain_held_back(&mut conn).await;
    assert_uses(&explained, Some("events_global_order_idx"), None);
    assert!(
        plan_nodes(&explained)
            .iter()
            .all(|n| n["Node Type"] != "Seq Scan"),
        "the held-back check scans the log: {}",
        describe(&explained)
    );
}

#[tokio::test]
async fn min_position_reads_the_log_from_the_checkpoint_through_its_index() {
    // The check behind every read's `min_position`: is any event at or below it past
    // the projection's checkpoint? Asked on every poll of a waiting read, so it must
    // start at the checkpoint in the log's index, never scan the log.
    let (_db, pool) = twenty_thousand_events().await;
    let mut conn = pool.acquire().await.expect("connection");
    sqlx::query(
        "UPDATE projection_checkpoints c SET transaction_id = e.transaction_id, position = e.position
           FROM (SELECT transaction_id, position FROM events ORDER BY position LIMIT 1 OFFSET 19000) e
          WHERE c.name = 'catalog'",
    )
    .execute(&mut *conn)
    .await
    .expect("checkpoint");
    let explained = projections::testing::explain_reflects(&mut conn, "catalog", 19_500).await;
    // (The checkpoints' table has a row per projection: scanning it is fine.)
    let nodes = plan_nodes(&explained);
    assert!(
        nodes
            .iter()
            .any(|n| n["Index Name"] == "events_global_order_idx"),
        "events_global_order_idx unused: {}",
        describe(&explained)
    );
    assert!(
        nodes
            .iter()
            .all(|n| n["Node Type"] != "Seq Scan" || n["Relation Name"] != "events"),
        "the min_position check scans the log: {}",
        describe(&explained)
    );
    // And it answers: events up to 19,500 are past the checkpoint (it is at the
    // 19,001st); every event up to the checkpoint's own position is reflected.
    let catalog = projections::Projection::CATALOG;
    assert!(!catalog
        .reflects(&mut *conn, 19_500)
        .await
        .expect("reflects"));
    let at: i64 =
        sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = 'catalog'")
            .fetch_one(&mut *conn)
            .await
            .expect("position");
    assert!(catalog.reflects(&mut *conn, at).await.expect("reflects"));
    sqlx::query("DELETE FROM projection_checkpoints WHERE name = 'audit'")
        .execute(&mut *conn)
        .await
        .expect("unbuild audit");
    assert!(!projections::Projection::AUDIT
        .reflects(&mut *conn, 1)
        .await
        .expect("a projection not built yet"));
}

#[tokio::test]
async fn an_as_of_read_finds_its_events_by_aggregate_not_by_scanning_the_log() {
    let (_db, pool) = twenty_thousand_events().await;
    let mut conn = pool.acquire().await.expect("connection");
    // The log's buildings are md5(i) (see below); two comps that are not there.
    let building: String = sqlx::query_scalar("SELECT md5('6')")
        .fetch_one(&mut *conn)
        .await
        .expect("id");
    let comps = vec![uuid_text(1), uuid_text(2)];
    let explained = projections::testing::explain_history(&mut conn, &building, &comps).await;
    assert!(
        plan_nodes(&explained)
            .iter()
            .all(|n| n["Node Type"] != "Seq Scan"),
        "the history read scans the log: {}",
        describe(&explained)
    );
}

fn uuid_text(n: u128) -> String {
    uuid::Uuid::from_u128(n).to_string()
}

/// A log of 20,000 events from 400 transactions, statistics gathered.
async fn twenty_thousand_events() -> (TestDatabase, PgPool) {
    let db = TestDatabase::migrated().await;
    let pool = projections::connect_pool(db.url(), 1).await.expect("pool");
    for transaction in 0..400 {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             SELECT 'building', md5(i::text), 1, 'BuildingRegistered', '1', '{}', '{}'
               FROM generate_series($1 * 50, $1 * 50 + 49) AS i",
        )
        .bind(transaction)
        .execute(&pool)
        .await
        .expect("events");
    }
    sqlx::query("ANALYZE events")
        .execute(&pool)
        .await
        .expect("analyze");
    (db, pool)
}
