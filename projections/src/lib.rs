//! Prism's read side: the event log read in a global order, projectors that turn events
//! into read-model rows, checkpoints, rebuilds, the queries the api serves, and the
//! Redis cache views in front of them.
//!
//! Layout:
//! - `log`: reading events after a checkpoint without ever skipping a late commit;
//! - `checkpoint`: each projection's progress and failure state;
//! - `deliverable`: whether the database's transaction counter is past the log and the
//!   checkpoints (not after a restore into another cluster); the worker checks it first;
//! - `catch_up`: [`catch_up`] — batches applied in one transaction with their
//!   checkpoint, one catch-up per projection at a time;
//! - `rebuild`: rebuilds beside the live projection — shadow tables built in short
//!   batches, verified, swapped in with one short transaction;
//! - `projector`: the [`Projector`] trait a read model implements, with the checks
//!   that state what its rows must be;
//! - `projection`: [`Projection::ALL`], the one list of projections everything else
//!   reads;
//! - `catalog`, `audit`: the projectors (buildings, comps and statistics; audit log);
//! - `verify`: checks of a projection's rows against an independent fold of the log;
//! - `rent`: net effective rent and other derived metrics, exactly;
//! - `queries`: the reads the api serves, with keyset cursors;
//! - `cache`: Redis cache views and their refresh;
//! - `jobs`: the wake-up jobs api and worker exchange.

mod audit;
pub mod cache;
mod catalog;
mod catch_up;
mod checkpoint;
pub mod deliverable;
pub mod jobs;
mod log;
mod projection;
mod projector;
pub mod queries;
pub mod rebuild;
pub mod rent;
#[cfg(feature = "testing")]
pub mod testing;
mod verify;

pub use catch_up::{catch_up, status, CatchUpOptions, CatchUpOutcome, ProjectionStatus};
pub use checkpoint::Checkpoint;
pub use log::{LogCursor, EVENT_WRITER_LOCK};
pub use projection::Projection;
pub use projector::{Check, Fold, Projector, Target};
pub use verify::VerificationFailure;

/// How a process's pool waits on Postgres. Every wait is bounded, so an outage turns
/// into errors within these times instead of requests that hang.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long taking a connection may wait: for a free slot, and for a new
    /// connection to be made (a refused connection is retried until then).
    pub acquire_timeout: std::time::Duration,
    /// `statement_timeout` of every connection; `None` leaves the server's (no limit).
    /// A statement waiting for a lock counts too.
    pub statement_timeout: Option<std::time::Duration>,
}

impl PoolSettings {
    /// `max_connections` with a 5 s acquire timeout and no statement timeout.
    pub fn new(max_connections: u32) -> Self {
        Self {
            max_connections,
            acquire_timeout: std::time::Duration::from_secs(5),
            statement_timeout: None,
        }
    }
}

/// The one Postgres pool a process uses for the event store and the read models
/// (postgres-es and these projections share it: one sqlx line). A connection waits at
/// most 5 s for a free slot.
pub async fn connect_pool(url: &str, max_connections: u32) -> Result<sqlx::PgPool, sqlx::Error> {
    connect_pool_with(url, &PoolSettings::new(max_connections)).await
}

/// [`connect_pool`] with its waits set by `settings`.
pub async fn connect_pool_with(
    url: &str,
    settings: &PoolSettings,
) -> Result<sqlx::PgPool, sqlx::Error> {
    let options: sqlx::postgres::PgConnectOptions = url.parse()?;
    // Short OLTP queries: compiling a plan (the JIT) costs more than it saves.
    let mut server_options = vec![("jit", "off".to_owned())];
    if let Some(limit) = settings.statement_timeout {
        server_options.push(("statement_timeout", limit.as_millis().to_string()));
    }
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        // No ping before each use (a round trip per statement): a connection that
        // broke fails its next statement and is dropped (sqlx pings a connection as
        // it is returned); connections are renewed, so the pool reconnects by itself
        // after an outage.
        .test_before_acquire(false)
        .idle_timeout(std::time::Duration::from_secs(300))
        .max_lifetime(std::time::Duration::from_secs(1800))
        .connect_with(options.options(server_options))
        .await
}

/// Why a projection could not advance.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// An event the projector cannot apply: the projection stops at it (never skips it)
    /// until the cause is fixed and it is retried or rebuilt.
    #[error("event at position {position} ({event_type}) cannot be applied: {reason}")]
    Unapplicable {
        position: i64,
        event_type: String,
        reason: String,
    },
    /// Another worker's catch-up of the projection held the lock for too long.
    #[error("another catch-up of {0} is running")]
    Busy(Projection),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}
