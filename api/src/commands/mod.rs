//! The write side: one request, one command, one atomic append.
//!
//! [`WriteSide::execute`] loads the aggregate from the event store, lets it decide,
//! checks `If-Match`, and commits the events with the request's metadata through the
//! cqrs-es event store, returning the new version (which `CqrsFramework::execute`
//! would not). A keyed command (`Idempotency-Key`) answers a retry with its first
//! result. Without `If-Match`, a commit that loses a race to another writer is
//! decided again on the new state (a few times); with it, the race is a conflict.

mod event_log;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, AggregateError, EventStore};
use domain::values::{BuildingId, OrgId};
use domain::{
    Building, BuildingCommand, BuildingDirectory, BuildingStatus, Comp, CompCommand, CompServices,
    DomainError, Scoped,
};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

pub use event_log::EventLog;
use event_log::{capturing_position, metadata};

use crate::auth::Actor;
use crate::jobs::JobQueue;
use crate::problem::ApiError;
use crate::request_id::RequestId;

type Store<A> = PersistedEventStore<EventLog, A>;

/// The aggregate a command is for.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// One that may have events.
    Existing(Uuid),
    /// One whose id was just made for this command.
    New(Uuid),
}

/// How often a command without `If-Match` is decided again after losing a race.
const RACE_RETRIES: usize = 3;

/// The result of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub id: Uuid,
    /// The aggregate's version after the command (unchanged when nothing was recorded).
    pub version: u64,
    /// Whether this is the stored first result of an earlier request with the same key.
    pub replayed: bool,
    /// The global position of the aggregate's event at `version` (0 before its first):
    /// a read given it as `min_position` reflects this command.
    pub position: u64,
}

/// A client's `Idempotency-Key` and the fingerprint of the request it came with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
}

impl Idempotency {
    /// The longest key.
    pub const MAX_LEN: usize = 255;

    /// Keys are 1–255 printable ASCII characters (no spaces), as Stripe's.
    pub fn parse(key: &str, request_fingerprint: &str) -> Result<Self, ApiError> {
        let well_formed = !key.is_empty()
            && key.len() <= Self::MAX_LEN
            && key.bytes().all(|b| b.is_ascii_graphic());
        if !well_formed {
            return Err(ApiError::MalformedRequest {
                detail: "Idempotency-Key must be 1 to 255 printable ASCII characters".into(),
                errors: domain::values::FieldErrors::single(
                    "Idempotency-Key",
                    "must be 1 to 255 printable ASCII characters",
                ),
            });
        }
        Ok(Self {
            key: key.to_owned(),
            request_hash: hex(&Sha256::digest(request_fingerprint.as_bytes())),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Everything about a command request besides the command itself.
#[derive(Debug, Clone)]
pub struct CommandContext {
    pub actor: Actor,
    pub request_id: RequestId,
    pub idempotency: Option<Idempotency>,
    /// From `If-Match`: the version the client last saw.
    pub expected_version: Option<u64>,
}

impl CommandContext {
    fn metadata(&self) -> HashMap<String, String> {
        let mut metadata = HashMap::from([
            (
                metadata::ORG_ID.to_owned(),
                self.actor.org_id.as_str().to_owned(),
            ),
            (
                metadata::USER_ID.to_owned(),
                self.actor.user_id.as_str().to_owned(),
            ),
            (metadata::REQUEST_ID.to_owned(), self.request_id.to_string()),
            (
                metadata::RECORDED_AT.to_owned(),
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            ),
        ]);
        if let Some(idempotency) = &self.idempotency {
            metadata.insert(
                metadata::IDEMPOTENCY_KEY.to_owned(),
                idempotency.key.clone(),
            );
            metadata.insert(
                metadata::IDEMPOTENCY_REQUEST_HASH.to_owned(),
                idempotency.request_hash.clone(),
            );
        }
        metadata
    }
}

/// Parses `If-Match`: a version as `3`, `"3"` or `W/"3"` (a command's `ETag`), or a
/// detail read's `ETag`, `"3-<digest>"`, whose version is what it names.
pub fn parse_if_match(raw: Option<&str>) -> Result<Option<u64>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let trimmed = raw.trim();
    let unquoted = trimmed
        .strip_prefix("W/")
        .unwrap_or(trimmed)
        .trim_matches('"');
    let version = match unquoted.split_once('-') {
        Some((version, digest))
            if !digest.is_empty() && digest.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            version
        }
        _ => unquoted,
    };
    version
        .parse()
        .map(Some)
        .map_err(|_| ApiError::MalformedRequest {
            detail: "If-Match must be a version number, e.g. \"3\"".into(),
            errors: domain::values::FieldErrors::single("If-Match", "must be a version number"),
        })
}

/// Commands in, events out.
pub struct WriteSide {
    log: EventLog,
    buildings: Store<Building>,
    comps: Store<Comp>,
    comp_services: CompServices,
    /// Wakes the worker after each commit.
    jobs: JobQueue,
}

impl std::fmt::Debug for WriteSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteSide").finish_non_exhaustive()
    }
}

impl WriteSide {
    pub fn new(pool: PgPool, jobs: JobQueue) -> Self {
        let log = EventLog::new(pool);
        let directory = EventStoreBuildings {
            store: PersistedEventStore::new_event_store(log.clone()),
        };
        Self {
            buildings: PersistedEventStore::new_event_store(log.clone()),
            comps: PersistedEventStore::new_event_store(log.clone()),
            comp_services: CompServices::new(Arc::new(directory)),
            log,
            jobs,
        }
    }

    pub async fn building(
        &self,
        id: BuildingId,
        command: BuildingCommand,
        context: &CommandContext,
    ) -> Result<Committed, ApiError> {
        self.execute(
            &self.buildings,
            &(),
            Target::Existing(id.0),
            command,
            context,
        )
        .await
    }

    /// A command that creates a building under an id just made for it: there is
    /// nothing to load.
    pub async fn new_building(
        &self,
        id: BuildingId,
        command: BuildingCommand,
        context: &CommandContext,
    ) -> Result<Committed, ApiError> {
        self.execute(&self.buildings, &(), Target::New(id.0), command, context)
            .await
    }

    pub async fn comp(
        &self,
        id: domain::values::CompId,
        command: CompCommand,
        context: &CommandContext,
    ) -> Result<Committed, ApiError> {
        self.execute(
            &self.comps,
            &self.comp_services,
            Target::Existing(id.0),
            command,
            context,
        )
        .await
    }

    /// A command that creates a comp under an id just made for it.
    pub async fn new_comp(
        &self,
        id: domain::values::CompId,
        command: CompCommand,
        context: &CommandContext,
    ) -> Result<Committed, ApiError> {
        self.execute(
            &self.comps,
            &self.comp_services,
            Target::New(id.0),
            command,
            context,
        )
        .await
    }

    async fn execute<A, C>(
        &self,
        store: &Store<A>,
        services: &A::Services,
        target: Target,
        command: C,
        context: &CommandContext,
    ) -> Result<Committed, ApiError>
    where
        A: Aggregate<Command = Scoped<C>, Error = DomainError>,
        C: Clone,
    {
        if let Some(first) = self.first_result(context).await? {
            return first;
        }
        let (result, appended) = self.decide(store, services, target, command, context).await;
        if appended {
            hold_after_commit(context.request_id.as_str()).await;
            self.jobs.announce_commit(context.request_id.as_str());
        }
        // A keyed duplicate that raced the first request past the check above now
        // sees the first request's state (a no-op or a refusal): answer it with the
        // first result instead.
        if !appended {
            if let Some(first) = self.first_result(context).await? {
                return first;
            }
        }
        result
    }

    /// Decides and commits, retrying lost races; says whether events were appended.
    async fn decide<A, C>(
        &self,
        store: &Store<A>,
        services: &A::Services,
        target: Target,
        command: C,
        context: &CommandContext,
    ) -> (Result<Committed, ApiError>, bool)
    where
        A: Aggregate<Command = Scoped<C>, Error = DomainError>,
        C: Clone,
    {
        let (id, mut fresh) = match target {
            Target::Existing(id) => (id, false),
            Target::New(id) => (id, true),
        };
        let aggregate_id = id.to_string();
        let mut races = 0;
        loop {
            let loaded = if fresh {
                // An id made for this command has no events: nothing to read.
                Ok(cqrs_es::persist::EventStoreAggregateContext {
                    aggregate_id: aggregate_id.clone(),
                    aggregate: A::default(),
                    current_sequence: 0,
                    current_snapshot: None,
                })
            } else {
                store.load_aggregate(&aggregate_id).await
            };
            fresh = false;
            let mut loaded = match loaded {
                Ok(loaded) => loaded,
                Err(error) => return (Err(store_error(error)), false),
            };
            let current = loaded.current_sequence as u64;
            let sink = EventSink::default();
            let scoped = Scoped {
                org_id: context.actor.org_id.clone(),
                command: command.clone(),
            };
            if let Err(refused) = loaded.aggregate.handle(scoped, services, &sink).await {
                return (Err(refused.into()), false);
            }
            if let Some(expected) = context.expected_version {
                if expected != current {
                    let conflict = ApiError::VersionConflict {
                        current: Some(current),
                    };
                    return (Err(conflict), false);
                }
            }
            let events = sink.collect().await;
            if events.is_empty() {
                let unchanged = self
                    .position_of(A::TYPE, id, current)
                    .await
                    .map(|position| Committed {
                        id,
                        version: current,
                        replayed: false,
                        position,
                    });
                return (unchanged, false);
            }
            let commit = store.commit(events, loaded, context.metadata());
            match capturing_position(commit).await {
                (Ok(committed), position) => {
                    let last = committed.last().map_or(0, |e| e.sequence);
                    let done = Committed {
                        id,
                        version: last as u64,
                        replayed: false,
                        position: position.map_or(0, |p| u64::try_from(p).unwrap_or_default()),
                    };
                    return (Ok(done), true);
                }
                // Another writer appended first (or a keyed duplicate won).
                (Err(AggregateError::AggregateConflict), _) => {
                    if let Ok(Some(first)) = self.first_result(context).await {
                        return (first, false);
                    }
                    if context.expected_version.is_some() {
                        return (Err(ApiError::VersionConflict { current: None }), false);
                    }
                    races += 1;
                    if races > RACE_RETRIES {
                        return (Err(ApiError::ConcurrentModification), false);
                    }
                }
                (Err(other), _) => return (Err(store_error(other)), false),
            }
        }
    }

    /// The global position of `id`'s event at `version` (0 at version 0).
    async fn position_of(
        &self,
        aggregate_type: &str,
        id: Uuid,
        version: u64,
    ) -> Result<u64, ApiError> {
        if version == 0 {
            return Ok(0);
        }
        let position = self
            .log
            .position_of(aggregate_type, &id.to_string(), version)
            .await
            .map_err(ApiError::from_database)?;
        Ok(position.map_or(0, |p| u64::try_from(p).unwrap_or_default()))
    }

    /// The stored answer to a keyed request already served, or a refusal when the
    /// key was first used with another request.
    async fn first_result(
        &self,
        context: &CommandContext,
    ) -> Result<Option<Result<Committed, ApiError>>, ApiError> {
        let Some(idempotency) = &context.idempotency else {
            return Ok(None);
        };
        let first = self
            .log
            .first_result(context.actor.org_id.as_str(), &idempotency.key)
            .await
            .map_err(ApiError::from_database)?;
        let Some(first) = first else {
            return Ok(None);
        };
        if first.request_hash != idempotency.request_hash {
            return Ok(Some(Err(ApiError::IdempotencyKeyReused)));
        }
        let id = Uuid::parse_str(&first.aggregate_id)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored aggregate id: {e}")))?;
        let position = self
            .position_of(&first.aggregate_type, id, first.version)
            .await?;
        Ok(Some(Ok(Committed {
            id,
            version: first.version,
            replayed: true,
            position,
        })))
    }
}

/// A test hook, inert unless `PRISM_TEST_HOLD_AFTER_COMMIT` is set (read once; nothing
/// sets it outside the fault tests). When it names a path, every command whose events
/// committed writes its request id there and then sleeps `PRISM_TEST_HOLD_MS` (default
/// 30000) before the wake-up and the response. So a test can `kill -9` the api between
/// the commit and the answer (`an_api_killed_between_commit_and_response_loses_nothing`,
/// api/tests/api/crash.rs).
async fn hold_after_commit(request_id: &str) {
    static HOLD: std::sync::OnceLock<Option<(std::path::PathBuf, std::time::Duration)>> =
        std::sync::OnceLock::new();
    let Some((marker, hold)) = HOLD.get_or_init(|| {
        let marker = std::env::var_os("PRISM_TEST_HOLD_AFTER_COMMIT")?;
        let millis = std::env::var("PRISM_TEST_HOLD_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(30_000);
        Some((marker.into(), std::time::Duration::from_millis(millis)))
    }) else {
        return;
    };
    if let Err(error) = std::fs::write(marker, request_id) {
        tracing::error!(%error, "PRISM_TEST_HOLD_AFTER_COMMIT: cannot write the marker");
    }
    tracing::warn!(
        request_id,
        "PRISM_TEST_HOLD_AFTER_COMMIT: holding the answer"
    );
    tokio::time::sleep(*hold).await;
}

fn store_error(error: AggregateError<DomainError>) -> ApiError {
    match error {
        AggregateError::UserError(domain) => domain.into(),
        AggregateError::AggregateConflict => ApiError::ConcurrentModification,
        AggregateError::DatabaseConnectionError(cause) => ApiError::Unavailable(cause.to_string()),
        AggregateError::DeserializationError(cause) => ApiError::Internal(anyhow::anyhow!(
            "stored event does not deserialise: {cause}"
        )),
        // postgres-es reports a pool timeout, a shutting-down server and the like as
        // unexpected: they are the database being unavailable, not a fault.
        AggregateError::UnexpectedError(cause)
            if crate::problem::caused_by_unavailability(cause.as_ref()) =>
        {
            ApiError::Unavailable(cause.to_string())
        }
        AggregateError::UnexpectedError(cause) => ApiError::Internal(anyhow::anyhow!("{cause}")),
    }
}

/// Answers the Comp aggregate's question from the event store itself, never from a
/// read model that may lag.
struct EventStoreBuildings {
    store: Store<Building>,
}

#[async_trait]
impl BuildingDirectory for EventStoreBuildings {
    async fn status(
        &self,
        org_id: &OrgId,
        building_id: BuildingId,
    ) -> Result<Option<BuildingStatus>, String> {
        let loaded = self
            .store
            .load_aggregate(&building_id.to_string())
            .await
            .map_err(|e| e.to_string())?;
        Ok(loaded.aggregate.status_for(org_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_accepts_bare_quoted_and_weak_versions() {
        assert_eq!(parse_if_match(None).ok(), Some(None));
        assert_eq!(parse_if_match(Some("3")).ok(), Some(Some(3)));
        assert_eq!(parse_if_match(Some("\"3\"")).ok(), Some(Some(3)));
        assert_eq!(parse_if_match(Some("W/\"12\"")).ok(), Some(Some(12)));
        assert_eq!(
            parse_if_match(Some("\"7-0a1b2c3d4e5f60718293a4b5\"")).ok(),
            Some(Some(7))
        );
        assert!(parse_if_match(Some("\"7-\"")).is_err());
        assert!(parse_if_match(Some("\"7-xyz\"")).is_err());
        assert!(parse_if_match(Some("*")).is_err());
    }

    #[test]
    fn idempotency_keys_are_bounded_and_hash_the_request() {
        let a = Idempotency::parse("k-1", "POST /v1/buildings {}").expect("valid");
        let b = Idempotency::parse("k-1", "POST /v1/buildings {\"x\":1}").expect("valid");
        assert_ne!(a.request_hash, b.request_hash);
        assert_eq!(a.request_hash.len(), 64);
        assert!(Idempotency::parse("", "x").is_err());
        assert!(Idempotency::parse("has space", "x").is_err());
        assert!(Idempotency::parse(&"k".repeat(256), "x").is_err());
    }
}
