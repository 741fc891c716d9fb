//! Telemetry shared by `prism-api` and `prism-worker`: the global log subscriber, set up
//! in one place (readable text in development, JSON lines in production, level from
//! `RUST_LOG`), [`metrics::Registry`] for each application's `/metrics`, [`Secret`],
//! the wrapper that keeps passwords and tokens out of logs, and what both command lines
//! share ([`cli`]: `ENV` as [`Environment`], the log, Sentry and trace settings).

pub mod cli;
pub mod metrics;
pub mod sentry;
pub mod traces;

use std::fmt;

use ::sentry::integrations::tracing::{BreadcrumbLayer, ErrorLayer, SpanLayer};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt as format, EnvFilter, Layer};

pub use cli::Environment;

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

/// Keeps the log writer and the trace exporter running; dropping it flushes the lines
/// not yet written and stops the exporter.
#[derive(Debug, Default)]
pub struct TracingGuard {
    traces: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    lines: Option<tracing_appender::non_blocking::WorkerGuard>,
}

impl Drop for TracingGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.traces.take() {
            let _ = provider.shutdown();
        }
        drop(self.lines.take());
    }
}

/// Log lines waiting for the writer thread at most; beyond it a request waits rather
/// than a line being lost. A few megabytes of lines: the buffer absorbs a burst, and a
/// sustained rate above what standard output takes is held back either way (100,000
/// lines made the api's memory grow by 60 MB under 56,000 requests a second).
const BUFFERED_LINES: usize = 8_192;

/// Installs the global subscriber, writing lines in `format` that `filter` (`RUST_LOG`)
/// lets through (an unreadable filter falls back to the default); call once at the
/// start of `main`, after [`sentry::init`], and keep the guard. A second call keeps the first subscriber.
/// Besides the log lines, when Sentry is on its layers receive spans (performance
/// traces), `ERROR` events (Sentry events) and `INFO`/`WARN` events (breadcrumbs), and
/// with `traces` every span is also an OpenTelemetry span ([`traces::otlp_provider`]).
pub fn init(
    format: LogFormat,
    filter: &str,
    traces: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
) -> TracingGuard {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Lines are written by a thread of their own: a request never waits on a write
    // to standard output (unless the buffer is full).
    let (writer, lines_guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(BUFFERED_LINES)
        .finish(std::io::stdout());
    let lines = match format {
        LogFormat::Json => format::layer()
            .json()
            .flatten_event(true)
            .with_target(false)
            .with_writer(writer)
            .boxed(),
        // Colours only for a terminal: none in files, pipes and log collectors.
        LogFormat::Text => format::layer()
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_writer(writer)
            .boxed(),
    };
    // Sentry's layers only with a Sentry client: without one they would still cost
    // every span and event a few microseconds.
    let sentry_on = ::sentry::Hub::current().client().is_some();
    let sentry_layers = sentry_on.then(|| {
        SpanLayer::new()
            .with_filter(LevelFilter::INFO)
            .and_then(ErrorLayer::new().with_filter(LevelFilter::ERROR))
            .and_then(BreadcrumbLayer::new().with_filter(LevelFilter::INFO))
    });
    let result = tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .with(sentry_layers)
        .with(traces.as_ref().map(traces::layer))
        .try_init();
    drop(result);
    TracingGuard {
        traces,
        lines: Some(lines_guard),
    }
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

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
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
