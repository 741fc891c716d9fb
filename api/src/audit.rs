//! `/v1/audit`: the organisation's audit log (scope `audit:read`).

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::{ApiResponse, OpenApi};
use projections::queries::audit::{self, AuditFilter};
use projections::queries::page_size;

use crate::auth::Scope;
use crate::bearer::BearerAuth;
use crate::problem::{ApiError, ProblemResponse};
use crate::read_types::AuditPageOut;
use crate::request_id::RequestId;
use crate::state::AppState;
use crate::tags::ApiTags;
use crate::views::{query_error, JsonView};

#[derive(Debug, ApiResponse)]
pub enum AuditResponse {
    /// Events, newest first.
    #[oai(status = 200)]
    Ok(JsonView<AuditPageOut>),
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
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        request_id: Data<&RequestId>,
        aggregate_type: Query<Option<String>>,
        aggregate_id: Query<Option<String>>,
        user_id: Query<Option<String>>,
        from: Query<Option<chrono::DateTime<chrono::Utc>>>,
        to: Query<Option<chrono::DateTime<chrono::Utc>>>,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> Result<AuditResponse, ProblemResponse> {
        let result = async {
            auth.0.require(Scope::AuditRead)?;
            let filter = AuditFilter {
                aggregate_type: aggregate_type.0,
                aggregate_id: aggregate_id.0,
                user_id: user_id.0,
                from: from.0,
                to: to.0,
            };
            let limit = page_size(limit.0).map_err(query_error)?;
            let mut tx = state
                .views
                .read_as(auth.0.org_id.as_str())
                .await
                .map_err(query_error)?;
            let page = audit::list(
                &mut *tx,
                auth.0.org_id.as_str(),
                &filter,
                limit,
                cursor.0.as_deref(),
            )
            .await
            .map_err(query_error)?;
            let body = serde_json::to_string(&page).map_err(|e| ApiError::Internal(e.into()))?;
            Ok(AuditResponse::Ok(JsonView::new(body)))
        }
        .await;
        result.map_err(|error: ApiError| error.into_problem(&request_id))
    }
}
