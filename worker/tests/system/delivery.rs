//! Delivery from the log: late commits are waited for, re-delivery changes nothing, an
//! unapplicable event stops the projection, and a commit whose job was never pushed
//! still arrives (the backstop).

use std::time::Duration;

use projections::{catch_up, CatchUpOptions, Projection};
use serde_json::Value;

use crate::helpers::{bodies, ApiRedis, System};

/// The stored (payload, metadata) of a building's registration, to insert copies of.
async fn registration_of(system: &System, id: &str) -> (Value, Value) {
    sqlx::query_as("SELECT payload::jsonb, metadata::jsonb FROM events WHERE aggregate_id = $1 AND sequence = 1")
        .bind(id)
        .fetch_one(&system.pool)
        .await
        .expect("registration event")
}

const INSERT_EVENT: &str = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type,
    event_version, payload, metadata) VALUES ('building', $1, 1, 'BuildingRegistered', '1', $2, $3)";

/// Catches the catalog up until it reports a failure (another test's open
/// transaction may hold the horizon back a moment); the last outcome.
async fn catalog_catch_up_until_it_fails(
    system: &System,
) -> Result<projections::CatchUpOutcome, projections::ProjectionError> {
    let options = CatchUpOptions::default();
    let mut outcome = Ok(Default::default());
    for _ in 0..500 {
        outcome = catch_up(&system.pool, Projection::CATALOG, &options).await;
        if outcome.is_err() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    outcome
}

#[tokio::test]
async fn an_earlier_transaction_that_commits_later_is_not_skipped() {
    let system = System::start().await;
    let template = system
        .register(&bodies::building_at("Template", 40.0, -73.0))
        .await;
    let (payload, metadata) = registration_of(&system, &template).await;
    let options = CatchUpOptions::default();
    system.catch_up_now().await;

    // A starts first and takes the lower position; B commits first.
    let (early, late) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    let mut tx_a = system.pool.begin().await.expect("begin a");
    sqlx::query(INSERT_EVENT)
        .bind(&early)
        .bind(&payload)
        .bind(&metadata)
        .execute(&mut *tx_a)
        .await
        .expect("a inserts");
    sqlx::query(INSERT_EVENT)
        .bind(&late)
        .bind(&payload)
        .bind(&metadata)
        .execute(&system.pool)
        .await
        .expect("b commits");
    let positions: Vec<(String, i64)> =
        sqlx::query_as("SELECT aggregate_id, position FROM events WHERE aggregate_id = $1")
            .bind(&late)
            .fetch_all(&system.pool)
            .await
            .expect("b's position");
    assert_eq!(positions.len(), 1);

    let outcome = catch_up(&system.pool, Projection::CATALOG, &options)
        .await
        .expect("catch up");
    assert_eq!(outcome.applied, 0, "B waits behind A's open transaction");
    assert!(outcome.held_back, "the reader knows something is held back");

    tx_a.commit().await.expect("a commits late");
    // Other tests' transactions on the server may hold the horizon back a moment.
    let mut applied = 0;
    for _ in 0..200 {
        applied += catch_up(&system.pool, Projection::CATALOG, &options)
            .await
            .expect("catch up")
            .applied;
        if applied >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(applied, 2, "both arrive once A has committed");
    let projected = system
        .count(&format!(
            "SELECT count(*) FROM buildings WHERE id IN ('{early}', '{late}')"
        ))
        .await;
    assert_eq!(projected, 2, "the late committer is not skipped");
    catch_up(&system.pool, Projection::AUDIT, &options)
        .await
        .expect("audit");
    system.assert_projections_equal_rebuild().await;
}

#[tokio::test]
async fn redelivered_events_change_nothing() {
    let mut system = System::start().await;
    system.start_worker().await;
    let building = system
        .register(&bodies::building_at("Redelivered", 40.0, -73.0))
        .await;
    system.record_lease(&building).await;
    system.record_sale(&building).await;
    system.wait_until_quiet(Duration::from_secs(15)).await;
    system.stop_worker().await;
    let before = system.read_models().await;

    // Deliver everything again: the checkpoints go back to the start of the log, the
    // rows stay, and two catch-ups run at once.
    sqlx::query("UPDATE projection_checkpoints SET transaction_id = '0', position = 0")
        .execute(&system.pool)
        .await
        .expect("rewind");
    let options = CatchUpOptions::default();
    let (first, second) = tokio::join!(
        catch_up(&system.pool, Projection::CATALOG, &options),
        catch_up(&system.pool, Projection::CATALOG, &options),
    );
    let mut applied = first.expect("first").applied + second.expect("second").applied;
    // Another test's open transaction may hold the horizon back a moment.
    for _ in 0..500 {
        if applied >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        applied += catch_up(&system.pool, Projection::CATALOG, &options)
            .await
            .expect("catch up")
            .applied;
    }
    assert_eq!(
        applied, 3,
        "each event delivered once more, by one of the two"
    );
    system.catch_up_now().await;
    assert_eq!(
        system.read_models().await,
        before,
        "re-delivery changed rows"
    );
    system.assert_projections_equal_rebuild().await;
}

#[tokio::test]
async fn an_event_that_cannot_be_applied_stops_the_projection_without_skipping() {
    let system = System::start().await;
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('building', $1, 1, 'BuildingRegistered', '1', '{\"BuildingRegistered\": {\"name\": 5}}', '{\"org_id\": \"org_acme\"}')",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .execute(&system.pool)
    .await
    .expect("a broken event");
    let after = system
        .register(&bodies::building_at("After the broken one", 40.0, -73.0))
        .await;

    let failed = catalog_catch_up_until_it_fails(&system).await;
    assert!(failed.is_err(), "the broken event is reported");
    let (error, failed_position, position): (Option<String>, Option<i64>, i64) = sqlx::query_as(
        "SELECT last_error, failed_position, position FROM projection_checkpoints WHERE name = 'catalog'",
    )
    .fetch_one(&system.pool)
    .await
    .expect("checkpoint");
    assert!(error.unwrap_or_default().contains("cannot be applied"));
    assert!(failed_position.is_some());
    assert_eq!(position, 0, "the checkpoint stays before the broken event");
    assert_eq!(
        system
            .count(&format!(
                "SELECT count(*) FROM buildings WHERE id = '{after}'"
            ))
            .await,
        0,
        "later events wait behind it"
    );
    let (status, body) = system.get("/v1/admin/projections").await;
    assert_eq!(status, 200);
    let catalog = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|p| p["name"] == "catalog")
        .cloned()
        .expect("catalog");
    assert_eq!(catalog["state"], "failing", "{catalog:#}");
}

#[tokio::test]
async fn a_commit_whose_job_was_never_pushed_still_arrives() {
    // The api cannot reach Redis: the command succeeds, no job is pushed.
    let mut system = System::start_with(testkit::TestNamespace::new(), ApiRedis::Unreachable).await;
    let building = system
        .register(&bodies::building_at("No job", 40.0, -73.0))
        .await;
    system.start_worker().await;
    system.wait_until_quiet(Duration::from_secs(15)).await;
    let (status, body) = system.get(&format!("/v1/buildings/{building}")).await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["name"], "No job");
    system.assert_projections_equal_rebuild().await;
}

#[tokio::test]
async fn an_aggregate_whose_earlier_version_is_missing_is_not_applied_out_of_order() {
    let system = System::start().await;
    let building = system
        .register(&bodies::building_at("In order", 40.0, -73.0))
        .await;
    let options = CatchUpOptions::default();
    let (_, metadata) = registration_of(&system, &building).await;
    for _ in 0..500 {
        catch_up(&system.pool, Projection::CATALOG, &options)
            .await
            .expect("catch up");
        if system.count("SELECT count(*) FROM buildings").await == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Version 3 without version 2: applying it would put the row out of order.
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('building', $1, 3, 'BuildingArchived', '1', '{\"BuildingArchived\": {\"reason\": \"gone\"}}', $2)",
    )
    .bind(&building)
    .bind(&metadata)
    .execute(&system.pool)
    .await
    .expect("a version out of order");
    let failed = catalog_catch_up_until_it_fails(&system).await;
    let error = failed.expect_err("the gap is reported").to_string();
    assert!(error.contains("missing"), "{error}");
    let (version, archived): (i64, bool) =
        sqlx::query_as("SELECT version, archived FROM buildings WHERE id = $1::uuid")
            .bind(&building)
            .fetch_one(&system.pool)
            .await
            .expect("row");
    assert_eq!(
        (version, archived),
        (1, false),
        "version 3 was not applied over version 1"
    );
}

#[tokio::test]
async fn a_backlog_of_cache_marks_does_not_hold_the_projections_back() {
    // After a bulk import the outbox can hold a mark for every row it touched. Draining
    // it all before the next catch-up froze every projection for minutes (seen at a
    // million events); the backlog is drained a slice at a time, catching up between.
    let system = System::start().await;
    system
        .register(&bodies::building_at("Before", 40.0, -73.0))
        .await;
    system.catch_up_now().await;
    const BACKLOG: i64 = 40_000;
    sqlx::query("DELETE FROM cache_refresh_outbox")
        .execute(&system.pool)
        .await
        .expect("no other marks");
    sqlx::query(
        "INSERT INTO cache_refresh_outbox (org_id, view, view_id)
         SELECT 'org_elsewhere', 'building', gen_random_uuid()::text FROM generate_series(1, $1)",
    )
    .bind(BACKLOG)
    .execute(&system.pool)
    .await
    .expect("a backlog of marks");
    let cache = projections::cache::ViewCache::with_link(
        projections::cache::RedisLink::new(system.redis_url.clone(), Duration::from_secs(2)),
        system.namespace.name(),
    );
    let delivery = std::sync::Arc::new(worker::Delivery::new(system.pool.clone(), cache, 500, 500));
    let draining = tokio::spawn({
        let delivery = std::sync::Arc::clone(&delivery);
        async move { delivery.catch_up_all().await }
    });
    while system
        .count("SELECT count(*) FROM cache_refresh_outbox")
        .await
        == BACKLOG
    {
        assert!(!draining.is_finished(), "the drain ended before it began");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    // Committed while the backlog drains; no worker runs the job the api pushes.
    let id = system
        .register(&bodies::building_at("During", 40.1, -73.1))
        .await;
    loop {
        let seen = system
            .count(&format!("SELECT count(*) FROM buildings WHERE id = '{id}'"))
            .await;
        if seen == 1 {
            let left = system
                .count("SELECT count(*) FROM cache_refresh_outbox")
                .await;
            assert!(
                left > 0,
                "the building arrived only once the backlog was gone"
            );
            break;
        }
        assert!(
            !draining.is_finished(),
            "the catch-up drained the whole backlog without applying the new building"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let applied = draining.await.expect("join").expect("catch up");
    assert_eq!(applied, 2, "the new building, in catalog and audit");
    assert_eq!(
        system
            .count("SELECT count(*) FROM cache_refresh_outbox")
            .await,
        0,
        "the backlog drained in the end"
    );
}
