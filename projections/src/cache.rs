//! Cache views in Redis: building and comp details and first list pages, stored as the
//! exact JSON bytes the api sends, with their `ETag`.
//!
//! - A detail entry holds the catalog *stamp* it was read at (the projection's place
//!   in the log); a write only replaces an entry with an older or equal stamp, so a
//!   slow reader can never put back what the worker has already refreshed.
//! - A list entry lives under the organisation's list *generation*, a random token the
//!   worker replaces after every batch that changed the organisation's rows; readers
//!   only look under the current one, so old pages are never read again and expire.
//! - Every key also carries the views' *generation*, moved on by every rebuild's swap
//!   (just before its transaction commits). A reader learns the
//!   generation in the same round trip as the entry, before it reads Postgres, so a
//!   view read from the old tables is only ever stored under the old generation, which
//!   no reader looks under again.
//! - The worker marks changed views from `cache_refresh_outbox`, written in the batch's
//!   transaction, so a mark lost to a crash or a Redis outage happens on the next pass:
//!   a detail gets a tombstone at the catalog's stamp (readers miss it and read
//!   Postgres; an older read offered late is refused), a list a new generation.
//!
//! Redis being down makes reads slower, never failing: every call has a short timeout,
//! and after a failure the cache is skipped for a moment instead of waiting each time.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::queries::CATALOG_STAMP_SQL;
use crate::ProjectionError;

/// How long a detail entry lives without being refreshed.
const DETAIL_TTL: Duration = Duration::from_secs(600);
/// How long a first list page lives (a new generation replaces it sooner).
const LIST_TTL: Duration = Duration::from_secs(120);
/// How long the cache is skipped after Redis failed to answer.
const BACKOFF: Duration = Duration::from_secs(1);

/// Replaces an entry unless it holds a newer stamp: KEYS[1]; ARGV stamp, version,
/// etag, body, ttl ms.
const OFFER_SCRIPT: &str = r"
local current = redis.call('HGET', KEYS[1], 's')
if current and current > ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 's', ARGV[1], 'v', ARGV[2], 'e', ARGV[3], 'b', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
";

/// A view to mark: organisation, view, its id, and the catalog's stamp when read.
type OutboxRow = (String, String, String, Option<String>);

/// A rendered view: the response body and its entity tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedView {
    /// The aggregate version a detail reflects (0 for lists).
    pub version: i64,
    /// A strong entity tag, quoted: `"…"`.
    pub etag: String,
    pub body: String,
}

impl CachedView {
    /// Renders `view` as JSON and tags it `"<version>-<digest of the bytes>"`: the
    /// digest changes with any byte (a building's comp statistics change without its
    /// version), and the version lets a client send a detail's tag back as `If-Match`.
    pub fn render(version: i64, view: &impl serde::Serialize) -> Self {
        let body = serde_json::to_string(view).unwrap_or_else(|_| "null".into());
        let digest = Sha256::digest(body.as_bytes());
        let etag = format!(
            "\"{version}-{}\"",
            digest[..12]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        Self {
            version,
            etag,
            body,
        }
    }
}

/// Which view an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewKey<'a> {
    Building {
        org_id: &'a str,
        id: Uuid,
    },
    Comp {
        org_id: &'a str,
        id: Uuid,
    },
    /// A first page: `list` names the list, `query` fingerprints its parameters.
    FirstPage {
        org_id: &'a str,
        generation: &'a str,
        list: &'a str,
        query: &'a str,
    },
}

/// Where an operation on the cache ended; counted by the callers' metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
    /// Redis did not answer (or is being skipped after failing).
    Unavailable,
}

/// A lazily (re)connected Redis that is skipped for a moment after it fails, so a
/// Redis outage costs each caller at most one short timeout per [`BACKOFF`].
#[derive(Clone)]
pub struct RedisLink {
    url: String,
    timeout: Duration,
    connection: Arc<Mutex<Option<ConnectionManager>>>,
    /// Unix milliseconds before which Redis is not tried.
    skip_until: Arc<AtomicU64>,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink").finish_non_exhaustive()
    }
}

impl RedisLink {
    pub fn new(url: impl Into<String>, timeout: Duration) -> Self {
        Self {
            url: url.into(),
            timeout,
            connection: Arc::new(Mutex::new(None)),
            skip_until: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A connection, unless Redis failed a moment ago.
    pub async fn connection(&self) -> Option<ConnectionManager> {
        if !self.available() {
            return None;
        }
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Some(connection.clone());
        }
        match tokio::time::timeout(self.timeout * 2, connect_redis(&self.url, self.timeout)).await {
            Ok(Ok(connection)) => {
                *slot = Some(connection.clone());
                Some(connection)
            }
            _ => {
                self.back_off();
                None
            }
        }
    }

    /// Whether Redis is being tried (it has not failed within the back-off).
    pub fn available(&self) -> bool {
        now_millis() >= self.skip_until.load(Ordering::Relaxed)
    }

    /// Stops trying Redis for [`BACKOFF`].
    pub fn back_off(&self) {
        self.skip_until
            .store(now_millis() + BACKOFF.as_millis() as u64, Ordering::Relaxed);
    }

    /// Runs one Redis call with the timeout; a failure starts the back-off.
    pub async fn call<T, F, Fut>(&self, call: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let connection = self.connection().await?;
        match tokio::time::timeout(self.timeout, call(connection)).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                tracing::debug!(error = %error, "redis call failed");
                self.back_off();
                None
            }
            Err(_) => {
                tracing::debug!("redis call timed out");
                self.back_off();
                None
            }
        }
    }
}

/// The cache views of one Redis namespace.
#[derive(Debug, Clone)]
pub struct ViewCache {
    link: RedisLink,
    namespace: String,
    /// The views' generation this process last saw (the keys it reads under).
    generation: Arc<AtomicI64>,
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// A Redis connection manager with timeouts that suit a request path: `timeout` for
/// each response, and a quick give-up when the server is not there.
pub async fn connect_redis(url: &str, timeout: Duration) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(timeout))
        .set_connection_timeout(Some(timeout))
        .set_number_of_retries(1);
    client.get_connection_manager_with_config(config).await
}

impl ViewCache {
    /// A cache on `link` under `namespace`; nothing is connected until first used.
    pub fn with_link(link: RedisLink, namespace: impl Into<String>) -> Self {
        Self {
            link,
            namespace: namespace.into(),
            generation: Arc::new(AtomicI64::new(0)),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The Redis connection the cache uses.
    pub fn link(&self) -> &RedisLink {
        &self.link
    }

    fn key(&self, key: &ViewKey<'_>, views: i64) -> String {
        let ns = &self.namespace;
        match key {
            ViewKey::Building { org_id, id } => {
                format!("{ns}:view:{views}:building:{org_id}:{id}")
            }
            ViewKey::Comp { org_id, id } => format!("{ns}:view:{views}:comp:{org_id}:{id}"),
            ViewKey::FirstPage {
                org_id,
                generation,
                list,
                query,
            } => format!("{ns}:view:{views}:{list}:{org_id}:{generation}:{query}"),
        }
    }

    fn views_generation_key(&self) -> String {
        format!("{}:views:generation", self.namespace)
    }

    fn generation_key(&self, org_id: &str) -> String {
        format!("{}:lists:generation:{org_id}", self.namespace)
    }

    async fn call<T, F, Fut>(&self, call: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        self.link.call(call).await
    }

    /// The entry for `key`, if Redis has it, and the views' generation it was looked
    /// up under (store what is read next under the same one). One round trip.
    pub async fn get(&self, key: &ViewKey<'_>) -> (CacheOutcome, Option<CachedView>, i64) {
        let remembered = self.generation.load(Ordering::Relaxed);
        let entry = self.key(key, remembered);
        let generation_key = self.views_generation_key();
        type Fields = (Option<String>, Option<String>, Option<String>);
        let found: Option<(Option<i64>, Fields)> = self
            .call(|mut c| async move {
                redis::pipe()
                    .cmd("GET")
                    .arg(&generation_key)
                    .cmd("HMGET")
                    .arg(&entry)
                    .arg("v")
                    .arg("e")
                    .arg("b")
                    .query_async(&mut c)
                    .await
            })
            .await;
        let Some((current, fields)) = found else {
            return (CacheOutcome::Unavailable, None, remembered);
        };
        let current = current.unwrap_or(0);
        if current != remembered {
            // A swap (or a flushed Redis): what was looked up is not this generation's.
            self.generation.store(current, Ordering::Relaxed);
            return (CacheOutcome::Miss, None, current);
        }
        match fields {
            (version, Some(etag), Some(body)) => (
                CacheOutcome::Hit,
                Some(CachedView {
                    version: version.and_then(|v| v.parse().ok()).unwrap_or_default(),
                    etag,
                    body,
                }),
                current,
            ),
            _ => (CacheOutcome::Miss, None, current),
        }
    }

    /// The views' generation, from Redis (`None` when it does not answer).
    pub async fn generation(&self) -> Option<i64> {
        let key = self.views_generation_key();
        let current: Option<Option<i64>> = self
            .call(|mut c| async move { c.get::<_, Option<i64>>(&key).await })
            .await;
        let current = current?.unwrap_or(0);
        self.generation.store(current, Ordering::Relaxed);
        Some(current)
    }

    /// Moves the views to a new generation (a rebuild's swap, just before it commits):
    /// a number never used before, so whatever happens to the swap, views read before
    /// this are never looked up again. `None` when Redis did not answer.
    pub async fn next_generation(&self) -> Option<i64> {
        let key = self.views_generation_key();
        self.call(|mut c| async move { c.incr::<_, _, i64>(&key, 1).await })
            .await
    }

    /// Stores `view` for `key` under the views' `generation` (the one [`Self::get`] or
    /// [`Self::list_generation`] gave before the view was read) at `stamp`, unless a
    /// newer read is there already.
    pub async fn offer(&self, key: &ViewKey<'_>, generation: i64, stamp: &str, view: &CachedView) {
        let ttl = match key {
            ViewKey::FirstPage { .. } => LIST_TTL,
            _ => DETAIL_TTL,
        };
        let key = self.key(key, generation);
        let _: Option<i64> = self
            .call(|mut c| async move {
                redis::Script::new(OFFER_SCRIPT)
                    .key(&key)
                    .arg(stamp)
                    .arg(view.version)
                    .arg(&view.etag)
                    .arg(&view.body)
                    .arg(ttl.as_millis() as u64)
                    .invoke_async(&mut c)
                    .await
            })
            .await;
    }

    /// Removes the entry for `key` under the views' `generation`.
    pub async fn remove(&self, key: &ViewKey<'_>, generation: i64) -> bool {
        let key = self.key(key, generation);
        self.call(|mut c| async move { c.del::<_, i64>(&key).await })
            .await
            .is_some()
    }

    /// The views' generation and the organisation's current list generation (made if
    /// there is none), in one round trip; `None` when Redis is unavailable.
    pub async fn list_generation(&self, org_id: &str) -> Option<(i64, String)> {
        let views = self.views_generation_key();
        let key = self.generation_key(org_id);
        let fresh = Uuid::new_v4().simple().to_string();
        // SET … NX GET answers the current token, or nil when it set ours.
        let sent = fresh.clone();
        let (generation, current): (Option<i64>, Option<String>) = self
            .call(|mut c| async move {
                redis::pipe()
                    .cmd("GET")
                    .arg(&views)
                    .cmd("SET")
                    .arg(&key)
                    .arg(&sent)
                    .arg("NX")
                    .arg("GET")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let generation = generation.unwrap_or(0);
        self.generation.store(generation, Ordering::Relaxed);
        Some((generation, current.unwrap_or(fresh)))
    }

    /// Starts a new list generation for the organisation: cached pages are not read again.
    pub async fn new_list_generation(&self, org_id: &str) -> bool {
        let key = self.generation_key(org_id);
        let fresh = Uuid::new_v4().simple().to_string();
        self.call(|mut c| async move { c.set::<_, _, ()>(&key, &fresh).await })
            .await
            .is_some()
    }

    /// Marks up to `limit` views the outbox names as changed; returns how many. A
    /// detail gets a *tombstone* — no body, the catalog's current stamp — so the next
    /// reader misses it and reads Postgres, and a read from before the change, offered
    /// late, is refused for its older stamp; a list gets its organisation's new
    /// generation. Two statements and one Redis round trip however many views; rows
    /// stay in the outbox when Redis does not answer, for the next pass.
    pub async fn refresh_from_outbox(
        &self,
        pool: &PgPool,
        limit: i64,
    ) -> Result<usize, ProjectionError> {
        let mut tx = pool.begin().await?;
        let rows: Vec<OutboxRow> = sqlx::query_as(&format!(
            "SELECT org_id, view, view_id, {CATALOG_STAMP_SQL} AS stamp FROM cache_refresh_outbox
              ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED"
        ))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        let Some(generation) = self.generation().await else {
            return Ok(0);
        };
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (org_id, view, view_id, stamp) in &rows {
            match (view.as_str(), Uuid::parse_str(view_id)) {
                ("lists", _) => {
                    pipe.cmd("SET")
                        .arg(self.generation_key(org_id))
                        .arg(Uuid::new_v4().simple().to_string())
                        .ignore();
                }
                ("building" | "comp", Ok(id)) => {
                    let key = if view == "building" {
                        ViewKey::Building { org_id, id }
                    } else {
                        ViewKey::Comp { org_id, id }
                    };
                    let key = self.key(&key, generation);
                    pipe.cmd("DEL").arg(&key).ignore();
                    pipe.cmd("HSET")
                        .arg(&key)
                        .arg("s")
                        .arg(stamp.as_deref().unwrap_or_default())
                        .ignore();
                    pipe.cmd("PEXPIRE")
                        .arg(&key)
                        .arg(DETAIL_TTL.as_millis() as u64)
                        .ignore();
                }
                _ => {}
            }
        }
        let marked: Option<()> = self
            .call(|mut c| async move { pipe.query_async(&mut c).await })
            .await;
        if marked.is_none() {
            return Ok(0);
        }
        let column =
            |f: fn(&OutboxRow) -> &String| rows.iter().map(|r| f(r).clone()).collect::<Vec<_>>();
        sqlx::query(
            "DELETE FROM cache_refresh_outbox o
              USING unnest($1::text[], $2::text[], $3::text[]) AS d(org_id, view, view_id)
              WHERE o.org_id = d.org_id AND o.view = d.view AND o.view_id = d.view_id",
        )
        .bind(column(|r| &r.0))
        .bind(column(|r| &r.1))
        .bind(column(|r| &r.2))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.len())
    }
}
