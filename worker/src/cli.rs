//! `prism-worker`'s command line: its commands, their arguments and the settings they
//! read (clap; `prism-worker help`, `prism-worker <command> --help`). `main` reads it
//! with `telemetry::cli::parse` and runs the command.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use projections::Projection;

use crate::config::WorkerArgs;

/// Prism's worker: keeps the projections and cache views up to date, and rebuilds a
/// projection from the event log.
#[derive(Debug, Parser)]
#[command(
    name = "prism-worker",
    after_help = "Without a command, prism-worker runs."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The command `prism-worker` runs with no arguments.
    pub const DEFAULT: &'static str = "run";
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the projection workers; /health, /ready and /metrics on WORKER_PORT (the
    /// default)
    Run(Box<WorkerArgs>),
    /// Rebuild a projection from the event log beside the live one, following it with
    /// a progress bar
    #[command(visible_alias = "replay")]
    Rebuild(Box<RebuildArgs>),
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// The projection to rebuild
    #[arg(value_parser = projection())]
    pub projection: Projection,
    /// Ask for the rebuild (or join the active one) and return without following it
    #[arg(long)]
    pub detach: bool,
    #[command(flatten)]
    pub settings: WorkerArgs,
}

/// A projection's name, one of the registry's ([`Projection::ALL`]).
fn projection() -> impl TypedValueParser<Value = Projection> {
    PossibleValuesParser::new(Projection::ALL.map(Projection::name)).try_map(|name| {
        Projection::parse(&name).ok_or_else(|| format!("no projection named {name:?}"))
    })
}
