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
//! - `buildings`, `comps`, `ops`: the endpoints, one module per resource;
//! - `dev`: local signing keys and tokens for development;
//! - `telemetry`: logging setup.

mod auth;
mod buildings;
mod command_endpoint;
mod commands;
mod comps;
pub mod config;
pub mod dev;
mod edge;
mod input;
mod ops;
mod problem;
mod startup;
pub mod telemetry;

pub use startup::{connect_database, openapi, Application};

/// Operation groups in the OpenAPI document.
#[derive(Debug, poem_openapi::Tags)]
enum ApiTags {
    /// Buildings: register, update, relocate, archive, restore.
    Buildings,
    /// Lease and sale comparables: record, amend, verify, retract.
    Comps,
    /// Health and readiness.
    Operations,
}
