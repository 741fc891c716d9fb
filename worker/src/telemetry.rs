//! Logging setup, in one place: readable text in development, JSON lines in
//! production; the level comes from `RUST_LOG` (default `info`).

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber; call once at the start of `main`.
pub fn init(production: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,sqlx=warn,apalis=warn,apalis_core=warn,apalis_redis=warn")
    });
    let builder = fmt().with_env_filter(filter).with_target(false);
    let result = if production {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    drop(result);
}
