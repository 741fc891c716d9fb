//! The harness: `System::start()` gives a database, a Redis namespace and the api on a
//! free port; the worker runs in-process (`start_worker`) or as a process
//! (`spawn_worker_process`) that a test may kill. Dropping the system stops all of it,
//! drops the database and deletes the namespace's keys.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use api::config::Settings;
use api::dev::{self, TokenRequest};
use api::Application;
use migrations::testing::TestDatabase;
use projections::testing::TestNamespace;
use projections::Projection;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::sync::oneshot;
use worker::config::WorkerSettings;
use worker::Worker;

pub const ORG: &str = "org_acme";
pub const OTHER_ORG: &str = "org_rival";
pub const ALL_SCOPES: &str =
    "buildings:read buildings:write comps:read comps:write audit:read projections:admin";

fn signing_key() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/tests/fixtures/test-signing-key.pem")
}

fn jwks_file() -> &'static Path {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("prism-system-jwks-{}.json", std::process::id()));
        let jwks = dev::jwks(&signing_key()).expect("test key makes a JWKS");
        std::fs::write(&path, serde_json::to_vec(&jwks).expect("json")).expect("write JWKS");
        path
    })
}

/// A token for `org` with `scopes` (space-separated).
pub fn token_with(org: &str, scopes: &str) -> String {
    dev::token(
        &signing_key(),
        &TokenRequest {
            user_id: "user_alice".into(),
            org_id: org.into(),
            scopes: scopes.split_whitespace().map(str::to_owned).collect(),
            issuer: None,
            ttl_seconds: 600,
        },
    )
    .expect("token")
}

pub fn token() -> String {
    token_with(ORG, ALL_SCOPES)
}

struct Stoppable {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Stoppable {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), &mut self.task).await;
    }
}

impl Drop for Stoppable {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// A worker running as its own process.
pub struct WorkerProcess(Child);

impl WorkerProcess {
    /// SIGKILL: no chance to finish or roll back anything itself.
    pub fn kill_9(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct System {
    pub address: String,
    pub client: reqwest::Client,
    pub pool: PgPool,
    pub redis_url: String,
    api: Option<Stoppable>,
    worker: Option<Stoppable>,
    /// Where the in-process worker serves `/health`, `/ready` and `/metrics`.
    pub worker_port: Option<u16>,
    pub namespace: TestNamespace,
    db: TestDatabase,
}

/// How the api reaches Redis.
pub enum ApiRedis {
    /// The system's Redis (its namespace).
    Shared,
    /// A closed port: every job push fails.
    Unreachable,
}

impl System {
    pub async fn start() -> Self {
        Self::start_with(TestNamespace::new(), ApiRedis::Shared).await
    }

    pub async fn start_with(namespace: TestNamespace, api_redis: ApiRedis) -> Self {
        let db = TestDatabase::migrated().await;
        let redis_url = namespace.url().to_owned();
        let api_redis_url = match api_redis {
            ApiRedis::Shared => redis_url.clone(),
            ApiRedis::Unreachable => "redis://127.0.0.1:1".to_owned(),
        };
        let jwks = jwks_file().to_string_lossy().into_owned();
        let vars = [
            ("ENV", "test"),
            ("HOST", "127.0.0.1"),
            ("PORT", "0"),
            ("DATABASE_URL", db.url()),
            ("DATABASE_MAX_CONNECTIONS", "10"),
            ("REDIS_URL", api_redis_url.as_str()),
            ("REDIS_NAMESPACE", namespace.name()),
            ("CLERK_JWKS_FILE", jwks.as_str()),
            ("RATE_LIMIT_PER_MINUTE", "0"),
        ];
        let settings = Settings::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
        .expect("api settings");
        let app = Application::build(settings).await.expect("the api builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = app
                .run_until(async {
                    let _ = stopped.await;
                })
                .await;
        });
        let pool = PgPool::connect(db.url()).await.expect("test pool");
        Self {
            address,
            client: reqwest::Client::new(),
            pool,
            redis_url,
            api: Some(Stoppable {
                stop: Some(stop),
                task,
            }),
            worker: None,
            worker_port: None,
            namespace,
            db,
        }
    }

    fn worker_vars(&self, batch_size: &str) -> Vec<(&'static str, String)> {
        vec![
            ("ENV", "test".into()),
            ("HOST", "127.0.0.1".into()),
            ("WORKER_PORT", "0".into()),
            ("DATABASE_URL", self.db.url().to_owned()),
            ("DATABASE_MAX_CONNECTIONS", "5".into()),
            ("REDIS_URL", self.redis_url.clone()),
            ("REDIS_NAMESPACE", self.namespace.name().to_owned()),
            ("PROJECTION_BATCH_SIZE", batch_size.into()),
            ("PROJECTION_BACKSTOP_MS", "500".into()),
            ("JOB_POLL_MS", "20".into()),
            ("METRICS_SAMPLE_MS", "100".into()),
        ]
    }

    /// Runs a worker in this process until the system drops or `stop_worker`.
    pub async fn start_worker(&mut self) {
        self.start_worker_with(&[]).await;
    }

    fn worker_settings(&self, overrides: &[(&'static str, &str)]) -> WorkerSettings {
        let mut vars = self.worker_vars("500");
        for (name, value) in overrides {
            vars.retain(|(k, _)| k != name);
            vars.push((name, (*value).to_owned()));
        }
        WorkerSettings::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        })
        .expect("worker settings")
    }

    /// Builds a worker as `prism-worker run` does before it serves, without running it:
    /// `Err` with the whole message (its causes too) when it refuses to start.
    pub async fn build_worker(&self) -> Result<Worker, String> {
        Worker::build(self.worker_settings(&[]))
            .await
            .map_err(|error| format!("{error:#}"))
    }

    /// [`Self::start_worker`] with some settings changed.
    pub async fn start_worker_with(&mut self, overrides: &[(&'static str, &str)]) {
        let settings = self.worker_settings(overrides);
        let worker = Worker::build(settings).await.expect("the worker builds");
        self.worker_port = Some(worker.port());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = worker
                .run_until(async {
                    let _ = stopped.await;
                })
                .await;
        });
        self.worker = Some(Stoppable {
            stop: Some(stop),
            task,
        });
    }

    /// Stops the in-process worker gracefully.
    pub async fn stop_worker(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.stop().await;
        }
    }

    /// Starts `prism-worker` as a process with `batch_size` events per batch.
    pub fn spawn_worker_process(&self, batch_size: usize) -> WorkerProcess {
        self.spawn_worker_process_with(batch_size, &[])
    }

    /// [`Self::spawn_worker_process`] with more settings.
    pub fn spawn_worker_process_with(
        &self,
        batch_size: usize,
        more: &[(&str, &str)],
    ) -> WorkerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_prism-worker"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (name, value) in self.worker_vars(&batch_size.to_string()) {
            command.env(name, value);
        }
        for (name, value) in more {
            command.env(name, value);
        }
        WorkerProcess(command.spawn().expect("prism-worker starts"))
    }

    /// The environment `prism-worker` runs with in this system (for a one-off command).
    pub fn worker_env(&self) -> Vec<(&'static str, String)> {
        self.worker_vars("500")
    }

    /// `count` more buildings registered straight into the log, each a copy of one
    /// registration the api made (so the rebuild tests have a history of some size).
    pub async fn seed_buildings(&self, count: i64) {
        let template = self
            .register(&building_body("Seed template", 40.7, -73.9))
            .await;
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             SELECT 'building', gen_random_uuid()::text, 1, 'BuildingRegistered', '1',
                    jsonb_set(t.payload::jsonb, '{BuildingRegistered,name}', to_jsonb('Seeded ' || i))::json,
                    t.metadata
               FROM generate_series(1, $2) AS i,
                    (SELECT payload, metadata FROM events WHERE aggregate_id = $1) AS t",
        )
        .bind(&template)
        .bind(count)
        .execute(&self.pool)
        .await
        .expect("seed");
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        self.call_as(&token(), method, path, body).await
    }

    pub async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{}", self.address, path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    /// Registers a building; returns (id, version).
    pub async fn register(&self, body: &Value) -> String {
        let (status, reply) = self.call(Method::POST, "/v1/buildings", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{reply:#}");
        reply["id"].as_str().expect("id").to_owned()
    }

    pub async fn record_lease(&self, building_id: &str) -> String {
        let (status, reply) = self
            .call(
                Method::POST,
                "/v1/comps/lease",
                Some(&lease_body(building_id)),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{reply:#}");
        reply["id"].as_str().expect("id").to_owned()
    }

    pub async fn record_sale(&self, building_id: &str) -> String {
        let (status, reply) = self
            .call(
                Method::POST,
                "/v1/comps/sale",
                Some(&sale_body(building_id)),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{reply:#}");
        reply["id"].as_str().expect("id").to_owned()
    }

    /// Waits until every projection has applied every committed event and the cache
    /// outbox is empty; panics after `timeout`.
    pub async fn wait_until_quiet(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let statuses = projections::status(&self.pool).await.expect("status");
            let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM cache_refresh_outbox")
                .fetch_one(&self.pool)
                .await
                .expect("outbox");
            if statuses.iter().all(|s| s.lag_events == 0) && outbox == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "projections still lagging: {:?}",
                statuses
                    .iter()
                    .map(|s| (
                        s.name,
                        s.lag_events,
                        s.checkpoint.as_ref().and_then(|c| c.last_error.clone())
                    ))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Catches every projection up in this process, as a worker would, until none
    /// lags (another test's open transaction may hold the horizon back a moment).
    pub async fn catch_up_now(&self) {
        let options = projections::CatchUpOptions::default();
        for _ in 0..500 {
            for projection in Projection::ALL {
                projections::catch_up(&self.pool, projection, &options)
                    .await
                    .expect("catch up");
            }
            let statuses = projections::status(&self.pool).await.expect("status");
            if statuses.iter().all(|s| s.lag_events == 0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("projections did not catch up");
    }

    /// Every read-model row of every projection (the list in `Projection::ALL`), as
    /// JSON, in a stable order.
    pub async fn read_models(&self) -> Value {
        let mut all = serde_json::Map::new();
        for projection in Projection::ALL {
            for (table, order) in projection.projector().tables() {
                let rows: Value = sqlx::query_scalar(&format!(
                    "SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY {order}), '[]'::jsonb) FROM {table} t"
                ))
                .fetch_one(&self.pool)
                .await
                .expect("dump");
                all.insert((*table).to_owned(), rows);
            }
        }
        Value::Object(all)
    }

    /// Rebuilds `projection` beside the live one and waits for the swap.
    pub async fn rebuild(&self, projection: Projection) -> projections::rebuild::Rebuild {
        let requested = projections::rebuild::request(&self.pool, projection, "test")
            .await
            .expect("a rebuild");
        let rebuild = projections::rebuild::run(
            &self.pool,
            requested.id,
            None,
            &projections::rebuild::RebuildOptions::default(),
            &mut |_| {},
        )
        .await
        .expect("the rebuild runs");
        assert_eq!(
            rebuild.state,
            projections::rebuild::RebuildState::Swapped,
            "{:?}",
            rebuild.error
        );
        rebuild
    }

    /// Asserts that the live projections equal a rebuild from the log; returns the rows.
    pub async fn assert_projections_equal_rebuild(&self) -> Value {
        let live = self.read_models().await;
        for projection in Projection::ALL {
            self.rebuild(projection).await;
        }
        let rebuilt = self.read_models().await;
        assert_eq!(live, rebuilt, "live projections differ from a rebuild");
        live
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.worker.take();
        self.api.take();
    }
}

pub fn building_body(name: &str, lat: f64, lon: f64) -> Value {
    json!({
        "name": name,
        "address": {"street": "1 Main St", "city": "New York", "region": "NY",
                    "postal_code": "10017", "country": "US"},
        "location": {"lat": lat, "lon": lon},
        "property_type": "office",
        "building_class": "A",
        "rentable_area_sqft": 100000,
        "submarket": "Midtown"
    })
}

pub fn lease_body(building_id: &str) -> Value {
    json!({
        "building_id": building_id,
        "tenant": "Globex",
        "leased_area_sqft": "12500",
        "starting_rent_psf": "60",
        "lease_type": "gross",
        "term_months": 120,
        "commencement_date": "2026-02-01",
        "free_rent_months": 12,
        "ti_allowance_psf": "40",
        "escalation_pct": 0
    })
}

pub fn sale_body(building_id: &str) -> Value {
    json!({
        "building_id": building_id,
        "sale_price": "25000000",
        "sale_date": "2025-06-30",
        "buyer": "Initech REIT",
        "seller": "Hooli Holdings",
        "cap_rate_pct": "5.25"
    })
}
