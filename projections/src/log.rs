//! Reading the event log in its global order.
//!
//! A reader takes only events whose writing transaction is below the batch's
//! *horizon*, in (`transaction_id`, `position`) order, so a transaction that commits
//! late is waited for, never skipped (docs/read-side.md explains why `position` alone
//! is not enough). The horizon waits only for transactions that can still commit
//! events: every insert into `events` first takes a shared advisory lock
//! ([`EVENT_WRITER_LOCK`], by a trigger, before its transaction has an id), and the
//! horizon is the oldest transaction id among the announced writers — else the
//! snapshot's `xmax`. A long transaction that writes no events (a rebuild, a report, a
//! migration) holds nothing back.

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

/// The advisory lock every event writer holds in shared mode for the rest of its
/// transaction ("PRISMEVW"; taken by the `events_announce_writer` trigger, migration
/// 000009).
pub const EVENT_WRITER_LOCK: i64 = 0x5052_4953_4d45_5657;

/// The horizon of a batch: no event below it can still commit.
///
/// From one snapshot `S` of this statement and one read of the lock table taken
/// after it, the horizon is the least of
/// - `xmax(S)`: any transaction that gets its id later has one at or above it;
/// - each in-progress transaction of `S` that holds [`EVENT_WRITER_LOCK`];
/// - each in-progress transaction of `S` whose own id lock is not (yet) in the lock
///   table — one that just got its id and may be a writer (or one that ended since).
///
/// Writers that announced themselves but have no id yet get one above `xmax(S)`.
/// Transactions that write no events are passed. Call it once per transaction, before
/// the batch writes anything.
pub async fn horizon(conn: &mut PgConnection) -> Result<String, sqlx::Error> {
    sqlx::query_scalar(
        "WITH locks AS MATERIALIZED (
              SELECT locktype, classid, objid, objsubid, virtualtransaction,
                     transactionid::text::bigint AS xid32, mode, granted
                FROM pg_locks),
              holders AS (
              SELECT virtualtransaction, xid32 FROM locks
               WHERE locktype = 'transactionid' AND mode = 'ExclusiveLock' AND granted),
              writers AS (
              SELECT h.xid32 FROM locks a JOIN holders h USING (virtualtransaction)
               WHERE a.locktype = 'advisory' AND a.objsubid = 1
                 AND a.classid::text::bigint = ($1 >> 32) AND a.objid::text::bigint = ($1 & 4294967295))
         SELECT least(pg_snapshot_xmax(s),
                      (SELECT min(x) FROM pg_snapshot_xip(s) AS x
                        WHERE (x::text::bigint % 4294967296) IN (SELECT xid32 FROM writers)
                           OR (x::text::bigint % 4294967296) NOT IN (SELECT xid32 FROM holders)))::text
           FROM pg_current_snapshot() AS s",
    )
    .bind(EVENT_WRITER_LOCK)
    .fetch_one(conn)
    .await
}

/// The events after a cursor and below a horizon, in the log's order.
pub(crate) const READ_AFTER: &str =
    "SELECT position, transaction_id::text AS transaction_id, aggregate_type, aggregate_id,
                sequence, event_type, event_version, payload::jsonb AS payload,
                metadata::jsonb AS metadata, recorded_at
           FROM events
          WHERE (transaction_id, position) > ($1::text::xid8, $2)
            AND transaction_id < $3::text::xid8
          -- The columns, not the text aliases above: as text, 100000 sorts before 99999.
          ORDER BY events.transaction_id, events.position
          LIMIT $4";

/// Up to `limit` events after `after` and below `horizon`, in global order.
pub async fn read_after(
    conn: &mut PgConnection,
    after: &LogCursor,
    horizon: &str,
    limit: i64,
) -> Result<Vec<LoggedEvent>, sqlx::Error> {
    sqlx::query_as(READ_AFTER)
        .bind(&after.transaction_id)
        .bind(after.position)
        .bind(horizon)
        .bind(limit)
        .fetch_all(conn)
        .await
}

/// Whether any event is at or above the horizon: the newest event's transaction, one
/// entry at the end of the log's index. (`EXISTS (… WHERE transaction_id >= $1)` reads
/// the same, but Postgres plans it as a scan that stops at the first match — and there
/// is usually none, so it read the whole log after every short batch.)
pub(crate) const HELD_BACK: &str =
    "SELECT coalesce(max(transaction_id) >= $1::text::xid8, false) FROM events";

/// Whether events exist that the horizon holds back (their transaction is at or above
/// it): a reader that found nothing new should look again shortly.
pub async fn held_back(conn: &mut PgConnection, horizon: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(HELD_BACK)
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
