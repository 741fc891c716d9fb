//! `/v1/admin/projections`: each projection's checkpoint, lag and state, and rebuilds
//! (scope `projections:admin`). Projections span every organisation: these are
//! operator tools.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use projections::Projection;

use crate::auth::{BearerAuth, Scope};
use crate::edge::RequestId;
use crate::jobs::JobQueue;
use crate::problem::{ApiError, ProblemResponse};
use crate::views::Views;
use crate::ApiTags;

/// A projection as operators see it.
#[derive(Debug, Object)]
pub struct ProjectionOut {
    /// `catalog` (buildings, comps, statistics) or `audit`.
    pub name: String,
    /// `running` (caught up), `lagging`, or `failing` (stopped at an event it cannot
    /// apply, or unable to reach the database; see `last_error`).
    pub state: String,
    /// The last applied event's global position.
    pub position: i64,
    /// The last applied event's transaction id (`xid8`).
    pub transaction_id: String,
    pub events_applied: i64,
    /// Committed events not yet applied.
    pub lag_events: i64,
    /// Age of the oldest of them.
    pub lag_seconds: f64,
    pub last_batch_size: i32,
    #[oai(nullable)]
    pub last_event_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    #[oai(nullable)]
    pub rebuilt_at: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub failing_since: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub failed_position: Option<i64>,
    #[oai(nullable)]
    pub last_error: Option<String>,
}

#[derive(Debug, Object)]
pub struct ProjectionsOut {
    pub items: Vec<ProjectionOut>,
}

#[derive(Debug, Object)]
pub struct RebuildAccepted {
    pub projection: String,
    /// `queued`: a worker rebuilds it; watch `rebuilt_at` in the projection list.
    pub status: String,
}

#[derive(Debug, ApiResponse)]
pub enum ProjectionsResponse {
    #[oai(status = 200)]
    Ok(Json<ProjectionsOut>),
}

#[derive(Debug, ApiResponse)]
pub enum RebuildResponse {
    /// Queued for a worker.
    #[oai(status = 202)]
    Accepted(Json<RebuildAccepted>),
}

#[derive(Debug)]
pub struct AdminApi;

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminApi {
    /// Projections
    ///
    /// Each projection's checkpoint, lag (events and seconds) and state. Needs the
    /// `projections:admin` scope.
    #[oai(
        path = "/v1/admin/projections",
        method = "get",
        operation_id = "list_projections"
    )]
    async fn projections(
        &self,
        auth: BearerAuth,
        views: Data<&Arc<Views>>,
        request_id: Data<&RequestId>,
    ) -> Result<ProjectionsResponse, ProblemResponse> {
        let result = async {
            auth.0.require(Scope::ProjectionsAdmin)?;
            let statuses = projections::status(&views.pool)
                .await
                .map_err(|e| ApiError::Unavailable(e.to_string()))?;
            let items = statuses
                .into_iter()
                .map(|status| ProjectionOut {
                    state: status.state().to_owned(),
                    name: status.checkpoint.name,
                    position: status.checkpoint.position,
                    transaction_id: status.checkpoint.transaction_id,
                    events_applied: status.checkpoint.events_applied,
                    lag_events: status.lag_events,
                    lag_seconds: status.lag_seconds,
                    last_batch_size: status.checkpoint.last_batch_size,
                    last_event_at: status.checkpoint.last_event_at,
                    updated_at: status.checkpoint.updated_at,
                    rebuilt_at: status.checkpoint.rebuilt_at,
                    failing_since: status.checkpoint.failing_since,
                    failed_position: status.checkpoint.failed_position,
                    last_error: status.checkpoint.last_error,
                })
                .collect();
            Ok(ProjectionsResponse::Ok(Json(ProjectionsOut { items })))
        }
        .await;
        result.map_err(|error: ApiError| error.into_problem(&request_id))
    }

    /// Rebuild a projection
    ///
    /// Queues a rebuild from the event log. The rebuild runs in one transaction: reads
    /// keep seeing the current rows until the rebuilt ones replace them. Needs the
    /// `projections:admin` scope.
    #[oai(
        path = "/v1/admin/projections/:name/replay",
        method = "post",
        operation_id = "replay_projection"
    )]
    async fn replay(
        &self,
        auth: BearerAuth,
        jobs: Data<&JobQueue>,
        request_id: Data<&RequestId>,
        name: Path<String>,
    ) -> Result<RebuildResponse, ProblemResponse> {
        let result = async {
            auth.0.require(Scope::ProjectionsAdmin)?;
            let projection = Projection::parse(&name.0).ok_or(ApiError::NotFound)?;
            if !jobs
                .request_rebuild(projection.name(), auth.0.user_id.as_str())
                .await
            {
                return Err(ApiError::Unavailable(
                    "the job queue (Redis) is unavailable".into(),
                ));
            }
            tracing::info!(projection.name = %projection, "rebuild requested");
            Ok(RebuildResponse::Accepted(Json(RebuildAccepted {
                projection: projection.name().to_owned(),
                status: "queued".into(),
            })))
        }
        .await;
        result.map_err(|error: ApiError| error.into_problem(&request_id))
    }
}
