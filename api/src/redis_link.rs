//! The api's one Redis: a link made once in `startup` (connected lazily, each call
//! bounded by `REDIS_TIMEOUT_MS`, skipped for a moment after a failure; see
//! [`RedisLink`]) and the namespace every key starts with (`REDIS_NAMESPACE`). The
//! cache views, the rate limit, the jobs and `/ready` all go through it; a Redis that
//! is down makes each of them go on without it, never fail the request.

use std::time::Duration;

use projections::cache::{RedisLink, ViewCache};

use crate::config::Settings;

/// The link and the namespace; clones share the one connection.
#[derive(Debug, Clone)]
pub struct Redis {
    link: RedisLink,
    namespace: String,
}

impl Redis {
    /// Connects on first use, so the api starts while Redis is down.
    pub fn new(settings: &Settings) -> Self {
        Self {
            link: RedisLink::new(settings.redis_url.expose(), settings.redis_timeout),
            namespace: settings.redis_namespace.clone(),
        }
    }

    pub fn link(&self) -> &RedisLink {
        &self.link
    }

    /// The prefix of every key (`{namespace}:…`); the worker uses the same.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The cache views on this link.
    pub fn view_cache(&self) -> ViewCache {
        ViewCache::with_link(self.link.clone(), self.namespace.clone())
    }

    /// Whether Redis answers `PING` within `timeout` (readiness).
    pub async fn ping(&self, timeout: Duration) -> bool {
        let ping = self
            .link
            .call(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await });
        tokio::time::timeout(timeout, ping)
            .await
            .ok()
            .flatten()
            .is_some()
    }
}
