//! Test support (feature `testing`), shared by the api's and the worker's suites:
//! - [`TestNamespace`]: a Redis namespace for one test: tests share the Redis server
//!   but never each other's keys; dropping it deletes every key under the namespace;
//! - [`PrivateRedis`]: a `redis-server` of a test's own, to flush, stop and restart;
//! - [`free_port`], and [`metric`] to read one series from a `/metrics` answer.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use uuid::Uuid;

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The value of the series whose line starts with `series` (name and labels, exactly
/// as rendered) in a Prometheus text exposition.
pub fn metric(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// A Redis server of a test's own, on a free port: the test can FLUSHALL it, stop it
/// and start it again on the same port. Dropping it stops it.
#[derive(Debug)]
pub struct PrivateRedis {
    child: Option<Child>,
    port: u16,
    pub url: String,
    dir: PathBuf,
}

impl PrivateRedis {
    pub fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("prism-redis-{port}"));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut redis = Self {
            child: None,
            port,
            url: format!("redis://127.0.0.1:{port}"),
            dir,
        };
        redis.restart();
        redis
    }

    /// Starts the server (again) and waits until it answers.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        for _ in 0..100 {
            if redis::Client::open(self.url.as_str())
                .and_then(|c| c.get_connection())
                .is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not answer on port {}", self.port);
    }

    /// Kills the server (its data is gone: nothing is saved).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn flushall(&self) {
        let mut connection = redis::Client::open(self.url.as_str())
            .and_then(|c| c.get_connection())
            .expect("private redis");
        let _: () = redis::cmd("FLUSHALL")
            .query(&mut connection)
            .expect("FLUSHALL");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The Redis server tests use: `PRISM_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`.
pub fn redis_url() -> String {
    std::env::var("PRISM_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[derive(Debug)]
pub struct TestNamespace {
    name: String,
    url: String,
}

impl TestNamespace {
    pub fn new() -> Self {
        Self::on(&redis_url())
    }

    /// A namespace on another Redis server (a test's own).
    pub fn on(url: &str) -> Self {
        Self {
            name: format!("prism_test_{}", Uuid::new_v4().simple()),
            url: url.to_owned(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every key under the namespace.
    pub fn keys(&self) -> Vec<String> {
        redis::Client::open(self.url.as_str())
            .and_then(|client| client.get_connection())
            .and_then(|mut c| {
                redis::cmd("KEYS")
                    .arg(format!("{}:*", self.name))
                    .query::<Vec<String>>(&mut c)
            })
            .unwrap_or_default()
    }
}

impl Default for TestNamespace {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let keys = self.keys();
        if keys.is_empty() {
            return;
        }
        let deleted = redis::Client::open(self.url.as_str())
            .and_then(|client| client.get_connection())
            .and_then(|mut c| redis::cmd("DEL").arg(&keys).query::<i64>(&mut c));
        if deleted.is_err() {
            eprintln!("redis namespace {} was not cleaned up", self.name);
        }
    }
}

/// A TCP proxy in front of Postgres that counts the statements its clients send:
/// every `Query` (simple protocol: `BEGIN`, `COMMIT`, …) and every `Execute` (extended
/// protocol: each prepared statement run). Tests connect through [`Self::url`] to
/// prove how many round trips some work costs — a projection batch, a cached read —
/// deterministically, where a timing would not be.
#[derive(Debug)]
pub struct StatementCounter {
    port: u16,
    statements: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl StatementCounter {
    /// Listens on a free port and forwards every connection to `upstream`
    /// (`host:port`).
    pub async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the statement counter");
        let port = listener.local_addr().expect("its address").port();
        let statements = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let upstream = upstream.to_owned();
        let counter = std::sync::Arc::clone(&statements);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let counter = std::sync::Arc::clone(&counter);
                tokio::spawn(async move {
                    if let Ok(server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = proxy(client, server, counter).await;
                    }
                });
            }
        });
        Self {
            port,
            statements,
            task,
        }
    }

    /// `url` (a database URL) pointed at the proxy, TLS off so messages can be read.
    pub fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let (credentials, after_host) = match rest.split_once('@') {
            Some((credentials, after)) => (format!("{credentials}@"), after),
            None => (String::new(), rest),
        };
        let path = after_host.find('/').map_or("", |i| &after_host[i..]);
        let separator = if path.contains('?') { '&' } else { '?' };
        format!(
            "{scheme}://{credentials}127.0.0.1:{}{path}{separator}sslmode=disable",
            self.port
        )
    }

    /// Statements sent since the start (or the last [`Self::reset`]).
    pub fn count(&self) -> u64 {
        self.statements.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn reset(&self) {
        self.statements
            .store(0, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for StatementCounter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards both ways, reading the client's messages to count statements.
async fn proxy(
    client: tokio::net::TcpStream,
    server: tokio::net::TcpStream,
    counter: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let downstream = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    });
    // Until the startup message (protocol 3.0) the client's messages carry no type byte.
    let mut started = false;
    loop {
        let mut header = [0u8; 5];
        let (kind, length) = if started {
            if client_read.read_exact(&mut header).await.is_err() {
                break;
            }
            let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
            (Some(header[0]), length as usize)
        } else {
            if client_read.read_exact(&mut header[..4]).await.is_err() {
                break;
            }
            (
                None,
                u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize,
            )
        };
        let mut body = vec![0u8; length.saturating_sub(4)];
        client_read.read_exact(&mut body).await?;
        match kind {
            Some(b'Q' | b'E') => {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            Some(_) => {}
            // 196608 is protocol 3.0; SSL and GSS requests are followed by a startup.
            None => started = body.get(..4) == Some(&[0, 3, 0, 0]),
        }
        if let Some(kind) = kind {
            server_write.write_all(&[kind]).await?;
            server_write.write_all(&header[1..5]).await?;
        } else {
            server_write.write_all(&header[..4]).await?;
        }
        server_write.write_all(&body).await?;
    }
    downstream.abort();
    Ok(())
}

/// The plan Postgres picks to read the log after `after` (the tests assert that it
/// follows the global-order index rather than sorting).
/// The generic plan of the check for events the horizon holds back: the plan a
/// reader's connection keeps after running it a few times, made for any horizon.
pub async fn explain_held_back(conn: &mut sqlx::PgConnection) -> serde_json::Value {
    for statement in [
        "SET plan_cache_mode = force_generic_plan".to_owned(),
        format!("PREPARE prism_held_back(text) AS {}", crate::log::HELD_BACK),
    ] {
        sqlx::query(&statement)
            .execute(&mut *conn)
            .await
            .expect("prepare");
    }
    let plan = sqlx::query_scalar("EXPLAIN (FORMAT JSON) EXECUTE prism_held_back('0')")
        .fetch_one(&mut *conn)
        .await
        .expect("explain the held-back check");
    for statement in ["DEALLOCATE prism_held_back", "RESET plan_cache_mode"] {
        sqlx::query(statement)
            .execute(&mut *conn)
            .await
            .expect("reset");
    }
    plan
}

pub async fn explain_log_read(
    conn: &mut sqlx::PgConnection,
    after: (&str, i64),
) -> serde_json::Value {
    sqlx::query_scalar(&format!("EXPLAIN (FORMAT JSON) {}", crate::log::READ_AFTER))
        .bind(after.0)
        .bind(after.1)
        .bind(i64::MAX.to_string())
        .bind(500i64)
        .fetch_one(conn)
        .await
        .expect("explain the log read")
}
