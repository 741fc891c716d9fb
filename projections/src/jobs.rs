//! The jobs the api and the worker exchange through Redis (apalis queues). They are
//! wake-ups, not the data: a lost, repeated or flushed job only delays projections,
//! because every catch-up reads the log from its checkpoint.

use serde::{Deserialize, Serialize};

/// Queue of [`CatchUp`] jobs, under the deployment's Redis namespace.
pub fn catch_up_queue(namespace: &str) -> String {
    format!("{namespace}:projections")
}

/// The flag that says a wake-up is queued and not yet started. The api pushes a
/// [`CatchUp`] only when it sets the flag (`SET NX`); a worker deletes it when it starts
/// a catch-up, before it reads the log. So a burst of commits leaves one queued job,
/// and a commit after a catch-up began its read queues the next one.
pub fn wake_flag(namespace: &str) -> String {
    format!("{namespace}:projections:wake")
}

/// How long the wake flag lives at most: if its job is lost before a worker starts
/// it (Redis flushed, a worker killed with the job leased), the next commit after
/// this long queues another. The backstop covers the time between.
pub const WAKE_FLAG_TTL_MS: u64 = 10_000;

/// Queue of [`Rebuild`] jobs, under the deployment's Redis namespace.
pub fn rebuild_queue(namespace: &str) -> String {
    format!("{namespace}:rebuilds")
}

/// "New events were committed": bring every projection up to date. Pushed by the api
/// after each commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatchUp {
    /// The request whose commit pushed the job, for tracing.
    #[serde(default)]
    pub request_id: Option<String>,
    /// The W3C `traceparent` of that request, so the job joins its trace.
    #[serde(default)]
    pub traceparent: Option<String>,
}

/// "Run this rebuild" (`projections::rebuild`), asked for by an operator. Workers
/// also find queued rebuilds on their own; the job only wakes one sooner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rebuild {
    /// The rebuild (`projection_rebuilds.id`); jobs queued by the first version name
    /// only the projection, and a worker asks for a rebuild of it.
    #[serde(default)]
    pub id: Option<uuid::Uuid>,
    pub projection: String,
    #[serde(default)]
    pub requested_by: Option<String>,
}
