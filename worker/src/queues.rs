//! The apalis side: workers on the `projections` and `rebuilds` queues (named under
//! the Redis namespace, so api and worker agree whatever their type paths). Jobs are
//! wake-ups; the handlers call [`Delivery`], which reads the log from the checkpoint.
//!
//! Redis may be missing or flushed at any time: the queues reconnect with a pause and
//! rebuild their workers (each with a unique name, as apalis-redis requires), while
//! the backstop keeps projections moving without them.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use apalis_redis::{Config, RedisStorage};
use projections::jobs::{self, CatchUp, Rebuild};
use projections::Projection;
use tokio::sync::watch;

use crate::config::WorkerSettings;
use crate::delivery::Delivery;

/// Pause before reconnecting after Redis failed.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);
/// In-flight jobs get this long to finish on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// Finished job ids kept per queue (apalis never trims them).
const DONE_KEPT: i64 = 1000;

async fn handle_catch_up(job: CatchUp, delivery: Data<Arc<Delivery>>) -> Result<(), BoxDynError> {
    let span = tracing::info_span!(
        "catch-up job",
        request.id = job.request_id.as_deref().unwrap_or("-"),
        trace.id = tracing::field::Empty,
    );
    if let Some(traceparent) = &job.traceparent {
        telemetry::traces::continue_trace(&span, traceparent);
    }
    if let Some(trace_id) = telemetry::traces::trace_id(&span) {
        span.record("trace.id", trace_id.as_str());
    }
    let job = async {
        delivery.clear_wake_flag().await;
        delivery.catch_up_all().await
    };
    let job = delivery.metrics().time("projections", job);
    tracing::Instrument::instrument(job, span).await?;
    Ok(())
}

async fn handle_rebuild(job: Rebuild, delivery: Data<Arc<Delivery>>) -> Result<(), BoxDynError> {
    let id = match job.id {
        Some(id) => id,
        // A job of the first version: it names only the projection.
        None => {
            let Some(projection) = Projection::parse(&job.projection) else {
                return Err(
                    AbortError::new(format!("no projection named {:?}", job.projection)).into(),
                );
            };
            let requested_by = job.requested_by.as_deref().unwrap_or("job");
            match projections::rebuild::request(delivery.pool(), projection, requested_by).await {
                Ok(rebuild) => rebuild.id,
                Err(projections::rebuild::RebuildError::AlreadyActive(active)) => active.id,
                Err(error) => return Err(error.into()),
            }
        }
    };
    delivery
        .metrics()
        .time("rebuilds", delivery.run_rebuild(id, &mut |_| {}))
        .await?;
    Ok(())
}

fn queue_config(queue: String, settings: &WorkerSettings) -> Config {
    Config::default()
        .queue(queue)
        .batch_size(settings.concurrency)
        .heartbeat_interval(Duration::from_secs(10))
        .missed_heartbeats(3)
}

/// Runs the queue workers until `shutdown` turns true, reconnecting after failures.
pub async fn run(
    settings: WorkerSettings,
    delivery: Arc<Delivery>,
    mut shutdown: watch::Receiver<bool>,
) {
    let boot = uuid::Uuid::new_v4().simple().to_string();
    let mut generation = 0u32;
    while !*shutdown.borrow() {
        generation += 1;
        let connection = match projections::cache::connect_redis(
            settings.redis_url.expose(),
            Duration::from_secs(5),
        )
        .await
        {
            Ok(connection) => connection,
            Err(error) => {
                tracing::warn!(error = %error, "job queues: Redis unavailable; the backstop keeps projections moving");
                pause(&mut shutdown, RECONNECT_PAUSE).await;
                continue;
            }
        };
        let ns = &settings.redis_namespace;
        let catch_up_storage: RedisStorage<CatchUp> = RedisStorage::new(connection.clone())
            .with_config(queue_config(jobs::catch_up_queue(ns), &settings));
        let rebuild_storage: RedisStorage<Rebuild> = RedisStorage::new(connection.clone())
            .with_config(queue_config(jobs::rebuild_queue(ns), &settings));
        let trimmer = tokio::spawn(trim_done(
            connection,
            vec![jobs::catch_up_queue(ns), jobs::rebuild_queue(ns)],
        ));
        let poll = settings.poll_interval;
        let concurrency = settings.concurrency;
        let (catch_up_delivery, rebuild_delivery) = (delivery.clone(), delivery.clone());
        let (catch_up_name, rebuild_name) = (
            format!("catch-up-{boot}-{generation}"),
            format!("rebuild-{boot}-{generation}"),
        );
        let monitor = Monitor::new()
            .register(move |restarts| {
                WorkerBuilder::new(format!("{catch_up_name}-{restarts}"))
                    .backend(catch_up_storage.clone().poll_with_interval(poll))
                    .enable_tracing()
                    .catch_panic()
                    .concurrency(concurrency)
                    .data(catch_up_delivery.clone())
                    .build(handle_catch_up)
            })
            .register(move |restarts| {
                WorkerBuilder::new(format!("{rebuild_name}-{restarts}"))
                    .backend(rebuild_storage.clone().poll_with_interval(poll * 10))
                    .enable_tracing()
                    .catch_panic()
                    .concurrency(1)
                    .data(rebuild_delivery.clone())
                    .build(handle_rebuild)
            })
            .should_restart(|worker, error| {
                tracing::warn!(worker.name = %worker.name(), error = %error, "queue worker stopped; restarting");
                true
            })
            .shutdown_timeout(SHUTDOWN_GRACE);
        let mut signal = shutdown.clone();
        let result = monitor
            .run_with_signal(async move {
                let _ = signal.wait_for(|stop| *stop).await;
                Ok(())
            })
            .await;
        trimmer.abort();
        if *shutdown.borrow() {
            break;
        }
        match result {
            Ok(()) => tracing::warn!("job queues stopped; starting them again"),
            Err(error) => tracing::warn!(error = %error, "job queues failed; starting them again"),
        }
        pause(&mut shutdown, RECONNECT_PAUSE).await;
    }
}

async fn pause(shutdown: &mut watch::Receiver<bool>, duration: Duration) {
    let _ = tokio::time::timeout(duration, shutdown.wait_for(|stop| *stop)).await;
}

/// Forgets finished jobs beyond the newest [`DONE_KEPT`] per queue: their ids, data
/// and metadata (apalis keeps them forever). Dead jobs are kept for inspection.
const TRIM_SCRIPT: &str = r"
local excess = redis.call('SCARD', KEYS[1] .. ':done') - tonumber(ARGV[1])
if excess <= 0 then return 0 end
local ids = redis.call('SPOP', KEYS[1] .. ':done', excess)
for _, id in ipairs(ids) do
  redis.call('HDEL', KEYS[1] .. ':data', id)
  redis.call('DEL', KEYS[1] .. ':meta:' .. id)
end
return #ids
";

async fn trim_done(mut connection: redis::aio::ConnectionManager, queues: Vec<String>) {
    let mut every = tokio::time::interval(Duration::from_secs(30));
    loop {
        every.tick().await;
        for queue in &queues {
            let trimmed: redis::RedisResult<i64> = redis::Script::new(TRIM_SCRIPT)
                .key(queue)
                .arg(DONE_KEPT)
                .invoke_async(&mut connection)
                .await;
            if let Err(error) = trimmed {
                tracing::debug!(queue = %queue, error = %error, "could not trim finished jobs");
            }
        }
    }
}
