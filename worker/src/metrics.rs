//! The worker's metrics, served at `/metrics` on `WORKER_PORT`.
//!
//! - `prism_queue_jobs{queue,state}`: jobs per queue by state — `pending` (waiting
//!   or due), `delayed` (scheduled later: retries), `running` (leased by a worker),
//!   `done`, `failed`, `dead`. apalis-redis 1.0's own statistics are broken, so one
//!   Lua script counts the backend's keys (list and set sizes, no scans of job data).
//! - `prism_jobs_total{queue,outcome}` and `prism_job_duration_seconds{queue}`: jobs
//!   this process ran, by outcome (`ok`, `error`).
//! - `prism_projection_position`, `prism_projection_lag_events`,
//!   `prism_projection_lag_seconds`, `prism_projection_last_batch_size`,
//!   `prism_projection_failing` by `projection`.
//! - `prism_rebuild_state{projection,state}` (1 for the latest rebuild's state),
//!   `prism_rebuild_events_applied`, `prism_rebuild_events_total`,
//!   `prism_rebuild_events_per_second` and `prism_rebuild_stalled_seconds` (since an
//!   active rebuild last made progress) by `projection`; every projection has them,
//!   rebuilt or not.
//!
//! Queue, projection and rebuild gauges are sampled every `METRICS_SAMPLE_MS` by a background
//! task, not per scrape: a scrape only renders what is in memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use projections::cache::RedisLink;
use sqlx::PgPool;
use telemetry::metrics::Registry;

/// Counts one queue's jobs by state in one round trip.
const QUEUE_DEPTH_SCRIPT: &str = r"
local q = KEYS[1]
local now = tonumber(ARGV[1])
local function size(key)
  local kind = redis.call('TYPE', key).ok
  if kind == 'set' then return redis.call('SCARD', key) end
  if kind == 'zset' then return redis.call('ZCARD', key) end
  if kind == 'list' then return redis.call('LLEN', key) end
  return 0
end
local due = redis.call('ZCOUNT', q .. ':scheduled', '-inf', now)
local scheduled = redis.call('ZCARD', q .. ':scheduled')
local running = 0
for _, worker in ipairs(redis.call('ZRANGE', q .. ':workers', 0, -1)) do
  running = running + size(q .. ':inflight:' .. worker)
end
return {size(q .. ':active') + due, scheduled - due, running,
        size(q .. ':done'), size(q .. ':failed'), size(q .. ':dead')}
";

const STATES: [&str; 6] = ["pending", "delayed", "running", "done", "failed", "dead"];

/// The worker's metrics; cheap to clone.
#[derive(Debug, Clone)]
pub struct WorkerMetrics {
    registry: Registry,
    script: Arc<redis::Script>,
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkerMetrics {
    pub fn new() -> Self {
        use metrics::Unit;
        let registry = Registry::new();
        registry.describe_gauge(
            "prism_queue_jobs",
            None,
            "Jobs per queue by state (pending, delayed, running, done, failed, dead).",
        );
        registry.describe_counter("prism_jobs_total", None, "Jobs run by queue and outcome.");
        registry.describe_histogram(
            "prism_job_duration_seconds",
            Some(Unit::Seconds),
            "Time a job took, by queue.",
        );
        registry.describe_gauge(
            "prism_projection_position",
            None,
            "Position of the last event a projection applied.",
        );
        registry.describe_gauge(
            "prism_projection_lag_events",
            None,
            "Committed events a projection has not applied yet.",
        );
        registry.describe_gauge(
            "prism_projection_lag_seconds",
            Some(Unit::Seconds),
            "Age of the oldest event a projection has not applied (0 when caught up).",
        );
        registry.describe_gauge(
            "prism_projection_last_batch_size",
            None,
            "Events in a projection's last batch.",
        );
        registry.describe_gauge(
            "prism_projection_failing",
            None,
            "1 while a projection is stopped at an event it cannot apply.",
        );
        registry.describe_gauge(
            "prism_rebuild_state",
            None,
            "1 for the state of each projection's latest rebuild (queued, running, verifying, swapped, failed, cancelled), 0 for the others.",
        );
        registry.describe_gauge(
            "prism_rebuild_events_applied",
            None,
            "Events the latest rebuild of a projection has applied to its shadow tables.",
        );
        registry.describe_gauge(
            "prism_rebuild_events_total",
            None,
            "The log's length as the latest rebuild of a projection last measured it.",
        );
        registry.describe_gauge(
            "prism_rebuild_events_per_second",
            None,
            "Events per second of the latest rebuild of a projection since it started.",
        );
        registry.describe_gauge(
            "prism_rebuild_stalled_seconds",
            Some(Unit::Seconds),
            "Seconds since an active rebuild of a projection last made progress (0 when none is active).",
        );
        Self {
            registry,
            script: Arc::new(redis::Script::new(QUEUE_DEPTH_SCRIPT)),
        }
    }

    /// Records a finished job of `queue`.
    pub fn job(&self, queue: &'static str, ok: bool, elapsed: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.registry
            .counter(
                "prism_jobs_total",
                vec![("queue", queue.to_owned()), ("outcome", outcome.to_owned())],
            )
            .increment(1);
        self.registry
            .histogram(
                "prism_job_duration_seconds",
                vec![("queue", queue.to_owned())],
            )
            .record(elapsed.as_secs_f64());
    }

    /// Times `job` and records its outcome.
    pub async fn time<T, E>(
        &self,
        queue: &'static str,
        job: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let started = Instant::now();
        let result = job.await;
        self.job(queue, result.is_ok(), started.elapsed());
        result
    }

    /// Samples the queues (`(label, redis key)`) and the projections.
    pub async fn sample(
        &self,
        redis: &RedisLink,
        pool: &PgPool,
        queues: &[(&'static str, String)],
    ) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        for (label, key) in queues {
            let script = Arc::clone(&self.script);
            let key = key.clone();
            let counts: Option<Vec<i64>> = redis
                .call(|mut connection| async move {
                    script.key(key).arg(now).invoke_async(&mut connection).await
                })
                .await;
            if let Some(counts) = counts {
                for (state, count) in STATES.iter().zip(counts) {
                    self.registry
                        .gauge(
                            "prism_queue_jobs",
                            vec![
                                ("queue", (*label).to_owned()),
                                ("state", (*state).to_owned()),
                            ],
                        )
                        .set(count as f64);
                }
            }
        }
        match projections::status(pool).await {
            Ok(statuses) => {
                for status in statuses {
                    let labels = || vec![("projection", status.name.to_owned())];
                    let set = |name: &'static str, value: f64| {
                        self.registry.gauge(name, labels()).set(value);
                    };
                    let checkpoint = status.checkpoint.as_ref();
                    set(
                        "prism_projection_position",
                        checkpoint.map_or(0.0, |c| c.position as f64),
                    );
                    set("prism_projection_lag_events", status.lag_events as f64);
                    set("prism_projection_lag_seconds", status.lag_seconds);
                    set(
                        "prism_projection_last_batch_size",
                        checkpoint.map_or(0.0, |c| f64::from(c.last_batch_size)),
                    );
                    set(
                        "prism_projection_failing",
                        if checkpoint.is_some_and(|c| c.failing_since.is_some()) {
                            1.0
                        } else {
                            0.0
                        },
                    );
                }
            }
            Err(error) => tracing::warn!(%error, "metrics: cannot read projection status"),
        }
        match projections::rebuild::latest(pool).await {
            Ok(rebuilds) => {
                // Every projection has its series, rebuilt or not, so dashboards and
                // alerts always have data.
                for projection in projections::Projection::ALL {
                    let name = projection.name();
                    let rebuild = rebuilds.iter().find(|r| r.projection == name);
                    for state in projections::rebuild::RebuildState::ALL {
                        let current = rebuild.is_some_and(|r| r.state == state);
                        self.registry
                            .gauge(
                                "prism_rebuild_state",
                                vec![
                                    ("projection", name.to_owned()),
                                    ("state", state.as_str().to_owned()),
                                ],
                            )
                            .set(if current { 1.0 } else { 0.0 });
                    }
                    let set = |metric: &'static str, value: f64| {
                        self.registry
                            .gauge(metric, vec![("projection", name.to_owned())])
                            .set(value);
                    };
                    set(
                        "prism_rebuild_events_applied",
                        rebuild.map_or(0.0, |r| r.events_applied as f64),
                    );
                    set(
                        "prism_rebuild_events_total",
                        rebuild.map_or(0.0, |r| r.events_total as f64),
                    );
                    set(
                        "prism_rebuild_events_per_second",
                        rebuild.and_then(|r| r.rate()).unwrap_or(0.0),
                    );
                    let stalled = rebuild.filter(|r| r.state.is_active()).map_or(0.0, |r| {
                        (chrono::Utc::now() - r.updated_at)
                            .num_milliseconds()
                            .max(0) as f64
                            / 1000.0
                    });
                    set("prism_rebuild_stalled_seconds", stalled);
                }
            }
            Err(error) => tracing::warn!(%error, "metrics: cannot read rebuilds"),
        }
    }

    pub fn render(&self) -> String {
        self.registry.render()
    }
}
