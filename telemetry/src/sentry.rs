//! Sentry for both binaries, only when `SENTRY_DSN` is set: errors (tracing `ERROR`
//! events and the 5xx answers the api reports itself), breadcrumbs from `INFO` and
//! `WARN` events, and performance traces at `SENTRY_TRACES_SAMPLE_RATE`. `release` is
//! the git revision of the build, `environment` is `ENV`. Default PII is off: no
//! request headers or bodies are attached, so tokens never leave.
//!
//! Events go out through [`HttpTransport`], which posts envelopes with the reqwest the
//! workspace already uses (sentry's own transports bring a second reqwest and TLS
//! stack).

use std::sync::Arc;
use std::time::Duration;

use sentry::types::Dsn;
use sentry::{ClientInitGuard, ClientOptions, Envelope};
use sentry::{Transport, TransportFactory};

/// `prism@<git revision>`.
pub const RELEASE: &str = concat!("prism@", env!("PRISM_GIT_REVISION"));

/// Envelopes waiting to be sent; beyond this, new ones are dropped (Sentry down must
/// not grow memory).
const QUEUE: usize = 256;

/// Sentry's settings, read by each binary's configuration.
#[derive(Debug, Clone, Default)]
pub struct SentrySettings {
    /// `SENTRY_DSN`: unset turns Sentry off.
    pub dsn: Option<crate::Secret>,
    /// `ENV`.
    pub environment: String,
    /// `SENTRY_TRACES_SAMPLE_RATE` (0 to 1).
    pub traces_sample_rate: f32,
}

impl SentrySettings {
    /// Checks the DSN: a malformed one is named, never shown.
    pub fn new(
        dsn: Option<&crate::Secret>,
        traces_sample_rate: f32,
        environment: &str,
    ) -> Result<Self, String> {
        let dsn = dsn.map(|dsn| crate::Secret::new(dsn.expose().trim()));
        if let Some(dsn) = &dsn {
            dsn.expose()
                .parse::<Dsn>()
                .map_err(|_| "SENTRY_DSN is not a Sentry DSN".to_owned())?;
        }
        Ok(Self {
            dsn,
            environment: environment.to_owned(),
            traces_sample_rate,
        })
    }
}

/// Starts Sentry when a DSN is set; keep the guard for the whole of `main`. `transport`
/// replaces the HTTP transport (tests pass sentry's `TestTransport`).
pub fn init(
    settings: &SentrySettings,
    transport: Option<Arc<dyn TransportFactory>>,
) -> Option<ClientInitGuard> {
    let dsn: Dsn = settings.dsn.as_ref()?.expose().parse().ok()?;
    let transport = transport.unwrap_or_else(|| {
        Arc::new(Arc::new(HttpTransport::new(&dsn))) as Arc<dyn TransportFactory>
    });
    let mut options = ClientOptions::new()
        .release(RELEASE)
        .environment(settings.environment.clone())
        .traces_sample_rate(settings.traces_sample_rate)
        .send_default_pii(false);
    options.dsn = Some(dsn);
    options.transport = Some(transport);
    Some(sentry::init(options))
}

/// Posts envelopes to Sentry from a background task.
#[derive(Debug)]
pub struct HttpTransport {
    sender: tokio::sync::mpsc::Sender<Envelope>,
}

impl HttpTransport {
    /// Needs a Tokio runtime (the binaries' `main`).
    pub fn new(dsn: &Dsn) -> Self {
        let url = dsn.envelope_api_url().to_string();
        let auth = dsn.to_auth(Some(RELEASE)).to_string();
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Envelope>(QUEUE);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        tokio::spawn(async move {
            while let Some(envelope) = receiver.recv().await {
                let mut body = Vec::new();
                if envelope.to_writer(&mut body).is_err() {
                    continue;
                }
                let sent = client
                    .post(&url)
                    .header("X-Sentry-Auth", &auth)
                    .header("Content-Type", "application/x-sentry-envelope")
                    .body(body)
                    .send()
                    .await;
                if let Err(error) = sent {
                    // Not `error!`: that would be sent to Sentry again.
                    eprintln!("sentry: cannot send an event: {error}");
                }
            }
        });
        Self { sender }
    }
}

impl Transport for HttpTransport {
    fn send_envelope(&self, envelope: Envelope) {
        // Full queue or stopped runtime: drop the event rather than block a request.
        let _ = self.sender.try_send(envelope);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentry_is_off_without_a_dsn_and_bad_values_are_named() {
        let none = SentrySettings::from_lookup(|_| None, "test").expect("defaults");
        assert!(init(&none, None).is_none(), "a client without SENTRY_DSN");
        let err = SentrySettings::from_lookup(
            |name| (name == "SENTRY_DSN").then(|| "not a dsn with secret-key".to_owned()),
            "test",
        )
        .expect_err("bad DSN");
        assert!(err.contains("SENTRY_DSN") && !err.contains("secret-key"));
        let err = SentrySettings::from_lookup(
            |name| (name == "SENTRY_TRACES_SAMPLE_RATE").then(|| "2".to_owned()),
            "test",
        )
        .expect_err("bad rate");
        assert!(err.contains("SENTRY_TRACES_SAMPLE_RATE"));
        assert!(RELEASE.starts_with("prism@") && RELEASE.len() > "prism@".len());
    }
}
