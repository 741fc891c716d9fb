//! Settings: read once from the environment at start-up, validated, passed down.
//! Nothing else in the api reads environment variables. Every variable is documented
//! on its field and in `docs/configuration.md`.

use std::path::PathBuf;

use anyhow::{bail, Context};

pub use telemetry::Secret;

/// Where the api runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Test,
    Production,
}

impl Environment {
    fn parse(raw: &str) -> anyhow::Result<Self> {
        match raw {
            "development" | "dev" => Ok(Self::Development),
            "test" => Ok(Self::Test),
            "production" | "prod" => Ok(Self::Production),
            other => bail!("ENV must be development, test or production, not {other:?}"),
        }
    }
}

/// How tokens are verified.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `CLERK_JWKS_FILE`: a JWKS document on disk (development and tests only).
    pub jwks_file: Option<PathBuf>,
    /// `CLERK_ISSUER`: the Clerk frontend API URL every token's `iss` must equal; unset
    /// in development means the issuer is not checked.
    pub issuer: Option<String>,
    /// `CLERK_AUTHORIZED_PARTIES` (comma-separated; defaults to `ALLOWED_ORIGINS`): the
    /// origins a token's `azp` may name when it has one.
    pub authorized_parties: Vec<String>,
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
    /// `REDIS_URL`: job queues (wake-ups for the worker) and cache views.
    pub redis_url: Secret,
    /// `REDIS_NAMESPACE`: prefix of every Redis key, default `prism`; the worker must
    /// use the same.
    pub redis_namespace: String,
    /// `ALLOWED_ORIGINS`: comma-separated exact origins of the SPA.
    pub allowed_origins: Vec<String>,
    pub auth: AuthSettings,
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
        let environment = Environment::parse(&get("ENV").unwrap_or_else(|| "development".into()))?;
        let port = match get("PORT") {
            Some(raw) => raw
                .parse()
                .with_context(|| format!("PORT must be a port number, not {raw:?}"))?,
            None => 8080,
        };
        let database_max_connections = match get("DATABASE_MAX_CONNECTIONS") {
            Some(raw) => raw.parse().with_context(|| {
                format!("DATABASE_MAX_CONNECTIONS must be a number, not {raw:?}")
            })?,
            None => 10,
        };
        let database_url = get("DATABASE_URL").context("DATABASE_URL is required")?;
        let redis_url = get("REDIS_URL").context("REDIS_URL is required")?;
        let allowed_origins = get("ALLOWED_ORIGINS")
            .map(|raw| list(&raw))
            .unwrap_or_default();
        let authorized_parties = get("CLERK_AUTHORIZED_PARTIES")
            .map(|raw| list(&raw))
            .unwrap_or_else(|| allowed_origins.clone());
        let auth = AuthSettings {
            jwks_file: get("CLERK_JWKS_FILE").map(PathBuf::from),
            issuer: get("CLERK_ISSUER"),
            authorized_parties,
        };
        if auth.jwks_file.is_none() {
            bail!("CLERK_JWKS_FILE is required: the keys tokens are verified with");
        }
        Ok(Self {
            environment,
            host: get("HOST").unwrap_or_else(|| "0.0.0.0".into()),
            port,
            database_url: Secret::new(database_url),
            database_max_connections,
            redis_url: Secret::new(redis_url),
            redis_namespace: get("REDIS_NAMESPACE").unwrap_or_else(|| "prism".into()),
            allowed_origins,
            auth,
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
        let err = settings(&[
            ("DATABASE_URL", "x"),
            ("REDIS_URL", "r"),
            ("CLERK_JWKS_FILE", "f"),
            ("ENV", "staging"),
        ])
        .expect_err("bad env");
        assert!(err.to_string().contains("ENV"));
    }
}
