//! Logging setup, in one place: readable text in development, JSON lines in
//! production; the level comes from `RUST_LOG` (default `info`). Everything else only
//! uses `tracing` macros.

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::Environment;

/// Installs the global subscriber; call once at the start of `main`.
pub fn init(environment: Environment) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn"));
    let builder = fmt().with_env_filter(filter).with_target(false);
    let result = match environment {
        Environment::Production => builder.json().flatten_event(true).try_init(),
        Environment::Development | Environment::Test => builder.try_init(),
    };
    // A second call (tests) keeps the first subscriber.
    drop(result);
}
