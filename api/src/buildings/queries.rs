//! Building queries: the list (filters, `near`/`bbox`, sorts, cursors), the detail with
//! comp statistics (`min_version` for read-your-writes), and a building's history.

use std::sync::Arc;

use domain::values::{BuildingClass, PropertyType, TextEnum};
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::OpenApi;
use projections::queries::buildings::{self, BuildingFilter, BuildingSort};
use projections::queries::{audit, page_size, parse_ids, BoundingBox, Near};
use projections::Projection;
use uuid::Uuid;

use crate::auth::Scope;
use crate::bearer::BearerAuth;
use crate::input::{Choice, Word, Words};
use crate::params::query_parameters;
use crate::problem::{ApiError, ProblemResponse};
use crate::read_types::{AuditPageOut, BuildingDetailOut, BuildingPageOut};
use crate::state::AppState;
use crate::tags::ApiTags;
use crate::views::{as_of_alone, query_error, view_response, Detail, JsonView, ListRead};

view_response!(BuildingResponse, BuildingDetailOut);
view_response!(BuildingPageResponse, BuildingPageOut);

#[derive(Debug, poem_openapi::ApiResponse)]
pub enum HistoryResponse {
    /// The building's events, oldest first.
    #[oai(status = 200)]
    Ok(
        JsonView<AuditPageOut>,
        /// `true` when the history had not reached `min_position` in time.
        #[oai(header = "Projection-Lagging")]
        Option<String>,
    ),
}

/// The building list's sorts.
#[derive(Debug)]
pub struct BuildingSorts;

impl Words for BuildingSorts {
    const NAME: &'static str = "BuildingSort";
    const ALL: &'static [&'static str] = BuildingSort::CHOICES;
}

query_parameters! {
    /// What `GET /v1/buildings` filters, sorts and pages by.
    pub struct BuildingListQuery as "BuildingListParameters" {
        /// Only buildings of this type.
        property_type: Option<Choice<PropertyType>>,
        /// Only buildings of this class.
        building_class: Option<Choice<BuildingClass>>,
        /// Only buildings in this city (case-insensitive).
        city: Option<String>,
        /// Only buildings in this submarket (case-insensitive).
        submarket: Option<String>,
        /// `true`: archived buildings only; absent or `false`: active ones only.
        archived: Option<bool>,
        /// Words that must each appear in the name or the address (case-insensitive).
        q: Option<String>,
        /// `lat,lon` (WGS 84, latitude first): with `radius_m`, buildings within that
        /// distance, nearest first, each with `distance_m`.
        near: Option<String>,
        /// Metres around `near`, greater than 0 and at most 500000.
        radius_m: Option<f64>,
        /// `min_lon,min_lat,max_lon,max_lat` (longitude first, as GeoJSON): a map
        /// viewport; west greater than east crosses the antimeridian.
        bbox: Option<String>,
        /// `name` (default), `registered_at`, `rentable_area_sqft` (a `-` prefix sorts
        /// descending), or `distance` (with `near`).
        sort: Option<Word<BuildingSorts>>,
        /// Page size, 1 to 100 (default 25).
        limit: Option<i64>,
        /// The `next_cursor` of the previous page, with the same filters and sort.
        cursor: Option<String>,
        /// Only these buildings, by id, comma-separated (at most 100; archived ones
        /// too unless `archived` is given): a batch in one request. The page size
        /// defaults to their number.
        ids: Option<String>,
        /// The `position` a command returned: waits up to 2 s until this read
        /// reflects every event up to it, else answers with `Projection-Lagging: true`.
        min_position: Option<u64>,
    }
}

query_parameters! {
    /// What `GET /v1/buildings/{id}` waits for, or the instant it reads.
    pub struct BuildingDetailQuery as "BuildingDetailParameters" {
        /// The `version` a command returned: waits up to 2 s for the read side to
        /// reflect it, else answers with `Projection-Lagging: true`.
        min_version: Option<u64>,
        /// The `position` a command returned: waits up to 2 s until this read reflects
        /// every event up to it (a comp recorded for the building, say), else answers
        /// with `Projection-Lagging: true`.
        min_position: Option<u64>,
        /// An RFC 3339 instant: the building as it was then, with its comp statistics
        /// then, folded from the event log (`404` before it was registered).
        as_of: Option<chrono::DateTime<chrono::Utc>>,
    }
}

#[derive(Debug, Default)]
pub struct BuildingQueriesApi;

#[OpenApi(tag = "ApiTags::Buildings")]
impl BuildingQueriesApi {
    /// List buildings
    ///
    /// Active buildings by default (`archived=true` lists archived ones). `q` finds
    /// words in the name or address; `near=lat,lon` with `radius_m` keeps buildings
    /// within that many metres, nearest first; `bbox=min_lon,min_lat,max_lon,max_lat`
    /// keeps a map viewport. Sorts: `name`, `registered_at`, `rentable_area_sqft`
    /// (prefix `-` for descending), `distance`. Pages follow `next_cursor`, which never
    /// repeats or skips a building while others are added.
    #[oai(
        path = "/v1/buildings",
        method = "get",
        operation_id = "list_buildings"
    )]
    async fn list(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        query: BuildingListQuery,
        /// The `ETag` of the copy the client holds: `304` while it is current.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
    ) -> Result<BuildingPageResponse, ProblemResponse> {
        auth.0.require(Scope::BuildingsRead)?;
        let BuildingListQuery {
            property_type,
            building_class,
            city,
            submarket,
            archived,
            q,
            near,
            radius_m,
            bbox,
            sort,
            limit,
            cursor,
            ids,
            min_position,
        } = query;
        let near = Near::parse(near.as_deref(), radius_m).map_err(query_error)?;
        let ids = parse_ids(ids.as_deref()).map_err(query_error)?;
        let limit =
            page_size(limit.or(ids.as_ref().map(|ids| ids.len() as i64))).map_err(query_error)?;
        let filter = BuildingFilter {
            property_type: property_type.map(|c| c.0.as_str().to_owned()),
            building_class: building_class.map(|c| c.0.as_str().to_owned()),
            city: city.filter(|s| !s.trim().is_empty()),
            submarket: submarket.filter(|s| !s.trim().is_empty()),
            archived,
            text: q.filter(|s| !s.trim().is_empty()),
            near,
            bbox: BoundingBox::parse(bbox.as_deref()).map_err(query_error)?,
            ids,
        };
        let sort =
            BuildingSort::parse(sort.map(|sort| sort.0), near.is_some()).map_err(query_error)?;
        let org_id = auth.0.org_id.as_str();
        // The cursors' key, and the page size.
        let key = format!("{}|{limit}", filter.key(sort));
        // Searches by place or words seldom repeat exactly (a map pans): caching
        // their first pages would only fill Redis.
        let cacheable = cursor.is_none()
            && filter.near.is_none()
            && filter.bbox.is_none()
            && filter.text.is_none();
        let page = state
            .views
            .list(
                org_id,
                ListRead {
                    list: "buildings",
                    key: &key,
                    cacheable,
                    min_position,
                },
                if_none_match.0.as_deref(),
                |mut tx| async move {
                    buildings::list(&mut *tx, org_id, &filter, sort, limit, cursor.as_deref()).await
                },
            )
            .await?;
        Ok(page.into())
    }

    /// Get a building
    ///
    /// With its comp statistics. `min_position=P` (the position a command returned)
    /// waits up to 2 s for the read side to reflect it; if it does not, the answer is
    /// what the read side has, with `Projection-Lagging: true`. `as_of=<instant>`
    /// answers the building as it was then.
    #[oai(
        path = "/v1/buildings/:id",
        method = "get",
        operation_id = "get_building"
    )]
    async fn detail(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        /// The building's id.
        id: Path<Uuid>,
        query: BuildingDetailQuery,
        /// The `ETag` of the copy the client holds: `304` while it is current.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
    ) -> Result<BuildingResponse, ProblemResponse> {
        let BuildingDetailQuery {
            min_version,
            min_position,
            as_of,
        } = query;
        as_of_alone(
            as_of.is_some(),
            &[
                ("min_version", min_version.is_some()),
                ("min_position", min_position.is_some()),
            ],
        )?;
        let detail = Detail::Building(id.0);
        let if_none_match = if_none_match.0.as_deref();
        let views = &state.views;
        let read = match as_of {
            Some(at) => views.as_of(&auth.0, detail, at, if_none_match).await?,
            None => {
                views
                    .detail(&auth.0, detail, min_version, min_position, if_none_match)
                    .await?
            }
        };
        Ok(read.ok_or(ApiError::NotFound)?.into())
    }

    /// A building's history
    ///
    /// Every event of the building, oldest first: who (user), when, in which request,
    /// what.
    #[oai(
        path = "/v1/buildings/:id/history",
        method = "get",
        operation_id = "building_history"
    )]
    async fn history(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        /// The building's id.
        id: Path<Uuid>,
        /// Page size, 1 to 100 (default 25).
        limit: Query<Option<i64>>,
        /// The `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// The `position` a command returned: waits up to 2 s until the history
        /// reflects every event up to it, else answers with `Projection-Lagging: true`.
        min_position: Query<Option<u64>>,
    ) -> Result<HistoryResponse, ProblemResponse> {
        auth.0.require(Scope::BuildingsRead)?;
        let limit = page_size(limit.0).map_err(query_error)?;
        let org_id = auth.0.org_id.as_str();
        let (mut tx, freshness) = state
            .views
            .read_after(org_id, Projection::AUDIT, min_position.0)
            .await?;
        let id = id.0.to_string();
        let page = audit::building_history(&mut *tx, org_id, &id, limit, cursor.0.as_deref())
            .await
            .map_err(query_error)?
            .ok_or(ApiError::NotFound)?;
        Ok(HistoryResponse::Ok(
            JsonView::serialize(&page)?,
            freshness.header(),
        ))
    }
}
