//! `make bench-projections`: how fast the read side keeps up, against a baseline
//! measured in the same run on the same machine (these machines are shared and noisy,
//! so the ratios are the figures to compare between runs).
//!
//! 1. Baseline: Postgres's raw single-row insert rate (autocommit, one connection).
//! 2. Catch-up throughput: 100,000 events (50,000 building registrations and 50,000
//!    lease comps, committed 2,000 per transaction) applied by one catch-up of each
//!    projection, from an empty checkpoint.
//! 3. Commit-to-visible lag: `prism-api` (as a process, release-built by cargo when
//!    needed) and the worker (in this process) with default settings, commands at a
//!    steady rate; for each, the time from the command's response (its commit) to its
//!    row in the catalog projection (p50, p95, max).
//!
//! Results are printed as Markdown for docs/performance.md.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use projections::{catch_up, CatchUpOptions, Projection};
use serde_json::{json, Value};
use sqlx::PgPool;
use testkit::{bodies, ApiProcess, TestDatabase, TestNamespace};
use uuid::Uuid;
use worker::config::WorkerSettings;
use worker::Worker;

const EVENTS: i64 = 100_000;
const PER_TRANSACTION: i64 = 2_000;
const BASELINE_INSERTS: u32 = 5_000;
const LOAD_RATE_PER_SECOND: u64 = 50;
const LOAD_SECONDS: u64 = 20;

struct Stack {
    address: String,
    client: reqwest::Client,
    token: String,
    _api: ApiProcess,
}

async fn start_stack(db: &TestDatabase, redis: &TestNamespace, worker: bool) -> Stack {
    let api = ApiProcess::start(
        &testkit::process::binary("prism-api"),
        testkit::api_env(db.url(), redis.url(), redis.name())
            // The benchmark drives commands from one address.
            .set("RATE_LIMIT_PER_MINUTE", "0"),
    )
    .await;
    if worker {
        let env = testkit::worker_env(db.url(), redis.url(), redis.name()).set("WORKER_PORT", "0");
        let worker =
            Worker::build(WorkerSettings::from_lookup(|name| env.get(name)).expect("settings"))
                .await
                .expect("worker");
        tokio::spawn(async move {
            let _ = worker.run_until(std::future::pending()).await;
        });
    }
    Stack {
        address: api.base.clone(),
        client: reqwest::Client::new(),
        token: testkit::keys::token_valid_for("org_bench", "user_bench", &[], 3600),
        _api: api,
    }
}

impl Stack {
    async fn post(&self, path: &str, body: &Value) -> Value {
        let reply = self
            .client
            .post(format!("{}{path}", self.address))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .expect("post");
        assert!(reply.status().is_success(), "{}", reply.status());
        reply.json().await.expect("json")
    }
}

/// Rows per second of single-row autocommit inserts on one connection.
async fn baseline_insert_rate(pool: &PgPool) -> f64 {
    sqlx::query("CREATE TABLE bench_baseline (id bigserial PRIMARY KEY, payload json NOT NULL)")
        .execute(pool)
        .await
        .expect("baseline table");
    let mut conn = pool.acquire().await.expect("connection");
    let started = Instant::now();
    for i in 0..BASELINE_INSERTS {
        sqlx::query("INSERT INTO bench_baseline (payload) VALUES ($1)")
            .bind(json!({"i": i}))
            .execute(&mut *conn)
            .await
            .expect("insert");
    }
    f64::from(BASELINE_INSERTS) / started.elapsed().as_secs_f64()
}

/// 100,000 events cloned from one real registration and one real lease comp.
async fn seed_events(pool: &PgPool, stack: &Stack) {
    let building_id = stack
        .post(
            "/v1/buildings",
            &bodies::building_at("Template", 40.75, -73.98),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    stack
        .post("/v1/comps/lease", &bodies::round_lease(&building_id))
        .await;
    // One transaction per chunk; in it the buildings first, then their comps (as the
    // api's separate commits would order them). Ids derive from the row number.
    let mut chunk_start = 0;
    while chunk_start < EVENTS / 2 {
        let chunk_end = chunk_start + PER_TRANSACTION / 2 - 1;
        let mut tx = pool.begin().await.expect("begin");
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             SELECT 'building', md5('building' || i)::uuid::text, 1, 'BuildingRegistered', '1',
                    jsonb_set(t.payload::jsonb, '{BuildingRegistered,name}', to_jsonb('Bench ' || i))::json,
                    t.metadata
               FROM generate_series($1::bigint, $2::bigint) AS i,
                    (SELECT payload, metadata FROM events WHERE aggregate_type = 'building' LIMIT 1) AS t",
        )
        .bind(chunk_start)
        .bind(chunk_end)
        .execute(&mut *tx)
        .await
        .expect("seed buildings");
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             SELECT 'comp', md5('comp' || i)::uuid::text, 1, 'LeaseCompRecorded', '1',
                    jsonb_set(t.payload::jsonb, '{LeaseCompRecorded,building_id}',
                              to_jsonb(md5('building' || i)::uuid::text))::json,
                    t.metadata
               FROM generate_series($1::bigint, $2::bigint) AS i,
                    (SELECT payload, metadata FROM events WHERE aggregate_type = 'comp' LIMIT 1) AS t",
        )
        .bind(chunk_start)
        .bind(chunk_end)
        .execute(&mut *tx)
        .await
        .expect("seed comps");
        tx.commit().await.expect("commit");
        chunk_start += PER_TRANSACTION / 2;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let mut report = String::new();
    let machine = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    report.push_str(&format!(
        "Run {} on {} ({} cores).\n\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    ));

    // 1 and 2: baseline and catch-up throughput, no worker running.
    let db = TestDatabase::migrated().await;
    let redis = TestNamespace::new();
    let pool = PgPool::connect(db.url()).await.expect("pool");
    let baseline = baseline_insert_rate(&pool).await;
    let stack = start_stack(&db, &redis, false).await;
    seed_events(&pool, &stack).await;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .expect("count");
    let options = CatchUpOptions::default();
    let mut rates = HashMap::new();
    for projection in Projection::ALL {
        let started = Instant::now();
        let outcome = catch_up(&pool, projection, &options)
            .await
            .expect("catch up");
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(
            outcome.applied as i64, total,
            "{projection}: every event applied"
        );
        rates.insert(
            projection.name(),
            (outcome.applied as f64 / elapsed, elapsed),
        );
    }
    report.push_str("| measure | value | ratio to baseline |\n| --- | --- | --- |\n");
    report.push_str(&format!(
        "| baseline: raw single-row inserts (autocommit, 1 connection) | {baseline:.0} rows/s | 1.00 |\n"
    ));
    for projection in Projection::ALL {
        let (rate, elapsed) = rates[projection.name()];
        report.push_str(&format!(
            "| `{projection}` catch-up of {total} events (batches of {}) | {rate:.0} events/s ({elapsed:.1} s) | {:.2} |\n",
            options.batch_size,
            rate / baseline
        ));
    }
    drop(stack);

    // 3: commit-to-visible lag under steady load, default worker settings.
    let db = TestDatabase::migrated().await;
    let redis = TestNamespace::new();
    let pool = PgPool::connect(db.url()).await.expect("pool");
    let stack = start_stack(&db, &redis, true).await;
    let mut committed: Vec<(Uuid, Instant)> = Vec::new();
    let mut visible: HashMap<Uuid, Instant> = HashMap::new();
    let interval = Duration::from_micros(1_000_000 / LOAD_RATE_PER_SECOND);
    let mut ticker = tokio::time::interval(interval);
    let deadline = Instant::now() + Duration::from_secs(LOAD_SECONDS);
    while Instant::now() < deadline {
        ticker.tick().await;
        let reply = stack
            .post("/v1/buildings", &bodies::building_at("Load", 40.75, -73.98))
            .await;
        let id: Uuid = reply["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("id");
        committed.push((id, Instant::now()));
        let pending: Vec<Uuid> = committed
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !visible.contains_key(id))
            .collect();
        let seen: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM buildings WHERE id = ANY($1)")
            .bind(&pending)
            .fetch_all(&pool)
            .await
            .expect("visible");
        let now = Instant::now();
        for id in seen {
            visible.insert(id, now);
        }
    }
    let settle = Instant::now() + Duration::from_secs(10);
    while visible.len() < committed.len() && Instant::now() < settle {
        let pending: Vec<Uuid> = committed
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !visible.contains_key(id))
            .collect();
        let seen: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM buildings WHERE id = ANY($1)")
            .bind(&pending)
            .fetch_all(&pool)
            .await
            .expect("visible");
        let now = Instant::now();
        for id in seen {
            visible.insert(id, now);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut lags: Vec<f64> = committed
        .iter()
        .filter_map(|(id, at)| {
            visible
                .get(id)
                .map(|seen| seen.duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    lags.sort_by(|a, b| a.total_cmp(b));
    let single_insert_ms = 1000.0 / baseline;
    report.push_str(&format!(
        "| commit-to-visible lag, {} commands at {LOAD_RATE_PER_SECOND}/s ({} visible) | p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms | p50 = {:.0} × one single-row insert ({single_insert_ms:.2} ms) |\n",
        committed.len(),
        lags.len(),
        percentile(&lags, 0.5),
        percentile(&lags, 0.95),
        lags.last().copied().unwrap_or_default(),
        percentile(&lags, 0.5) / single_insert_ms,
    ));
    println!("{report}");
}
