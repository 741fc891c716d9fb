//! prism-api: the HTTP face of Prism. Commands are parsed at the edge into domain
//! values, decided by the aggregates and appended to the event store; errors leave as
//! `application/problem+json`.
//!
//! Layout:
//! - `cli`: the command line (clap): commands, arguments, and each command's settings;
//! - `config`: the typed settings, declared as clap fields, read once, validated;
//! - `startup`: the `Application` (routes, middleware, listener) and the shared pool;
//! - `state`: `AppState`, every dependency of the endpoints in one typed value that
//!   `startup` builds and each request is given;
//! - `spec`: the OpenAPI service (every operation) and its document;
//! - `edge`: client addresses, rate and body limits, request logging, problems for
//!   errors outside operations;
//! - `auth`: Clerk JWT verification and the `Actor` every request acts as;
//!   `bearer`: the security scheme operations name, verifying with `AppState`'s verifier;
//! - `input`: JSON bodies that name every bad field, exact decimals, enum choices,
//!   fields parsed into domain values with every refusal collected;
//! - `params`: parameter groups — a list's query or a command's headers taken as one
//!   extractor, documented as separate parameters;
//! - `problem`: `ApiError` and its single mapping to statuses and problem types;
//! - `metrics`: the api's series; `route_table`: requests to their documented routes;
//! - `commands`: the write side — event log, idempotency, optimistic concurrency;
//! - `command_endpoint`: what every command endpoint shares: the `Command` extractor
//!   (caller, state, `Idempotency-Key`, `If-Match`, operation) and its answer;
//! - `buildings`, `comps`, `market`, `audit`, `admin`, `ops`: the endpoints, one module
//!   per resource, commands and queries side by side;
//! - `views`: serving read models from the cache or the projections, ETags,
//!   `min_version`; `read_types`: the documented shapes of read responses;
//! - `redis_link`: the one Redis link (and key namespace) that the cache views, the
//!   rate limit, the jobs and readiness share;
//! - `jobs`: wake-up and rebuild jobs pushed to the worker through Redis;
//! - `dev`: local signing keys and tokens for development;
//! - `request_id`, `tags`: leaf types every layer names.
//!
//! Dependencies point one way; each group imports only from the groups after it:
//! `startup`; the endpoints and `spec`; `bearer`, `command_endpoint`; `state`;
//! `commands`, `views`, `edge`; `auth`, `jobs`; `metrics`, `problem`, `redis_link`;
//! `cli`; and the leaf types (`config`, `input`, `params`, `read_types`, `request_id`,
//! `route_table`, `tags`), which import nothing of the crate but `input`. No module imports one that imports it
//! back.
//!
//! Logging is set up by the shared `telemetry` crate.

mod admin;
mod audit;
mod auth;
mod bearer;
pub mod bounds;
mod buildings;
pub mod cli;
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
mod params;
mod problem;
mod read_types;
mod redis_link;
mod request_id;
mod route_table;
pub mod spec;
mod startup;
mod state;
mod tags;
mod views;

pub use spec::openapi;
pub use startup::{connect_database, Application};
