//! Black-box tests of prism-api over HTTP, against real Postgres (each test its own
//! database). One binary: every module shares the harness in `helpers`.

mod as_of;
mod auth;
mod buildings;
mod cli;
mod comps;
mod concurrency;
mod contract;
mod costs;
mod crash;
mod edge;
mod helpers;
mod idempotency;
mod metrics;
mod ops;
mod outages;
mod read_your_writes;
mod redis_tls;
mod sentry;
mod tenancy;
mod traces;
