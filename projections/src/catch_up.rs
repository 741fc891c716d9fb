//! Delivery from the event log to the projections: [`catch_up`] applies the events
//! after a projection's checkpoint, batch by batch, each batch one transaction that
//! also advances the checkpoint. (Rebuilds from the start of the log run beside the
//! live tables: `crate::rebuild`.)
//!
//! One catch-up per projection runs at a time — a transaction-scoped advisory lock —
//! so any number of workers may call these concurrently; a second caller waits for
//! the first and then finds little or nothing left to do.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use tracing::Instrument;

use crate::checkpoint::{self, Checkpoint};
use crate::log::{self, LogCursor, LoggedEvent};
use crate::projection::Projection;
use crate::projector::Target;
use crate::ProjectionError;

/// How a catch-up works through the log.
#[derive(Debug, Clone)]
pub struct CatchUpOptions {
    /// Events per batch (one transaction each).
    pub batch_size: i64,
    /// How long to wait for another worker's catch-up of the same projection.
    pub lock_timeout: Duration,
}

impl Default for CatchUpOptions {
    fn default() -> Self {
        Self {
            batch_size: 500,
            lock_timeout: Duration::from_secs(10),
        }
    }
}

/// What a catch-up did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatchUpOutcome {
    pub applied: u64,
    pub batches: u32,
    /// Committed events exist beyond the horizon (an older transaction was still
    /// running): look again shortly.
    pub held_back: bool,
}

/// Applies every event after `projection`'s checkpoint that is safe to read now.
pub async fn catch_up(
    pool: &PgPool,
    projection: Projection,
    options: &CatchUpOptions,
) -> Result<CatchUpOutcome, ProjectionError> {
    let mut outcome = CatchUpOutcome::default();
    loop {
        let span = tracing::info_span!(
            "projection batch",
            projection = projection.name(),
            events = tracing::field::Empty,
        );
        let batch = match one_batch(pool, projection, options)
            .instrument(span.clone())
            .await
        {
            Ok(batch) => {
                span.record("events", batch.applied);
                batch
            }
            Err(error) => {
                remember_failure(pool, projection, &error).await;
                return Err(error);
            }
        };
        outcome.applied += batch.applied as u64;
        if batch.applied > 0 {
            outcome.batches += 1;
        }
        if (batch.applied as i64) < options.batch_size {
            outcome.held_back = batch.held_back;
            return Ok(outcome);
        }
    }
}

struct Batch {
    applied: usize,
    held_back: bool,
}

async fn lock(
    conn: &mut PgConnection,
    projection: Projection,
    timeout: Option<Duration>,
) -> Result<(), ProjectionError> {
    if let Some(timeout) = timeout {
        sqlx::query(&format!(
            "SET LOCAL lock_timeout = {}",
            timeout.as_millis().max(1)
        ))
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(projection.lock_key())
        .execute(&mut *conn)
        .await
        .map_err(|error| match &error {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("55P03") => {
                ProjectionError::Busy(projection)
            }
            _ => error.into(),
        })?;
    Ok(())
}

async fn one_batch(
    pool: &PgPool,
    projection: Projection,
    options: &CatchUpOptions,
) -> Result<Batch, ProjectionError> {
    let mut tx = pool.begin().await?;
    lock(&mut tx, projection, Some(options.lock_timeout)).await?;
    let horizon = log::horizon(&mut tx).await?;
    let Some(checkpoint) = checkpoint::load(&mut tx, projection.name()).await? else {
        // Not built yet: its backfill (a rebuild) makes the checkpoint when it swaps in.
        tx.commit().await?;
        return Ok(Batch {
            applied: 0,
            held_back: false,
        });
    };
    let events =
        log::read_after(&mut tx, &checkpoint.cursor(), &horizon, options.batch_size).await?;
    let held_back = if (events.len() as i64) < options.batch_size {
        log::held_back(&mut tx, &horizon).await?
    } else {
        false
    };
    if events.is_empty() {
        tx.commit().await?;
        return Ok(Batch {
            applied: 0,
            held_back,
        });
    }
    apply(&mut tx, projection, &events).await?;
    let last = events
        .last()
        .map(LoggedEvent::cursor)
        .unwrap_or_else(LogCursor::start);
    let last_at = events.last().map(|e| e.recorded_at).unwrap_or_default();
    checkpoint::advance(&mut tx, projection.name(), &last, events.len(), last_at).await?;
    hold_open_batch(projection, &events).await;
    tx.commit().await?;
    Ok(Batch {
        applied: events.len(),
        held_back,
    })
}

/// A test hook, inert unless `PRISM_TEST_HOLD_BATCH` is set (read once, at the first
/// batch; nothing sets it outside the fault tests). When it names a path, every live
/// batch that applied events, with its checkpoint advanced and its transaction still
/// open, writes `<path>.<projection>` (the batch's event count and last position) and
/// then sleeps `PRISM_TEST_HOLD_MS` (default 30000) before it commits. So a test can
/// `kill -9` the worker while a batch is provably open
/// (`a_worker_killed_mid_batch_loses_nothing`, worker/tests/system/faults.rs).
async fn hold_open_batch(projection: Projection, events: &[LoggedEvent]) {
    static HOLD: std::sync::OnceLock<Option<(std::path::PathBuf, Duration)>> =
        std::sync::OnceLock::new();
    let Some((marker, hold)) = HOLD.get_or_init(|| {
        let marker = std::env::var_os("PRISM_TEST_HOLD_BATCH")?;
        let millis = std::env::var("PRISM_TEST_HOLD_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(30_000);
        Some((marker.into(), Duration::from_millis(millis)))
    }) else {
        return;
    };
    let last = events.last().map_or(0, |e| e.position);
    let mut path = marker.clone().into_os_string();
    path.push(format!(".{}", projection.name()));
    if let Err(error) = std::fs::write(&path, format!("{} {last}\n", events.len())) {
        tracing::error!(%error, "PRISM_TEST_HOLD_BATCH: cannot write the marker");
    }
    tracing::warn!(projection.name = %projection, "PRISM_TEST_HOLD_BATCH: holding a batch open");
    tokio::time::sleep(*hold).await;
}

/// Applies a batch of events to `projection`'s rows, in order.
async fn apply(
    conn: &mut PgConnection,
    projection: Projection,
    events: &[LoggedEvent],
) -> Result<(), ProjectionError> {
    projection
        .projector()
        .apply(conn, events, Target::Live)
        .await
}

/// Writes the failure to the checkpoint row, so it shows in the admin API and metrics.
async fn remember_failure(pool: &PgPool, projection: Projection, error: &ProjectionError) {
    let position = match error {
        ProjectionError::Unapplicable { position, .. } => Some(*position),
        // Another worker is on it: not a failure of the projection.
        ProjectionError::Busy(_) => return,
        ProjectionError::Database(_) => None,
    };
    let recorded = async {
        let mut conn = pool.acquire().await?;
        checkpoint::record_failure(&mut conn, projection.name(), position, &error.to_string()).await
    }
    .await;
    if let Err(cause) = recorded {
        tracing::warn!(projection.name = %projection, error = %cause, "could not record the projection's failure");
    }
}

/// A projection's state as operators see it.
#[derive(Debug, Clone)]
pub struct ProjectionStatus {
    pub name: &'static str,
    /// `None` until the projection is first built (its backfill swaps in).
    pub checkpoint: Option<Checkpoint>,
    /// Committed events not applied yet.
    pub lag_events: i64,
    /// Age of the oldest of them, in seconds (0 when caught up).
    pub lag_seconds: f64,
}

impl ProjectionStatus {
    /// `running`, `lagging`, `failing` (stopped at an event it cannot apply, or
    /// unable to reach the database) or `building` (its first build is running).
    pub fn state(&self) -> &'static str {
        let Some(checkpoint) = &self.checkpoint else {
            return "building";
        };
        if checkpoint.failing_since.is_some() {
            "failing"
        } else if self.lag_events > 0 {
            "lagging"
        } else {
            "running"
        }
    }
}

/// Every projection's checkpoint and lag; cheap (index range scans over the lag only).
pub async fn status(pool: &PgPool) -> Result<Vec<ProjectionStatus>, ProjectionError> {
    let mut conn = pool.acquire().await?;
    let mut statuses = Vec::new();
    for projection in Projection::ALL {
        let checkpoint = checkpoint::load(&mut conn, projection.name()).await?;
        let cursor = checkpoint
            .as_ref()
            .map_or_else(LogCursor::start, Checkpoint::cursor);
        let (lag_events, oldest) = log::lag(&mut conn, &cursor).await?;
        let lag_seconds = oldest
            .map(|at| (chrono::Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        statuses.push(ProjectionStatus {
            name: projection.name(),
            checkpoint,
            lag_events,
            lag_seconds,
        });
    }
    Ok(statuses)
}
