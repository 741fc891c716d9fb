//! Reading the event log in its global order.
//!
//! A reader takes only events whose writing transaction is older than the `xmin` of a
//! snapshot taken at the start of its batch: every transaction below `xmin` has ended,
//! so nothing can later appear before the reader's checkpoint. Ordered by
//! (`transaction_id`, `position`), a transaction that commits late is waited for,
//! never skipped (docs/read-side.md explains why `position` alone is not enough).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;

/// A point in the global order: the last event a projection applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCursor {
    /// The writing transaction's `xid8`, as text (sqlx has no `xid8` type).
    pub transaction_id: String,
    pub position: i64,
}

impl LogCursor {
    /// Before the first event.
    pub fn start() -> Self {
        Self {
            transaction_id: "0".into(),
            position: 0,
        }
    }
}

/// One stored event, as a projector sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LoggedEvent {
    pub position: i64,
    pub transaction_id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
}

impl LoggedEvent {
    pub fn cursor(&self) -> LogCursor {
        LogCursor {
            transaction_id: self.transaction_id.clone(),
            position: self.position,
        }
    }

    /// A metadata value (see docs/events.md for the keys).
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str)
    }
}

/// The horizon of a batch: `xmin` of a snapshot taken now. Call it before the batch
/// writes anything, so that the batch's own transaction is not part of it.
pub async fn horizon(conn: &mut PgConnection) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
        .fetch_one(conn)
        .await
}

/// Up to `limit` events after `after` and below `horizon`, in global order.
pub async fn read_after(
    conn: &mut PgConnection,
    after: &LogCursor,
    horizon: &str,
    limit: i64,
) -> Result<Vec<LoggedEvent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT position, transaction_id::text AS transaction_id, aggregate_type, aggregate_id,
                sequence, event_type, event_version, payload::jsonb AS payload,
                metadata::jsonb AS metadata, recorded_at
           FROM events
          WHERE (transaction_id, position) > ($1::text::xid8, $2)
            AND transaction_id < $3::text::xid8
          ORDER BY transaction_id, position
          LIMIT $4",
    )
    .bind(&after.transaction_id)
    .bind(after.position)
    .bind(horizon)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Whether events exist that the horizon holds back (their transaction is at or above
/// it): a reader that found nothing new should look again shortly.
pub async fn held_back(conn: &mut PgConnection, horizon: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM events WHERE transaction_id >= $1::text::xid8)",
    )
    .bind(horizon)
    .fetch_one(conn)
    .await
}

/// How far `after` is behind the log: events not yet applied (an index range scan over
/// just those) and the age of the oldest of them.
pub async fn lag(
    conn: &mut PgConnection,
    after: &LogCursor,
) -> Result<(i64, Option<DateTime<Utc>>), sqlx::Error> {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM events
                  WHERE (transaction_id, position) > ($1::text::xid8, $2)),
                (SELECT recorded_at FROM events
                  WHERE (transaction_id, position) > ($1::text::xid8, $2)
                  ORDER BY transaction_id, position LIMIT 1)",
    )
    .bind(&after.transaction_id)
    .bind(after.position)
    .fetch_one(conn)
    .await
}
