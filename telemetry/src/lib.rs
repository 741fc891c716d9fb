//! Telemetry shared by `prism-api` and `prism-worker`: the global log subscriber, set up
//! in one place (readable text in development, JSON lines in production, level from
//! `RUST_LOG`), [`metrics::Registry`] for each application's `/metrics`, and [`Secret`],
//! the wrapper that keeps passwords and tokens out of logs.

pub mod metrics;
pub mod sentry;
pub mod traces;

use std::fmt;

use ::sentry::integrations::tracing::{BreadcrumbLayer, ErrorLayer, SpanLayer};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt as format, EnvFilter, Layer};

/// Default filter: `info`, with the chattier dependencies at `warn`.
const DEFAULT_FILTER: &str =
    "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn,apalis=warn,apalis_core=warn,apalis_redis=warn";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Readable text, for development and tests.
    Text,
    /// One JSON object per line, for production log shippers.
    Json,
}

/// Keeps the trace exporter running; dropping it flushes and stops it.
#[derive(Debug, Default)]
pub struct TracingGuard(Option<opentelemetry_sdk::trace::SdkTracerProvider>);

impl Drop for TracingGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber; call once at the start of `main`, after
/// [`sentry::init`], and keep the guard. A second call keeps the first subscriber.
/// Besides the log lines, Sentry's layers receive spans (performance traces), `ERROR`
/// events (Sentry events) and `INFO`/`WARN` events (breadcrumbs) — without a Sentry
/// client they do nothing — and with `traces` every span is also an OpenTelemetry span
/// ([`traces::otlp_provider`]).
pub fn init(
    format: LogFormat,
    traces: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
) -> TracingGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let lines = match format {
        LogFormat::Json => format::layer()
            .json()
            .flatten_event(true)
            .with_target(false)
            .boxed(),
        LogFormat::Text => format::layer().with_target(false).boxed(),
    };
    let result = tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .with(SpanLayer::new().with_filter(LevelFilter::INFO))
        .with(ErrorLayer::new().with_filter(LevelFilter::ERROR))
        .with(BreadcrumbLayer::new().with_filter(LevelFilter::INFO))
        .with(traces.as_ref().map(traces::layer))
        .try_init();
    drop(result);
    TracingGuard(traces)
}

/// Shortest `METRICS_SCRAPE_TOKEN` production accepts.
pub const MIN_SCRAPE_TOKEN_LEN: usize = 32;

/// Whether a scrape token is too easy to guess: shorter than [`MIN_SCRAPE_TOKEN_LEN`],
/// or fewer than 10 distinct characters. Both binaries refuse one in production.
pub fn weak_token(token: &str) -> bool {
    let distinct: std::collections::HashSet<char> = token.chars().collect();
    token.chars().count() < MIN_SCRAPE_TOKEN_LEN || distinct.len() < 10
}

/// A value that must never reach a log: `Debug` and `Display` print a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("…")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn secrets_do_not_print() {
        let secret = Secret::new("hunter2");
        assert!(!format!("{secret:?} {secret}").contains("hunter2"));
        assert_eq!(secret.expose(), "hunter2");
    }
}
