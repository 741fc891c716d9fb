//! Rebuilds beside the live projection, with zero downtime.
//!
//! A rebuild builds the projection's tables from the whole log in a schema of its own
//! (`prism_rebuild_<id>`), while the live tables keep serving reads and catching up:
//!
//! 1. `queued` → `running`: the shadow tables are made like the live ones (columns,
//!    defaults, constraints, generated columns, row-level security, grants; the
//!    secondary indexes come later, a bulk load is faster without them);
//! 2. `running`: batches of events applied by the projection's own [`Projector`] with
//!    the shadow schema first on the `search_path`, each batch one short transaction
//!    that also advances the rebuild's own checkpoint — so a worker killed mid-rebuild
//!    resumes where the last batch committed;
//! 3. `verifying`: the secondary indexes are built, the shadow catches up again, and
//!    every [`Check`](crate::Check) of the projection compares it with an independent
//!    fold of the log; a rebuild that fails here (or could not apply an event) drops
//!    its shadow and leaves the live tables untouched, saying why;
//! 4. `swapped`: one short transaction takes the projection's catch-up lock, applies
//!    the last events to the shadow, moves the live tables out and the shadow tables in
//!    (`ALTER TABLE … SET SCHEMA`), sets the projection's checkpoint to the shadow's and
//!    raises its generation. Waiting for readers' locks is bounded (`lock_timeout`); a
//!    swap that times out is tried again.
//!
//! One worker runs a rebuild at a time (a session advisory lock on a connection of its
//! own, released if the worker dies); at most one rebuild of a projection is active (a
//! unique index). `failed` and `cancelled` rebuilds leave no shadow schema behind.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::cache::ViewCache;
use crate::checkpoint;
use crate::log::{self, LogCursor};
use crate::projection::Projection;
use crate::projector::Target;
use crate::verify;
use crate::ProjectionError;

/// Where a rebuild is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RebuildState {
    Queued,
    Running,
    Verifying,
    Swapped,
    Failed,
    Cancelled,
}

impl RebuildState {
    pub const ALL: [Self; 6] = [
        Self::Queued,
        Self::Running,
        Self::Verifying,
        Self::Swapped,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Verifying => "verifying",
            Self::Swapped => "swapped",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Queued, running or verifying: not finished.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Queued | Self::Running | Self::Verifying)
    }
}

/// A rebuild as operators see it.
#[derive(Debug, Clone)]
pub struct Rebuild {
    pub id: Uuid,
    pub projection: String,
    pub state: RebuildState,
    pub requested_by: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub events_applied: i64,
    /// The log's length when last measured (it grows while the rebuild runs).
    pub events_total: i64,
    /// The last event the shadow tables reflect.
    pub cursor: LogCursor,
    pub cancel_requested: bool,
    pub error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl Rebuild {
    /// Events applied per second since the rebuild started.
    pub fn rate(&self) -> Option<f64> {
        let started = self.started_at?;
        let until = self.finished_at.unwrap_or_else(Utc::now);
        let seconds = (until - started).num_milliseconds() as f64 / 1000.0;
        (seconds > 0.0).then(|| self.events_applied as f64 / seconds)
    }

    /// Seconds left at [`Self::rate`], while it runs.
    pub fn eta_seconds(&self) -> Option<f64> {
        if !self.state.is_active() {
            return None;
        }
        let rate = self.rate().filter(|r| *r > 0.0)?;
        Some((self.events_total - self.events_applied).max(0) as f64 / rate)
    }

    /// The schema its tables are built in until the swap.
    pub fn shadow_schema(&self) -> String {
        format!("prism_rebuild_{}", self.id.simple())
    }

    fn retired_schema(&self) -> String {
        format!("prism_retired_{}", self.id.simple())
    }
}

#[derive(sqlx::FromRow)]
struct RebuildRow {
    id: Uuid,
    projection: String,
    state: String,
    requested_by: Option<String>,
    requested_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    events_applied: i64,
    events_total: i64,
    transaction_id: String,
    position: i64,
    cancel_requested: bool,
    error: Option<String>,
    updated_at: DateTime<Utc>,
}

impl From<RebuildRow> for Rebuild {
    fn from(row: RebuildRow) -> Self {
        Self {
            id: row.id,
            projection: row.projection,
            state: RebuildState::parse(&row.state).unwrap_or(RebuildState::Failed),
            requested_by: row.requested_by,
            requested_at: row.requested_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            events_applied: row.events_applied,
            events_total: row.events_total,
            cursor: LogCursor {
                transaction_id: row.transaction_id,
                position: row.position,
            },
            cancel_requested: row.cancel_requested,
            error: row.error,
            updated_at: row.updated_at,
        }
    }
}

const COLUMNS: &str = "id, projection, state, requested_by, requested_at, started_at,
    finished_at, events_applied, events_total, transaction_id::text AS transaction_id,
    position, cancel_requested, error, updated_at";

/// Why a rebuild could not be asked for or driven.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// At most one rebuild of a projection is active.
    #[error("rebuild {} of {} is already {}", .0.id, .0.projection, .0.state.as_str())]
    AlreadyActive(Box<Rebuild>),
    /// Another worker holds the rebuild.
    #[error("another worker is running rebuild {0}")]
    Busy(Uuid),
    #[error("no rebuild {0}")]
    NotFound(Uuid),
    #[error("no projection named {0:?}")]
    UnknownProjection(String),
    /// The cache could not be told of the new generation; the swap waits for Redis.
    #[error("the cache's generation cannot be raised: {0}")]
    CacheUnavailable(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// How a rebuild works through the log.
#[derive(Debug, Clone)]
pub struct RebuildOptions {
    /// Events per shadow batch (one transaction each). A batch holds every comp of
    /// the buildings its events touch, so its memory grows with the batch: at 5,000
    /// the worker reached 164 MB over a million events, at 2,000 113 MB (and the live
    /// catalog's lag during the rebuild stayed under 0.2 s instead of reaching 1 s),
    /// for a tenth less speed.
    pub batch_size: i64,
    /// How long the swap waits for readers' locks before trying again.
    pub swap_lock_timeout: Duration,
    /// How many times a swap is tried before the job gives up (a later run resumes).
    pub swap_attempts: u32,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        Self {
            batch_size: 2_000,
            swap_lock_timeout: Duration::from_millis(500),
            swap_attempts: 40,
        }
    }
}

/// Asks for a rebuild of `projection`: queued, for a worker to run.
pub async fn request(
    pool: &PgPool,
    projection: Projection,
    requested_by: &str,
) -> Result<Rebuild, RebuildError> {
    let inserted: Result<RebuildRow, sqlx::Error> = sqlx::query_as(&format!(
        "INSERT INTO projection_rebuilds (id, projection, state, requested_by)
         VALUES ($1, $2, 'queued', $3) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(projection.name())
    .bind(requested_by)
    .fetch_one(pool)
    .await;
    match inserted {
        Ok(row) => Ok(row.into()),
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23505") => {
            match active_of(pool, projection).await? {
                Some(active) => Err(RebuildError::AlreadyActive(Box::new(active))),
                // It finished between the insert and the look: ask again.
                None => Box::pin(request(pool, projection, requested_by)).await,
            }
        }
        Err(error) => Err(error.into()),
    }
}

/// One rebuild.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<Rebuild>, sqlx::Error> {
    let row: Option<RebuildRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM projection_rebuilds WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Into::into))
}

/// The newest rebuilds first.
pub async fn list(pool: &PgPool, limit: i64) -> Result<Vec<Rebuild>, sqlx::Error> {
    let rows: Vec<RebuildRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM projection_rebuilds ORDER BY requested_at DESC, id DESC LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Every rebuild not finished yet.
pub async fn active(pool: &PgPool) -> Result<Vec<Rebuild>, sqlx::Error> {
    let rows: Vec<RebuildRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM projection_rebuilds
          WHERE state IN ('queued', 'running', 'verifying') ORDER BY requested_at"
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// The newest rebuild of each projection (metrics, status).
pub async fn latest(pool: &PgPool) -> Result<Vec<Rebuild>, sqlx::Error> {
    let rows: Vec<RebuildRow> = sqlx::query_as(&format!(
        "SELECT DISTINCT ON (projection) {COLUMNS} FROM projection_rebuilds
          ORDER BY projection, requested_at DESC, id DESC"
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

async fn active_of(pool: &PgPool, projection: Projection) -> Result<Option<Rebuild>, sqlx::Error> {
    let row: Option<RebuildRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM projection_rebuilds
          WHERE projection = $1 AND state IN ('queued', 'running', 'verifying')"
    ))
    .bind(projection.name())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Into::into))
}

/// Cancels a rebuild: a queued one at once; a running one at its next batch (the
/// worker running it drops its shadow). `None` when there is no such rebuild.
pub async fn cancel(pool: &PgPool, id: Uuid) -> Result<Option<Rebuild>, sqlx::Error> {
    let row: Option<RebuildRow> = sqlx::query_as(&format!(
        "UPDATE projection_rebuilds
            SET cancel_requested = cancel_requested OR state IN ('running', 'verifying'),
                state = CASE WHEN state = 'queued' THEN 'cancelled' ELSE state END,
                finished_at = CASE WHEN state = 'queued' THEN now() ELSE finished_at END,
                updated_at = now()
          WHERE id = $1
      RETURNING {COLUMNS}"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Into::into))
}

/// Checks the live tables of `projection` against the log up to its checkpoint (one
/// snapshot for both): the checks a rebuild passes before its swap, for a projection
/// an operator doubts. `Ok(Ok(()))` when they agree.
pub async fn verify_live(
    pool: &PgPool,
    projection: Projection,
) -> Result<Result<(), verify::VerificationFailure>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Not read-only: the checks' folds are temporary tables. The transaction is
    // rolled back.
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await?;
    let Some(checkpoint) = checkpoint::load(&mut tx, projection.name()).await? else {
        return Ok(Ok(()));
    };
    let verdict = verify::verify(&mut tx, projection.projector(), &checkpoint.cursor()).await?;
    tx.rollback().await?;
    Ok(verdict)
}

/// The session advisory-lock key that makes one worker the runner of a rebuild.
fn runner_key(id: Uuid) -> i64 {
    let bytes = id.as_bytes();
    i64::from_be_bytes([
        bytes[0] ^ bytes[8],
        bytes[1] ^ bytes[9],
        bytes[2] ^ bytes[10],
        bytes[3] ^ bytes[11],
        bytes[4] ^ bytes[12],
        bytes[5] ^ bytes[13],
        bytes[6] ^ bytes[14],
        bytes[7] ^ bytes[15],
    ])
}

/// Runs (or resumes) rebuild `id` to its end: swapped, failed or cancelled.
/// `progress` hears of every batch. With a `cache`, the views' generation is raised
/// before the swap commits, so no view read before it is cached after it.
/// [`RebuildError::Busy`] when another worker is running it.
pub async fn run(
    pool: &PgPool,
    id: Uuid,
    cache: Option<&ViewCache>,
    options: &RebuildOptions,
    progress: &mut (dyn FnMut(&Rebuild) + Send),
) -> Result<Rebuild, RebuildError> {
    // A connection of its own, not the pool's: if this task is dropped the session
    // ends and the lock goes with it.
    let mut session = PgConnection::connect_with(&pool.connect_options()).await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(runner_key(id))
        .fetch_one(&mut session)
        .await?;
    if !locked {
        return Err(RebuildError::Busy(id));
    }
    let result = drive(pool, id, cache, options, progress).await;
    let _ = session.close().await;
    result
}

/// What ended a phase.
enum Step {
    Continue,
    Stopped(Rebuild),
}

async fn drive(
    pool: &PgPool,
    id: Uuid,
    cache: Option<&ViewCache>,
    options: &RebuildOptions,
    progress: &mut (dyn FnMut(&Rebuild) + Send),
) -> Result<Rebuild, RebuildError> {
    loop {
        let rebuild = get(pool, id).await?.ok_or(RebuildError::NotFound(id))?;
        if !rebuild.state.is_active() {
            return Ok(rebuild);
        }
        let Some(projection) = Projection::parse(&rebuild.projection) else {
            return Ok(abandon(
                pool,
                &rebuild,
                RebuildState::Failed,
                Some("no such projection in this build"),
            )
            .await?);
        };
        if rebuild.cancel_requested {
            return Ok(abandon(pool, &rebuild, RebuildState::Cancelled, None).await?);
        }
        progress(&rebuild);
        let step = match rebuild.state {
            RebuildState::Queued => start(pool, &rebuild, projection).await?,
            RebuildState::Running => {
                match build(pool, &rebuild, projection, options, progress).await? {
                    Step::Continue => {
                        set_state(pool, &rebuild, RebuildState::Verifying).await?;
                        Step::Continue
                    }
                    stopped => stopped,
                }
            }
            RebuildState::Verifying => {
                verify_and_swap(pool, &rebuild, projection, cache, options, progress).await?
            }
            RebuildState::Swapped | RebuildState::Failed | RebuildState::Cancelled => {
                Step::Stopped(rebuild)
            }
        };
        if let Step::Stopped(rebuild) = step {
            progress(&rebuild);
            return Ok(rebuild);
        }
    }
}

async fn set_state(
    pool: &PgPool,
    rebuild: &Rebuild,
    state: RebuildState,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE projection_rebuilds SET state = $2, updated_at = now() WHERE id = $1")
        .bind(rebuild.id)
        .bind(state.as_str())
        .execute(pool)
        .await?;
    Ok(())
}

/// Ends a rebuild without a swap: its shadow schema dropped, the state and reason kept.
async fn abandon(
    pool: &PgPool,
    rebuild: &Rebuild,
    state: RebuildState,
    error: Option<&str>,
) -> Result<Rebuild, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(&format!(
        "DROP SCHEMA IF EXISTS {} CASCADE",
        rebuild.shadow_schema()
    ))
    .execute(&mut *tx)
    .await?;
    let row: RebuildRow = sqlx::query_as(&format!(
        "UPDATE projection_rebuilds
            SET state = $2, error = $3, finished_at = now(), updated_at = now()
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(rebuild.id)
    .bind(state.as_str())
    .bind(error)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    if let Some(error) = error {
        tracing::error!(rebuild.id = %rebuild.id, projection.name = %rebuild.projection, %error, "rebuild failed; the live projection is untouched");
    } else {
        tracing::info!(rebuild.id = %rebuild.id, projection.name = %rebuild.projection, state = state.as_str(), "rebuild ended without a swap");
    }
    Ok(row.into())
}

/// `queued` → `running`: the shadow tables, in one transaction with the state.
async fn start(
    pool: &PgPool,
    rebuild: &Rebuild,
    projection: Projection,
) -> Result<Step, RebuildError> {
    let shadow = rebuild.shadow_schema();
    let mut tx = pool.begin().await?;
    sqlx::query(&format!("CREATE SCHEMA {shadow}"))
        .execute(&mut *tx)
        .await?;
    for (table, _) in projection.projector().tables() {
        create_shadow_table(&mut tx, table, &shadow).await?;
    }
    for (table, _) in projection.projector().tables() {
        create_shadow_indexes(&mut tx, table, &shadow, Indexes::BTree).await?;
    }
    let started = sqlx::query(
        "UPDATE projection_rebuilds
            SET state = 'running', started_at = now(), updated_at = now(),
                events_total = (SELECT count(*) FROM events)
          WHERE id = $1 AND state = 'queued' AND NOT cancel_requested",
    )
    .bind(rebuild.id)
    .execute(&mut *tx)
    .await?;
    if started.rows_affected() == 1 {
        tx.commit().await?;
        tracing::info!(rebuild.id = %rebuild.id, projection.name = %projection, "rebuild started");
    }
    Ok(Step::Continue)
}

/// A shadow table like the live `public.<table>`: columns, defaults, generated
/// columns and checks; the keys the projector's upserts need; row-level security,
/// its policies and the grants; the same owner.
async fn create_shadow_table(
    conn: &mut PgConnection,
    table: &str,
    shadow: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "CREATE TABLE {shadow}.{table} (LIKE public.{table} INCLUDING DEFAULTS
             INCLUDING CONSTRAINTS INCLUDING GENERATED INCLUDING IDENTITY INCLUDING STORAGE
             INCLUDING COMPRESSION INCLUDING COMMENTS)"
    ))
    .execute(&mut *conn)
    .await?;
    let keys: Vec<(String, String)> = sqlx::query_as(
        "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint
          WHERE conrelid = format('public.%I', $1::text)::regclass AND contype IN ('p', 'u')",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    for (name, definition) in keys {
        sqlx::query(&format!(
            "ALTER TABLE {shadow}.{table} ADD CONSTRAINT {name} {definition}"
        ))
        .execute(&mut *conn)
        .await?;
    }
    let (owner, rls, forced): (String, bool, bool) = sqlx::query_as(
        "SELECT pg_get_userbyid(relowner)::text, relrowsecurity, relforcerowsecurity
           FROM pg_class WHERE oid = format('public.%I', $1::text)::regclass",
    )
    .bind(table)
    .fetch_one(&mut *conn)
    .await?;
    let current: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut *conn)
        .await?;
    if owner != current {
        sqlx::query(&format!(
            "ALTER TABLE {shadow}.{table} OWNER TO \"{owner}\""
        ))
        .execute(&mut *conn)
        .await?;
    }
    if rls {
        sqlx::query(&format!(
            "ALTER TABLE {shadow}.{table} ENABLE ROW LEVEL SECURITY"
        ))
        .execute(&mut *conn)
        .await?;
    }
    if forced {
        sqlx::query(&format!(
            "ALTER TABLE {shadow}.{table} FORCE ROW LEVEL SECURITY"
        ))
        .execute(&mut *conn)
        .await?;
    }
    #[derive(sqlx::FromRow)]
    struct Policy {
        name: String,
        permissive: String,
        roles: Vec<String>,
        command: String,
        using: Option<String>,
        check: Option<String>,
    }
    let policies: Vec<Policy> = sqlx::query_as(
        "SELECT policyname::text AS name, permissive, roles::text[] AS roles, cmd AS command,
                qual AS using, with_check AS check
           FROM pg_policies WHERE schemaname = 'public' AND tablename = $1",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    for policy in policies {
        let roles = policy
            .roles
            .iter()
            .map(|r| {
                if r == "public" {
                    "PUBLIC".to_owned()
                } else {
                    format!("\"{r}\"")
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut statement = format!(
            "CREATE POLICY {} ON {shadow}.{table} AS {} FOR {} TO {roles}",
            policy.name, policy.permissive, policy.command
        );
        if let Some(using) = policy.using {
            statement.push_str(&format!(" USING ({using})"));
        }
        if let Some(check) = policy.check {
            statement.push_str(&format!(" WITH CHECK ({check})"));
        }
        sqlx::query(&statement).execute(&mut *conn).await?;
    }
    let grants: Vec<(String, String)> = sqlx::query_as(
        "SELECT grantee::text, privilege_type::text FROM information_schema.role_table_grants
          WHERE table_schema = 'public' AND table_name = $1 AND grantee <> $2",
    )
    .bind(table)
    .bind(&owner)
    .fetch_all(&mut *conn)
    .await?;
    for (grantee, privilege) in grants {
        let grantee = if grantee == "PUBLIC" {
            grantee
        } else {
            format!("\"{grantee}\"")
        };
        sqlx::query(&format!(
            "GRANT {privilege} ON {shadow}.{table} TO {grantee}"
        ))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Which of the live table's secondary indexes to make on the shadow table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Indexes {
    /// B-trees: the projector's own reads use them (a comp's building, say), and they
    /// are cheap to keep up while loading.
    BTree,
    /// The rest (GIST, trigram): only queries need them; built once, before the swap.
    Other,
}

/// The live table's secondary indexes of one kind, made on the shadow table
/// (idempotent: a resumed rebuild makes only what is missing).
async fn create_shadow_indexes(
    conn: &mut PgConnection,
    table: &str,
    shadow: &str,
    which: Indexes,
) -> Result<(), sqlx::Error> {
    let definitions: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, pg_get_indexdef(i.indexrelid)
           FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
          WHERE i.indrelid = format('public.%I', $1::text)::regclass
            AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    for (name, definition) in definitions {
        // `CREATE [UNIQUE] INDEX name ON public.table USING …`
        let Some((_, rest)) = definition.split_once(&format!(" ON public.{table} ")) else {
            continue;
        };
        let btree = rest.starts_with("USING btree");
        if btree != (which == Indexes::BTree) {
            continue;
        }
        let unique = if definition.starts_with("CREATE UNIQUE") {
            "UNIQUE "
        } else {
            ""
        };
        sqlx::query(&format!(
            "CREATE {unique}INDEX IF NOT EXISTS {name} ON {shadow}.{table} {rest}"
        ))
        .execute(&mut *conn)
        .await?;
    }
    if which == Indexes::Other {
        sqlx::query(&format!("ANALYZE {shadow}.{table}"))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Whether a projector error is the log's fault (an event that cannot be applied:
/// the rebuild fails) rather than the database's (the job is retried and resumes).
fn is_unapplicable(error: &ProjectionError) -> Option<String> {
    match error {
        ProjectionError::Unapplicable { .. } => Some(error.to_string()),
        _ => None,
    }
}

/// Points the transaction's unqualified table names at the shadow schema. Its
/// statements are planned for each execution's arguments (the shadow tables grow from
/// empty, so a plan kept from the first batches, a scan of an empty table, would scan
/// the whole table in every later one), and without parallel workers: the rebuild
/// shares the machine with the live projections and the api.
async fn enter_shadow(conn: &mut PgConnection, shadow: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT set_config('search_path', $1, true),
                set_config('plan_cache_mode', 'force_custom_plan', true),
                set_config('max_parallel_workers_per_gather', '0', true)",
    )
    .bind(format!("{shadow}, public"))
    .execute(conn)
    .await?;
    Ok(())
}

/// Applies shadow batches until the log's head; each batch commits with the rebuild's
/// checkpoint. Stops early when the rebuild is cancelled or an event cannot be applied.
async fn build(
    pool: &PgPool,
    rebuild: &Rebuild,
    projection: Projection,
    options: &RebuildOptions,
    progress: &mut (dyn FnMut(&Rebuild) + Send),
) -> Result<Step, RebuildError> {
    let shadow = rebuild.shadow_schema();
    let mut cursor = rebuild.cursor.clone();
    let mut since_total = tokio::time::Instant::now();
    // Statistics at every doubling: without them a batch's `= ANY(ids)` reads are
    // estimated to match much of the table and planned as scans of all of it.
    let mut analyze_at = ANALYZE_FIRST_AT;
    loop {
        let mut tx = pool.begin().await?;
        enter_shadow(&mut tx, &shadow).await?;
        let horizon = log::horizon(&mut tx).await?;
        let events = log::read_after(&mut tx, &cursor, &horizon, options.batch_size).await?;
        let Some(last) = events.last() else {
            tx.commit().await?;
            return Ok(Step::Continue);
        };
        if let Err(error) = projection
            .projector()
            .apply(&mut tx, &events, Target::Shadow)
            .await
        {
            drop(tx);
            return match is_unapplicable(&error) {
                Some(reason) => Ok(Step::Stopped(
                    abandon(pool, rebuild, RebuildState::Failed, Some(&reason)).await?,
                )),
                None => Err(match error {
                    ProjectionError::Database(error) => error.into(),
                    other => sqlx::Error::Protocol(other.to_string()).into(),
                }),
            };
        }
        cursor = last.cursor();
        // Now and then, the log's length again: it grows while the rebuild runs.
        let recount = since_total.elapsed() > Duration::from_secs(5);
        if recount {
            since_total = tokio::time::Instant::now();
        }
        let row: RebuildRow = sqlx::query_as(&format!(
            "UPDATE projection_rebuilds
                SET transaction_id = $2::text::xid8, position = $3,
                    events_applied = events_applied + $4,
                    events_total = CASE WHEN $5
                        THEN events_applied + $4 + (SELECT count(*) FROM events
                              WHERE (transaction_id, position) > ($2::text::xid8, $3))
                        ELSE greatest(events_total, events_applied + $4) END,
                    updated_at = now()
              WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(rebuild.id)
        .bind(&cursor.transaction_id)
        .bind(cursor.position)
        .bind(events.len() as i64)
        .bind(recount)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let current: Rebuild = row.into();
        progress(&current);
        if current.cancel_requested {
            return Ok(Step::Stopped(
                abandon(pool, &current, RebuildState::Cancelled, None).await?,
            ));
        }
        if current.events_applied >= analyze_at {
            analyze_shadow(pool, projection, &shadow).await?;
            analyze_at = current.events_applied.saturating_mul(2);
        }
    }
}

/// Events after which a rebuild first gathers its shadow tables' statistics.
const ANALYZE_FIRST_AT: i64 = 1_000;

/// Gathers statistics of every shadow table of `projection` (a sample: a fraction of a
/// second even at millions of rows).
async fn analyze_shadow(
    pool: &PgPool,
    projection: Projection,
    shadow: &str,
) -> Result<(), sqlx::Error> {
    let tables: Vec<String> = projection
        .projector()
        .tables()
        .iter()
        .map(|(table, _)| format!("{shadow}.{table}"))
        .collect();
    sqlx::query(&format!("ANALYZE {}", tables.join(", ")))
        .execute(pool)
        .await?;
    Ok(())
}

/// `verifying`: indexes, a last catch-up, the checks, then the swap.
async fn verify_and_swap(
    pool: &PgPool,
    rebuild: &Rebuild,
    projection: Projection,
    cache: Option<&ViewCache>,
    options: &RebuildOptions,
    progress: &mut (dyn FnMut(&Rebuild) + Send),
) -> Result<Step, RebuildError> {
    let shadow = rebuild.shadow_schema();
    {
        // One core for the index builds: the other stays with the live projections
        // and the api (a parallel build took both, and the live lag with them).
        let mut tx = pool.begin().await?;
        sqlx::query("SET LOCAL max_parallel_maintenance_workers = 0")
            .execute(&mut *tx)
            .await?;
        for (table, _) in projection.projector().tables() {
            create_shadow_indexes(&mut tx, table, &shadow, Indexes::Other).await?;
        }
        tx.commit().await?;
    }
    if let Step::Stopped(stopped) = build(pool, rebuild, projection, options, progress).await? {
        return Ok(Step::Stopped(stopped));
    }
    let current = get(pool, rebuild.id)
        .await?
        .ok_or(RebuildError::NotFound(rebuild.id))?;
    let verdict = {
        let mut tx = pool.begin().await?;
        // As the batches run: the folds of the whole log without parallel workers,
        // which would otherwise take every core from the live side.
        enter_shadow(&mut tx, &shadow).await?;
        let verdict = verify::verify(&mut tx, projection.projector(), &current.cursor).await?;
        tx.rollback().await?;
        verdict
    };
    if let Err(failure) = verdict {
        let reason = format!("verification failed: {failure}");
        return Ok(Step::Stopped(
            abandon(pool, &current, RebuildState::Failed, Some(&reason)).await?,
        ));
    }
    tracing::info!(rebuild.id = %rebuild.id, projection.name = %projection, events = current.events_applied, "rebuild verified");
    for attempt in 0..options.swap_attempts {
        let current = get(pool, rebuild.id)
            .await?
            .ok_or(RebuildError::NotFound(rebuild.id))?;
        if current.cancel_requested {
            return Ok(Step::Stopped(
                abandon(pool, &current, RebuildState::Cancelled, None).await?,
            ));
        }
        match swap(pool, &current, projection, cache, options).await {
            Ok(swapped) => return Ok(Step::Stopped(swapped)),
            Err(SwapError::Busy) => {
                tracing::info!(rebuild.id = %rebuild.id, attempt, "the swap waited too long for readers; trying again");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt.min(10) + 1)))
                    .await;
            }
            Err(SwapError::Unapplicable(reason)) => {
                return Ok(Step::Stopped(
                    abandon(pool, &current, RebuildState::Failed, Some(&reason)).await?,
                ));
            }
            Err(SwapError::Rebuild(error)) => return Err(error),
        }
    }
    Err(RebuildError::Database(sqlx::Error::PoolTimedOut))
}

enum SwapError {
    /// A lock was not granted within the timeout.
    Busy,
    Unapplicable(String),
    Rebuild(RebuildError),
}

impl From<sqlx::Error> for SwapError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("55P03") => Self::Busy,
            _ => Self::Rebuild(error.into()),
        }
    }
}

/// The swap: one short transaction. The views' generation is raised in the cache
/// first, so readers stop caching what they read from the old tables.
async fn swap(
    pool: &PgPool,
    rebuild: &Rebuild,
    projection: Projection,
    cache: Option<&ViewCache>,
    options: &RebuildOptions,
) -> Result<Rebuild, SwapError> {
    let shadow = rebuild.shadow_schema();
    let retired = rebuild.retired_schema();
    let mut tx = pool.begin().await?;
    sqlx::query(&format!(
        "SET LOCAL lock_timeout = {}",
        options.swap_lock_timeout.as_millis().max(1)
    ))
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(projection.lock_key())
        .execute(&mut *tx)
        .await?;
    let generation: i64 = sqlx::query_scalar(
        "SELECT coalesce((SELECT generation FROM projection_checkpoints WHERE name = $1), 0) + 1",
    )
    .bind(projection.name())
    .fetch_one(&mut *tx)
    .await?;
    // The last events, in the swap's transaction: the live catch-up waits for it.
    enter_shadow(&mut tx, &shadow).await?;
    let mut cursor = rebuild.cursor.clone();
    let mut applied = rebuild.events_applied;
    let horizon = log::horizon(&mut tx).await?;
    loop {
        let events = log::read_after(&mut tx, &cursor, &horizon, 5_000).await?;
        let Some(last) = events.last() else { break };
        if let Err(error) = projection
            .projector()
            .apply(&mut tx, &events, Target::Shadow)
            .await
        {
            return Err(match is_unapplicable(&error) {
                Some(reason) => SwapError::Unapplicable(reason),
                None => SwapError::Rebuild(RebuildError::Database(match error {
                    ProjectionError::Database(error) => error,
                    other => sqlx::Error::Protocol(other.to_string()),
                })),
            });
        }
        cursor = last.cursor();
        applied += events.len() as i64;
    }
    sqlx::query("SET LOCAL search_path TO public")
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {retired}"))
        .execute(&mut *tx)
        .await?;
    for (table, _) in projection.projector().tables() {
        sqlx::query(&format!("ALTER TABLE public.{table} SET SCHEMA {retired}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!("ALTER TABLE {shadow}.{table} SET SCHEMA public"))
            .execute(&mut *tx)
            .await?;
    }
    checkpoint::swap_in(&mut tx, projection.name(), &cursor, applied, generation).await?;
    // The old tables and the (now empty) shadow schema go with the
    // swap: their files are removed when it commits.
    for schema in [&retired, &shadow] {
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&mut *tx)
            .await?;
    }
    let row: RebuildRow = sqlx::query_as(&format!(
        "UPDATE projection_rebuilds
            SET state = 'swapped', finished_at = now(), updated_at = now(),
                transaction_id = $2::text::xid8, position = $3, events_applied = $4,
                events_total = $4
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(rebuild.id)
    .bind(&cursor.transaction_id)
    .bind(cursor.position)
    .bind(applied)
    .fetch_one(&mut *tx)
    .await?;
    if let (Some(cache), true) = (cache, projection.projector().feeds_cache()) {
        // Last, with the live tables locked: a reader that learns the new generation
        // waits for this commit and reads the new tables; one that read the old
        // tables stores its view under the old generation, never read again.
        if cache.next_generation().await.is_none() {
            return Err(SwapError::Rebuild(RebuildError::CacheUnavailable(
                "Redis did not answer".into(),
            )));
        }
    }
    tx.commit().await?;
    let swapped: Rebuild = row.into();
    tracing::info!(rebuild.id = %swapped.id, projection.name = %projection, events = swapped.events_applied, rate = swapped.rate().unwrap_or_default(), "rebuild swapped in");
    Ok(swapped)
}
