//! A Redis namespace for one test (feature `testing`): tests share the Redis server but
//! never each other's keys. Dropping it deletes every key under the namespace.

use uuid::Uuid;

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
