//! What Prism's test suites (api, worker, projections), its benches and its load tools
//! share, in one place:
//!
//! - [`TestDatabase`]: a database of a test's own, migrated (a copy of a template) or
//!   empty, dropped with its handle (it lives in `migrations`, feature `testing`, beside
//!   the migrations it applies);
//! - [`TestNamespace`] and [`PrivateRedis`]: a Redis namespace per test, deleted with
//!   its handle, and a `redis-server` of a test's own to flush, kill and restart;
//! - [`keys`]: the test signing keys, their JWKS and tokens the api accepts;
//! - [`bodies`]: the canonical request bodies (a building, a lease comp, a sale comp);
//! - [`Env`], [`api_env`], [`worker_env`]: the settings a test api or worker runs with,
//!   as the environment variables both binaries read;
//! - [`process`]: the real `prism-api` and `prism-worker` binaries as processes
//!   (built by cargo when a suite does not build them itself), ready when their
//!   health check answers, killed when dropped;
//! - [`cli`]: a binary's command tree, its `--help` with an empty environment, and the
//!   variables docs/configuration.md lists for it;
//! - [`StatementCounter`]: a proxy in front of Postgres that counts statements;
//! - [`free_port`], [`metric`] and [`catch_up_jobs_run`].
//!
//! It depends on no crate of Prism's but `migrations`: a suite that needs another
//! crate's binary runs it as a process instead of linking its library.

pub mod bodies;
pub mod cli;
mod env;
pub mod keys;
pub mod process;
mod redis_ns;
mod statements;

pub use env::{api_env, worker_env, Env};
pub use migrations::testing::TestDatabase;
pub use process::{ApiProcess, Process, WorkerProcess};
pub use redis_ns::{redis_url, PrivateRedis, TestNamespace};
pub use statements::StatementCounter;

/// The organisation test tokens are for.
pub const ORG: &str = "org_acme";
/// A second organisation, for isolation tests.
pub const OTHER_ORG: &str = "org_rival";
/// The user test tokens are for.
pub const USER: &str = "user_alice";
/// Every scope the api knows.
pub const ALL_SCOPES: &[&str] = &[
    "buildings:read",
    "buildings:write",
    "comps:read",
    "comps:write",
    "audit:read",
    "projections:admin",
];

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The value of the series whose line starts with `series` (name and labels, exactly
/// as rendered) in a Prometheus text exposition.
pub fn metric(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// Catch-up jobs a worker has run, whatever their outcome (`prism_jobs_total` of the
/// `projections` queue), read from its `/metrics` at `metrics_url`.
pub async fn catch_up_jobs_run(client: &reqwest::Client, metrics_url: &str) -> f64 {
    let text = client
        .get(metrics_url)
        .send()
        .await
        .expect("worker /metrics")
        .text()
        .await
        .expect("text");
    ["ok", "error"]
        .iter()
        .filter_map(|outcome| {
            metric(
                &text,
                &format!(r#"prism_jobs_total{{queue="projections",outcome="{outcome}"}}"#),
            )
        })
        .sum()
}
