//! Settings as the environment variables `prism-api` and `prism-worker` read: handed
//! to a spawned binary as its whole environment, or to `Settings::from_lookup` /
//! `WorkerSettings::from_lookup` for one built in the test's own process.

use crate::keys;

/// An ordered set of variables; setting one again replaces it.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: Vec<(String, String)>,
}

impl Env {
    pub fn new() -> Self {
        Self::default()
    }

    /// With `name` set to `value` (replacing any earlier value).
    pub fn set(mut self, name: &str, value: impl Into<String>) -> Self {
        self.vars.retain(|(k, _)| k != name);
        self.vars.push((name.to_owned(), value.into()));
        self
    }

    /// Without `name`.
    pub fn unset(mut self, name: &str) -> Self {
        self.vars.retain(|(k, _)| k != name);
        self
    }

    /// With each override applied: `Some` sets a variable, `None` removes it.
    pub fn with(self, overrides: &[(&str, Option<&str>)]) -> Self {
        overrides
            .iter()
            .fold(self, |env, (name, value)| match value {
                Some(value) => env.set(name, *value),
                None => env.unset(name),
            })
    }

    /// With every pair of `more` set.
    pub fn extend<V: AsRef<str>>(self, more: &[(&str, V)]) -> Self {
        more.iter()
            .fold(self, |env, (name, value)| env.set(name, value.as_ref()))
    }

    /// The value of `name`: a lookup for `from_lookup`.
    pub fn get(&self, name: &str) -> Option<String> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

fn common(database_url: &str, redis_url: &str, namespace: &str) -> Env {
    Env::new()
        .set("ENV", "test")
        .set("HOST", "127.0.0.1")
        .set("DATABASE_URL", database_url)
        .set("REDIS_URL", redis_url)
        .set("REDIS_NAMESPACE", namespace)
}

/// What every test api runs with: `ENV=test` on 127.0.0.1, the database and the Redis
/// namespace given, and the test key's JWKS ([`keys::jwks_file`]). The caller adds its
/// port and anything else.
pub fn api_env(database_url: &str, redis_url: &str, namespace: &str) -> Env {
    common(database_url, redis_url, namespace).set(
        "CLERK_JWKS_FILE",
        keys::jwks_file().to_string_lossy().into_owned(),
    )
}

/// What every test worker runs with: `ENV=test` on 127.0.0.1, the database and the
/// Redis namespace given. The caller adds `WORKER_PORT` and its timings.
pub fn worker_env(database_url: &str, redis_url: &str, namespace: &str) -> Env {
    common(database_url, redis_url, namespace)
}
