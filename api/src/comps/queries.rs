//! Comp queries: the list (building, kind, deal dates, rent, verification, `near`) and
//! the detail (`min_version` for read-your-writes).

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::OpenApi;
use projections::queries::comps::{self, CompFilter, CompSort};
use projections::queries::{page_size, Near, QueryError};
use uuid::Uuid;

use crate::auth::Scope;
use crate::bearer::BearerAuth;
use crate::input::{Exact, IsoDate};
use crate::problem::{ApiError, ProblemResponse};
use crate::read_types::{CompOut, CompPageOut};
use crate::request_id::RequestId;
use crate::state::AppState;
use crate::tags::ApiTags;
use crate::views::{query_error, sort_key, view_response, Detail};

view_response!(CompResponse, CompOut);
view_response!(CompPageResponse, CompPageOut);

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
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        request_id: Data<&RequestId>,
        building_id: Query<Option<Uuid>>,
        kind: Query<Option<String>>,
        date_from: Query<Option<IsoDate>>,
        date_to: Query<Option<IsoDate>>,
        rent_min: Query<Option<Exact>>,
        rent_max: Query<Option<Exact>>,
        verified: Query<Option<bool>>,
        include_retracted: Query<Option<bool>>,
        near: Query<Option<String>>,
        radius_m: Query<Option<f64>>,
        sort: Query<Option<String>>,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<CompPageResponse, ProblemResponse> {
        let result = async {
            auth.0.require(Scope::CompsRead)?;
            let kind = match kind.0.as_deref() {
                None => None,
                Some(k @ ("lease" | "sale")) => Some(k.to_owned()),
                Some(_) => {
                    return Err(query_error(QueryError::invalid(
                        "kind",
                        "must be lease or sale",
                    )))
                }
            };
            let near = Near::parse(near.0.as_deref(), radius_m.0).map_err(query_error)?;
            let filter = CompFilter {
                building_id: building_id.0,
                kind,
                date_from: date_from.0.map(|d| d.0),
                date_to: date_to.0.map(|d| d.0),
                rent_min: rent_min.0.map(|r| r.0),
                rent_max: rent_max.0.map(|r| r.0),
                verified: verified.0,
                include_retracted: include_retracted.0.unwrap_or(false),
                near,
            };
            let sort = CompSort::parse(sort.0.as_deref(), near.is_some()).map_err(query_error)?;
            let limit = page_size(limit.0).map_err(query_error)?;
            let org_id = auth.0.org_id.as_str();
            let key = list_key(&filter, sort, limit);
            state
                .views
                .list(
                    org_id,
                    "comps",
                    &key,
                    // Searches by place seldom repeat exactly: not cached.
                    cursor.0.is_none() && filter.near.is_none(),
                    if_none_match.0.as_deref(),
                    |mut tx| async move {
                        comps::list(&mut *tx, org_id, &filter, sort, limit, cursor.0.as_deref())
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

    /// Get a comp
    ///
    /// Retracted comps too (with their reason). `min_version=N` waits up to 2 s for the
    /// read side to reflect version N; if it does not, `Projection-Lagging: true`.
    #[oai(path = "/v1/comps/:id", method = "get", operation_id = "get_comp")]
    async fn detail(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        request_id: Data<&RequestId>,
        id: Path<Uuid>,
        min_version: Query<Option<u64>>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<CompResponse, ProblemResponse> {
        state
            .views
            .detail(
                &auth.0,
                Detail::Comp(id.0),
                min_version.0,
                if_none_match.0.as_deref(),
            )
            .await
            .and_then(|read| read.ok_or(ApiError::NotFound))
            .map(Into::into)
            .map_err(|error| error.into_problem(&request_id))
    }
}

/// The list's parameters as its cache key: every field, in a fixed order, as JSON
/// (strings escaped, absent values `null`, decimals and dates as their text).
/// Destructured, so a new filter field does not compile until it is part of the key.
fn list_key(filter: &CompFilter, sort: CompSort, limit: i64) -> String {
    let CompFilter {
        building_id,
        kind,
        date_from,
        date_to,
        rent_min,
        rent_max,
        verified,
        include_retracted,
        near,
    } = filter;
    let sort = match sort {
        CompSort::DealDate(direction) => sort_key("deal_date", direction),
        CompSort::Distance => "distance".to_owned(),
    };
    serde_json::json!([
        building_id.map(|id| id.to_string()),
        kind,
        date_from.map(|date| date.to_string()),
        date_to.map(|date| date.to_string()),
        rent_min.map(|rent| rent.to_string()),
        rent_max.map(|rent| rent.to_string()),
        verified,
        include_retracted,
        near.map(|n| [n.lat, n.lon, n.radius_m]),
        sort,
        limit
    ])
    .to_string()
}

#[cfg(test)]
mod tests {
    use projections::queries::{Direction, Near};
    use rust_decimal::Decimal;

    use super::*;

    fn filter() -> CompFilter {
        CompFilter {
            kind: Some("lease".into()),
            date_from: chrono::NaiveDate::from_ymd_opt(2025, 1, 1),
            rent_min: Some(Decimal::new(4250, 2)),
            ..CompFilter::default()
        }
    }

    #[test]
    fn the_list_key_is_stable_for_equal_parameters_and_differs_for_others() {
        let sort = CompSort::DealDate(Direction::Descending);
        let key = list_key(&filter(), sort, 25);
        assert_eq!(key, list_key(&filter(), sort, 25));
        assert_eq!(
            key, r#"[null,"lease","2025-01-01",null,"42.50",null,null,false,null,"-deal_date",25]"#,
            "the encoding is explicit and stays as it is"
        );
        let building = Uuid::from_u128(7);
        let others = [
            list_key(&CompFilter::default(), sort, 25),
            list_key(&filter(), CompSort::DealDate(Direction::Ascending), 25),
            list_key(&filter(), sort, 24),
            list_key(
                &CompFilter {
                    building_id: Some(building),
                    ..filter()
                },
                sort,
                25,
            ),
            list_key(
                &CompFilter {
                    kind: Some("sale".into()),
                    ..filter()
                },
                sort,
                25,
            ),
            list_key(
                &CompFilter {
                    date_from: None,
                    date_to: chrono::NaiveDate::from_ymd_opt(2025, 1, 1),
                    ..filter()
                },
                sort,
                25,
            ),
            list_key(
                &CompFilter {
                    rent_min: None,
                    rent_max: Some(Decimal::new(4250, 2)),
                    ..filter()
                },
                sort,
                25,
            ),
            list_key(
                &CompFilter {
                    verified: Some(true),
                    ..filter()
                },
                sort,
                25,
            ),
            list_key(
                &CompFilter {
                    include_retracted: true,
                    ..filter()
                },
                sort,
                25,
            ),
            list_key(
                &CompFilter {
                    near: Some(Near {
                        lat: 30.27,
                        lon: -97.74,
                        radius_m: 500.0,
                    }),
                    ..filter()
                },
                CompSort::Distance,
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
