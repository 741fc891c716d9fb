//! The harness: `System::start()` gives a database, a Redis namespace and `prism-api`
//! as a process on a free port; the worker runs in-process (`start_worker`) or as a
//! process (`spawn_worker_process`) that a test may kill. Dropping the system stops
//! all of it, drops the database and deletes the namespace's keys.

use std::time::Duration;

use projections::Projection;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::PgPool;
pub use testkit::{bodies, ApiProcess, Env, TestDatabase, TestNamespace, WorkerProcess};
pub use testkit::{ALL_SCOPES, ORG, OTHER_ORG, USER};
use tokio::sync::oneshot;
use worker::config::WorkerSettings;
use worker::Worker;

/// A token for `org` with `scopes`.
pub fn token_with(org: &str, scopes: &[&str]) -> String {
    testkit::keys::token(org, USER, scopes)
}

pub fn token() -> String {
    testkit::keys::token(ORG, USER, ALL_SCOPES)
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

pub struct System {
    pub address: String,
    pub client: reqwest::Client,
    pub pool: PgPool,
    pub redis_url: String,
    api: Option<ApiProcess>,
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
        let env = testkit::api_env(db.url(), &api_redis_url, namespace.name())
            .set("DATABASE_MAX_CONNECTIONS", "10")
            .set("RATE_LIMIT_PER_MINUTE", "0");
        let api = ApiProcess::start(&testkit::process::binary("prism-api"), env).await;
        let pool = PgPool::connect(db.url()).await.expect("test pool");
        Self {
            address: api.base.clone(),
            client: reqwest::Client::new(),
            pool,
            redis_url,
            api: Some(api),
            worker: None,
            worker_port: None,
            namespace,
            db,
        }
    }

    fn worker_vars(&self, batch_size: &str) -> Env {
        testkit::worker_env(self.db.url(), &self.redis_url, self.namespace.name())
            .set("WORKER_PORT", "0")
            .set("DATABASE_MAX_CONNECTIONS", "5")
            .set("PROJECTION_BATCH_SIZE", batch_size)
            .set("PROJECTION_BACKSTOP_MS", "500")
            .set("JOB_POLL_MS", "20")
            .set("METRICS_SAMPLE_MS", "100")
    }

    /// Runs a worker in this process until the system drops or `stop_worker`.
    pub async fn start_worker(&mut self) {
        self.start_worker_with(&[]).await;
    }

    fn worker_settings(&self, overrides: &[(&'static str, &str)]) -> WorkerSettings {
        let env = self.worker_vars("500").extend(overrides);
        WorkerSettings::from_lookup(|name| env.get(name)).expect("worker settings")
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
        WorkerProcess::spawn(
            std::path::Path::new(env!("CARGO_BIN_EXE_prism-worker")),
            &self.worker_vars(&batch_size.to_string()).extend(more),
        )
    }

    /// `prism-worker ARGS` with this system's settings (a one-off command), its output
    /// piped.
    pub fn worker_command(&self, args: &[&str]) -> std::process::Command {
        let mut command = testkit::process::command(
            std::path::Path::new(env!("CARGO_BIN_EXE_prism-worker")),
            &self.worker_vars("500"),
        );
        command
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command
    }

    /// `count` more buildings registered straight into the log, each a copy of one
    /// registration the api made (so the rebuild tests have a history of some size).
    pub async fn seed_buildings(&self, count: i64) {
        let template = self
            .register(&bodies::building_at("Seed template", 40.7, -73.9))
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
                Some(&bodies::round_lease(building_id)),
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
                Some(&bodies::sale(building_id)),
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
        let ran = projections::rebuild::run(
            &self.pool,
            requested.id,
            None,
            &projections::rebuild::RebuildOptions::default(),
            &mut |_| {},
        )
        .await;
        let rebuild = match ran {
            Ok(rebuild) => rebuild,
            // A worker process of the test took the queued rebuild first: its result.
            Err(projections::rebuild::RebuildError::Busy(id)) => loop {
                let current = projections::rebuild::get(&self.pool, id)
                    .await
                    .expect("get")
                    .expect("the rebuild");
                if !current.state.is_active() {
                    break current;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            },
            Err(error) => panic!("the rebuild runs: {error:?}"),
        };
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
