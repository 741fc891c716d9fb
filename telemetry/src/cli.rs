//! What both binaries' command lines share: [`Environment`] (`ENV`, parsed here and
//! nowhere else), the settings every command that logs takes ([`LogArgs`]) and those
//! of Sentry and traces ([`ExportArgs`]), the value parsers settings use, and the two
//! ways a command line is read: [`parse`] from the process (arguments, then the
//! environment for each setting not given as one) and [`from_lookup`] from a map
//! (tests).
//!
//! A setting is declared once, as a clap field with `env = "NAME"`: its variable, its
//! flag, its default and its help come from that field. A variable set to an empty or
//! blank value counts as unset, so its default applies.

use std::ffi::{OsStr, OsString};
use std::fmt::Display;
use std::str::FromStr;

use clap::{Args, Command, Parser, ValueEnum};

use crate::sentry::SentrySettings;
use crate::{LogFormat, Secret, DEFAULT_FILTER};

/// Where a binary runs (`ENV`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Environment {
    #[default]
    #[value(alias = "dev")]
    Development,
    Test,
    #[value(alias = "prod")]
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Test => "test",
            Self::Production => "production",
        }
    }

    pub fn is_production(self) -> bool {
        self == Self::Production
    }

    /// JSON lines in production, readable text elsewhere.
    pub fn log_format(self) -> LogFormat {
        match self {
            Self::Production => LogFormat::Json,
            Self::Development | Self::Test => LogFormat::Text,
        }
    }
}

/// Where a command runs and what it logs.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Where this runs: development (or dev), test or production (or prod). Production
    /// logs JSON lines and refuses unsafe settings
    #[arg(
        long,
        env = "ENV",
        value_enum,
        default_value_t,
        hide_possible_values = true
    )]
    pub env: Environment,
    /// Log filter, in tracing-subscriber's EnvFilter syntax (`debug`, `warn,api=info`)
    #[arg(long, env = "RUST_LOG", default_value = DEFAULT_FILTER)]
    pub rust_log: String,
}

/// Where errors and traces go.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Sentry project DSN (secret); unset sends nothing
    #[arg(long, env = "SENTRY_DSN")]
    pub sentry_dsn: Option<Secret>,
    /// Share of traces sent to Sentry, 0 to 1
    #[arg(long, env = "SENTRY_TRACES_SAMPLE_RATE", default_value_t = 0.1, value_parser = sample_rate)]
    pub sentry_traces_sample_rate: f32,
    /// OTLP/HTTP collector base URL (Grafana Alloy: http://alloy:4318); spans go to
    /// <endpoint>/v1/traces. Unset sends none
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otel_exporter_otlp_endpoint: Option<String>,
}

impl ExportArgs {
    /// Sentry's settings; a malformed DSN is named, never shown.
    pub fn sentry(&self, environment: Environment) -> Result<SentrySettings, String> {
        SentrySettings::new(
            self.sentry_dsn.as_ref(),
            self.sentry_traces_sample_rate,
            environment.as_str(),
        )
    }
}

impl SentrySettings {
    /// Reads `SENTRY_DSN` and `SENTRY_TRACES_SAMPLE_RATE` through `get`, as the binaries
    /// read them ([`ExportArgs`]); a bad value is named, never shown. (Here, beside the
    /// arguments it reads, so that `sentry` does not import the command line.)
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
        environment: &str,
    ) -> Result<Self, String> {
        let export: ExportArgs = from_lookup(get).map_err(|error| error.to_string())?;
        Self::new(
            export.sentry_dsn.as_ref(),
            export.sentry_traces_sample_rate,
            environment,
        )
    }
}

/// A number, with blanks around it ignored.
pub fn number<T>(raw: &str) -> Result<T, String>
where
    T: FromStr,
    T::Err: Display,
{
    raw.trim()
        .parse()
        .map_err(|error: T::Err| error.to_string())
}

/// A flag: `true` or `1`, `false` or `0`.
pub fn flag(raw: &str) -> Result<bool, String> {
    match raw.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err("must be true or false (1 or 0)".to_owned()),
    }
}

fn sample_rate(raw: &str) -> Result<f32, String> {
    raw.trim()
        .parse::<f32>()
        .ok()
        .filter(|rate| (0.0..=1.0).contains(rate))
        .ok_or_else(|| "must be between 0 and 1".to_owned())
}

/// Every environment variable `command` and its subcommands read, sorted, once each.
pub fn env_names(command: &Command) -> Vec<String> {
    let mut names: Vec<String> = command
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|name| name.to_string_lossy().into_owned())
        .chain(command.get_subcommands().flat_map(env_names))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The command as the binaries show it: help names each setting's variable but never
/// its value (some are secrets), on every subcommand.
pub fn command<C: Parser>() -> Command {
    fn hide_values(command: Command) -> Command {
        let subcommands: Vec<String> = command
            .get_subcommands()
            .map(|sub| sub.get_name().to_owned())
            .collect();
        subcommands.into_iter().fold(
            command.mut_args(|arg| arg.hide_env_values(true)),
            |command, name| command.mut_subcommand(name, hide_values),
        )
    }
    hide_values(C::command())
}

/// What both binaries' `main` does: reads the command line ([`parse`], with `default`
/// as the subcommand when none is given) before any thread starts, then runs `run` on
/// a multi-threaded runtime.
pub fn main_with<C, F, T, E>(default: &str, run: impl FnOnce(C) -> F) -> Result<T, E>
where
    C: Parser,
    F: std::future::Future<Output = Result<T, E>>,
    E: From<std::io::Error>,
{
    let mut args: Vec<OsString> = std::env::args_os().collect();
    if args.len() == 1 {
        args.push(default.into());
    }
    let cli: C = parse(args);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli))
}

/// Reads `C` from `args` and the process environment; prints help, or the error, and
/// exits as clap does. A blank variable counts as unset: it is removed from the
/// environment before clap reads it, so call this first thing in `main`, before any
/// thread starts.
pub fn parse<C: Parser>(args: impl IntoIterator<Item = OsString>) -> C {
    for name in env_names(&C::command()) {
        let blank = std::env::var_os(&name).is_some_and(|v| v.to_string_lossy().trim().is_empty());
        if blank {
            std::env::remove_var(&name);
        }
    }
    let mut command = command::<C>();
    let matches = command
        .try_get_matches_from_mut(args)
        .unwrap_or_else(|error| error.exit());
    C::from_arg_matches(&matches).unwrap_or_else(|error| error.format(&mut command).exit())
}

/// Reads the settings `A` declares through `lookup` (tests pass a map) instead of the
/// process environment, exactly as [`parse`] reads them: blank counts as unset, and a
/// bad value is the same error.
pub fn from_lookup<A: Args>(lookup: impl Fn(&str) -> Option<String>) -> Result<A, clap::Error> {
    let mut args: Vec<String> = Vec::new();
    let command = A::augment_args(Command::new("settings").no_binary_name(true)).mut_args(|arg| {
        let value = arg
            .get_env()
            .and_then(OsStr::to_str)
            .and_then(&lookup)
            .filter(|value| !value.trim().is_empty());
        if let (Some(value), Some(long)) = (value, arg.get_long()) {
            args.push(format!("--{long}={value}"));
        }
        // Only `lookup` is read: never the process environment.
        arg.env(None::<&'static str>)
    });
    A::from_arg_matches(&command.try_get_matches_from(args)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn environment(raw: &str) -> Result<Environment, clap::Error> {
        from_lookup::<LogArgs>(|name| (name == "ENV").then(|| raw.to_owned())).map(|log| log.env)
    }

    #[test]
    fn the_environment_is_parsed_in_one_place() {
        assert_eq!(environment("").ok(), Some(Environment::Development));
        assert_eq!(environment(" ").ok(), Some(Environment::Development));
        assert_eq!(environment("dev").ok(), Some(Environment::Development));
        assert_eq!(
            environment("development").ok(),
            Some(Environment::Development)
        );
        assert_eq!(environment("test").ok(), Some(Environment::Test));
        assert_eq!(environment("prod").ok(), Some(Environment::Production));
        assert_eq!(
            environment("production").ok(),
            Some(Environment::Production)
        );
        let error = environment("staging").expect_err("staging").to_string();
        assert!(error.contains("ENV"), "{error}");
        assert!(environment("Production").is_err());
    }

    #[test]
    fn values_are_read_through_the_lookup_only() {
        let log = from_lookup::<LogArgs>(|_| None).expect("defaults");
        assert_eq!(log.env, Environment::Development);
        assert_eq!(log.rust_log, DEFAULT_FILTER);
        let export = from_lookup::<ExportArgs>(|name| {
            (name == "SENTRY_TRACES_SAMPLE_RATE").then(|| " 0.5 ".to_owned())
        })
        .expect("a rate");
        assert_eq!(export.sentry_traces_sample_rate, 0.5);
        assert!(export.sentry_dsn.is_none());
    }

    #[test]
    fn flags_and_numbers_take_what_the_documentation_says() {
        assert_eq!(flag(" true"), Ok(true));
        assert_eq!(flag("1"), Ok(true));
        assert_eq!(flag("0"), Ok(false));
        assert!(flag("yes").is_err());
        assert_eq!(number::<u16>(" 8080 "), Ok(8080));
        assert!(number::<u16>("70000").is_err());
    }
}
