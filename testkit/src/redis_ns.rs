//! Redis for tests: [`TestNamespace`], a namespace for one test — tests share the
//! Redis server but never each other's keys, and dropping it deletes every key under
//! the namespace — and [`PrivateRedis`], a `redis-server` of a test's own, to flush,
//! stop and restart.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use uuid::Uuid;

use crate::free_port;

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

/// A Redis namespace of one test (or run); its keys are deleted when it drops.
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
        Self::labelled(url, "test")
    }

    /// A namespace named `prism_{label}_…` on the Redis server at `url`.
    pub fn labelled(url: &str, label: &str) -> Self {
        Self {
            name: format!("prism_{label}_{}", Uuid::new_v4().simple()),
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
            .and_then(|mut c| {
                keys.chunks(1000).try_for_each(|chunk| {
                    redis::cmd("DEL").arg(chunk).query::<i64>(&mut c).map(drop)
                })
            });
        if deleted.is_err() {
            eprintln!("redis namespace {} was not cleaned up", self.name);
        }
    }
}
