//! The application's state: every dependency the endpoints (and the bearer check) use,
//! built once by `startup` and given to each request as one value, `Arc<AppState>`;
//! a handler takes `Data<&Arc<AppState>>`. A new dependency is a new field here, so
//! `startup` does not compile until it builds it, and nothing is looked up by type.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::auth::{ScrapeGuard, TokenVerifier};
use crate::commands::WriteSide;
use crate::jobs::JobQueue;
use crate::metrics::ApiMetrics;
use crate::redis_link::Redis;
use crate::views::Views;

pub struct AppState {
    /// Commands: load, decide, append, wake the worker.
    pub write: WriteSide,
    /// Reads: cache views and read transactions as the caller's organisation.
    pub views: Views,
    /// Jobs for the worker (rebuilds asked for by operators).
    pub jobs: JobQueue,
    /// The pool as sea-orm sees it: `/ready`'s migration check.
    pub database: DatabaseConnection,
    /// The api's one Redis link (the cache, the rate limit and the jobs hold it
    /// too): `/ready`'s ping.
    pub redis: Redis,
    /// Verifies bearer tokens, for the operations and for `/metrics`.
    pub verifier: Arc<TokenVerifier>,
    /// The api's series: token refusals here, and `/metrics`.
    pub metrics: Arc<ApiMetrics>,
    /// Who may scrape `/metrics`.
    pub scrape_guard: ScrapeGuard,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("write", &self.write)
            .field("views", &self.views)
            .field("jobs", &self.jobs)
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}
