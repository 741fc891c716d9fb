//! prism-api: the HTTP face of Prism. Commands are parsed at the edge into domain
//! values, decided by the aggregates and appended to the event store; errors leave as
//! `application/problem+json`.
//!
//! Layout:
//! - `config`: the typed settings, read once from the environment;
//! - `startup`: the `Application` (routes, middleware, listener) and the shared pool;
//! - `edge`: request ids, request logging, problems for errors outside operations;
//! - `auth`: Clerk JWT verification and the `Actor` every request acts as;
//! - `input`: JSON bodies that name every bad field, exact decimals, enum choices;
//! - `problem`: `ApiError` and its single mapping to statuses and problem types;
//! - `commands`: the write side — event log, idempotency, optimistic concurrency;
//! - `command_endpoint`: what every command endpoint shares;
//! - `buildings`, `comps`, `market`, `audit`, `admin`, `ops`: the endpoints, one module
//!   per resource, commands and queries side by side;
//! - `views`: serving read models from the cache or the projections, ETags,
//!   `min_version`; `read_types`: the documented shapes of read responses;
//! - `jobs`: wake-up and rebuild jobs pushed to the worker through Redis;
//! - `dev`: local signing keys and tokens for development.
//!
//! Logging is set up by the shared `telemetry` crate.

mod admin;
mod audit;
mod auth;
mod buildings;
mod command_endpoint;
mod commands;
mod comps;
pub mod config;
pub mod dev;
mod edge;
mod input;
mod jobs;
mod market;
pub mod metrics;
mod ops;
mod problem;
mod read_types;
pub mod spec;
mod startup;
mod views;

pub use startup::{connect_database, openapi, Application};

/// Operation groups in the OpenAPI document.
#[derive(Debug, poem_openapi::Tags)]
enum ApiTags {
    /// Buildings: register, update, relocate, archive, restore; list, read, history.
    Buildings,
    /// Lease and sale comparables: record, amend, verify, retract; list and read.
    Comps,
    /// Market statistics by submarket, property type and quarter.
    Market,
    /// The audit log (scope `audit:read`).
    Audit,
    /// Projection state and rebuilds (scope `projections:admin`).
    Admin,
    /// Health and readiness.
    Operations,
}
