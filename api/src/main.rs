//! `prism-api`: serve the API (default), run migrations, print the OpenAPI document,
//! or make development keys and tokens. See `prism-api help`.

use std::path::PathBuf;

use anyhow::{bail, Context};
use api::config::{Environment, Settings};
use api::{dev, Application};
use telemetry::LogFormat;

mod migrate;

/// mimalloc: allocation-heavy request handling spent a fifth of its CPU in glibc's
/// malloc (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage:
  prism-api [serve]                      serve HTTP on $PORT (default 8080)
  prism-api migrate up|down [N|all]|status|fresh
  prism-api openapi                      print the OpenAPI document
  prism-api dev jwks --key PEM           JWKS for CLERK_JWKS_FILE from a private key
  prism-api dev token --key PEM [--org ID] [--user ID] [--scopes \"a b\"] [--issuer URL] [--ttl-hours N]";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("serve") => serve().await,
        Some("migrate") => {
            let action = migrate::Action::parse(&args[1..])?;
            let url = std::env::var("DATABASE_URL").context("DATABASE_URL is required")?;
            // Read as `serve` reads it; an `ENV` that `serve` refuses is not production.
            let production = matches!(Environment::from_env(), Ok(Environment::Production));
            let _tracing = telemetry::init(LogFormat::Text, None);
            migrate::run(&url, action, production).await
        }
        Some("openapi") => {
            println!("{}", api::spec::document());
            Ok(())
        }
        Some("dev") => dev_command(&args[1..]),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command {other:?}\n{USAGE}"),
    }
}

async fn serve() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let _sentry = telemetry::sentry::init(&settings.sentry, None);
    let traces = settings
        .otlp_endpoint
        .as_deref()
        .map(|endpoint| telemetry::traces::otlp_provider(endpoint, "prism-api"))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let _tracing = telemetry::init(
        match settings.environment {
            Environment::Production => LogFormat::Json,
            Environment::Development | Environment::Test => LogFormat::Text,
        },
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

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn dev_command(args: &[String]) -> anyhow::Result<()> {
    let key = PathBuf::from(flag(args, "--key").context("--key PEM is required")?);
    match args.first().map(String::as_str) {
        Some("jwks") => {
            println!("{}", serde_json::to_string_pretty(&dev::jwks(&key)?)?);
            Ok(())
        }
        Some("token") => {
            let hours: u64 = flag(args, "--ttl-hours")
                .map(|h| h.parse())
                .transpose()
                .context("--ttl-hours takes a number")?
                .unwrap_or(12);
            let request = dev::TokenRequest {
                user_id: flag(args, "--user").unwrap_or_else(|| "user_dev".into()),
                org_id: flag(args, "--org").unwrap_or_else(|| "org_dev".into()),
                scopes: flag(args, "--scopes")
                    .unwrap_or_else(|| {
                        "buildings:read buildings:write comps:read comps:write audit:read projections:admin".into()
                    })
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
                issuer: flag(args, "--issuer"),
                ttl_seconds: hours * 3600,
            };
            println!("{}", dev::token(&key, &request)?);
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}
