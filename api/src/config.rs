//! Settings: read once from the environment at start-up, validated, passed down.
//! Nothing else in the api reads environment variables. Every variable is documented
//! on its field and in `docs/configuration.md`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};

pub use telemetry::sentry::SentrySettings;
pub use telemetry::Secret;

/// Where the api runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Test,
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

    /// `ENV` from the process environment ([`Self::from_lookup`]).
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// `ENV` through `lookup`: development when unset or blank, else one of its
    /// spellings. Every part of the api that asks where it runs asks this.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        match lookup("ENV").filter(|raw| !raw.trim().is_empty()) {
            None => Ok(Self::Development),
            Some(raw) => Self::parse(&raw),
        }
    }

    fn parse(raw: &str) -> anyhow::Result<Self> {
        match raw {
            "development" | "dev" => Ok(Self::Development),
            "test" => Ok(Self::Test),
            "production" | "prod" => Ok(Self::Production),
            other => bail!("ENV must be development, test or production, not {other:?}"),
        }
    }
}

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
    /// `CLERK_ISSUER`: the Clerk frontend API URL every token's `iss` must equal;
    /// required in production, unchecked when unset elsewhere.
    pub issuer: Option<String>,
    /// `CLERK_AUTHORIZED_PARTIES` (comma-separated; defaults to `ALLOWED_ORIGINS`): the
    /// origins a token's `azp` may name when it has one.
    pub authorized_parties: Vec<String>,
    /// `STRICT_CLERK_SCOPES`: `true` makes every token carry each scope it uses;
    /// otherwise members read and write without asking (default `false`; production
    /// requires `true`).
    pub strict_scopes: bool,
    /// `CLERK_JWKS_MIN_REFETCH_SECONDS` (default 10): the least time between two JWKS
    /// downloads prompted by tokens naming an unknown `kid`.
    pub jwks_min_refetch: Duration,
}

/// What every request passes through before an operation.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    /// `ALLOWED_ORIGINS`: comma-separated exact origins of the SPA (CORS).
    pub allowed_origins: Vec<String>,
    /// `TRUST_CLOUDFLARE_HEADERS`: `true` takes the client address from
    /// `CF-Connecting-IP` (only behind Cloudflare); otherwise the socket's peer.
    pub trust_cloudflare_headers: bool,
    /// `MAX_REQUEST_BODY_BYTES` (default 65536): larger bodies get 413.
    pub max_body_bytes: u64,
    /// `RATE_LIMIT_PER_MINUTE` (default 600; 0 turns it off): requests one client
    /// address may make per minute before getting 429.
    pub rate_limit_per_minute: u32,
    /// Whether to send `Strict-Transport-Security` (production).
    pub hsts: bool,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// `ENV`: development (default), test or production.
    pub environment: Environment,
    /// `HOST`: the address to bind, default `0.0.0.0`.
    pub host: String,
    /// `PORT`: the HTTP port, default 8080; 0 picks a free one (tests).
    pub port: u16,
    /// `DATABASE_URL`: Postgres with PostGIS, holding the event store and read models.
    pub database_url: Secret,
    /// `DATABASE_MAX_CONNECTIONS`: pool size, default 10.
    pub database_max_connections: u32,
    /// `DATABASE_ACQUIRE_TIMEOUT_MS` (default 2000): how long a request waits for a
    /// database connection (a free one, or a new one while Postgres refuses) before it
    /// is answered `503 service-unavailable`.
    pub database_acquire_timeout: Duration,
    /// `DATABASE_STATEMENT_TIMEOUT_MS` (default 5000; 0 turns it off): Postgres's
    /// `statement_timeout` on the api's connections, lock waits included; a statement
    /// cancelled by it is answered 503.
    pub database_statement_timeout: Option<Duration>,
    /// `REDIS_TIMEOUT_MS` (default 250): how long a request waits for Redis (a cache
    /// view, a rate-limit counter, a wake-up; connecting included) before it goes on
    /// without it.
    pub redis_timeout: Duration,
    /// `REDIS_URL`: job queues (wake-ups for the worker), cache views, rate limits.
    pub redis_url: Secret,
    /// `REDIS_NAMESPACE`: prefix of every Redis key, default `prism`; the worker must
    /// use the same.
    pub redis_namespace: String,
    /// `METRICS_SCRAPE_TOKEN`: the bearer token Prometheus scrapes `/metrics` with
    /// (required in production, at least 32 characters).
    pub metrics_scrape_token: Option<Secret>,
    pub edge: EdgeSettings,
    pub auth: AuthSettings,
    /// `SENTRY_DSN` and `SENTRY_TRACES_SAMPLE_RATE` (default 0.1).
    pub sentry: SentrySettings,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: the OTLP/HTTP collector (Grafana Alloy) traces go
    /// to, e.g. `http://alloy:4318`; unset sends none.
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
    /// Reads the settings from the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let number = |name: &str, default: u64| -> anyhow::Result<u64> {
            match get(name) {
                Some(raw) => raw
                    .trim()
                    .parse()
                    .with_context(|| format!("{name} must be a whole number, not {raw:?}")),
                None => Ok(default),
            }
        };
        let flag = |name: &str| -> anyhow::Result<bool> {
            match get(name).as_deref().map(str::trim) {
                None | Some("false" | "0") => Ok(false),
                Some("true" | "1") => Ok(true),
                Some(other) => bail!("{name} must be true or false, not {other:?}"),
            }
        };
        let environment = Environment::from_lookup(&lookup)?;
        let port = u16::try_from(number("PORT", 8080)?).context("PORT must be a port number")?;
        let database_max_connections = u32::try_from(number("DATABASE_MAX_CONNECTIONS", 10)?)
            .context("DATABASE_MAX_CONNECTIONS is too large")?;
        let allowed_origins = get("ALLOWED_ORIGINS")
            .map(|raw| list(&raw))
            .unwrap_or_default();
        let authorized_parties = get("CLERK_AUTHORIZED_PARTIES")
            .map(|raw| list(&raw))
            .unwrap_or_else(|| allowed_origins.clone());
        let strict_scopes = flag("STRICT_CLERK_SCOPES")?;
        let trust_cloudflare_headers = flag("TRUST_CLOUDFLARE_HEADERS")?;
        let metrics_scrape_token = get("METRICS_SCRAPE_TOKEN");
        let jwks_file = get("CLERK_JWKS_FILE");
        let jwks_url = get("CLERK_JWKS_URL");
        let jwt_key = get("CLERK_JWT_KEY");
        let issuer = get("CLERK_ISSUER");

        if environment == Environment::Production {
            // Every unsafe setting at once, each named; never a value.
            let mut unsafe_settings = Vec::new();
            for name in ["DATABASE_URL", "REDIS_URL", "CLERK_ISSUER"] {
                if get(name).is_none() {
                    unsafe_settings.push(format!("{name} is required"));
                }
            }
            if jwks_url.is_none() && jwt_key.is_none() {
                unsafe_settings.push("CLERK_JWKS_URL (or CLERK_JWT_KEY) is required".into());
            }
            if jwks_file.is_some() {
                unsafe_settings
                    .push("CLERK_JWKS_FILE must not be set (development and tests only)".into());
            }
            if !strict_scopes {
                unsafe_settings.push("STRICT_CLERK_SCOPES must be true".into());
            }
            match &metrics_scrape_token {
                None => unsafe_settings.push("METRICS_SCRAPE_TOKEN is required".into()),
                Some(token) if telemetry::weak_token(token) => unsafe_settings.push(format!(
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

        let database_url = get("DATABASE_URL").context("DATABASE_URL is required")?;
        let redis_url = get("REDIS_URL").context("REDIS_URL is required")?;
        let keys = match (jwks_url, jwt_key, jwks_file) {
            (Some(url), None, None) => KeySetting::JwksUrl(url),
            (None, Some(pem), None) => KeySetting::PublicKeyPem(pem),
            (None, None, Some(file)) => KeySetting::JwksFile(PathBuf::from(file)),
            (None, None, None) => bail!(
                "CLERK_JWKS_URL, CLERK_JWT_KEY or CLERK_JWKS_FILE is required: \
                 the keys tokens are verified with"
            ),
            _ => bail!("set only one of CLERK_JWKS_URL, CLERK_JWT_KEY and CLERK_JWKS_FILE"),
        };
        let rate_limit_per_minute = u32::try_from(number("RATE_LIMIT_PER_MINUTE", 600)?)
            .context("RATE_LIMIT_PER_MINUTE is too large")?;
        let database_acquire_timeout =
            Duration::from_millis(number("DATABASE_ACQUIRE_TIMEOUT_MS", 2000)?.max(1));
        let database_statement_timeout = match number("DATABASE_STATEMENT_TIMEOUT_MS", 5000)? {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        };
        let redis_timeout = Duration::from_millis(number("REDIS_TIMEOUT_MS", 250)?.max(1));
        Ok(Self {
            environment,
            host: get("HOST").unwrap_or_else(|| "0.0.0.0".into()),
            port,
            database_url: Secret::new(database_url),
            database_max_connections,
            database_acquire_timeout,
            database_statement_timeout,
            redis_timeout,
            redis_url: Secret::new(redis_url),
            redis_namespace: get("REDIS_NAMESPACE").unwrap_or_else(|| "prism".into()),
            metrics_scrape_token: metrics_scrape_token.map(Secret::new),
            edge: EdgeSettings {
                allowed_origins,
                trust_cloudflare_headers,
                max_body_bytes: number("MAX_REQUEST_BODY_BYTES", 65_536)?,
                rate_limit_per_minute,
                hsts: environment == Environment::Production,
            },
            sentry: SentrySettings::from_lookup(get, environment.as_str())
                .map_err(anyhow::Error::msg)?,
            otlp_endpoint: get("OTEL_EXPORTER_OTLP_ENDPOINT"),
            auth: AuthSettings {
                keys,
                issuer,
                authorized_parties,
                strict_scopes,
                jwks_min_refetch: Duration::from_secs(number(
                    "CLERK_JWKS_MIN_REFETCH_SECONDS",
                    10,
                )?),
            },
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
        assert_eq!(s.environment, Environment::Development);
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
    fn the_environment_is_read_in_one_place() {
        let env = |raw: Option<&str>| {
            let raw = raw.map(str::to_owned);
            Environment::from_lookup(move |name| (name == "ENV").then(|| raw.clone()).flatten())
        };
        assert_eq!(env(None).ok(), Some(Environment::Development));
        assert_eq!(env(Some(" ")).ok(), Some(Environment::Development));
        assert_eq!(env(Some("dev")).ok(), Some(Environment::Development));
        assert_eq!(env(Some("test")).ok(), Some(Environment::Test));
        assert_eq!(env(Some("prod")).ok(), Some(Environment::Production));
        assert_eq!(env(Some("production")).ok(), Some(Environment::Production));
        assert!(env(Some("staging")).is_err());
        assert!(env(Some("Production")).is_err());
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
