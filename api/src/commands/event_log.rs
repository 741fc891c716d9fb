//! The event store's repository: postgres-es reads aggregates' events; appends are
//! ours, so that a keyed command's first result is recorded in the same transaction
//! as its events. Either both are committed or neither: a retry after a lost response
//! always finds the result, and a concurrent duplicate hits the primary key instead
//! of appending twice.

use std::sync::Arc;

use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use sqlx::PgPool;

/// Metadata keys every event carries (see docs/events.md).
pub mod metadata {
    pub const ORG_ID: &str = "org_id";
    pub const USER_ID: &str = "user_id";
    pub const REQUEST_ID: &str = "request_id";
    pub const IDEMPOTENCY_KEY: &str = "idempotency_key";
    /// SHA-256 of the request the key was first used with.
    pub const IDEMPOTENCY_REQUEST_HASH: &str = "idempotency_request_hash";
    pub const RECORDED_AT: &str = "recorded_at";
}

/// The first result of a keyed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstResult {
    pub request_hash: String,
    pub aggregate_id: String,
    pub version: u64,
    pub created: bool,
}

#[derive(Clone)]
pub struct EventLog {
    pool: PgPool,
    reader: Arc<PostgresEventRepository>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog").finish_non_exhaustive()
    }
}

fn database_error(error: sqlx::Error) -> PersistenceError {
    match &error {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
            PersistenceError::OptimisticLockError
        }
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut => {
            PersistenceError::ConnectionError(Box::new(error))
        }
        _ => PersistenceError::UnknownError(Box::new(error)),
    }
}

fn text<'a>(metadata: &'a Value, key: &str) -> Option<&'a str> {
    metadata.get(key).and_then(Value::as_str)
}

impl EventLog {
    pub fn new(pool: PgPool) -> Self {
        Self {
            reader: Arc::new(PostgresEventRepository::new(pool.clone())),
            pool,
        }
    }

    /// The first result recorded for `key` in `org_id`, if any.
    pub async fn first_result(
        &self,
        org_id: &str,
        key: &str,
    ) -> Result<Option<FirstResult>, sqlx::Error> {
        let row: Option<(String, String, i64, i16)> = sqlx::query_as(
            "SELECT request_hash, aggregate_id, version, status
               FROM command_idempotency
              WHERE org_id = $1 AND idempotency_key = $2",
        )
        .bind(org_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(request_hash, aggregate_id, version, status)| FirstResult {
                request_hash,
                aggregate_id,
                version: u64::try_from(version).unwrap_or_default(),
                created: status == 201,
            },
        ))
    }

    /// Appends a command's events — and, for a keyed command, its first result — in
    /// one statement: one round trip, atomic on its own.
    async fn append(&self, events: &[SerializedEvent]) -> Result<(), sqlx::Error> {
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Ok(());
        };
        let column = |f: fn(&SerializedEvent) -> String| events.iter().map(f).collect::<Vec<_>>();
        let keyed = (
            text(&first.metadata, metadata::ORG_ID),
            text(&first.metadata, metadata::IDEMPOTENCY_KEY),
            text(&first.metadata, metadata::IDEMPOTENCY_REQUEST_HASH),
        );
        let insert_events = "INSERT INTO events
                (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             SELECT t, id, seq, et, ev, p::json, m::json
               FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[],
                           $6::text[], $7::text[]) WITH ORDINALITY AS u(t, id, seq, et, ev, p, m, n)
              ORDER BY n";
        let sql = match keyed {
            (Some(_), Some(_), Some(_)) => format!(
                "WITH appended AS ({insert_events} RETURNING 1)
                 INSERT INTO command_idempotency
                    (org_id, idempotency_key, request_hash, aggregate_type, aggregate_id, version, status)
                 SELECT $8, $9, $10, $11, $12, $13, $14 WHERE EXISTS (SELECT 1 FROM appended)"
            ),
            _ => insert_events.to_owned(),
        };
        let mut query = sqlx::query(&sql)
            .bind(column(|e| e.aggregate_type.clone()))
            .bind(column(|e| e.aggregate_id.clone()))
            .bind(
                events
                    .iter()
                    .map(|e| i64::try_from(e.sequence).unwrap_or(i64::MAX))
                    .collect::<Vec<_>>(),
            )
            .bind(column(|e| e.event_type.clone()))
            .bind(column(|e| e.event_version.clone()))
            .bind(column(|e| e.payload.to_string()))
            .bind(column(|e| e.metadata.to_string()));
        if let (Some(org_id), Some(key), Some(request_hash)) = keyed {
            let status: i16 = if first.sequence == 1 { 201 } else { 200 };
            query = query
                .bind(org_id)
                .bind(key)
                .bind(request_hash)
                .bind(&last.aggregate_type)
                .bind(&last.aggregate_id)
                .bind(i64::try_from(last.sequence).unwrap_or(i64::MAX))
                .bind(status);
        }
        query.execute(&self.pool).await?;
        Ok(())
    }
}

impl PersistedEventRepository for EventLog {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.reader.get_events::<A>(aggregate_id).await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.reader
            .get_last_events::<A>(aggregate_id, last_sequence)
            .await
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        self.reader.get_snapshot::<A>(aggregate_id).await
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        if snapshot_update.is_some() {
            // The stores are built without snapshots (see WriteSide::new).
            return Err(PersistenceError::UnknownError(
                "snapshots are not enabled for this event log".into(),
            ));
        }
        self.append(events).await.map_err(database_error)
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        self.reader.stream_events::<A>(aggregate_id).await
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        self.reader.stream_all_events::<A>().await
    }
}
