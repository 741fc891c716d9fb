//! Comp queries: the list (building, kind, deal dates, rent, verification, `near`) and
//! the detail (`min_version` for read-your-writes).

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::OpenApi;
use projections::queries::comps::{self, CompFilter, CompSort};
use projections::queries::{page_size, parse_ids, Near, QueryError};
use uuid::Uuid;

use crate::auth::Scope;
use crate::bearer::BearerAuth;
use crate::input::{Exact, IsoDate};
use crate::params::query_parameters;
use crate::problem::{ApiError, ProblemResponse};
use crate::read_types::{CompOut, CompPageOut};
use crate::state::AppState;
use crate::tags::ApiTags;
use crate::views::{ordered, query_error, view_response, Detail};

view_response!(CompResponse, CompOut);
view_response!(CompPageResponse, CompPageOut);

query_parameters! {
    /// What `GET /v1/comps` filters, sorts and pages by.
    pub struct CompListQuery as "CompListParameters" {
        building_id: Option<Uuid>,
        kind: Option<String>,
        date_from: Option<IsoDate>,
        date_to: Option<IsoDate>,
        rent_min: Option<Exact>,
        rent_max: Option<Exact>,
        verified: Option<bool>,
        include_retracted: Option<bool>,
        near: Option<String>,
        radius_m: Option<f64>,
        sort: Option<String>,
        limit: Option<i64>,
        cursor: Option<String>,
        /// Only these comps, by id, comma-separated (at most 100; retracted ones too
        /// unless `include_retracted=false`): a batch in one request. The page size
        /// defaults to their number.
        ids: Option<String>,
    }
}

#[derive(Debug, Default)]
pub struct CompQueriesApi;

#[OpenApi(tag = "ApiTags::Comps")]
impl CompQueriesApi {
    /// List comps
    ///
    /// Newest deal first by default. Filters: `building_id`, `kind` (`lease`, `sale`),
    /// deal dates `date_from`/`date_to` (inclusive), starting rent per square foot
    /// `rent_min`/`rent_max` (leases), `verified`, and `near=lat,lon` with `radius_m`
    /// (the comp's building within that many metres; nearest first). Retracted comps are
    /// left out unless `include_retracted=true`.
    #[oai(path = "/v1/comps", method = "get", operation_id = "list_comps")]
    async fn list(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        query: CompListQuery,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<CompPageResponse, ProblemResponse> {
        auth.0.require(Scope::CompsRead)?;
        let CompListQuery {
            building_id,
            kind,
            date_from,
            date_to,
            rent_min,
            rent_max,
            verified,
            include_retracted,
            near,
            radius_m,
            sort,
            limit,
            cursor,
            ids,
        } = query;
        let ids = parse_ids(ids.as_deref()).map_err(query_error)?;
        let limit =
            page_size(limit.or(ids.as_ref().map(|ids| ids.len() as i64))).map_err(query_error)?;
        let kind = match kind.as_deref() {
            None => None,
            Some(k @ ("lease" | "sale")) => Some(k.to_owned()),
            Some(_) => Err(query_error(QueryError::invalid(
                "kind",
                "must be lease or sale",
            )))?,
        };
        ordered(
            ("date_from", date_from.as_ref()),
            ("date_to", date_to.as_ref()),
        )?;
        ordered(
            ("rent_min", rent_min.as_ref()),
            ("rent_max", rent_max.as_ref()),
        )?;
        let near = Near::parse(near.as_deref(), radius_m).map_err(query_error)?;
        let filter = CompFilter {
            building_id,
            kind,
            date_from: date_from.map(|d| d.0),
            date_to: date_to.map(|d| d.0),
            rent_min: rent_min.map(|r| r.0),
            rent_max: rent_max.map(|r| r.0),
            verified,
            include_retracted: include_retracted.unwrap_or(ids.is_some()),
            near,
            ids,
        };
        let sort = CompSort::parse(sort.as_deref(), near.is_some()).map_err(query_error)?;
        let org_id = auth.0.org_id.as_str();
        // The cursors' key, and the page size.
        let key = format!("{}|{limit}", filter.key(sort));
        let page = state
            .views
            .list(
                org_id,
                "comps",
                &key,
                // Searches by place seldom repeat exactly: not cached.
                cursor.is_none() && filter.near.is_none(),
                if_none_match.0.as_deref(),
                |mut tx| async move {
                    comps::list(&mut *tx, org_id, &filter, sort, limit, cursor.as_deref()).await
                },
            )
            .await?;
        Ok(page.into())
    }

    /// Get a comp
    ///
    /// Retracted comps too (with their reason). `min_version=N` waits up to 2 s for the
    /// read side to reflect version N; if it does not, `Projection-Lagging: true`.
    #[oai(path = "/v1/comps/:id", method = "get", operation_id = "get_comp")]
    async fn detail(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        id: Path<Uuid>,
        min_version: Query<Option<u64>>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<CompResponse, ProblemResponse> {
        let detail = Detail::Comp(id.0);
        let read = state
            .views
            .detail(&auth.0, detail, min_version.0, if_none_match.0.as_deref())
            .await?;
        Ok(read.ok_or(ApiError::NotFound)?.into())
    }
}
