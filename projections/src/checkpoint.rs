//! Each projection's checkpoint: the last event it applied, advanced in the same
//! transaction as the row changes of its batch, plus what operators need to see —
//! events applied, the last batch, and the failure that stops it, if any.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::log::LogCursor;

/// A projection's stored progress and state.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Checkpoint {
    pub name: String,
    pub transaction_id: String,
    pub position: i64,
    pub events_applied: i64,
    pub last_batch_size: i32,
    pub last_event_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub rebuilt_at: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    pub failed_position: Option<i64>,
    pub last_error: Option<String>,
    /// Raised by every swap of rebuilt tables.
    pub generation: i64,
}

impl Checkpoint {
    pub fn cursor(&self) -> LogCursor {
        LogCursor {
            transaction_id: self.transaction_id.clone(),
            position: self.position,
        }
    }
}

const COLUMNS: &str = "name, transaction_id::text AS transaction_id, position, events_applied,
    last_batch_size, last_event_at, updated_at, rebuilt_at, failing_since, failed_position,
    last_error, generation";

/// The checkpoint of `name`; `None` for a projection not built yet (its first rebuild,
/// the backfill, makes the row when it swaps in).
pub async fn load(conn: &mut PgConnection, name: &str) -> Result<Option<Checkpoint>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM projection_checkpoints WHERE name = $1"
    ))
    .bind(name)
    .fetch_optional(conn)
    .await
}

/// Sets the checkpoint of a projection whose rebuilt tables were just swapped in (in
/// the swap's transaction), and raises its generation.
pub async fn swap_in(
    conn: &mut PgConnection,
    name: &str,
    to: &LogCursor,
    applied: i64,
    generation: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projection_checkpoints
             (name, transaction_id, position, events_applied, generation, rebuilt_at, updated_at)
         VALUES ($1, $2::text::xid8, $3, $4, $5, now(), now())
         ON CONFLICT (name) DO UPDATE
            SET transaction_id = EXCLUDED.transaction_id, position = EXCLUDED.position,
                events_applied = EXCLUDED.events_applied, last_batch_size = 0,
                rebuilt_at = now(), updated_at = now(), generation = EXCLUDED.generation,
                failing_since = NULL, failed_position = NULL, last_error = NULL",
    )
    .bind(name)
    .bind(&to.transaction_id)
    .bind(to.position)
    .bind(applied)
    .bind(generation)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a batch: the new position, and that the projection is healthy again.
pub async fn advance(
    conn: &mut PgConnection,
    name: &str,
    to: &LogCursor,
    applied: usize,
    last_event_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE projection_checkpoints
            SET transaction_id = $2::text::xid8, position = $3,
                events_applied = events_applied + $4, last_batch_size = $4,
                last_event_at = $5, updated_at = now(),
                failing_since = NULL, failed_position = NULL, last_error = NULL
          WHERE name = $1",
    )
    .bind(name)
    .bind(&to.transaction_id)
    .bind(to.position)
    .bind(i32::try_from(applied).unwrap_or(i32::MAX))
    .bind(last_event_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records why the projection cannot advance (its own transaction: the batch rolled
/// back). The projection keeps retrying from its checkpoint; it never skips the event.
pub async fn record_failure(
    conn: &mut PgConnection,
    name: &str,
    position: Option<i64>,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE projection_checkpoints
            SET failing_since = coalesce(failing_since, now()), failed_position = $2,
                last_error = $3, updated_at = now()
          WHERE name = $1",
    )
    .bind(name)
    .bind(position)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// [`reflects`]'s statement: `$1` the projection, `$2` the position.
pub(crate) const REFLECTS: &str = "SELECT (
        SELECT e.position FROM events e
         WHERE (e.transaction_id, e.position) > (c.transaction_id, c.position)
           AND e.position <= $2
         ORDER BY e.transaction_id, e.position
         LIMIT 1) IS NULL
   FROM projection_checkpoints c
  WHERE c.name = $1";

/// Whether projection `name` reflects every event at or below global `position` that
/// is committed: none of them lies beyond its checkpoint in the log's order
/// (`transaction_id`, `position`). A position alone cannot be compared with the
/// checkpoint (an event with a lower position may commit later), so this asks the log:
/// an index range scan of the events past the checkpoint, in the log's order, which
/// stops at the first one at or below `position`. (Written as the first such event, not
/// `EXISTS`: Postgres drops an `EXISTS` subquery's `ORDER BY`, and without it a
/// generic plan guesses that a sequential scan finds a match sooner.) `false` for a
/// projection not built yet.
///
/// Reads the event log itself: run it on the service's pool, not as `prism_app`.
pub async fn reflects(
    db: impl sqlx::PgExecutor<'_>,
    name: &str,
    position: i64,
) -> Result<bool, sqlx::Error> {
    let reflects: Option<bool> = sqlx::query_scalar(REFLECTS)
        .bind(name)
        .bind(position)
        .fetch_optional(db)
        .await?;
    Ok(reflects.unwrap_or(false))
}
