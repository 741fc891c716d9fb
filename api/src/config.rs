//! Settings: declared once, as the clap fields of [`SettingsArgs`] (each an environment
//! variable, a flag and its help), read once at start-up, validated into [`Settings`],
//! passed down. Nothing else in the api reads environment variables.
//! `docs/configuration.md` lists the same variables (a test checks it).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use telemetry::cli::{flag, number, ExportArgs, LogArgs};

pub use telemetry::sentry::SentrySettings;
pub use telemetry::{Environment, Secret};

/// Where the keys that verify tokens come from: exactly one of the three settings.
#[derive(Debug, Clone)]
pub enum KeySetting {
    /// `CLERK_JWKS_URL`: Clerk's JWKS (`<frontend API>/.well-known/jwks.json`).
    JwksUrl(String),
    /// `CLERK_JWT_KEY`: Clerk's PEM public key, for networkless verification.
    PublicKeyPem(String),
    /// `CLERK_JWKS_FILE`: a JWKS document on disk (development and tests only).
    JwksFile(PathBuf),
}

/// How tokens are verified.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub keys: KeySetting,
    /// `CLERK_ISSUER`: every token's `iss` must equal it; unchecked when unset.
    pub issuer: Option<String>,
    /// `CLERK_AUTHORIZED_PARTIES`, else `ALLOWED_ORIGINS`: the origins a token's `azp`
    /// may name when it has one.
    pub authorized_parties: Vec<String>,
    /// `STRICT_CLERK_SCOPES`: every token must carry each scope it uses.
    pub strict_scopes: bool,
    /// `CLERK_JWKS_MIN_REFETCH_SECONDS`.
    pub jwks_min_refetch: Duration,
}

/// What every request passes through before an operation.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    /// `ALLOWED_ORIGINS`: exact origins of the SPA (CORS).
    pub allowed_origins: Vec<String>,
    /// `TRUST_CLOUDFLARE_HEADERS`: the client address is `CF-Connecting-IP`, not the
    /// socket's peer.
    pub trust_cloudflare_headers: bool,
    /// `MAX_REQUEST_BODY_BYTES`: larger bodies get 413.
    pub max_body_bytes: u64,
    /// `RATE_LIMIT_PER_MINUTE` (0: no limit).
    pub rate_limit_per_minute: u32,
    /// Whether to send `Strict-Transport-Security` (production).
    pub hsts: bool,
}

/// `prism-api serve`'s settings, each read from its environment variable unless given
/// as a flag. The help text of each field is what `prism-api serve --help` prints.
#[derive(Debug, Clone, Args)]
pub struct SettingsArgs {
    #[command(flatten)]
    pub log: LogArgs,
    /// Address to bind
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// HTTP port; 0 picks a free one
    #[arg(long, env = "PORT", default_value_t = 8080, value_parser = number::<u16>)]
    pub port: u16,
    /// Postgres with PostGIS: event store and read models (secret; required). Its login
    /// role must be able to switch to prism_app
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<Secret>,
    /// Database pool size
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10, value_parser = number::<u32>)]
    pub database_max_connections: u32,
    /// How long a request waits for a database connection before it is answered 503,
    /// in milliseconds
    #[arg(long, env = "DATABASE_ACQUIRE_TIMEOUT_MS", default_value_t = 2000, value_parser = number::<u64>)]
    pub database_acquire_timeout_ms: u64,
    /// Postgres's statement_timeout on the api's connections, in milliseconds (a
    /// cancelled statement is answered 503); 0 leaves the server's
    #[arg(long, env = "DATABASE_STATEMENT_TIMEOUT_MS", default_value_t = 5000, value_parser = number::<u64>)]
    pub database_statement_timeout_ms: u64,
    /// Redis: job queues to the worker, cache views, rate-limit counters (secret;
    /// required)
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<Secret>,
    /// Prefix of every Redis key; api and worker must agree
    #[arg(long, env = "REDIS_NAMESPACE", default_value = "prism")]
    pub redis_namespace: String,
    /// How long a request waits for Redis before it goes on without it, in
    /// milliseconds
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 250, value_parser = number::<u64>)]
    pub redis_timeout_ms: u64,
    /// Comma-separated exact origins of the SPA (CORS); empty lets every origin
    /// through, so production requires it
    #[arg(long, env = "ALLOWED_ORIGINS")]
    pub allowed_origins: Option<String>,
    /// Clerk's JWKS, <frontend API>/.well-known/jwks.json (production). One of
    /// CLERK_JWKS_URL, CLERK_JWT_KEY and CLERK_JWKS_FILE is required
    #[arg(long, env = "CLERK_JWKS_URL")]
    pub clerk_jwks_url: Option<String>,
    /// Clerk's PEM public key (RSA): verification without a network
    #[arg(long, env = "CLERK_JWT_KEY")]
    pub clerk_jwt_key: Option<String>,
    /// A JWKS document on disk; development and tests only
    #[arg(long, env = "CLERK_JWKS_FILE")]
    pub clerk_jwks_file: Option<PathBuf>,
    /// The Clerk frontend API URL every token's iss must equal (required in
    /// production); unset leaves iss unchecked
    #[arg(long, env = "CLERK_ISSUER")]
    pub clerk_issuer: Option<String>,
    /// Comma-separated origins a token's azp may name (unset: ALLOWED_ORIGINS)
    #[arg(long, env = "CLERK_AUTHORIZED_PARTIES")]
    pub clerk_authorized_parties: Option<String>,
    /// Least time between two JWKS downloads prompted by an unknown kid, in seconds
    #[arg(long, env = "CLERK_JWKS_MIN_REFETCH_SECONDS", default_value_t = 10, value_parser = number::<u64>)]
    pub clerk_jwks_min_refetch_seconds: u64,
    /// true: a token must carry each scope it uses (production requires it); false:
    /// members also read and write buildings and comps
    #[arg(long, env = "STRICT_CLERK_SCOPES", default_value_t = false, value_parser = flag, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub strict_clerk_scopes: bool,
    /// true: the client address is CF-Connecting-IP (only behind Cloudflare)
    #[arg(long, env = "TRUST_CLOUDFLARE_HEADERS", default_value_t = false, value_parser = flag, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub trust_cloudflare_headers: bool,
    /// Larger request bodies get 413
    #[arg(long, env = "MAX_REQUEST_BODY_BYTES", default_value_t = 65_536, value_parser = number::<u64>)]
    pub max_request_body_bytes: u64,
    /// Requests one client address may make per minute before 429; 0 turns the limit
    /// off
    #[arg(long, env = "RATE_LIMIT_PER_MINUTE", default_value_t = 600, value_parser = number::<u32>)]
    pub rate_limit_per_minute: u32,
    /// The bearer token Prometheus scrapes /metrics with (secret; production requires
    /// at least 32 characters, 10 of them distinct)
    #[arg(long, env = "METRICS_SCRAPE_TOKEN")]
    pub metrics_scrape_token: Option<Secret>,
    #[command(flatten)]
    pub export: ExportArgs,
}

/// The api's settings, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `ENV` (development, test or production) and `RUST_LOG`.
    pub log: LogArgs,
    /// `HOST`.
    pub host: String,
    /// `PORT`.
    pub port: u16,
    /// `DATABASE_URL`.
    pub database_url: Secret,
    /// `DATABASE_MAX_CONNECTIONS`.
    pub database_max_connections: u32,
    /// `DATABASE_ACQUIRE_TIMEOUT_MS`, at least 1 ms.
    pub database_acquire_timeout: Duration,
    /// `DATABASE_STATEMENT_TIMEOUT_MS`; `None` for 0 (the server's).
    pub database_statement_timeout: Option<Duration>,
    /// `REDIS_TIMEOUT_MS`, at least 1 ms: connecting, a cache view, a rate-limit
    /// counter, a wake-up.
    pub redis_timeout: Duration,
    /// `REDIS_URL`.
    pub redis_url: Secret,
    /// `REDIS_NAMESPACE`.
    pub redis_namespace: String,
    /// `METRICS_SCRAPE_TOKEN`.
    pub metrics_scrape_token: Option<Secret>,
    pub edge: EdgeSettings,
    pub auth: AuthSettings,
    /// `SENTRY_DSN` (checked) and `SENTRY_TRACES_SAMPLE_RATE`.
    pub sentry: SentrySettings,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub otlp_endpoint: Option<String>,
}

fn list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Settings {
    /// Reads the settings through `lookup` (tests pass a map), as `prism-api serve`
    /// reads them from its environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        Self::from_args(telemetry::cli::from_lookup(lookup)?)
    }

    /// Validates the settings: in production, every unsafe one is named at once.
    pub fn from_args(args: SettingsArgs) -> anyhow::Result<Self> {
        let environment = args.log.env;
        let allowed_origins = args
            .allowed_origins
            .as_deref()
            .map(list)
            .unwrap_or_default();
        let authorized_parties = args
            .clerk_authorized_parties
            .as_deref()
            .map(list)
            .unwrap_or_else(|| allowed_origins.clone());
        let strict_scopes = args.strict_clerk_scopes;

        if environment.is_production() {
            // Every unsafe setting at once, each named; never a value.
            let mut unsafe_settings = Vec::new();
            for (name, set) in [
                ("DATABASE_URL", args.database_url.is_some()),
                ("REDIS_URL", args.redis_url.is_some()),
                ("CLERK_ISSUER", args.clerk_issuer.is_some()),
            ] {
                if !set {
                    unsafe_settings.push(format!("{name} is required"));
                }
            }
            if args.clerk_jwks_url.is_none() && args.clerk_jwt_key.is_none() {
                unsafe_settings.push("CLERK_JWKS_URL (or CLERK_JWT_KEY) is required".into());
            }
            if args.clerk_jwks_file.is_some() {
                unsafe_settings
                    .push("CLERK_JWKS_FILE must not be set (development and tests only)".into());
            }
            if !strict_scopes {
                unsafe_settings.push("STRICT_CLERK_SCOPES must be true".into());
            }
            match &args.metrics_scrape_token {
                None => unsafe_settings.push("METRICS_SCRAPE_TOKEN is required".into()),
                Some(token) if telemetry::weak_token(token.expose()) => unsafe_settings.push(format!(
                    "METRICS_SCRAPE_TOKEN is weak: use at least {} random characters, 10 or more of them distinct",
                    telemetry::MIN_SCRAPE_TOKEN_LEN
                )),
                Some(_) => {}
            }
            if allowed_origins.iter().any(|origin| origin.contains('*')) {
                unsafe_settings.push("ALLOWED_ORIGINS must list exact origins, not *".into());
            }
            // An empty list makes the CORS layer accept every origin.
            if allowed_origins.is_empty() {
                unsafe_settings.push("ALLOWED_ORIGINS is required (the SPA's origins)".into());
            }
            if !unsafe_settings.is_empty() {
                bail!(
                    "refusing to start with ENV=production: {}",
                    unsafe_settings.join("; ")
                );
            }
        }

        let database_url = args.database_url.context("DATABASE_URL is required")?;
        let redis_url = args.redis_url.context("REDIS_URL is required")?;
        let keys = match (
            args.clerk_jwks_url,
            args.clerk_jwt_key,
            args.clerk_jwks_file,
        ) {
            (Some(url), None, None) => KeySetting::JwksUrl(url),
            (None, Some(pem), None) => KeySetting::PublicKeyPem(pem),
            (None, None, Some(file)) => KeySetting::JwksFile(file),
            (None, None, None) => bail!(
                "CLERK_JWKS_URL, CLERK_JWT_KEY or CLERK_JWKS_FILE is required: \
                 the keys tokens are verified with"
            ),
            _ => bail!("set only one of CLERK_JWKS_URL, CLERK_JWT_KEY and CLERK_JWKS_FILE"),
        };
        let sentry = args
            .export
            .sentry(environment)
            .map_err(anyhow::Error::msg)?;
        Ok(Self {
            host: args.host,
            port: args.port,
            database_url,
            database_max_connections: args.database_max_connections,
            database_acquire_timeout: Duration::from_millis(
                args.database_acquire_timeout_ms.max(1),
            ),
            database_statement_timeout: match args.database_statement_timeout_ms {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            },
            redis_timeout: Duration::from_millis(args.redis_timeout_ms.max(1)),
            redis_url,
            redis_namespace: args.redis_namespace,
            metrics_scrape_token: args.metrics_scrape_token,
            edge: EdgeSettings {
                allowed_origins,
                trust_cloudflare_headers: args.trust_cloudflare_headers,
                max_body_bytes: args.max_request_body_bytes,
                rate_limit_per_minute: args.rate_limit_per_minute,
                hsts: environment.is_production(),
            },
            sentry,
            otlp_endpoint: args.export.otel_exporter_otlp_endpoint,
            auth: AuthSettings {
                keys,
                issuer: args.clerk_issuer,
                authorized_parties,
                strict_scopes,
                jwks_min_refetch: Duration::from_secs(args.clerk_jwks_min_refetch_seconds),
            },
            log: args.log,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_apply_and_secrets_do_not_print() {
        let s = settings(&[
            ("DATABASE_URL", "postgres://u:hunter2@h/db"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("CLERK_JWKS_FILE", "/tmp/jwks.json"),
            ("ALLOWED_ORIGINS", "https://app.example, https://qa.example"),
        ])
        .expect("valid");
        assert_eq!(s.port, 8080);
        assert_eq!(s.log.env, Environment::Development);
        assert_eq!(s.database_acquire_timeout, Duration::from_secs(2));
        assert_eq!(s.database_statement_timeout, Some(Duration::from_secs(5)));
        assert_eq!(s.redis_timeout, Duration::from_millis(250));
        assert_eq!(
            s.auth.authorized_parties,
            vec!["https://app.example", "https://qa.example"]
        );
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn bad_values_are_named() {
        let err = settings(&[
            ("DATABASE_URL", "x"),
            ("REDIS_URL", "r"),
            ("CLERK_JWKS_FILE", "f"),
            ("PORT", "http"),
        ])
        .expect_err("bad port");
        assert!(err.to_string().contains("PORT"));
        let err = settings(&[("CLERK_JWKS_FILE", "f")]).expect_err("no database");
        assert!(err.to_string().contains("DATABASE_URL"));
        let err =
            settings(&[("CLERK_JWKS_FILE", "f"), ("DATABASE_URL", "x")]).expect_err("no redis");
        assert!(err.to_string().contains("REDIS_URL"));
        let err = settings(&[("DATABASE_URL", "x"), ("REDIS_URL", "r")]).expect_err("no keys");
        assert!(err.to_string().contains("CLERK_JWKS_URL"));
        let err = settings(&[
            ("DATABASE_URL", "x"),
            ("REDIS_URL", "r"),
            ("CLERK_JWKS_FILE", "f"),
            (
                "CLERK_JWKS_URL",
                "https://clerk.example/.well-known/jwks.json",
            ),
        ])
        .expect_err("two key sources");
        assert!(err.to_string().contains("only one"));
        let err = settings(&[
            ("DATABASE_URL", "x"),
            ("REDIS_URL", "r"),
            ("CLERK_JWKS_FILE", "f"),
            ("STRICT_CLERK_SCOPES", "yes"),
        ])
        .expect_err("bad flag");
        assert!(err.to_string().contains("STRICT_CLERK_SCOPES"));
        let err = settings(&[
            ("DATABASE_URL", "x"),
            ("REDIS_URL", "r"),
            ("CLERK_JWKS_FILE", "f"),
            ("ENV", "staging"),
        ])
        .expect_err("bad env");
        assert!(err.to_string().contains("ENV"));
    }

    #[test]
    fn blank_counts_as_unset_and_flags_take_one_or_true() {
        let s = settings(&[
            ("DATABASE_URL", "x"),
            ("REDIS_URL", "r"),
            ("CLERK_JWKS_FILE", "f"),
            ("ENV", " "),
            ("PORT", ""),
            ("CLERK_AUTHORIZED_PARTIES", " "),
            ("ALLOWED_ORIGINS", "https://app.example"),
            ("STRICT_CLERK_SCOPES", "1"),
            ("DATABASE_STATEMENT_TIMEOUT_MS", "0"),
        ])
        .expect("valid");
        assert_eq!(s.log.env, Environment::Development);
        assert_eq!(s.port, 8080);
        assert_eq!(s.auth.authorized_parties, vec!["https://app.example"]);
        assert!(s.auth.strict_scopes);
        assert_eq!(s.database_statement_timeout, None);
    }

    const STRONG: &str = "n7Qe2VxK9pL4sT8wZ1cR6yB3mH5jD0aF";

    /// Settings changed from the safe production set: `Some` sets, `None` removes.
    type Overrides<'a> = &'a [(&'a str, Option<&'a str>)];

    fn production(overrides: Overrides<'_>) -> anyhow::Result<Settings> {
        let mut vars: Vec<(&str, &str)> = vec![
            ("ENV", "production"),
            ("DATABASE_URL", "postgres://app:hunter2@db/prism"),
            ("REDIS_URL", "rediss://:sesame@cache:6379"),
            ("CLERK_ISSUER", "https://clerk.prism.example"),
            (
                "CLERK_JWKS_URL",
                "https://clerk.prism.example/.well-known/jwks.json",
            ),
            ("STRICT_CLERK_SCOPES", "true"),
            ("METRICS_SCRAPE_TOKEN", STRONG),
            ("ALLOWED_ORIGINS", "https://app.prism.example"),
        ];
        for (name, value) in overrides {
            vars.retain(|(k, _)| k != name);
            if let Some(value) = value {
                vars.push((name, value));
            }
        }
        settings(&vars)
    }

    #[test]
    fn production_starts_only_with_safe_settings() {
        let safe = production(&[]).expect("safe production settings");
        assert!(safe.auth.strict_scopes && safe.edge.hsts);
        let cases: &[(Overrides<'_>, &str)] = &[
            (&[("STRICT_CLERK_SCOPES", None)], "STRICT_CLERK_SCOPES"),
            (
                &[("STRICT_CLERK_SCOPES", Some("false"))],
                "STRICT_CLERK_SCOPES",
            ),
            (&[("METRICS_SCRAPE_TOKEN", None)], "METRICS_SCRAPE_TOKEN"),
            (
                &[("METRICS_SCRAPE_TOKEN", Some("secret"))],
                "METRICS_SCRAPE_TOKEN",
            ),
            (
                &[(
                    "METRICS_SCRAPE_TOKEN",
                    Some("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
                )],
                "METRICS_SCRAPE_TOKEN",
            ),
            (
                &[("CLERK_JWKS_FILE", Some("/tmp/jwks.json"))],
                "CLERK_JWKS_FILE",
            ),
            (&[("ALLOWED_ORIGINS", Some("*"))], "ALLOWED_ORIGINS"),
            (&[("ALLOWED_ORIGINS", None)], "ALLOWED_ORIGINS"),
            (
                &[(
                    "ALLOWED_ORIGINS",
                    Some("https://app.prism.example, https://*.prism.example"),
                )],
                "ALLOWED_ORIGINS",
            ),
            (&[("DATABASE_URL", None)], "DATABASE_URL"),
            (&[("REDIS_URL", None)], "REDIS_URL"),
            (&[("CLERK_ISSUER", None)], "CLERK_ISSUER"),
            (&[("CLERK_JWKS_URL", None)], "CLERK_JWKS_URL"),
        ];
        for (overrides, named) in cases {
            let err = production(overrides).expect_err(named).to_string();
            assert!(err.contains(named), "{named}: {err}");
            for secret in ["hunter2", "sesame", STRONG] {
                assert!(!err.contains(secret), "{named}: the message shows a secret");
            }
        }
        // Clerk's PEM key is the networkless alternative to the JWKS URL.
        production(&[
            ("CLERK_JWKS_URL", None),
            ("CLERK_JWT_KEY", Some("-----BEGIN PUBLIC KEY-----")),
        ])
        .expect("a PEM key instead of the JWKS URL");
    }
}
