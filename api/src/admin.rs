//! `/v1/admin`: each projection's checkpoint, lag and state, and rebuilds (scope
//! `projections:admin`). A rebuild is asked for here and run by a worker beside the
//! live projection; these endpoints only record the request, show its progress and
//! cancel it. Projections span every organisation: these are operator tools.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use projections::rebuild::{self, Rebuild, RebuildError, RebuildState};
use projections::Projection;
use uuid::Uuid;

use crate::auth::Scope;
use crate::bearer::BearerAuth;
use crate::problem::{ApiError, ProblemResponse};
use crate::state::AppState;
use crate::tags::ApiTags;

/// Where a projection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ProjectionState {
    /// Caught up.
    Running,
    /// Behind the log.
    Lagging,
    /// Stopped at an event it cannot apply, or unable to reach the database.
    Failing,
    /// Not built yet: its first rebuild, the backfill, is running.
    Building,
}

impl ProjectionState {
    fn of(status: &projections::ProjectionStatus) -> Self {
        match status.state() {
            "running" => Self::Running,
            "lagging" => Self::Lagging,
            "building" => Self::Building,
            _ => Self::Failing,
        }
    }
}

/// Where a rebuild stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum RebuildStateOut {
    Queued,
    Running,
    Verifying,
    Swapped,
    Failed,
    Cancelled,
}

impl From<RebuildState> for RebuildStateOut {
    fn from(state: RebuildState) -> Self {
        match state {
            RebuildState::Queued => Self::Queued,
            RebuildState::Running => Self::Running,
            RebuildState::Verifying => Self::Verifying,
            RebuildState::Swapped => Self::Swapped,
            RebuildState::Failed => Self::Failed,
            RebuildState::Cancelled => Self::Cancelled,
        }
    }
}

/// A projection as operators see it.
#[derive(Debug, Object)]
pub struct ProjectionOut {
    /// `catalog` (buildings, comps, statistics) or `audit`.
    pub name: String,
    /// `running` (caught up), `lagging`, `failing` (stopped at an event it cannot
    /// apply, or unable to reach the database; see `last_error`) or `building` (not
    /// built yet: its first rebuild, the backfill, is running).
    pub state: ProjectionState,
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
    #[oai(nullable)]
    pub updated_at: Option<DateTime<Utc>>,
    /// When rebuilt tables were last swapped in.
    #[oai(nullable)]
    pub rebuilt_at: Option<DateTime<Utc>>,
    /// Raised by every swap of rebuilt tables.
    pub generation: i64,
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

/// A rebuild of a projection: built beside the live tables, verified, swapped in.
#[derive(Debug, Object)]
pub struct RebuildOut {
    pub id: Uuid,
    pub projection: String,
    /// `queued`, `running`, `verifying` (checked against the log before the swap),
    /// `swapped` (done: the rebuilt tables serve reads), `failed` (see `error`; the
    /// live tables were not touched) or `cancelled`.
    pub state: RebuildStateOut,
    /// Who asked (a user id, or `backfill` for a new projection's first build).
    #[oai(nullable)]
    pub requested_by: Option<String>,
    pub requested_at: DateTime<Utc>,
    #[oai(nullable)]
    pub started_at: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Events applied to the rebuilt tables so far.
    pub events_applied: i64,
    /// The log's length when last measured (it grows while the rebuild runs).
    pub events_total: i64,
    /// Events applied per second since the rebuild started.
    #[oai(nullable)]
    pub events_per_second: Option<f64>,
    /// Seconds left at that rate, while it runs.
    #[oai(nullable)]
    pub eta_seconds: Option<f64>,
    /// A cancel was asked for; a running rebuild stops at its next batch.
    pub cancel_requested: bool,
    /// Why the rebuild failed.
    #[oai(nullable)]
    pub error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl From<Rebuild> for RebuildOut {
    fn from(rebuild: Rebuild) -> Self {
        Self {
            events_per_second: rebuild.rate(),
            eta_seconds: rebuild.eta_seconds(),
            id: rebuild.id,
            projection: rebuild.projection,
            state: rebuild.state.into(),
            requested_by: rebuild.requested_by,
            requested_at: rebuild.requested_at,
            started_at: rebuild.started_at,
            finished_at: rebuild.finished_at,
            events_applied: rebuild.events_applied,
            events_total: rebuild.events_total,
            cancel_requested: rebuild.cancel_requested,
            error: rebuild.error,
            updated_at: rebuild.updated_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct RebuildsOut {
    pub items: Vec<RebuildOut>,
}

#[derive(Debug, ApiResponse)]
pub enum ProjectionsResponse {
    #[oai(status = 200)]
    Ok(Json<ProjectionsOut>),
}

#[derive(Debug, ApiResponse)]
pub enum RebuildAccepted {
    /// Queued for a worker; `Location` is where to follow it.
    #[oai(status = 202)]
    Accepted(Json<RebuildOut>, #[oai(header = "Location")] String),
}

#[derive(Debug, ApiResponse)]
pub enum RebuildResponse {
    #[oai(status = 200)]
    Ok(Json<RebuildOut>),
}

#[derive(Debug, ApiResponse)]
pub enum RebuildsResponse {
    /// Newest first.
    #[oai(status = 200)]
    Ok(Json<RebuildsOut>),
}

/// Most rebuilds one list answers.
const MAX_REBUILDS: i64 = 100;

fn unavailable(error: impl std::fmt::Display) -> ApiError {
    ApiError::Unavailable(error.to_string())
}

#[derive(Debug, Default)]
pub struct AdminApi;

impl AdminApi {
    /// Records a rebuild of `name` and wakes a worker to run it.
    async fn start_rebuild(
        auth: &BearerAuth,
        state: &AppState,
        name: &str,
    ) -> Result<RebuildAccepted, ApiError> {
        auth.0.require(Scope::ProjectionsAdmin)?;
        let projection = Projection::parse(name).ok_or(ApiError::NotFound)?;
        let rebuild =
            match rebuild::request(&state.views.pool, projection, auth.0.user_id.as_str()).await {
                Ok(rebuild) => rebuild,
                Err(RebuildError::AlreadyActive(active)) => {
                    return Err(ApiError::RebuildInProgress {
                        id: active.id,
                        state: active.state.as_str(),
                    })
                }
                Err(error) => return Err(unavailable(error)),
            };
        // Workers also find queued rebuilds on their own within a second; the job only
        // makes it sooner, so a Redis outage does not refuse the request.
        if !state
            .jobs
            .request_rebuild(rebuild.id, projection.name())
            .await
        {
            tracing::warn!(rebuild.id = %rebuild.id, "rebuild job not pushed; a worker will find the rebuild itself");
        }
        tracing::info!(rebuild.id = %rebuild.id, projection.name = %projection, "rebuild requested");
        let location = format!("/v1/admin/rebuilds/{}", rebuild.id);
        Ok(RebuildAccepted::Accepted(Json(rebuild.into()), location))
    }
}

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
        state: Data<&Arc<AppState>>,
    ) -> Result<ProjectionsResponse, ProblemResponse> {
        auth.0.require(Scope::ProjectionsAdmin)?;
        let statuses = projections::status(&state.views.pool)
            .await
            .map_err(unavailable)?;
        let items = statuses
            .into_iter()
            .map(|status| {
                let state = ProjectionState::of(&status);
                let checkpoint = status.checkpoint;
                ProjectionOut {
                    name: status.name.to_owned(),
                    state,
                    position: checkpoint.as_ref().map_or(0, |c| c.position),
                    transaction_id: checkpoint
                        .as_ref()
                        .map_or_else(|| "0".to_owned(), |c| c.transaction_id.clone()),
                    events_applied: checkpoint.as_ref().map_or(0, |c| c.events_applied),
                    lag_events: status.lag_events,
                    lag_seconds: status.lag_seconds,
                    last_batch_size: checkpoint.as_ref().map_or(0, |c| c.last_batch_size),
                    last_event_at: checkpoint.as_ref().and_then(|c| c.last_event_at),
                    updated_at: checkpoint.as_ref().map(|c| c.updated_at),
                    rebuilt_at: checkpoint.as_ref().and_then(|c| c.rebuilt_at),
                    generation: checkpoint.as_ref().map_or(0, |c| c.generation),
                    failing_since: checkpoint.as_ref().and_then(|c| c.failing_since),
                    failed_position: checkpoint.as_ref().and_then(|c| c.failed_position),
                    last_error: checkpoint.and_then(|c| c.last_error),
                }
            })
            .collect();
        Ok(ProjectionsResponse::Ok(Json(ProjectionsOut { items })))
    }

    /// Rebuild a projection
    ///
    /// Queues a rebuild from the whole event log, run by a worker beside the live
    /// projection: its tables are built under other names in short batches, verified
    /// against the log and swapped in with one short transaction, so reads never stop
    /// and never see a partial projection. Answers at once with the rebuild; follow
    /// it at `Location`. 409 when the projection is already being rebuilt. Needs the
    /// `projections:admin` scope.
    #[oai(
        path = "/v1/admin/projections/:name/rebuilds",
        method = "post",
        operation_id = "rebuild_projection"
    )]
    async fn rebuild(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        /// The projection: `catalog` or `audit`.
        name: Path<String>,
    ) -> Result<RebuildAccepted, ProblemResponse> {
        Ok(Self::start_rebuild(&auth, &state, &name.0).await?)
    }

    /// Rebuild a projection (former name)
    ///
    /// The same as `POST /v1/admin/projections/{name}/rebuilds`, kept for clients of
    /// the first version.
    #[oai(
        path = "/v1/admin/projections/:name/replay",
        method = "post",
        operation_id = "replay_projection",
        deprecated
    )]
    async fn replay(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        /// The projection: `catalog` or `audit`.
        name: Path<String>,
    ) -> Result<RebuildAccepted, ProblemResponse> {
        Ok(Self::start_rebuild(&auth, &state, &name.0).await?)
    }

    /// Rebuilds
    ///
    /// The newest rebuilds first, of every projection. Needs the `projections:admin`
    /// scope.
    #[oai(
        path = "/v1/admin/rebuilds",
        method = "get",
        operation_id = "list_rebuilds"
    )]
    async fn rebuilds(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        /// How many, 1 to 100 (default 20).
        limit: Query<Option<i64>>,
    ) -> Result<RebuildsResponse, ProblemResponse> {
        auth.0.require(Scope::ProjectionsAdmin)?;
        let limit = match limit.0 {
            None => 20,
            Some(n) if (1..=MAX_REBUILDS).contains(&n) => n,
            Some(_) => Err(ApiError::MalformedRequest {
                detail: format!("limit must be between 1 and {MAX_REBUILDS}"),
                errors: domain::values::FieldErrors::single(
                    "limit",
                    format!("must be between 1 and {MAX_REBUILDS}"),
                ),
            })?,
        };
        let items = rebuild::list(&state.views.pool, limit)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(Into::into)
            .collect();
        Ok(RebuildsResponse::Ok(Json(RebuildsOut { items })))
    }

    /// A rebuild
    ///
    /// Its state, progress (events applied of the log's total, rate, time left) and,
    /// when it failed, why. Needs the `projections:admin` scope.
    #[oai(
        path = "/v1/admin/rebuilds/:id",
        method = "get",
        operation_id = "get_rebuild"
    )]
    async fn get_rebuild(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        /// The rebuild's id.
        id: Path<Uuid>,
    ) -> Result<RebuildResponse, ProblemResponse> {
        auth.0.require(Scope::ProjectionsAdmin)?;
        let rebuild = rebuild::get(&state.views.pool, id.0)
            .await
            .map_err(unavailable)?
            .ok_or(ApiError::NotFound)?;
        Ok(RebuildResponse::Ok(Json(rebuild.into())))
    }

    /// Cancel a rebuild
    ///
    /// A queued rebuild is cancelled at once; a running one stops at its next batch and
    /// drops what it built. The live projection is never touched. 409 for a rebuild
    /// that has finished. Needs the `projections:admin` scope.
    #[oai(
        path = "/v1/admin/rebuilds/:id",
        method = "delete",
        operation_id = "cancel_rebuild"
    )]
    async fn cancel_rebuild(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        /// The rebuild's id.
        id: Path<Uuid>,
    ) -> Result<RebuildResponse, ProblemResponse> {
        auth.0.require(Scope::ProjectionsAdmin)?;
        let current = rebuild::get(&state.views.pool, id.0)
            .await
            .map_err(unavailable)?
            .ok_or(ApiError::NotFound)?;
        if !current.state.is_active() {
            Err(ApiError::RebuildFinished {
                state: current.state.as_str(),
            })?;
        }
        let cancelled = rebuild::cancel(&state.views.pool, id.0)
            .await
            .map_err(unavailable)?
            .ok_or(ApiError::NotFound)?;
        tracing::info!(rebuild.id = %cancelled.id, "rebuild cancel requested");
        Ok(RebuildResponse::Ok(Json(cancelled.into())))
    }
}
