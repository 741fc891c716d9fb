//! What the worker does with the log: bring every projection up to date, then refresh
//! the cache views the new rows changed; run rebuilds beside the live projections.
//! Jobs and the backstop both end up here, so it does not matter which of them arrives.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use projections::cache::ViewCache;
use projections::rebuild::{self, Rebuild, RebuildError, RebuildOptions};
use projections::{CatchUpOptions, Projection, ProjectionError};
use sqlx::PgPool;
use uuid::Uuid;

use crate::metrics::WorkerMetrics;

/// How long a catch-up keeps looking for events held back by an older, still running
/// transaction before leaving them to the backstop.
const HELD_BACK_PATIENCE: Duration = Duration::from_secs(2);
const HELD_BACK_PAUSE: Duration = Duration::from_millis(25);
/// Cache refreshes per outbox pass.
const REFRESH_BATCH: i64 = 500;
/// Outbox passes between two catch-ups.
const REFRESH_PASSES: usize = 4;

#[derive(Debug, Clone)]
pub struct Delivery {
    pool: PgPool,
    cache: ViewCache,
    options: CatchUpOptions,
    rebuild_options: RebuildOptions,
    metrics: WorkerMetrics,
    /// Rebuilds this process is running, so a job and the backstop do not start one
    /// twice here (other workers are kept out by the rebuild's own lock).
    rebuilding: Arc<Mutex<HashSet<Uuid>>>,
}

impl Delivery {
    pub fn new(pool: PgPool, cache: ViewCache, batch_size: i64, rebuild_batch_size: i64) -> Self {
        Self {
            pool,
            cache,
            options: CatchUpOptions {
                batch_size,
                ..CatchUpOptions::default()
            },
            rebuild_options: RebuildOptions {
                batch_size: rebuild_batch_size,
                ..RebuildOptions::default()
            },
            metrics: WorkerMetrics::new(),
            rebuilding: Arc::default(),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// This process's metrics (jobs, queues, projections).
    pub fn metrics(&self) -> &WorkerMetrics {
        &self.metrics
    }

    /// Says that a catch-up is starting, so the next commit queues another wake-up
    /// ([`projections::jobs::wake_flag`]). Call it before reading the log.
    pub async fn clear_wake_flag(&self) {
        let key = projections::jobs::wake_flag(self.cache.namespace());
        self.cache
            .link()
            .call(
                |mut c| async move { redis::cmd("DEL").arg(&key).query_async::<i64>(&mut c).await },
            )
            .await;
    }

    /// Catches up every projection, each on its own (a slow one does not hold the
    /// others back), then refreshes the cache; returns the events applied. A large
    /// backlog of cache marks (after a bulk import, say) is drained a slice at a time
    /// with a catch-up between slices, so it never holds the projections back.
    pub async fn catch_up_all(&self) -> Result<u64, ProjectionError> {
        let mut applied = 0;
        loop {
            let (n, failure) = self.catch_up_each().await;
            applied += n;
            let more = self.refresh_cache().await;
            if let Some(error) = failure {
                return Err(error);
            }
            if !more {
                return Ok(applied);
            }
        }
    }

    /// One catch-up of every projection: the events applied, and the last failure.
    async fn catch_up_each(&self) -> (u64, Option<ProjectionError>) {
        let outcomes = futures_util::future::join_all(
            Projection::ALL
                .map(|projection| async move { (projection, self.catch_up(projection).await) }),
        )
        .await;
        let mut applied = 0;
        let mut failure = None;
        for (projection, outcome) in outcomes {
            match outcome {
                Ok(n) => applied += n,
                // Another worker is on it; it will apply what there is.
                Err(ProjectionError::Busy(_)) => {}
                Err(error) => {
                    tracing::error!(projection.name = %projection, error = %error, "projection cannot advance");
                    failure = Some(error);
                }
            }
        }
        (applied, failure)
    }

    async fn catch_up(&self, projection: Projection) -> Result<u64, ProjectionError> {
        let started = tokio::time::Instant::now();
        let mut applied = 0;
        loop {
            let outcome = projections::catch_up(&self.pool, projection, &self.options).await?;
            applied += outcome.applied;
            if !outcome.held_back || started.elapsed() >= HELD_BACK_PATIENCE {
                break;
            }
            tokio::time::sleep(HELD_BACK_PAUSE).await;
        }
        if applied > 0 {
            tracing::debug!(projection.name = %projection, events = applied, "projection caught up");
        }
        Ok(applied)
    }

    /// Refreshes the cache views the outbox names, up to [`REFRESH_PASSES`] passes;
    /// true when more are waiting. Redis trouble leaves them queued.
    pub async fn refresh_cache(&self) -> bool {
        for _ in 0..REFRESH_PASSES {
            match self
                .cache
                .refresh_from_outbox(&self.pool, REFRESH_BATCH)
                .await
            {
                Ok(n) if n as i64 == REFRESH_BATCH => continue,
                Ok(_) => return false,
                Err(error) => {
                    tracing::warn!(error = %error, "cache refresh failed; it stays queued");
                    return false;
                }
            }
        }
        true
    }

    /// Runs rebuild `id` here, reporting each batch to `progress`; `None` when this
    /// process or another worker is already running it.
    pub async fn run_rebuild(
        &self,
        id: Uuid,
        progress: &mut (dyn FnMut(&Rebuild) + Send),
    ) -> Result<Option<Rebuild>, RebuildError> {
        if !self
            .rebuilding
            .lock()
            .map(|mut running| running.insert(id))
            .unwrap_or(false)
        {
            return Ok(None);
        }
        let mut last_log = tokio::time::Instant::now();
        let mut report = |rebuild: &Rebuild| {
            if last_log.elapsed() >= Duration::from_secs(10) {
                last_log = tokio::time::Instant::now();
                tracing::info!(
                    rebuild.id = %rebuild.id,
                    projection.name = %rebuild.projection,
                    state = rebuild.state.as_str(),
                    events = rebuild.events_applied,
                    total = rebuild.events_total,
                    rate = rebuild.rate().unwrap_or_default(),
                    "rebuild progress"
                );
            }
            progress(rebuild);
        };
        let result = rebuild::run(
            &self.pool,
            id,
            Some(&self.cache),
            &self.rebuild_options,
            &mut report,
        )
        .await;
        if let Ok(mut running) = self.rebuilding.lock() {
            running.remove(&id);
        }
        match result {
            Ok(rebuild) => Ok(Some(rebuild)),
            Err(RebuildError::Busy(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Starts, in the background, every active rebuild that no worker is running: one
    /// a killed worker left half done, or one queued while Redis was down.
    pub async fn resume_rebuilds(self: &Arc<Self>) {
        let active = match rebuild::active(&self.pool).await {
            Ok(active) => active,
            Err(error) => {
                tracing::debug!(%error, "cannot list active rebuilds");
                return;
            }
        };
        for rebuild in active {
            let running_here = self
                .rebuilding
                .lock()
                .map(|running| running.contains(&rebuild.id))
                .unwrap_or(true);
            if running_here {
                continue;
            }
            let delivery = Arc::clone(self);
            tokio::spawn(async move {
                match delivery.run_rebuild(rebuild.id, &mut |_| {}).await {
                    Ok(Some(done)) => {
                        tracing::info!(rebuild.id = %done.id, state = done.state.as_str(), "rebuild ended")
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(rebuild.id = %rebuild.id, %error, "rebuild interrupted; it resumes on the next try")
                    }
                }
            });
        }
    }

    /// Asks for the first build of every projection that has never been built (one
    /// added in this version of Prism): the same rebuild machinery, from the whole log,
    /// beside the others.
    pub async fn backfill(&self) -> Result<Vec<Rebuild>, RebuildError> {
        let statuses = projections::status(&self.pool)
            .await
            .map_err(|error| match error {
                ProjectionError::Database(error) => RebuildError::Database(error),
                other => RebuildError::Database(sqlx::Error::Protocol(other.to_string())),
            })?;
        let mut requested = Vec::new();
        for status in statuses.iter().filter(|s| s.checkpoint.is_none()) {
            let Some(projection) = Projection::parse(status.name) else {
                continue;
            };
            match rebuild::request(&self.pool, projection, "backfill").await {
                Ok(rebuild) => {
                    tracing::info!(rebuild.id = %rebuild.id, projection.name = %projection, "backfill requested");
                    requested.push(rebuild);
                }
                Err(RebuildError::AlreadyActive(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(requested)
    }
}
