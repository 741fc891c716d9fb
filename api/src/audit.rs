//! `/v1/audit`: the organisation's audit log (scope `audit:read`).

use std::sync::Arc;

use poem::web::Data;

use poem_openapi::{ApiResponse, OpenApi};
use projections::queries::audit::{self, AuditFilter};
use projections::queries::page_size;
use projections::Projection;

use crate::auth::Scope;
use crate::bearer::BearerAuth;
use crate::params::query_parameters;
use crate::problem::ProblemResponse;
use crate::read_types::{AggregateType, AuditPageOut};
use crate::state::AppState;
use crate::tags::ApiTags;
use crate::views::{ordered, query_error, JsonView};

#[derive(Debug, ApiResponse)]
pub enum AuditResponse {
    /// Events, newest first.
    #[oai(status = 200)]
    Ok(
        JsonView<AuditPageOut>,
        /// `true` when the audit log had not reached `min_position` in time.
        #[oai(header = "Projection-Lagging")]
        Option<String>,
    ),
}

query_parameters! {
    /// What `GET /v1/audit` filters and pages by.
    pub struct AuditQuery as "AuditQueryParameters" {
        /// Only the events of buildings, or of comps.
        aggregate_type: Option<AggregateType>,
        /// One aggregate's events.
        aggregate_id: Option<String>,
        /// One user's events (a Clerk user id).
        user_id: Option<String>,
        /// Events recorded at or after this instant (RFC 3339).
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// Events recorded at or before this instant (RFC 3339); not before `from`.
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// Page size, 1 to 100 (default 25).
        limit: Option<i64>,
        /// The `next_cursor` of the previous page, with the same filters.
        cursor: Option<String>,
        /// The `position` a command returned: waits up to 2 s until this read
        /// reflects every event up to it, else answers with `Projection-Lagging: true`.
        min_position: Option<u64>,
    }
}

#[derive(Debug, Default)]
pub struct AuditApi;

#[OpenApi(tag = "ApiTags::Audit")]
impl AuditApi {
    /// Audit log
    ///
    /// Every event of the organisation, newest first: who (user), when, in which
    /// request, what. Filters: `aggregate_type` (`building`, `comp`), `aggregate_id`,
    /// `user_id`, `from`/`to` (RFC 3339 times). Needs the `audit:read` scope.
    #[oai(path = "/v1/audit", method = "get", operation_id = "audit_log")]
    async fn list(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        query: AuditQuery,
    ) -> Result<AuditResponse, ProblemResponse> {
        auth.0.require(Scope::AuditRead)?;
        let AuditQuery {
            aggregate_type,
            aggregate_id,
            user_id,
            from,
            to,
            limit,
            cursor,
            min_position,
        } = query;
        ordered(("from", from.as_ref()), ("to", to.as_ref()))?;
        let filter = AuditFilter {
            aggregate_type: aggregate_type.map(|kind| match kind {
                AggregateType::Building => "building".to_owned(),
                AggregateType::Comp => "comp".to_owned(),
            }),
            aggregate_id,
            user_id,
            from,
            to,
        };
        let limit = page_size(limit).map_err(query_error)?;
        let org_id = auth.0.org_id.as_str();
        let (mut tx, freshness) = state
            .views
            .read_after(org_id, Projection::AUDIT, min_position)
            .await?;
        let page = audit::list(&mut *tx, org_id, &filter, limit, cursor.as_deref())
            .await
            .map_err(query_error)?;
        Ok(AuditResponse::Ok(
            JsonView::serialize(&page)?,
            freshness.header(),
        ))
    }
}
