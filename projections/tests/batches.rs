//! A projection batch costs a fixed number of statements, however many events it
//! holds: counted at the wire by a proxy in front of Postgres, for a batch of every
//! kind of event and for the same batch a hundred times larger.

use domain::{BuildingEvent, CompEvent};
use projections::{catch_up, CatchUpOptions, Projection};
use serde_json::{json, Value};
use sqlx::PgPool;
use testkit::StatementCounter;
use testkit::TestDatabase;
use uuid::Uuid;

/// One event to append.
struct NewEvent {
    aggregate_type: &'static str,
    aggregate_id: Uuid,
    sequence: i64,
    payload: Value,
}

impl NewEvent {
    fn building(id: Uuid, sequence: i64, payload: Value) -> Self {
        BuildingEvent::deserialize_check(&payload);
        Self {
            aggregate_type: "building",
            aggregate_id: id,
            sequence,
            payload,
        }
    }

    fn comp(id: Uuid, sequence: i64, payload: Value) -> Self {
        CompEvent::deserialize_check(&payload);
        Self {
            aggregate_type: "comp",
            aggregate_id: id,
            sequence,
            payload,
        }
    }
}

/// Every test event is one the domain would read back.
trait DeserializeCheck {
    fn deserialize_check(payload: &Value);
}

impl<T: serde::de::DeserializeOwned> DeserializeCheck for T {
    fn deserialize_check(payload: &Value) {
        serde_json::from_value::<T>(payload.clone())
            .unwrap_or_else(|e| panic!("not a valid event: {e}: {payload}"));
    }
}

fn details(name: &str, area: &str) -> Value {
    json!({"name": name, "property_type": "office", "building_class": "A",
           "rentable_area_sqft": area, "year_built": null, "floors": null, "submarket": "Midtown"})
}

fn lease_terms() -> Value {
    json!({"tenant": "Globex", "suite": null, "leased_area_sqft": "12500", "starting_rent_psf": "60",
           "lease_type": "gross", "term_months": 120, "commencement_date": "2026-02-01",
           "free_rent_months": 12, "ti_allowance_psf": "40", "escalation_pct": "0"})
}

fn sale_terms(price: &str) -> Value {
    json!({"sale_price": price, "sale_date": "2025-06-30", "buyer": "Initech REIT",
           "seller": "Hooli Holdings", "cap_rate_pct": "5.25"})
}

/// Unit `i`: a building, a lease and a sale in it — as first recorded, and then
/// everything that can happen to them afterwards.
fn unit(i: u32) -> (Vec<NewEvent>, Vec<NewEvent>) {
    let building = Uuid::new_v4();
    let lease = Uuid::new_v4();
    let sale = Uuid::new_v4();
    let mut registered = details(&format!("Tower {i}"), "100000");
    registered["org_id"] = json!("org_acme");
    registered["address"] = json!({"street": "1 Main St", "city": "New York", "region": null,
                                    "postal_code": null, "country": "US"});
    registered["location"] = json!({"lat": 40.75, "lon": -73.98});
    let mut leased = lease_terms();
    leased["org_id"] = json!("org_acme");
    leased["building_id"] = json!(building);
    let mut sold = sale_terms("25000000");
    sold["org_id"] = json!("org_acme");
    sold["building_id"] = json!(building);
    let first = vec![
        NewEvent::building(building, 1, json!({"BuildingRegistered": registered})),
        NewEvent::comp(lease, 1, json!({"LeaseCompRecorded": leased})),
        NewEvent::comp(sale, 1, json!({"SaleCompRecorded": sold})),
    ];
    let mut amended = sale_terms("26000000");
    amended["kind"] = json!("sale");
    let then = vec![
        NewEvent::building(
            building,
            2,
            json!({"BuildingDetailsUpdated": details(&format!("Tower {i} West"), "80000")}),
        ),
        NewEvent::comp(lease, 2, json!({"CompVerified": {}})),
        NewEvent::comp(sale, 2, json!({"CompAmended": {"terms": amended}})),
        NewEvent::comp(lease, 3, json!({"CompRetracted": {"reason": "duplicate"}})),
        NewEvent::building(
            building,
            3,
            json!({"BuildingRelocated": {
                "address": {"street": "2 Main St", "city": "New York", "region": null,
                            "postal_code": null, "country": "US"},
                "location": {"lat": 40.76, "lon": -73.97}}}),
        ),
        NewEvent::building(building, 4, json!({"BuildingArchived": {"reason": "sold"}})),
        NewEvent::building(building, 5, json!({"BuildingRestored": {}})),
    ];
    (first, then)
}

async fn append(pool: &PgPool, events: &[NewEvent]) {
    let column = |f: fn(&NewEvent) -> String| events.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT t, id, seq, et, '1', p::json, '{\"org_id\": \"org_acme\", \"user_id\": \"user_alice\"}'
           FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[])
                WITH ORDINALITY AS u(t, id, seq, et, p, n)
          ORDER BY n",
    )
    .bind(column(|e| e.aggregate_type.to_owned()))
    .bind(column(|e| e.aggregate_id.to_string()))
    .bind(events.iter().map(|e| e.sequence).collect::<Vec<_>>())
    .bind(column(|e| {
        e.payload
            .as_object()
            .and_then(|o| o.keys().next().cloned())
            .unwrap_or_default()
    }))
    .bind(column(|e| e.payload.to_string()))
    .execute(pool)
    .await
    .expect("append");
}

/// Statements the catch-up of `projection` sends to apply `events` as one batch.
async fn statements_for(units: u32, projection: Projection) -> (u64, u64) {
    let db = TestDatabase::migrated().await;
    let counter = StatementCounter::start("127.0.0.1:5432").await;
    let pool = projections::connect_pool(&counter.url(db.url()), 2)
        .await
        .expect("pool through the counter");
    let (first, then): (Vec<_>, Vec<_>) = (0..units).map(unit).unzip();
    let first: Vec<NewEvent> = first.into_iter().flatten().collect();
    let then: Vec<NewEvent> = then.into_iter().flatten().collect();
    let mut counts = Vec::new();
    for events in [first, then] {
        append(&pool, &events).await;
        counter.reset();
        let options = CatchUpOptions {
            batch_size: events.len() as i64,
            ..CatchUpOptions::default()
        };
        let outcome = catch_up(&pool, projection, &options)
            .await
            .expect("catch up");
        assert_eq!(outcome.applied, events.len() as u64, "one full batch");
        counts.push(counter.count());
    }
    (counts[0], counts[1])
}

#[tokio::test]
async fn a_catalog_batch_costs_the_same_statements_at_any_size() {
    let small = statements_for(2, Projection::CATALOG).await;
    let large = statements_for(200, Projection::CATALOG).await;
    assert_eq!(small, large, "statements for 2 units and for 200 units");
    // A batch, and the empty one that finds the log read: lock, horizon, checkpoint,
    // events, three reads, at most eight writes, checkpoint, commit.
    assert!(small.0 <= 30 && small.1 <= 30, "{small:?} statements");
}

#[tokio::test]
async fn an_audit_batch_costs_the_same_statements_at_any_size() {
    let small = statements_for(2, Projection::AUDIT).await;
    let large = statements_for(200, Projection::AUDIT).await;
    assert_eq!(small, large, "statements for 2 units and for 200 units");
    assert!(small.0 <= 20, "{small:?} statements");
}

/// The planner's estimate of the rows `sql` returns.
async fn estimated_rows(pool: &PgPool, sql: &str) -> f64 {
    let plan: Value = sqlx::query_scalar(&format!("EXPLAIN (FORMAT JSON) {sql}"))
        .fetch_one(pool)
        .await
        .expect("explain");
    plan[0]["Plan"]["Plan Rows"].as_f64().expect("plan rows")
}

#[tokio::test]
async fn a_rebuild_keeps_statistics_of_its_growing_shadow_tables() {
    // A shadow table starts empty and is verified (and analysed) only at the end.
    // Without statistics, Postgres guesses that `building_id = ANY(ids)` matches 0.5%
    // of the table per id: a batch's read of a few hundred buildings' comps is planned
    // as a scan of the whole table, and a rebuild slows down as it grows (at a million
    // events, to a sixth of its speed). Looked at mid-rebuild, the estimate for a read
    // like the batch's stays near the truth (without statistics: three times it here,
    // and the whole table at real sizes).
    let db = TestDatabase::migrated().await;
    let pool = projections::connect_pool(db.url(), 3).await.expect("pool");
    let events: Vec<NewEvent> = (0..10_000).flat_map(|i| unit(i).0).collect();
    append(&pool, &events).await;
    let requested = projections::rebuild::request(&pool, Projection::CATALOG, "test")
        .await
        .expect("request");
    let options = projections::rebuild::RebuildOptions {
        batch_size: 150,
        ..Default::default()
    };
    let shadow = requested.shadow_schema();
    let mut quiet = |_: &projections::rebuild::Rebuild| {};
    let rebuild = projections::rebuild::run(&pool, requested.id, None, &options, &mut quiet);
    let look = async {
        loop {
            let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(format!("{shadow}.comps"))
                .fetch_one(&pool)
                .await
                .expect("shadow table");
            if exists {
                let comps: i64 =
                    sqlx::query_scalar(&format!("SELECT count(*) FROM {shadow}.comps"))
                        .fetch_one(&pool)
                        .await
                        .expect("count");
                if comps >= 8_000 {
                    break;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let buildings: Vec<Uuid> = sqlx::query_scalar(&format!(
            "SELECT DISTINCT building_id FROM {shadow}.comps LIMIT 300"
        ))
        .fetch_all(&pool)
        .await
        .expect("buildings");
        let list = buildings
            .iter()
            .map(|b| format!("'{b}'"))
            .collect::<Vec<_>>()
            .join(",");
        let read =
            format!("SELECT * FROM {shadow}.comps WHERE building_id = ANY(ARRAY[{list}]::uuid[])");
        let actual: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM ({read}) r"))
            .fetch_one(&pool)
            .await
            .expect("count");
        (estimated_rows(&pool, &read).await, actual)
    };
    let (done, (estimate, actual)) = tokio::join!(rebuild, look);
    assert_eq!(done.expect("rebuild").events_applied, 30_000);
    assert_eq!(actual, 600, "two comps for each of 300 buildings");
    assert!(
        estimate <= 1.5 * actual as f64,
        "estimated {estimate} rows for {actual}: the shadow table has no statistics"
    );
}

/// Catches `projection` up until it has applied `expected` events: another test's
/// transaction open on the server (any database's) can hold the log's horizon back for
/// a moment, and then a catch-up applies nothing yet.
async fn catch_up_all(pool: &PgPool, projection: Projection, expected: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut applied = 0;
    while applied < expected {
        applied += catch_up(pool, projection, &CatchUpOptions::default())
            .await
            .expect("catch up")
            .applied;
        assert!(
            std::time::Instant::now() < deadline,
            "{projection} applied {applied} of {expected} events"
        );
        if applied < expected {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// The cache views the outbox names, in order.
async fn outbox(pool: &PgPool) -> Vec<(String, String)> {
    sqlx::query_as("SELECT view, view_id FROM cache_refresh_outbox ORDER BY view, view_id")
        .fetch_all(pool)
        .await
        .expect("outbox")
}

#[tokio::test]
async fn a_batch_marks_for_refresh_only_the_details_that_existed_before_it() {
    // A detail nobody could have read before the batch committed has nothing cached
    // to replace; marking it anyway made a bulk import queue a mark per new row.
    let db = TestDatabase::migrated().await;
    let pool = projections::connect_pool(db.url(), 2).await.expect("pool");
    let (first, then) = unit(0);
    let (building, lease, sale) = (
        first[0].aggregate_id,
        first[1].aggregate_id,
        first[2].aggregate_id,
    );
    append(&pool, &first).await;
    catch_up_all(&pool, Projection::CATALOG, first.len() as u64).await;
    assert_eq!(
        outbox(&pool).await,
        [("lists".to_owned(), "org_acme".to_owned())],
        "a new building and its new comps: only the organisation's lists"
    );
    sqlx::query("DELETE FROM cache_refresh_outbox")
        .execute(&pool)
        .await
        .expect("empty the outbox");
    append(&pool, &then).await;
    catch_up_all(&pool, Projection::CATALOG, then.len() as u64).await;
    let mut expected = vec![
        ("building".to_owned(), building.to_string()),
        ("comp".to_owned(), lease.to_string()),
        ("comp".to_owned(), sale.to_string()),
        ("lists".to_owned(), "org_acme".to_owned()),
    ];
    expected.sort();
    assert_eq!(
        outbox(&pool).await,
        expected,
        "every changed detail, and the lists"
    );
}
