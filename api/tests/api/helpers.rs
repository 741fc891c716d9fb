//! The one harness every api test uses: `spawn_app()` starts the real server on a
//! free port against a database of its own (a copy of the migrated template), and
//! returns a client that signs tokens with the test key. Dropping the app stops the
//! server and drops the database.

use api::config::Settings;
use api::Application;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use sqlx::{PgPool, Row};
pub use testkit::keys::{attacker_key, jwks_of, signing_key, ISSUER};
use testkit::StatementCounter;
pub use testkit::{bodies, ApiProcess, TestDatabase, TestNamespace, ORG, OTHER_ORG, USER};
use tokio::sync::oneshot;

/// The SPA origin test apps allow (`ALLOWED_ORIGINS`, and so the authorised party).
pub const ORIGIN: &str = "https://app.prism.test";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub pool: PgPool,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    // Last: dropped after the server has stopped.
    _redis: TestNamespace,
    _db: TestDatabase,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// [`spawn_app`] with settings changed: `Some` sets a variable, `None` removes it.
pub async fn spawn_app_with(overrides: &[(&str, Option<&str>)]) -> TestApp {
    spawn(overrides, None).await
}

/// [`spawn_app`] whose connections to Postgres go through `counter`, which counts
/// the statements the app sends (the test's own pool connects directly).
pub async fn spawn_app_counted(counter: &StatementCounter) -> TestApp {
    spawn(&[], Some(counter)).await
}

async fn spawn(overrides: &[(&str, Option<&str>)], counter: Option<&StatementCounter>) -> TestApp {
    let db = TestDatabase::migrated().await;
    let database_url = match counter {
        Some(counter) => counter.url(db.url()),
        None => db.url().to_owned(),
    };
    let redis = TestNamespace::new();
    let env = testkit::api_env(&database_url, redis.url(), redis.name())
        .set("PORT", "0")
        .set("DATABASE_MAX_CONNECTIONS", "5")
        .set("CLERK_ISSUER", ISSUER)
        .set("ALLOWED_ORIGINS", ORIGIN)
        // Tests send many requests from one address; the rate-limit test turns it on.
        .set("RATE_LIMIT_PER_MINUTE", "0")
        .with(overrides);
    let settings = Settings::from_lookup(|name| env.get(name)).expect("test settings");
    let app = Application::build(settings).await.expect("the app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let (shutdown, stop) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.run_until(async {
            let _ = stop.await;
        })
        .await
        .expect("server runs");
    });
    let pool = PgPool::connect(db.url()).await.expect("test pool");
    TestApp {
        address,
        client: reqwest::Client::new(),
        pool,
        shutdown: Some(shutdown),
        server: Some(server),
        _redis: redis,
        _db: db,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// A token for `user` in `org`, signed with the test key, with no explicit scopes
/// (a member's token: enough while scopes are not strict).
pub fn token_for(org: &str, user: &str) -> String {
    testkit::keys::token(org, user, &[])
}

/// A token for `user` in `org` carrying `scopes`.
pub fn token_with_scopes(org: &str, user: &str, scopes: &[&str]) -> String {
    testkit::keys::token(org, user, scopes)
}

pub fn token() -> String {
    token_for(ORG, USER)
}

/// A response read once: status, headers, JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    async fn read(response: Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Self {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .expect("an id in the body")
            .to_owned()
    }

    pub fn version(&self) -> u64 {
        self.body["version"]
            .as_u64()
            .expect("a version in the body")
    }

    /// Asserts a problem response of `status` and type `slug`; returns the field names.
    pub fn assert_problem(&self, status: u16, slug: &str) -> Vec<String> {
        assert_eq!(self.status.as_u16(), status, "{:#}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{:#}",
            self.body
        );
        assert_eq!(
            self.body["type"],
            json!(format!("urn:prism:problem:{slug}")),
            "{:#}",
            self.body
        );
        assert_eq!(self.body["status"], json!(status));
        assert!(
            self.body["request_id"].is_string(),
            "problems carry the request id"
        );
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl TestApp {
    /// The URL of the app's database.
    pub fn database_url(&self) -> &str {
        self._db.url()
    }

    /// The Redis namespace the app's keys live under, and the server's URL.
    pub fn redis(&self) -> (&str, &str) {
        (self._redis.name(), self._redis.url())
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{}", self.address, path))
    }

    pub async fn send(&self, request: RequestBuilder) -> Reply {
        Reply::read(request.send().await.expect("request sent")).await
    }

    /// `method path` with the default token and a JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        self.call_as(&token(), method, path, body, &[]).await
    }

    pub async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.request(method, path).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request).await
    }

    pub async fn register_building(&self) -> String {
        self.register_building_as(&token()).await
    }

    /// Registers a building with `token` (another user, organisation or scopes).
    pub async fn register_building_as(&self, token: &str) -> String {
        let reply = self
            .call_as(
                token,
                Method::POST,
                "/v1/buildings",
                Some(&bodies::building()),
                &[],
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
        reply.id()
    }

    pub async fn record_lease(&self, building_id: &str) -> String {
        let reply = self
            .call(
                Method::POST,
                "/v1/comps/lease",
                Some(&bodies::lease(building_id)),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
        reply.id()
    }

    /// How many events the store holds in all.
    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .expect("count events")
    }

    /// (event_type, sequence, payload, metadata) of one aggregate's events, in order.
    pub async fn events_of(&self, aggregate_id: &str) -> Vec<(String, i64, Value, Value)> {
        sqlx::query(
            "SELECT event_type, sequence, payload::jsonb AS payload, metadata::jsonb AS metadata
               FROM events WHERE aggregate_id = $1 ORDER BY sequence",
        )
        .bind(aggregate_id)
        .fetch_all(&self.pool)
        .await
        .expect("events")
        .into_iter()
        .map(|row| {
            (
                row.get("event_type"),
                row.get("sequence"),
                row.get("payload"),
                row.get("metadata"),
            )
        })
        .collect()
    }
}

/// A JWKS endpoint like Clerk's, served by the test on a free port: its key set can
/// be replaced (rotation) and it counts how often it was fetched.
pub struct JwksServer {
    pub url: String,
    keys: std::sync::Arc<std::sync::Mutex<Value>>,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _server: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    pub async fn start(keys: Value) -> Self {
        use poem::listener::{Acceptor, Listener};
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};
        let keys = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (Arc::clone(&keys), Arc::clone(&fetches));
        let endpoint = poem::Route::new().at(
            "/.well-known/jwks.json",
            poem::endpoint::make_sync(move |_| {
                counted.fetch_add(1, Ordering::SeqCst);
                let body = served.lock().expect("keys").to_string();
                poem::Response::builder()
                    .content_type("application/json")
                    .body(body)
            }),
        );
        let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("bind the JWKS server");
        let port = acceptor.local_addr()[0]
            .as_socket_addr()
            .expect("a socket address")
            .port();
        let server = tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor)
                .run(endpoint)
                .await;
        });
        Self {
            url: format!("http://127.0.0.1:{port}/.well-known/jwks.json"),
            keys,
            fetches,
            _server: server,
        }
    }

    /// Publishes another key set (Clerk rotating its keys).
    pub fn publish(&self, keys: Value) {
        *self.keys.lock().expect("keys") = keys;
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self._server.abort();
    }
}

/// Projects every committed event into the read models (the tests run no worker),
/// retrying while other tests' open transactions hold the log back, until `done`.
pub async fn project_until<F, Fut>(pool: &PgPool, done: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    use projections::{catch_up, CatchUpOptions, Projection};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        for projection in Projection::ALL {
            catch_up(pool, projection, &CatchUpOptions::default())
                .await
                .expect("catch-up");
        }
        if done().await {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the read models did not catch up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `prism-api` (this package's build) as a process of its own, with the test settings
/// against the database at `database_url` and the Redis at `redis_url` under
/// `namespace`, plus `env`. Started when `/health` answers; killed when dropped.
pub async fn api_process(
    database_url: &str,
    redis_url: &str,
    namespace: &str,
    env: &[(&str, String)],
) -> ApiProcess {
    let program = std::path::Path::new(env!("CARGO_BIN_EXE_prism-api"));
    ApiProcess::start(
        program,
        testkit::api_env(database_url, redis_url, namespace).extend(env),
    )
    .await
}

/// `prism-worker` as a process of its own against the same database and namespace,
/// plus `env`; started when its `/health` answers (on [`testkit::WorkerProcess::base`]).
pub async fn worker_process(
    database_url: &str,
    redis_url: &str,
    namespace: &str,
    env: &[(&str, &str)],
) -> testkit::WorkerProcess {
    testkit::WorkerProcess::start(
        &testkit::process::binary("prism-worker"),
        testkit::worker_env(database_url, redis_url, namespace).extend(env),
    )
    .await
}
