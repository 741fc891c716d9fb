//! What the worker does with the log: bring every projection up to date, then refresh
//! the cache views the new rows changed; rebuild a projection on request. Jobs and the
//! backstop both end up here, so it does not matter which of them arrives.

use std::time::Duration;

use projections::cache::ViewCache;
use projections::{CatchUpOptions, Projection, ProjectionError};
use sqlx::PgPool;

use crate::metrics::WorkerMetrics;

/// How long a catch-up keeps looking for events held back by an older, still running
/// transaction before leaving them to the backstop.
const HELD_BACK_PATIENCE: Duration = Duration::from_secs(2);
const HELD_BACK_PAUSE: Duration = Duration::from_millis(25);
/// Cache refreshes per outbox pass.
const REFRESH_BATCH: i64 = 500;

#[derive(Debug, Clone)]
pub struct Delivery {
    pool: PgPool,
    cache: ViewCache,
    options: CatchUpOptions,
    metrics: WorkerMetrics,
}

impl Delivery {
    pub fn new(pool: PgPool, cache: ViewCache, batch_size: i64) -> Self {
        Self {
            pool,
            cache,
            options: CatchUpOptions {
                batch_size,
                ..CatchUpOptions::default()
            },
            metrics: WorkerMetrics::new(),
        }
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
    /// others back), then refreshes the cache; returns the events applied.
    pub async fn catch_up_all(&self) -> Result<u64, ProjectionError> {
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
        self.refresh_cache().await;
        match failure {
            Some(error) => Err(error),
            None => Ok(applied),
        }
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

    /// Refreshes the cache views the outbox names; Redis trouble leaves them queued.
    pub async fn refresh_cache(&self) {
        loop {
            match self
                .cache
                .refresh_from_outbox(&self.pool, REFRESH_BATCH)
                .await
            {
                Ok(n) if n as i64 == REFRESH_BATCH => continue,
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(error = %error, "cache refresh failed; it stays queued");
                    break;
                }
            }
        }
    }

    /// Rebuilds `projection` from the log and drops every cached view.
    pub async fn rebuild(&self, projection: Projection) -> Result<u64, ProjectionError> {
        let outcome = projections::rebuild(&self.pool, projection, self.options.batch_size).await?;
        tracing::info!(projection.name = %projection, events = outcome.applied, "projection rebuilt");
        if !self.cache.purge().await {
            tracing::warn!(
                "cache views could not be purged after the rebuild; they expire by themselves"
            );
        }
        Ok(outcome.applied)
    }
}
