//! Serving read-model views: from the Redis cache when it has them, else from the
//! projections (and then into the cache), with `ETag`/`If-None-Match`, and with
//! `min_position` (any read) and `min_version` (a detail) waits for read-your-writes.
//! The body is the view's JSON exactly as cached; [`JsonView`] documents its schema
//! with the operation's output type.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use poem::http::header;
use poem::{IntoResponse, Response};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use projections::cache::{CacheOutcome, CachedView, ViewCache, ViewKey};
use projections::queries::{as_of, cursor, Page, QueryError};
use projections::Projection;
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::{Actor, Scope};
use crate::metrics::ApiMetrics;
use crate::problem::ApiError;

/// The longest a read waits for `min_version` or `min_position`.
pub const MAX_VERSION_WAIT: Duration = Duration::from_secs(2);
const VERSION_POLL: Duration = Duration::from_millis(20);

/// A JSON body rendered elsewhere (the cache, a projection view) whose schema is `T`'s.
#[derive(Debug)]
pub struct JsonView<T> {
    body: String,
    _schema: PhantomData<fn() -> T>,
}

impl<T> JsonView<T> {
    pub fn new(body: String) -> Self {
        Self {
            body,
            _schema: PhantomData,
        }
    }

    /// `value` as JSON: a view read from the projections without the cache.
    pub fn serialize(value: &impl serde::Serialize) -> Result<Self, ApiError> {
        serde_json::to_string(value)
            .map(Self::new)
            .map_err(|error| ApiError::Internal(error.into()))
    }
}

impl<T: Type> Payload for JsonView<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Send> IntoResponse for JsonView<T> {
    fn into_response(self) -> Response {
        Response::builder()
            .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(self.body)
    }
}

/// How a read ended.
#[derive(Debug)]
pub enum Read {
    /// The view; `lagging` when it is older than the `min_version` asked for.
    Found { view: CachedView, lagging: bool },
    /// The client's copy (`If-None-Match`) is current.
    NotModified { etag: String },
}

/// What a read reflects of the writes its client asked for with `min_position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// None asked: any committed state will do, and the cache may answer.
    Any,
    /// The projection reflects every event up to `min_position`: read it, not the
    /// cache (whose invalidation may still be on its way).
    Reached,
    /// It did not within [`MAX_VERSION_WAIT`]: the answer is what there is, with
    /// `Projection-Lagging: true`.
    Lagging,
}

impl Freshness {
    pub fn lagging(self) -> bool {
        self == Self::Lagging
    }

    /// The `Projection-Lagging` header's value.
    pub fn header(self) -> Option<String> {
        self.lagging().then(|| "true".to_owned())
    }
}

/// Whether `if_none_match` names `etag` (or is `*`).
fn matches(if_none_match: Option<&str>, etag: &str) -> bool {
    if_none_match.is_some_and(|header| {
        header.split(',').map(str::trim).any(|tag| {
            tag == "*" || tag == etag || tag.strip_prefix("W/").is_some_and(|t| t == etag)
        })
    })
}

/// `view`, or `304` when `if_none_match` names its tag — never while lagging: a `304`
/// would tell a client that its copy is current when the read side is only behind.
pub fn conditional(view: CachedView, lagging: bool, if_none_match: Option<&str>) -> Read {
    if !lagging && matches(if_none_match, &view.etag) {
        Read::NotModified { etag: view.etag }
    } else {
        Read::Found { view, lagging }
    }
}

/// Which detail to read.
#[derive(Debug, Clone, Copy)]
pub enum Detail {
    Building(Uuid),
    Comp(Uuid),
}

impl Detail {
    /// The view's name in metrics.
    fn view(self) -> &'static str {
        match self {
            Self::Building(_) => "building",
            Self::Comp(_) => "comp",
        }
    }

    /// The scope reading it needs.
    fn scope(self) -> Scope {
        match self {
            Self::Building(_) => Scope::BuildingsRead,
            Self::Comp(_) => Scope::CompsRead,
        }
    }
}

/// The read side as the endpoints use it.
#[derive(Debug, Clone)]
pub struct Views {
    pub pool: PgPool,
    pub cache: ViewCache,
    pub metrics: Arc<ApiMetrics>,
    /// Permits for `as_of` reads at once ([`HISTORY_READS`]).
    pub history: Arc<tokio::sync::Semaphore>,
}

/// How many `as_of` reads one api process folds at once: each is a connection of its
/// own and a few temporary tables. More wait (up to [`MAX_VERSION_WAIT`]), then `503`.
pub const HISTORY_READS: usize = 4;

/// `as_of` reads the log itself: a wait for the read side (`min_version`,
/// `min_position`) or an embedding from it (`expand`) does not go with it (400 naming
/// both).
pub fn as_of_alone(as_of: bool, others: &[(&'static str, bool)]) -> Result<(), ApiError> {
    let Some((other, _)) = others.iter().find(|(_, given)| *given).filter(|_| as_of) else {
        return Ok(());
    };
    Err(two_parameters(
        ("as_of", format!("does not go with {other}")),
        (other, "does not go with as_of".to_owned()),
        format!("as_of reads the event log itself: leave out {other}"),
    ))
}

impl Views {
    /// A read transaction as the caller's organisation, under row-level security
    /// (see [`projections::queries::begin_as`]). Every read of the read models goes
    /// through one.
    pub async fn read_as(
        &self,
        org_id: &str,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, QueryError> {
        Ok(projections::queries::begin_as(&self.pool, org_id).await?)
    }

    /// Waits (up to [`MAX_VERSION_WAIT`]) until `projection` reflects every event up
    /// to `min_position`.
    pub async fn freshness(
        &self,
        projection: Projection,
        min_position: Option<u64>,
    ) -> Result<Freshness, ApiError> {
        let deadline = tokio::time::Instant::now() + MAX_VERSION_WAIT;
        self.freshness_by(projection, min_position, deadline).await
    }

    /// [`Self::freshness`], waiting until `deadline` at most (a poll that would end
    /// later, waiting for a connection say, is cut short: the read lags).
    async fn freshness_by(
        &self,
        projection: Projection,
        min_position: Option<u64>,
        deadline: tokio::time::Instant,
    ) -> Result<Freshness, ApiError> {
        let Some(position) = min_position else {
            return Ok(Freshness::Any);
        };
        let position = i64::try_from(position).unwrap_or(i64::MAX);
        loop {
            let poll = projection.reflects(&self.pool, position);
            let Ok(reflects) = tokio::time::timeout_at(deadline, poll).await else {
                return Ok(Freshness::Lagging);
            };
            let reflects = reflects.map_err(|error| query_error(error.into()))?;
            if reflects {
                return Ok(Freshness::Reached);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Freshness::Lagging);
            }
            tokio::time::sleep(VERSION_POLL).await;
        }
    }

    /// A read transaction as `org_id` ([`Self::read_as`]) once `projection` reflects
    /// `min_position` (or [`MAX_VERSION_WAIT`] has passed: see the freshness), for the
    /// reads that are not cached (history, market statistics, the audit log).
    pub async fn read_after(
        &self,
        org_id: &str,
        projection: Projection,
        min_position: Option<u64>,
    ) -> Result<(sqlx::Transaction<'static, sqlx::Postgres>, Freshness), ApiError> {
        let freshness = self.freshness(projection, min_position).await?;
        let tx = self.read_as(org_id).await.map_err(query_error)?;
        Ok((tx, freshness))
    }

    async fn load(
        &self,
        org_id: &str,
        detail: Detail,
    ) -> Result<Option<(CachedView, String)>, QueryError> {
        let mut tx = self.read_as(org_id).await?;
        Ok(match detail {
            Detail::Building(id) => projections::queries::buildings::detail(&mut *tx, org_id, id)
                .await?
                .map(|(view, stamp)| (CachedView::render(view.building.version, &view), stamp)),
            Detail::Comp(id) => projections::queries::comps::detail(&mut *tx, org_id, id)
                .await?
                .map(|(view, stamp)| (CachedView::render(view.version, &view), stamp)),
        })
    }

    /// A detail view: cached, or read (waiting up to [`MAX_VERSION_WAIT`] for
    /// `min_version` and `min_position`) and cached. `None` when the organisation has
    /// no such resource.
    pub async fn detail(
        &self,
        actor: &Actor,
        detail: Detail,
        min_version: Option<u64>,
        min_position: Option<u64>,
        if_none_match: Option<&str>,
    ) -> Result<Option<Read>, ApiError> {
        actor.require(detail.scope())?;
        // One deadline for both waits.
        let deadline = tokio::time::Instant::now() + MAX_VERSION_WAIT;
        let freshness = self
            .freshness_by(Projection::CATALOG, min_position, deadline)
            .await?;
        let org_id = actor.org_id.as_str();
        let key = match detail {
            Detail::Building(id) => ViewKey::Building { org_id, id },
            Detail::Comp(id) => ViewKey::Comp { org_id, id },
        };
        let wanted = min_version.map_or(0, |v| i64::try_from(v).unwrap_or(i64::MAX));
        let (outcome, cached, generation) = self.cache.get(&key).await;
        self.metrics.cache(detail.view(), outcome);
        if let Some(view) = cached.filter(|view| view.version >= wanted) {
            if freshness == Freshness::Any {
                return Ok(Some(conditional(view, false, if_none_match)));
            }
        }
        loop {
            let loaded = self.load(org_id, detail).await.map_err(query_error)?;
            let reached = loaded
                .as_ref()
                .is_some_and(|(view, _)| view.version >= wanted);
            // Once the catalog reflects the client's writes, a detail it lacks is not
            // on its way (unless a `min_version` names a later write).
            let settled = freshness == Freshness::Reached && min_version.is_none();
            if reached || settled || tokio::time::Instant::now() >= deadline {
                return Ok(match loaded {
                    Some((view, stamp)) => {
                        if reached && outcome != CacheOutcome::Unavailable {
                            self.cache.offer(&key, generation, &stamp, &view).await;
                        }
                        let lagging = !reached || freshness.lagging();
                        Some(conditional(view, lagging, if_none_match))
                    }
                    None => None,
                });
            }
            tokio::time::sleep(VERSION_POLL).await;
        }
    }

    /// A detail as it was at `at`, folded from the event log (never cached: such
    /// reads are rare and each instant is its own). `None` when it did not exist then.
    pub async fn as_of(
        &self,
        actor: &Actor,
        detail: Detail,
        at: chrono::DateTime<chrono::Utc>,
        if_none_match: Option<&str>,
    ) -> Result<Option<Read>, ApiError> {
        actor.require(detail.scope())?;
        let org_id = actor.org_id.as_str();
        let Ok(Ok(_permit)) = tokio::time::timeout(MAX_VERSION_WAIT, self.history.acquire()).await
        else {
            return Err(ApiError::Unavailable(
                "too many history reads at once".into(),
            ));
        };
        let view = match detail {
            Detail::Building(id) => as_of::building(&self.pool, org_id, id, at)
                .await
                .map_err(query_error)?
                .map(|(view, _)| CachedView::render(view.building.version, &view)),
            Detail::Comp(id) => as_of::comp(&self.pool, org_id, id, at)
                .await
                .map_err(query_error)?
                .map(|(view, _)| CachedView::render(view.version, &view)),
        };
        Ok(view.map(|view| conditional(view, false, if_none_match)))
    }

    /// A list page of the catalog, once it reflects `min_position`; a cacheable page
    /// read without `min_position` is served from and kept in the cache under the
    /// organisation's current list generation and the list's key. `query` runs in the
    /// organisation's read transaction ([`Self::read_as`]).
    pub async fn list<T, F, Fut>(
        &self,
        org_id: &str,
        read: ListRead<'_>,
        if_none_match: Option<&str>,
        query: F,
    ) -> Result<Read, ApiError>
    where
        T: serde::Serialize,
        F: FnOnce(sqlx::Transaction<'static, sqlx::Postgres>) -> Fut,
        Fut: std::future::Future<Output = Result<Page<T>, QueryError>>,
    {
        let ListRead {
            list,
            key: list_key,
            cacheable,
            min_position,
        } = read;
        let freshness = self.freshness(Projection::CATALOG, min_position).await?;
        let generations = if cacheable && freshness == Freshness::Any {
            self.cache.list_generation(org_id).await
        } else {
            None
        };
        let fingerprint = cursor::fingerprint(list_key);
        let key = generations.as_ref().map(|(views, generation)| {
            (
                *views,
                ViewKey::FirstPage {
                    org_id,
                    generation,
                    list,
                    query: &fingerprint,
                },
            )
        });
        let mut generation = None;
        if let Some((_, key)) = &key {
            let (outcome, cached, views) = self.cache.get(key).await;
            self.metrics.cache(list, outcome);
            if let Some(view) = cached {
                return Ok(conditional(view, false, if_none_match));
            }
            generation = Some(views);
        }
        let tx = self.read_as(org_id).await.map_err(query_error)?;
        let page = query(tx).await.map_err(query_error)?;
        let view = CachedView::render(0, &page);
        if let (Some((_, key)), Some(generation)) = (&key, generation) {
            self.cache.offer(key, generation, "0", &view).await;
        }
        Ok(conditional(view, freshness.lagging(), if_none_match))
    }
}

/// Which list page a [`Views::list`] reads.
#[derive(Debug, Clone, Copy)]
pub struct ListRead<'a> {
    /// The list's name (metrics, cache keys).
    pub list: &'static str,
    /// The list's parameters written out explicitly (never `Debug` output, whose form
    /// may change with any release): the cursors' and the cache's key.
    pub key: &'a str,
    /// Whether the page may come from and go to the cache (a first page whose
    /// parameters repeat).
    pub cacheable: bool,
    /// `min_position`: see [`Views::freshness`].
    pub min_position: Option<u64>,
}

/// Refuses a range that ends before it starts (400 naming both bounds), which would
/// otherwise answer an empty page as if nothing matched.
pub fn ordered<T: PartialOrd>(
    (from_name, from): (&'static str, Option<&T>),
    (to_name, to): (&'static str, Option<&T>),
) -> Result<(), ApiError> {
    match (from, to) {
        (Some(from), Some(to)) if from > to => Err(two_parameters(
            (from_name, format!("is after {to_name}")),
            (to_name, format!("is before {from_name}")),
            format!("{from_name} must not be after {to_name}"),
        )),
        _ => Ok(()),
    }
}

/// A 400 for two query parameters that do not go together, naming both.
fn two_parameters(
    (first, first_message): (&str, String),
    (second, second_message): (&str, String),
    detail: String,
) -> ApiError {
    let mut errors = domain::values::FieldErrors::default();
    errors.push(first, first_message);
    errors.push(second, second_message);
    ApiError::MalformedRequest { detail, errors }
}

/// Maps a read-side failure to the client's problem.
pub fn query_error(error: QueryError) -> ApiError {
    match error {
        QueryError::Invalid { field, message } => ApiError::MalformedRequest {
            detail: format!("{field} {message}"),
            errors: domain::values::FieldErrors::single(field, message),
        },
        QueryError::Database(error) => ApiError::Unavailable(error.to_string()),
        QueryError::History(message) => ApiError::Internal(anyhow::anyhow!(message)),
    }
}

/// Declares the responses of a view operation: 200 with the body, its `ETag` and
/// `Cache-Control`, and `Projection-Lagging` when `min_version` was not reached; or 304.
macro_rules! view_response {
    ($name:ident, $out:ty) => {
        #[derive(Debug, poem_openapi::ApiResponse)]
        pub enum $name {
            /// The view.
            #[oai(status = 200)]
            Ok(
                $crate::views::JsonView<$out>,
                #[oai(header = "ETag")] String,
                #[oai(header = "Cache-Control")] String,
                /// `true` when the read side had not reached `min_version` or
                /// `min_position` in time: the answer is what it had.
                #[oai(header = "Projection-Lagging")]
                Option<String>,
            ),
            /// The copy named in `If-None-Match` is current.
            #[oai(status = 304)]
            NotModified(#[oai(header = "ETag")] String),
        }

        impl From<$crate::views::Read> for $name {
            fn from(read: $crate::views::Read) -> Self {
                match read {
                    $crate::views::Read::Found { view, lagging } => Self::Ok(
                        $crate::views::JsonView::new(view.body),
                        view.etag,
                        "private, no-cache".to_owned(),
                        lagging.then(|| "true".to_owned()),
                    ),
                    $crate::views::Read::NotModified { etag } => Self::NotModified(etag),
                }
            }
        }
    };
}
pub(crate) use view_response;

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        assert!(matches(Some("\"abc\""), "\"abc\""));
        assert!(matches(Some("\"x\", W/\"abc\""), "\"abc\""));
        assert!(matches(Some("*"), "\"abc\""));
        assert!(!matches(Some("\"abd\""), "\"abc\""));
        assert!(!matches(None, "\"abc\""));
    }
}
