//! `prism-api`: serve the API (default), run migrations, print the OpenAPI document,
//! or make development keys and tokens. The command line is `api::cli` (`prism-api
//! help`).

use std::fmt::Display;
use std::io::Write;

use anyhow::Context;
use api::cli::{Cli, Command, DevCommand};
use api::config::Settings;
use api::{dev, Application};
use telemetry::LogFormat;

mod migrate;

/// mimalloc: allocation-heavy request handling spent a fifth of its CPU in glibc's
/// malloc (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    telemetry::cli::main_with(Cli::DEFAULT, |cli: Cli| run(cli.command))
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(settings) => serve(Settings::from_args(*settings)?).await,
        Command::Migrate(args) => {
            let action = migrate::Action::new(args.action, args.steps)?;
            let url = args.database_url.context("DATABASE_URL is required")?;
            let _tracing = telemetry::init(LogFormat::Text, &args.log.rust_log, None);
            migrate::run(url.expose(), action, args.log.env.is_production()).await
        }
        Command::Openapi => print(api::spec::document()),
        Command::Dev(DevCommand::Jwks { key }) => {
            print(serde_json::to_string_pretty(&dev::jwks(&key)?)?)
        }
        Command::Dev(DevCommand::Token(args)) => print(dev::token(
            &args.key,
            &dev::TokenRequest {
                user_id: args.user,
                org_id: args.org,
                scopes: args.scopes.split_whitespace().map(str::to_owned).collect(),
                issuer: args.issuer,
                ttl_seconds: args.ttl_hours * 3600,
            },
        )?),
    }
}

/// Prints `text` on standard output; a reader that has gone (`prism-api openapi | head`)
/// ends the output quietly.
fn print(text: impl Display) -> anyhow::Result<()> {
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => Ok(written?),
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let _sentry = telemetry::sentry::init(&settings.sentry, None);
    let traces = settings
        .otlp_endpoint
        .as_deref()
        .map(|endpoint| telemetry::traces::otlp_provider(endpoint, "prism-api"))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let _tracing = telemetry::init(
        settings.log.env.log_format(),
        &settings.log.rust_log,
        traces,
    );
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), "prism-api listening");
    app.run_until(shutdown_signal()).await?;
    tracing::info!("prism-api stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("a SIGTERM handler can be installed");
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
