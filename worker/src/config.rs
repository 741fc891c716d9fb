//! The worker's settings: declared once, as the clap fields of [`WorkerArgs`] (each an
//! environment variable, a flag and its help), read once at start-up, validated into
//! [`WorkerSettings`], passed down. `docs/configuration.md` lists the same variables (a
//! test checks it).

use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use telemetry::cli::{number, ExportArgs, LogArgs};

pub use telemetry::{Environment, Secret};

/// The settings of `prism-worker run` and `rebuild`, each read from its environment
/// variable unless given as a flag. The help text of each field is what `--help` prints.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub log: LogArgs,
    /// Address of the health, readiness and metrics server
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Port of /health, /ready and /metrics; 0 picks a free one
    #[arg(long, env = "WORKER_PORT", default_value_t = 8081, value_parser = number::<u16>)]
    pub worker_port: u16,
    /// Postgres with PostGIS: event store and read models (secret; required)
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<Secret>,
    /// Database pool size
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10, value_parser = number::<u32>)]
    pub database_max_connections: u32,
    /// Redis: job queues and cache views (secret; required)
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<Secret>,
    /// Prefix of every Redis key; api and worker must agree
    #[arg(long, env = "REDIS_NAMESPACE", default_value = "prism")]
    pub redis_namespace: String,
    /// Catch-up jobs run at once per process, at least 1
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 2, value_parser = number::<usize>)]
    pub worker_concurrency: usize,
    /// Events per catch-up transaction, 1 to 10000
    #[arg(long, env = "PROJECTION_BATCH_SIZE", default_value_t = 500, value_parser = number::<i64>)]
    pub projection_batch_size: i64,
    /// Events per rebuild transaction, 1 to 50000
    #[arg(long, env = "REBUILD_BATCH_SIZE", default_value_t = 2000, value_parser = number::<i64>)]
    pub rebuild_batch_size: i64,
    /// How often every projection catches up without a job, in milliseconds (lost
    /// jobs, a flushed or absent Redis)
    #[arg(long, env = "PROJECTION_BACKSTOP_MS", default_value_t = 1000, value_parser = number::<u64>)]
    pub projection_backstop_ms: u64,
    /// How often an idle queue is polled, in milliseconds
    #[arg(long, env = "JOB_POLL_MS", default_value_t = 50, value_parser = number::<u64>)]
    pub job_poll_ms: u64,
    /// How often queue depths and projection lag are sampled for /metrics, in
    /// milliseconds
    #[arg(long, env = "METRICS_SAMPLE_MS", default_value_t = 5000, value_parser = number::<u64>)]
    pub metrics_sample_ms: u64,
    /// The bearer token /metrics needs in production (secret; `run` requires at least
    /// 32 characters there, 10 of them distinct; `rebuild` does not need it)
    #[arg(long, env = "METRICS_SCRAPE_TOKEN")]
    pub metrics_scrape_token: Option<Secret>,
    #[command(flatten)]
    pub export: ExportArgs,
}

/// The worker's settings, validated.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// `ENV` (production logs JSON and protects `/metrics`) and `RUST_LOG`.
    pub log: LogArgs,
    /// `HOST`.
    pub host: String,
    /// `WORKER_PORT`.
    pub port: u16,
    /// `DATABASE_URL`.
    pub database_url: Secret,
    /// `DATABASE_MAX_CONNECTIONS`.
    pub database_max_connections: u32,
    /// `REDIS_URL`.
    pub redis_url: Secret,
    /// `REDIS_NAMESPACE`.
    pub redis_namespace: String,
    /// `WORKER_CONCURRENCY`.
    pub concurrency: usize,
    /// `PROJECTION_BATCH_SIZE`.
    pub batch_size: i64,
    /// `REBUILD_BATCH_SIZE`.
    pub rebuild_batch_size: i64,
    /// `PROJECTION_BACKSTOP_MS`: the backstop for lost jobs, a flushed Redis or a dead
    /// worker.
    pub backstop_interval: Duration,
    /// `JOB_POLL_MS`.
    pub poll_interval: Duration,
    /// `METRICS_SCRAPE_TOKEN`.
    pub metrics_scrape_token: Option<Secret>,
    /// `METRICS_SAMPLE_MS`.
    pub metrics_sample_interval: Duration,
    /// `SENTRY_DSN` (checked) and `SENTRY_TRACES_SAMPLE_RATE`.
    pub sentry: telemetry::sentry::SentrySettings,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub otlp_endpoint: Option<String>,
}

impl WorkerSettings {
    /// What serving (`run`, with `/metrics`) needs beyond reading the settings: in
    /// production, a strong `METRICS_SCRAPE_TOKEN`. One-off commands (`rebuild`) skip it.
    pub fn check_serving(&self) -> anyhow::Result<()> {
        if self.log.env.is_production()
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

    /// Reads the settings through `lookup` (tests pass a map), as `prism-worker`
    /// reads them from its environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        Self::from_args(telemetry::cli::from_lookup(lookup)?)
    }

    pub fn from_args(args: WorkerArgs) -> anyhow::Result<Self> {
        if args.worker_concurrency == 0
            || !(1..=10_000).contains(&args.projection_batch_size)
            || !(1..=50_000).contains(&args.rebuild_batch_size)
        {
            bail!(
                "WORKER_CONCURRENCY must be at least 1, PROJECTION_BATCH_SIZE 1 to 10000 \
                 and REBUILD_BATCH_SIZE 1 to 50000"
            );
        }
        let database_url = args.database_url.context("DATABASE_URL is required")?;
        let redis_url = args.redis_url.context("REDIS_URL is required")?;
        let sentry = args
            .export
            .sentry(args.log.env)
            .map_err(anyhow::Error::msg)?;
        Ok(Self {
            host: args.host,
            port: args.worker_port,
            database_url,
            database_max_connections: args.database_max_connections,
            redis_url,
            redis_namespace: args.redis_namespace,
            concurrency: args.worker_concurrency,
            batch_size: args.projection_batch_size,
            rebuild_batch_size: args.rebuild_batch_size,
            backstop_interval: Duration::from_millis(args.projection_backstop_ms),
            poll_interval: Duration::from_millis(args.job_poll_ms),
            metrics_scrape_token: args.metrics_scrape_token,
            metrics_sample_interval: Duration::from_millis(args.metrics_sample_ms),
            sentry,
            otlp_endpoint: args.export.otel_exporter_otlp_endpoint,
            log: args.log,
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
