//! Data at size, fast: a history of real-looking buildings and lease comps written
//! straight into the event log as SQL, each event cloned from one that the api itself
//! recorded (so its payload is exactly what the api writes) with its fields varied:
//! buildings spread over a 55 × 50 km box around New York (seven property types,
//! twenty submarkets, names from a word list), comps spread over two years of deals
//! and a range of rents. Ids and values derive from the row number, so two runs seed
//! the same data.

use std::time::Instant;

use anyhow::Context;
use sqlx::PgPool;
use testkit::bodies;

use crate::load;
use crate::stack::Stack;

/// Events per seeding transaction.
const CHUNK: i64 = 5_000;

/// A uniform number in [0, 1) from row `i` and a salt.
const UNIFORM: &str =
    "(('x' || substr(md5(i::text || '{salt}'), 1, 8))::bit(32)::bigint / 4294967296.0)";

fn uniform(salt: &str) -> String {
    UNIFORM.replace("{salt}", salt)
}

/// The words building names are made of; `q=` searches pick from them.
pub const NAME_WORDS: [&str; 20] = [
    "Hudson",
    "Park",
    "Liberty",
    "Harbor",
    "Empire",
    "Madison",
    "Union",
    "Chelsea",
    "Bowery",
    "Gramercy",
    "Tribeca",
    "Astor",
    "Fulton",
    "Broadway",
    "Lexington",
    "Riverside",
    "Columbus",
    "Lenox",
    "Vesey",
    "Prospect",
];

/// The box the buildings are in: (min_lat, min_lon, lat span, lon span).
pub const AREA: (f64, f64, f64, f64) = (40.45, -74.30, 0.50, 0.60);

/// The first building and lease comp, recorded through the api: the templates.
pub async fn templates(stack: &Stack) -> anyhow::Result<()> {
    let host = stack.host();
    let building = bodies::building_at("Template Tower", 40.75, -73.98);
    let request = load::request(
        "POST",
        &host,
        "/v1/buildings",
        Some(&stack.token),
        Some(building.to_string()),
    );
    let (status, body) = load::once(stack.api_addr, request).await?;
    anyhow::ensure!(
        status.as_u16() == 201,
        "template building: {status} {body:?}"
    );
    let reply: serde_json::Value = serde_json::from_slice(&body)?;
    let building_id = reply["id"].as_str().context("building id")?.to_owned();
    let lease = bodies::round_lease(&building_id);
    let request = load::request(
        "POST",
        &host,
        "/v1/comps/lease",
        Some(&stack.token),
        Some(lease.to_string()),
    );
    let (status, body) = load::once(stack.api_addr, request).await?;
    anyhow::ensure!(status.as_u16() == 201, "template comp: {status} {body:?}");
    Ok(())
}

/// Buildings number `from..to`.
pub async fn buildings(pool: &PgPool, from: i64, to: i64) -> anyhow::Result<()> {
    let words: Vec<String> = NAME_WORDS.iter().map(|w| format!("'{w}'")).collect();
    let words = words.join(",");
    let (lat0, lon0, lat_span, lon_span) = AREA;
    let sql = format!(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT 'building', md5('bench-building-' || i)::uuid::text, 1, 'BuildingRegistered', '1',
                jsonb_build_object('BuildingRegistered', (t.payload::jsonb -> 'BuildingRegistered') || jsonb_build_object(
                    'name', (ARRAY[{words}])[1 + i % 20] || ' ' || (ARRAY[{words}])[1 + (i / 20) % 20] || ' ' || i,
                    'property_type', (ARRAY['office','industrial','retail','multifamily','mixed_use','hospitality','land'])[1 + i % 7],
                    'building_class', (ARRAY['A','B','C'])[1 + i % 3],
                    'submarket', 'Submarket ' || lpad((i % 20)::text, 2, '0'),
                    'rentable_area_sqft', (10000 + floor({area} * 990000))::bigint::text,
                    'location', jsonb_build_object(
                        'lat', round(({lat0} + {lat} * {lat_span})::numeric, 6),
                        'lon', round(({lon0} + {lon} * {lon_span})::numeric, 6))))::json,
                t.metadata
           FROM generate_series($1::bigint, $2::bigint) AS i,
                (SELECT payload, metadata FROM events WHERE event_type = 'BuildingRegistered'
                  ORDER BY position LIMIT 1) AS t",
        area = uniform("area"),
        lat = uniform("lat"),
        lon = uniform("lon"),
    );
    insert_chunked(pool, &sql, from, to).await
}

/// Lease comps number `from..to`, comp `j` in building `j % buildings`.
pub async fn comps(pool: &PgPool, from: i64, to: i64, buildings: i64) -> anyhow::Result<()> {
    let sql = format!(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT 'comp', md5('bench-comp-' || i)::uuid::text, 1, 'LeaseCompRecorded', '1',
                jsonb_build_object('LeaseCompRecorded', (t.payload::jsonb -> 'LeaseCompRecorded') || jsonb_build_object(
                    'building_id', md5('bench-building-' || (i % {buildings}))::uuid::text,
                    'commencement_date', to_char(date '2024-01-01' + (i % 730)::int, 'YYYY-MM-DD'),
                    'starting_rent_psf', round((20 + {rent} * 80)::numeric, 2)::text,
                    'leased_area_sqft', (1000 + floor({area} * 49000))::bigint::text))::json,
                t.metadata
           FROM generate_series($1::bigint, $2::bigint) AS i,
                (SELECT payload, metadata FROM events WHERE event_type = 'LeaseCompRecorded'
                  ORDER BY position LIMIT 1) AS t",
        rent = uniform("rent"),
        area = uniform("leased"),
    );
    insert_chunked(pool, &sql, from, to).await
}

async fn insert_chunked(pool: &PgPool, sql: &str, from: i64, to: i64) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut start = from;
    while start < to {
        let end = (start + CHUNK).min(to) - 1;
        sqlx::query(sql)
            .bind(start)
            .bind(end)
            .execute(pool)
            .await
            .context("seeding events")?;
        start = end + 1;
    }
    eprintln!(
        "[bench] seeded {} events in {:.1} s",
        to - from,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
