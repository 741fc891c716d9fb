//! `prism-worker`: run the workers (default), or `prism-worker replay <projection>` to
//! rebuild one projection from the event log and exit.

use anyhow::{bail, Context};
use projections::Projection;
use telemetry::LogFormat;
use worker::config::WorkerSettings;
use worker::{connect, Worker};

const USAGE: &str = "usage:
  prism-worker [run]                 run the projection workers; /health, /ready on $WORKER_PORT
  prism-worker replay <projection>   rebuild a projection (catalog, audit) from the log";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let settings = WorkerSettings::from_env()?;
    let _sentry = telemetry::sentry::init(&settings.sentry, None);
    let traces = settings
        .otlp_endpoint
        .as_deref()
        .map(|endpoint| telemetry::traces::otlp_provider(endpoint, "prism-worker"))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let _tracing = telemetry::init(
        if settings.production {
            LogFormat::Json
        } else {
            LogFormat::Text
        },
        traces,
    );
    match args.first().map(String::as_str) {
        None | Some("run") => {
            let worker = Worker::build(settings).await?;
            tracing::info!(port = worker.port(), "prism-worker running");
            worker.run_until(shutdown_signal()).await?;
            tracing::info!("prism-worker stopped");
            Ok(())
        }
        Some("replay") => {
            let name = args.get(1).context(USAGE)?;
            let projection = Projection::parse(name)
                .with_context(|| format!("no projection named {name:?}: catalog or audit"))?;
            let (_, _, delivery) = connect(&settings).await?;
            let applied = delivery.rebuild(projection).await?;
            println!("{projection}: rebuilt from {applied} events");
            Ok(())
        }
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command {other:?}\n{USAGE}"),
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
    tokio::select! {
        _ = interrupt => {},
        _ = terminate.recv() => {},
    }
}
