//! The worker's settings: read once from the environment at start-up, validated,
//! passed down. Every variable is documented on its field and in docs/configuration.md.

use std::time::Duration;

use anyhow::{bail, Context};

pub use telemetry::Secret;

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// `ENV`: development (default), test or production; production logs JSON.
    pub production: bool,
    /// `HOST`: address of the health/readiness server, default `0.0.0.0`.
    pub host: String,
    /// `WORKER_PORT`: port of the health/readiness server, default 8081; 0 picks one.
    pub port: u16,
    /// `DATABASE_URL`: the event store and read models.
    pub database_url: Secret,
    /// `DATABASE_MAX_CONNECTIONS`: pool size, default 10.
    pub database_max_connections: u32,
    /// `REDIS_URL`: the job queues and cache views.
    pub redis_url: Secret,
    /// `REDIS_NAMESPACE`: prefix of every Redis key, default `prism`.
    pub redis_namespace: String,
    /// `WORKER_CONCURRENCY`: catch-up jobs run at once per process, default 2.
    pub concurrency: usize,
    /// `PROJECTION_BATCH_SIZE`: events per catch-up transaction, default 500.
    pub batch_size: i64,
    /// `REBUILD_BATCH_SIZE`: events per rebuild transaction, default 2000.
    pub rebuild_batch_size: i64,
    /// `PROJECTION_BACKSTOP_MS`: how often every projection catches up without a job,
    /// default 1000 (the backstop for lost jobs, a flushed Redis or a dead worker).
    pub backstop_interval: Duration,
    /// `JOB_POLL_MS`: how often an idle queue is polled, default 50.
    pub poll_interval: Duration,
    /// `METRICS_SCRAPE_TOKEN`: the bearer token `/metrics` needs in production
    /// (required there, at least 32 characters).
    pub metrics_scrape_token: Option<Secret>,
    /// `METRICS_SAMPLE_MS`: how often queue depths and projection lag are sampled for
    /// `/metrics`, default 5000.
    pub metrics_sample_interval: Duration,
    /// `SENTRY_DSN` and `SENTRY_TRACES_SAMPLE_RATE` (default 0.1).
    pub sentry: telemetry::sentry::SentrySettings,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: the OTLP/HTTP collector traces go to; unset sends
    /// none.
    pub otlp_endpoint: Option<String>,
}

fn number<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
) -> anyhow::Result<T> {
    match get(name) {
        Some(raw) => raw
            .parse()
            .ok()
            .with_context(|| format!("{name} must be a number, not {raw:?}")),
        None => Ok(default),
    }
}

impl WorkerSettings {
    /// What serving (`run`, with `/metrics`) needs beyond reading the settings: in
    /// production, a strong `METRICS_SCRAPE_TOKEN`. One-off commands (`replay`) skip it.
    pub fn check_serving(&self) -> anyhow::Result<()> {
        if self.production
            && self
                .metrics_scrape_token
                .as_ref()
                .is_none_or(|t| telemetry::weak_token(t.expose()))
        {
            bail!(
                "refusing to start with ENV=production: METRICS_SCRAPE_TOKEN is required \
                 (at least 32 random characters, 10 or more of them distinct)"
            );
        }
        Ok(())
    }

    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        // ENV, read once: its name (for Sentry) and whether this is production.
        let environment = match get("ENV").as_deref() {
            None | Some("development" | "dev") => "development",
            Some("test") => "test",
            Some("production" | "prod") => "production",
            Some(other) => bail!("ENV must be development, test or production, not {other:?}"),
        };
        let production = environment == "production";
        let concurrency = number(&get, "WORKER_CONCURRENCY", 2usize)?;
        let batch_size = number(&get, "PROJECTION_BATCH_SIZE", 500i64)?;
        let rebuild_batch_size = number(&get, "REBUILD_BATCH_SIZE", 2000i64)?;
        if concurrency == 0
            || !(1..=10_000).contains(&batch_size)
            || !(1..=50_000).contains(&rebuild_batch_size)
        {
            bail!(
                "WORKER_CONCURRENCY must be at least 1, PROJECTION_BATCH_SIZE 1 to 10000 \
                 and REBUILD_BATCH_SIZE 1 to 50000"
            );
        }
        let metrics_scrape_token = get("METRICS_SCRAPE_TOKEN");
        Ok(Self {
            production,
            host: get("HOST").unwrap_or_else(|| "0.0.0.0".into()),
            port: number(&get, "WORKER_PORT", 8081u16)?,
            database_url: Secret::new(get("DATABASE_URL").context("DATABASE_URL is required")?),
            database_max_connections: number(&get, "DATABASE_MAX_CONNECTIONS", 10u32)?,
            redis_url: Secret::new(get("REDIS_URL").context("REDIS_URL is required")?),
            redis_namespace: get("REDIS_NAMESPACE").unwrap_or_else(|| "prism".into()),
            concurrency,
            batch_size,
            rebuild_batch_size,
            backstop_interval: Duration::from_millis(number(
                &get,
                "PROJECTION_BACKSTOP_MS",
                1000u64,
            )?),
            poll_interval: Duration::from_millis(number(&get, "JOB_POLL_MS", 50u64)?),
            metrics_scrape_token: metrics_scrape_token.map(Secret::new),
            sentry: telemetry::sentry::SentrySettings::from_lookup(get, environment)
                .map_err(anyhow::Error::msg)?,
            otlp_endpoint: get("OTEL_EXPORTER_OTLP_ENDPOINT"),
            metrics_sample_interval: Duration::from_millis(number(
                &get,
                "METRICS_SAMPLE_MS",
                5000u64,
            )?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> anyhow::Result<WorkerSettings> {
        WorkerSettings::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn serving_in_production_needs_a_strong_scrape_token_but_replay_does_not() {
        let base = [
            ("ENV", "production"),
            ("DATABASE_URL", "postgres://u:hunter2@db/prism"),
            ("REDIS_URL", "redis://r"),
        ];
        let without = settings(&base).expect("replay reads the settings without a token");
        let err = without.check_serving().expect_err("no token").to_string();
        assert!(err.contains("METRICS_SCRAPE_TOKEN") && !err.contains("hunter2"));
        let weak = [
            base.as_slice(),
            &[("METRICS_SCRAPE_TOKEN", "a".repeat(40).leak())],
        ]
        .concat();
        assert!(settings(&weak).expect("settings").check_serving().is_err());
        let strong = [
            base.as_slice(),
            &[("METRICS_SCRAPE_TOKEN", "n7Qe2VxK9pL4sT8wZ1cR6yB3mH5jD0aF")],
        ]
        .concat();
        settings(&strong)
            .expect("settings")
            .check_serving()
            .expect("a strong token");
        settings(&[("DATABASE_URL", "x"), ("REDIS_URL", "r")])
            .expect("development")
            .check_serving()
            .expect("no token needed outside production");
    }
}
