//! Building queries: the list (filters, `near`/`bbox`, sorts, cursors), the detail with
//! comp statistics (`min_version` for read-your-writes), and a building's history.

use std::sync::Arc;

use domain::values::{BuildingClass, PropertyType, TextEnum};
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::OpenApi;
use projections::queries::buildings::{self, BuildingFilter, BuildingSort};
use projections::queries::{audit, page_size, BoundingBox, Near};
use uuid::Uuid;

use crate::auth::Scope;
use crate::bearer::BearerAuth;
use crate::input::Choice;
use crate::problem::{ApiError, ProblemResponse};
use crate::read_types::{AuditPageOut, BuildingDetailOut, BuildingPageOut};
use crate::request_id::RequestId;
use crate::state::AppState;
use crate::tags::ApiTags;
use crate::views::{query_error, sort_key, view_response, Detail, JsonView};

view_response!(BuildingResponse, BuildingDetailOut);
view_response!(BuildingPageResponse, BuildingPageOut);

#[derive(Debug, poem_openapi::ApiResponse)]
pub enum HistoryResponse {
    /// The building's events, oldest first.
    #[oai(status = 200)]
    Ok(JsonView<AuditPageOut>),
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
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        request_id: Data<&RequestId>,
        property_type: Query<Option<Choice<PropertyType>>>,
        building_class: Query<Option<Choice<BuildingClass>>>,
        city: Query<Option<String>>,
        submarket: Query<Option<String>>,
        archived: Query<Option<bool>>,
        q: Query<Option<String>>,
        near: Query<Option<String>>,
        radius_m: Query<Option<f64>>,
        bbox: Query<Option<String>>,
        sort: Query<Option<String>>,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<BuildingPageResponse, ProblemResponse> {
        let result = async {
            auth.0.require(Scope::BuildingsRead)?;
            let near = Near::parse(near.0.as_deref(), radius_m.0).map_err(query_error)?;
            let filter = BuildingFilter {
                property_type: property_type.0.map(|c| c.0.as_str().to_owned()),
                building_class: building_class.0.map(|c| c.0.as_str().to_owned()),
                city: city.0.filter(|s| !s.trim().is_empty()),
                submarket: submarket.0.filter(|s| !s.trim().is_empty()),
                archived: archived.0,
                text: q.0.filter(|s| !s.trim().is_empty()),
                near,
                bbox: BoundingBox::parse(bbox.0.as_deref()).map_err(query_error)?,
            };
            let sort =
                BuildingSort::parse(sort.0.as_deref(), near.is_some()).map_err(query_error)?;
            let limit = page_size(limit.0).map_err(query_error)?;
            let org_id = auth.0.org_id.as_str();
            let key = list_key(&filter, sort, limit);
            // Searches by place or words seldom repeat exactly (a map pans): caching
            // their first pages would only fill Redis.
            let cacheable = cursor.0.is_none()
                && filter.near.is_none()
                && filter.bbox.is_none()
                && filter.text.is_none();
            state
                .views
                .list(
                    org_id,
                    "buildings",
                    &key,
                    cacheable,
                    if_none_match.0.as_deref(),
                    |mut tx| async move {
                        buildings::list(&mut *tx, org_id, &filter, sort, limit, cursor.0.as_deref())
                            .await
                    },
                )
                .await
        }
        .await;
        result
            .map(Into::into)
            .map_err(|error: ApiError| error.into_problem(&request_id))
    }

    /// Get a building
    ///
    /// With its comp statistics. `min_version=N` (the version a command returned)
    /// waits up to 2 s for the read side to reflect it; if it does not, the answer is
    /// what the read side has, with `Projection-Lagging: true`.
    #[oai(
        path = "/v1/buildings/:id",
        method = "get",
        operation_id = "get_building"
    )]
    async fn detail(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        request_id: Data<&RequestId>,
        id: Path<Uuid>,
        min_version: Query<Option<u64>>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<BuildingResponse, ProblemResponse> {
        state
            .views
            .detail(
                &auth.0,
                Detail::Building(id.0),
                min_version.0,
                if_none_match.0.as_deref(),
            )
            .await
            .and_then(|read| read.ok_or(ApiError::NotFound))
            .map(Into::into)
            .map_err(|error| error.into_problem(&request_id))
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
        request_id: Data<&RequestId>,
        id: Path<Uuid>,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> Result<HistoryResponse, ProblemResponse> {
        let result = async {
            auth.0.require(Scope::BuildingsRead)?;
            let limit = page_size(limit.0).map_err(query_error)?;
            let mut tx = state
                .views
                .read_as(auth.0.org_id.as_str())
                .await
                .map_err(query_error)?;
            let page = audit::building_history(
                &mut *tx,
                auth.0.org_id.as_str(),
                &id.0.to_string(),
                limit,
                cursor.0.as_deref(),
            )
            .await
            .map_err(query_error)?
            .ok_or(ApiError::NotFound)?;
            Ok(HistoryResponse::Ok(JsonView::new(
                serde_json::to_string(&page).map_err(|e| ApiError::Internal(e.into()))?,
            )))
        }
        .await;
        result.map_err(|error: ApiError| error.into_problem(&request_id))
    }
}

/// The list's parameters as its cache key: every field, in a fixed order, as JSON
/// (strings escaped, absent values `null`). Destructured, so a new filter field does
/// not compile until it is part of the key.
fn list_key(filter: &BuildingFilter, sort: BuildingSort, limit: i64) -> String {
    let BuildingFilter {
        property_type,
        building_class,
        city,
        submarket,
        archived,
        text,
        near,
        bbox,
    } = filter;
    let sort = match sort {
        BuildingSort::Name(direction) => sort_key("name", direction),
        BuildingSort::RegisteredAt(direction) => sort_key("registered_at", direction),
        BuildingSort::RentableArea(direction) => sort_key("rentable_area_sqft", direction),
        BuildingSort::Distance => "distance".to_owned(),
    };
    serde_json::json!([
        property_type,
        building_class,
        city,
        submarket,
        archived,
        text,
        near.map(|n| [n.lat, n.lon, n.radius_m]),
        bbox.map(|b| [b.min_lon, b.min_lat, b.max_lon, b.max_lat]),
        sort,
        limit
    ])
    .to_string()
}

#[cfg(test)]
mod tests {
    use projections::queries::{BoundingBox, Direction, Near};

    use super::*;

    fn filter() -> BuildingFilter {
        BuildingFilter {
            property_type: Some("office".into()),
            city: Some("Austin".into()),
            ..BuildingFilter::default()
        }
    }

    #[test]
    fn the_list_key_is_stable_for_equal_parameters_and_differs_for_others() {
        let sort = BuildingSort::Name(Direction::Ascending);
        let key = list_key(&filter(), sort, 25);
        assert_eq!(key, list_key(&filter(), sort, 25));
        assert_eq!(
            key, r#"["office",null,"Austin",null,null,null,null,null,"name",25]"#,
            "the encoding is explicit and stays as it is"
        );
        let others = [
            list_key(&BuildingFilter::default(), sort, 25),
            list_key(&filter(), BuildingSort::Name(Direction::Descending), 25),
            list_key(
                &filter(),
                BuildingSort::RegisteredAt(Direction::Ascending),
                25,
            ),
            list_key(&filter(), sort, 26),
            list_key(
                &BuildingFilter {
                    city: Some("Austin\",null".into()),
                    ..filter()
                },
                sort,
                25,
            ),
            list_key(
                &BuildingFilter {
                    city: None,
                    submarket: Some("Austin".into()),
                    ..filter()
                },
                sort,
                25,
            ),
            list_key(
                &BuildingFilter {
                    archived: Some(false),
                    ..filter()
                },
                sort,
                25,
            ),
            list_key(
                &BuildingFilter {
                    near: Some(Near {
                        lat: 30.27,
                        lon: -97.74,
                        radius_m: 500.0,
                    }),
                    ..filter()
                },
                BuildingSort::Distance,
                25,
            ),
            list_key(
                &BuildingFilter {
                    bbox: Some(BoundingBox {
                        min_lon: -97.8,
                        min_lat: 30.2,
                        max_lon: -97.7,
                        max_lat: 30.3,
                    }),
                    ..filter()
                },
                sort,
                25,
            ),
        ];
        for (n, other) in others.iter().enumerate() {
            assert_ne!(&key, other, "case {n}");
            for (m, another) in others.iter().enumerate().skip(n + 1) {
                assert_ne!(other, another, "cases {n} and {m}");
            }
        }
    }
}
