//! prism-worker: keeps Prism's read side up to date. apalis workers take the wake-up
//! jobs the api pushes after each commit; a backstop catches up on a timer without
//! them; both bring every projection up to its place in the log and refresh the cache
//! views that changed. Rebuilds run from their own queue.
//!
//! Layout:
//! - `cli`: the command line (clap): `run`, `rebuild`, and the settings each reads;
//! - `config`: the typed settings, declared as clap fields, read once, validated;
//! - `startup`: the [`Worker`] (queues, backstop, health server) and its pool;
//! - `queues`: apalis workers on the `projections` and `rebuilds` queues;
//! - `delivery`: catch-up, cache refresh and rebuild, whoever asked.
//!
//! Logging is set up by the shared `telemetry` crate.

pub mod cli;
pub mod config;
mod delivery;
pub mod metrics;
mod queues;
mod startup;

pub use delivery::Delivery;
pub use startup::{connect, Worker};
