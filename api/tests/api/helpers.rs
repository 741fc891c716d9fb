//! The one harness every api test uses: `spawn_app()` starts the real server on a
//! free port against a database of its own (a copy of the migrated template), and
//! returns a client that signs tokens with the test key. Dropping the app stops the
//! server and drops the database.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use api::config::Settings;
use api::dev::{self, TokenRequest};
use api::Application;
use migrations::testing::TestDatabase;
use projections::testing::TestNamespace;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use sqlx::{PgPool, Row};
use tokio::sync::oneshot;

pub const ORG: &str = "org_acme";
pub const OTHER_ORG: &str = "org_rival";
pub const USER: &str = "user_alice";
/// The issuer test apps expect (`CLERK_ISSUER`).
pub const ISSUER: &str = "https://clerk.prism.test";
/// The SPA origin test apps allow (`ALLOWED_ORIGINS`, and so the authorised party).
pub const ORIGIN: &str = "https://app.prism.test";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn signing_key() -> PathBuf {
    fixture("test-signing-key.pem")
}

pub fn attacker_key() -> PathBuf {
    fixture("other-signing-key.pem")
}

/// The JWKS of the test key, written once per test process.
pub fn jwks_file() -> &'static Path {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("prism-test-jwks-{}.json", std::process::id()));
        let jwks = dev::jwks(&signing_key()).expect("test key makes a JWKS");
        std::fs::write(&path, serde_json::to_vec(&jwks).expect("json")).expect("write JWKS");
        path
    })
}

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
pub async fn spawn_app_counted(counter: &projections::testing::StatementCounter) -> TestApp {
    spawn(&[], Some(counter)).await
}

async fn spawn(
    overrides: &[(&str, Option<&str>)],
    counter: Option<&projections::testing::StatementCounter>,
) -> TestApp {
    let db = TestDatabase::migrated().await;
    let database_url = match counter {
        Some(counter) => counter.url(db.url()),
        None => db.url().to_owned(),
    };
    let jwks = jwks_file().to_string_lossy().into_owned();
    let redis = TestNamespace::new();
    let namespace = redis.name().to_owned();
    let redis_url = redis.url().to_owned();
    let mut vars = vec![
        ("ENV", "test"),
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("DATABASE_URL", database_url.as_str()),
        ("DATABASE_MAX_CONNECTIONS", "5"),
        ("CLERK_JWKS_FILE", jwks.as_str()),
        ("CLERK_ISSUER", ISSUER),
        ("REDIS_URL", redis_url.as_str()),
        ("REDIS_NAMESPACE", namespace.as_str()),
        ("ALLOWED_ORIGINS", ORIGIN),
        // Tests send many requests from one address; the rate-limit test turns it on.
        ("RATE_LIMIT_PER_MINUTE", "0"),
    ];
    for (name, value) in overrides {
        vars.retain(|(k, _)| k != name);
        if let Some(value) = value {
            vars.push((name, value));
        }
    }
    let settings = Settings::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .expect("test settings");
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
    token_with_scopes(org, user, &[])
}

/// A token for `user` in `org` carrying `scopes`.
pub fn token_with_scopes(org: &str, user: &str, scopes: &[&str]) -> String {
    dev::token(
        &signing_key(),
        &TokenRequest {
            user_id: user.into(),
            org_id: org.into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            issuer: Some(ISSUER.into()),
            ttl_seconds: 600,
        },
    )
    .expect("token")
}

pub fn token() -> String {
    token_for(ORG, USER)
}

/// A valid building registration body.
pub fn building_body() -> Value {
    json!({
        "name": "One Vanderbilt",
        "address": {"street": "1 Vanderbilt Ave", "city": "New York", "region": "NY",
                    "postal_code": "10017", "country": "US"},
        "location": {"lat": 40.7527, "lon": -73.9787},
        "property_type": "office",
        "building_class": "A",
        "rentable_area_sqft": 1750000,
        "year_built": 2020,
        "floors": 93,
        "submarket": "Grand Central"
    })
}

/// A valid lease comp body for `building_id`.
pub fn lease_body(building_id: &str) -> Value {
    json!({
        "building_id": building_id,
        "tenant": "Globex",
        "suite": "12A",
        "leased_area_sqft": "12500",
        "starting_rent_psf": 85.5,
        "lease_type": "gross",
        "term_months": 120,
        "commencement_date": "2026-01-01",
        "free_rent_months": 6,
        "ti_allowance_psf": "95.00",
        "escalation_pct": 3
    })
}

/// A valid sale comp body for `building_id`.
pub fn sale_body(building_id: &str) -> Value {
    json!({
        "building_id": building_id,
        "sale_price": "125000000",
        "sale_date": "2025-06-30",
        "buyer": "Initech REIT",
        "seller": "Hooli Holdings",
        "cap_rate_pct": "5.25"
    })
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
        let reply = self
            .call(Method::POST, "/v1/buildings", Some(&building_body()))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
        reply.id()
    }

    pub async fn record_lease(&self, building_id: &str) -> String {
        let reply = self
            .call(
                Method::POST,
                "/v1/comps/lease",
                Some(&lease_body(building_id)),
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

/// The JWKS of `private_key_pem`'s public half, published under `kid`.
pub fn jwks_of(keys: &[(&Path, &str)]) -> Value {
    let keys: Vec<Value> = keys
        .iter()
        .map(|(pem, kid)| {
            let mut jwk =
                serde_json::to_value(&dev::jwks(pem).expect("jwks").keys[0]).expect("jwk json");
            jwk["kid"] = json!(kid);
            jwk
        })
        .collect();
    json!({ "keys": keys })
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
        for projection in [Projection::CATALOG, Projection::AUDIT] {
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

/// `prism-api` as a process of its own: test settings against `db` and the Redis at
/// `redis_url` under `namespace`, plus `env`. Started when `/health` answers; killed
/// when dropped.
pub struct ApiProcess {
    child: std::process::Child,
    pub base: String,
}

impl ApiProcess {
    pub async fn start(
        db: &TestDatabase,
        redis_url: &str,
        namespace: &str,
        env: &[(&str, String)],
    ) -> Self {
        Self::start_at(db.url(), redis_url, namespace, env).await
    }

    /// [`Self::start`] against the database at `database_url` (a test's own server).
    pub async fn start_at(
        database_url: &str,
        redis_url: &str,
        namespace: &str,
        env: &[(&str, String)],
    ) -> Self {
        let port = projections::testing::free_port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_prism-api"))
            .env_clear()
            .env("ENV", "test")
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("DATABASE_URL", database_url)
            .env("REDIS_URL", redis_url)
            .env("REDIS_NAMESPACE", namespace)
            .env("CLERK_JWKS_FILE", jwks_file())
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prism-api starts");
        let api = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client
                .get(format!("{}/health", api.base))
                .send()
                .await
                .is_ok()
            {
                return api;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("prism-api did not start");
    }

    /// `kill -9`: no shutdown at all.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (without blocking this thread) for the graceful exit.
    pub async fn terminate(&mut self) {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "SIGTERM");
        for _ in 0..400 {
            if self.child.try_wait().expect("wait").is_some() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("prism-api did not stop after SIGTERM");
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        self.kill_9();
    }
}
