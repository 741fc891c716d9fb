//! `prism-worker`: run the workers (default), or `prism-worker rebuild <projection>`
//! to rebuild one projection from the event log beside the live one, following it
//! with a progress bar (`replay` is the former name). The command line is
//! `worker::cli` (`prism-worker help`).

use std::time::Duration;

use anyhow::{bail, Context};
use projections::rebuild::{self, Rebuild, RebuildError, RebuildState};
use projections::Projection;
use worker::cli::{Cli, Command};
use worker::config::{WorkerArgs, WorkerSettings};
use worker::{connect, Worker};

/// mimalloc: allocation-heavy request handling spent a fifth of its CPU in glibc's
/// malloc (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    telemetry::cli::main_with(Cli::DEFAULT, |cli: Cli| run(cli.command))
}

async fn run(command: Command) -> anyhow::Result<()> {
    let (args, rebuild): (WorkerArgs, _) = match command {
        Command::Run(args) => (*args, None),
        Command::Rebuild(rebuild) => {
            let rebuild = *rebuild;
            (rebuild.settings, Some((rebuild.projection, rebuild.detach)))
        }
    };
    let settings = WorkerSettings::from_args(args)?;
    let _sentry = telemetry::sentry::init(&settings.sentry, None);
    let traces = settings
        .otlp_endpoint
        .as_deref()
        .map(|endpoint| telemetry::traces::otlp_provider(endpoint, "prism-worker"))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let _tracing = telemetry::init(
        settings.log.env.log_format(),
        &settings.log.rust_log,
        traces,
    );
    let Some((projection, detach)) = rebuild else {
        let worker = Worker::build(settings).await?;
        tracing::info!(port = worker.port(), "prism-worker running");
        worker.run_until(shutdown_signal()).await?;
        tracing::info!("prism-worker stopped");
        return Ok(());
    };
    let rebuild = rebuild_command(&settings, projection, detach).await?;
    if rebuild.state.is_active() {
        println!(
            "rebuild {} of {projection} is {}",
            rebuild.id,
            rebuild.state.as_str()
        );
        return Ok(());
    }
    println!(
        "{projection}: rebuild {} {} after {} events ({:.0} events/s){}",
        rebuild.id,
        rebuild.state.as_str(),
        rebuild.events_applied,
        rebuild.rate().unwrap_or_default(),
        rebuild
            .error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    );
    if rebuild.state != RebuildState::Swapped {
        bail!("the rebuild did not swap in: {}", rebuild.state.as_str());
    }
    Ok(())
}

/// Asks for a rebuild (or joins the active one) and, unless `detach`, follows it to
/// its end with a progress bar: it runs here unless a worker is already running it.
async fn rebuild_command(
    settings: &WorkerSettings,
    projection: Projection,
    detach: bool,
) -> anyhow::Result<Rebuild> {
    let (pool, _, delivery) = connect(settings).await?;
    // A rebuild replaces the projection's checkpoint, so one that is ahead is fine
    // here (the runbook's recovery rebuilds); but events above the database's
    // transaction counter are above every horizon: the rebuild would read none of them.
    if let Err(behind) = projections::deliverable::check(&pool).await? {
        if behind.log_is_ahead() {
            return Err(anyhow::Error::new(behind).context("prism-worker refuses to rebuild"));
        }
    }
    let rebuild = match rebuild::request(&pool, projection, "cli").await {
        Ok(rebuild) => rebuild,
        Err(RebuildError::AlreadyActive(active)) => {
            eprintln!(
                "joining rebuild {} of {projection}, already {}",
                active.id,
                active.state.as_str()
            );
            *active
        }
        Err(error) => return Err(error.into()),
    };
    if detach {
        return Ok(rebuild);
    }
    let bar = indicatif::ProgressBar::new(rebuild.events_total.max(1) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg:10} [{bar:40}] {pos}/{len} events, {per_sec}, ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let show = |rebuild: &Rebuild| {
        bar.set_length(rebuild.events_total.max(rebuild.events_applied).max(1) as u64);
        bar.set_position(rebuild.events_applied.max(0) as u64);
        bar.set_message(rebuild.state.as_str());
    };
    show(&rebuild);
    let ran = delivery.run_rebuild(rebuild.id, &mut |r| show(r)).await?;
    let finished = match ran {
        Some(finished) => finished,
        // A worker is running it: follow it from the table.
        None => loop {
            let current = rebuild::get(&pool, rebuild.id)
                .await?
                .context("the rebuild disappeared")?;
            show(&current);
            if !current.state.is_active() {
                break current;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        },
    };
    show(&finished);
    bar.finish();
    Ok(finished)
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
