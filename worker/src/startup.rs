//! The worker value: built from settings, binds its health server (port 0 in tests),
//! reports its port, and runs the queue workers, the backstop and the health server
//! until a shutdown future fires. A batch in hand when shutdown comes either finishes
//! or rolls back with its transaction; nothing is half-applied.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::web::{Data, Json};
use poem::{get, handler, http::StatusCode, EndpointExt, IntoResponse, Response, Route, Server};
use projections::cache::{RedisLink, ViewCache};
use serde_json::json;
use sqlx::PgPool;
use telemetry::metrics::{bearer, ScrapeToken};
use tokio::sync::watch;

use crate::config::WorkerSettings;
use crate::delivery::Delivery;
use crate::queues;

/// How long a worker's Redis call (cache refresh, readiness) may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// What every way of running the worker needs: the pool, and delivery over it and the
/// cache (also `prism-worker replay`).
pub async fn connect(settings: &WorkerSettings) -> anyhow::Result<(PgPool, RedisLink, Delivery)> {
    let pool = connect_database(settings).await?;
    let redis = RedisLink::new(settings.redis_url.expose(), REDIS_TIMEOUT);
    let cache = ViewCache::with_link(redis.clone(), settings.redis_namespace.clone());
    let delivery = Delivery::new(
        pool.clone(),
        cache,
        settings.batch_size,
        settings.rebuild_batch_size,
    );
    Ok((pool, redis, delivery))
}

/// The Postgres pool of the worker.
pub async fn connect_database(settings: &WorkerSettings) -> anyhow::Result<PgPool> {
    projections::connect_pool(
        settings.database_url.expose(),
        settings.database_max_connections,
    )
    .await
    .context("cannot connect to DATABASE_URL")
}

pub struct Worker {
    settings: WorkerSettings,
    pool: PgPool,
    redis: RedisLink,
    delivery: Arc<Delivery>,
    acceptor: TcpAcceptor,
    port: u16,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Worker {
    pub async fn build(settings: WorkerSettings) -> anyhow::Result<Self> {
        settings.check_serving()?;
        let (pool, redis, delivery) = connect(&settings).await?;
        // Before serving: a database whose transaction counter is behind the log or a
        // checkpoint (a restore into another cluster) would have events skipped
        // silently; refuse instead, naming the runbook.
        if let Err(behind) = projections::deliverable::check(&pool)
            .await
            .context("cannot check the checkpoints against the database's transaction ids")?
        {
            return Err(anyhow::Error::new(behind).context("prism-worker refuses to start"));
        }
        let delivery = Arc::new(delivery);
        let acceptor = TcpListener::bind(format!("{}:{}", settings.host, settings.port))
            .into_acceptor()
            .await
            .with_context(|| format!("cannot listen on {}:{}", settings.host, settings.port))?;
        let port = acceptor
            .local_addr()
            .first()
            .and_then(|addr| addr.as_socket_addr().map(|a| a.port()))
            .context("the listener has no port")?;
        Ok(Self {
            settings,
            pool,
            redis,
            delivery,
            acceptor,
            port,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs until `shutdown` completes; in-flight work then finishes or rolls back.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let (stop, stopping) = watch::channel(false);
        let queues = tokio::spawn(queues::run(
            self.settings.clone(),
            self.delivery.clone(),
            stopping.clone(),
        ));
        let backstop = tokio::spawn(backstop(
            self.delivery.clone(),
            self.settings.backstop_interval,
            stopping.clone(),
        ));
        let sampler = tokio::spawn(sample_metrics(
            self.delivery.clone(),
            self.redis.clone(),
            self.pool.clone(),
            self.settings.redis_namespace.clone(),
            self.settings.metrics_sample_interval,
            stopping.clone(),
        ));
        let scrape = Arc::new(ScrapeAccess(
            self.settings
                .metrics_scrape_token
                .as_ref()
                .filter(|_| self.settings.log.env.is_production())
                .map(ScrapeToken::new),
        ));
        let routes = Route::new()
            .at("/health", get(health))
            .at("/ready", get(ready))
            .at("/metrics", get(metrics))
            .data(self.pool.clone())
            .data(self.redis.clone())
            .data(self.delivery.clone())
            .data(scrape);
        let mut http_stopping = stopping.clone();
        let server = Server::new_with_acceptor(self.acceptor).run_with_graceful_shutdown(
            routes,
            async move {
                let _ = http_stopping.wait_for(|s| *s).await;
            },
            Some(Duration::from_secs(5)),
        );
        let server = tokio::spawn(server);
        shutdown.await;
        tracing::info!("prism-worker stopping");
        let _ = stop.send(true);
        let _ = backstop.await;
        let _ = sampler.await;
        let _ = queues.await;
        let _ = server.await;
        Ok(())
    }
}

/// Runs `tick` every `interval` until stopping turns true; a tick in progress when it
/// does is dropped (a catch-up's open batch rolls back).
async fn every<F, Fut>(interval: Duration, mut stopping: watch::Receiver<bool>, mut tick: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut timer = tokio::time::interval(interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopping.wait_for(|s| *s) => return,
            _ = timer.tick() => {}
        }
        tokio::select! {
            _ = stopping.wait_for(|s| *s) => return,
            () = tick() => {}
        }
    }
}

/// How often the backstop looks for rebuilds no worker is running.
const REBUILD_SWEEP: Duration = Duration::from_secs(2);

/// Catches up every `interval` whatever the queues do: lost jobs, a flushed Redis or a
/// dead worker only delay projections. Every few seconds it also picks up rebuilds
/// no worker is running (a killed worker's, or one queued while Redis was down).
/// Shutdown drops a catch-up in progress, which rolls its batch back.
async fn backstop(delivery: Arc<Delivery>, interval: Duration, stopping: watch::Receiver<bool>) {
    match delivery.backfill().await {
        Ok(requested) if !requested.is_empty() => {
            tracing::info!(
                rebuilds = requested.len(),
                "new projections are being built from the log"
            );
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot check for projections to backfill"),
    }
    delivery.resume_rebuilds().await;
    let swept = std::sync::Mutex::new(tokio::time::Instant::now());
    every(interval, stopping, || async {
        if let Ok(n) = delivery.catch_up_all().await {
            if n > 0 {
                tracing::info!(events = n, "backstop applied events no job had announced");
            }
        }
        let sweep = swept
            .lock()
            .map(|mut at| {
                let due = at.elapsed() >= REBUILD_SWEEP;
                if due {
                    *at = tokio::time::Instant::now();
                }
                due
            })
            .unwrap_or(false);
        if sweep {
            delivery.resume_rebuilds().await;
        }
    })
    .await;
}

/// Samples queue depths and projection lag for `/metrics` until stopping.
async fn sample_metrics(
    delivery: Arc<Delivery>,
    redis: RedisLink,
    pool: PgPool,
    namespace: String,
    interval: Duration,
    stopping: watch::Receiver<bool>,
) {
    let queues = [
        ("projections", projections::jobs::catch_up_queue(&namespace)),
        ("rebuilds", projections::jobs::rebuild_queue(&namespace)),
    ];
    every(interval, stopping, || {
        delivery.metrics().sample(&redis, &pool, &queues)
    })
    .await;
}

/// Who may scrape: anyone (`None`), or in production the holder of
/// `METRICS_SCRAPE_TOKEN`.
#[derive(Debug)]
struct ScrapeAccess(Option<ScrapeToken>);

impl ScrapeAccess {
    fn admits(&self, authorization: Option<&str>) -> bool {
        match &self.0 {
            None => true,
            Some(token) => bearer(authorization).is_some_and(|presented| token.matches(presented)),
        }
    }
}

#[handler]
fn metrics(
    request: &poem::Request,
    delivery: Data<&Arc<Delivery>>,
    access: Data<&Arc<ScrapeAccess>>,
) -> Response {
    let authorization = request
        .headers()
        .get(poem::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !access.admits(authorization) {
        return Json(json!({ "status": 401, "title": "Authentication required" }))
            .with_status(StatusCode::UNAUTHORIZED)
            .into_response();
    }
    Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(delivery.metrics().render())
}

#[handler]
fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// 200 when Postgres and Redis answer; else 503 naming the failing check.
#[handler]
async fn ready(pool: Data<&PgPool>, redis: Data<&RedisLink>) -> Response {
    // Postgres answers and every migration the worker was built with is applied
    // (newer ones, from a deploy in progress, are fine).
    let database = sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool((*pool).clone());
    let postgres = migrations::missing(&database)
        .await
        .is_ok_and(|missing| missing.is_empty());
    let redis = redis
        .call(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
        .await
        .is_some();
    let checks = json!([
        { "name": "postgres", "ok": postgres },
        { "name": "redis", "ok": redis },
    ]);
    let status = if postgres && redis {
        "ready"
    } else {
        "not_ready"
    };
    let code = if postgres && redis {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Json(json!({ "status": status, "checks": checks }))
        .with_status(code)
        .into_response()
}
