//! `prism-api`'s command line: every command, its arguments and the settings it reads
//! (clap; `prism-api help`, `prism-api <command> --help`). `main` reads it with
//! `telemetry::cli::parse` and runs the command.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use telemetry::cli::LogArgs;
use telemetry::Secret;

use crate::config::SettingsArgs;

/// Prism's HTTP API: commands, queries and operations; migrations; the OpenAPI
/// document; development keys and tokens.
#[derive(Debug, Parser)]
#[command(
    name = "prism-api",
    after_help = "Without a command, prism-api serves."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The command `prism-api` runs with no arguments.
    pub const DEFAULT: &'static str = "serve";
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP on PORT until SIGINT or SIGTERM (the default)
    Serve(Box<SettingsArgs>),
    /// Apply, roll back or list the migrations of DATABASE_URL
    Migrate(MigrateArgs),
    /// Print the OpenAPI document
    Openapi,
    /// Development keys and tokens
    #[command(subcommand)]
    Dev(DevCommand),
}

/// What `migrate` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MigrateAction {
    /// Apply every pending migration
    Up,
    /// Roll back STEPS migrations (default 1)
    Down,
    /// List the migrations and whether each is applied
    Status,
    /// Roll every migration back, then apply them all (refused in production)
    Fresh,
}

/// How many migrations `migrate down` rolls back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steps {
    Count(u32),
    All,
}

fn steps(raw: &str) -> Result<Steps, String> {
    match raw {
        "all" => Ok(Steps::All),
        n => n
            .parse()
            .map(Steps::Count)
            .map_err(|_| "down takes a number of steps or `all`".to_owned()),
    }
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[arg(value_enum)]
    pub action: MigrateAction,
    /// With `down`: how many migrations to roll back, or `all`
    #[arg(value_parser = steps)]
    pub steps: Option<Steps>,
    /// The Postgres to migrate (secret; required)
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<Secret>,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Print the JWKS of a private key, for CLERK_JWKS_FILE
    Jwks {
        /// RSA private key in PEM
        #[arg(long, value_name = "PEM")]
        key: PathBuf,
    },
    /// Print a token shaped like Clerk's, signed with a private key
    Token(TokenArgs),
}

/// Every scope, the development token's default.
const ALL_SCOPES: &str =
    "buildings:read buildings:write comps:read comps:write audit:read projections:admin";

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// RSA private key in PEM
    #[arg(long, value_name = "PEM")]
    pub key: PathBuf,
    /// The organisation (org_id)
    #[arg(long, default_value = "org_dev")]
    pub org: String,
    /// The user (sub)
    #[arg(long, default_value = "user_dev")]
    pub user: String,
    /// Space-separated scopes
    #[arg(long, default_value = ALL_SCOPES)]
    pub scopes: String,
    /// The iss claim; none when unset
    #[arg(long)]
    pub issuer: Option<String>,
    /// Hours until the token expires
    #[arg(long, default_value_t = 12)]
    pub ttl_hours: u64,
}
