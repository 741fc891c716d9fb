//! Comp queries: the list (building, kind, deal dates, rent, verification, `near`) and
//! the detail (`min_version` for read-your-writes), each with its buildings' summaries
//! on `expand=building`.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path};
use poem_openapi::OpenApi;
use projections::cache::CachedView;
use projections::queries::buildings::{self, BuildingFilter, BuildingSort};
use projections::queries::comps::{self, CompFilter, CompSort};
use projections::queries::{page_size, parse_ids, Direction, Near};
use serde_json::Value;
use uuid::Uuid;

use crate::auth::Scope;
use crate::bearer::BearerAuth;
use crate::input::{Exact, IsoDate, Word, Words};
use crate::params::query_parameters;
use crate::problem::{ApiError, ProblemResponse};
use crate::read_types::{CompKind, CompOut, CompPageOut};
use crate::state::AppState;
use crate::tags::ApiTags;
use crate::views::{
    as_of_alone, conditional, ordered, query_error, view_response, Detail, ListRead, Read, Views,
};

view_response!(CompResponse, CompOut);
view_response!(CompPageResponse, CompPageOut);

query_parameters! {
    /// What `GET /v1/comps` filters, sorts and pages by.
    pub struct CompListQuery as "CompListParameters" {
        /// Only the comps of this building.
        building_id: Option<Uuid>,
        /// Only leases or only sales.
        kind: Option<CompKind>,
        /// Deals on or after this date (commencement of a lease, date of a sale).
        from: Option<IsoDate>,
        /// Deals on or before this date; not before `from`.
        to: Option<IsoDate>,
        /// Leases starting at this rent per square foot or more.
        rent_min: Option<Exact>,
        /// Leases starting at this rent per square foot or less; not below `rent_min`.
        rent_max: Option<Exact>,
        /// `true`: verified comps only; `false`: unverified ones only.
        verified: Option<bool>,
        /// `true`: retracted comps too (they are left out by default).
        include_retracted: Option<bool>,
        /// `lat,lon` (WGS 84, latitude first): with `radius_m`, comps whose building is
        /// within that distance, each with `distance_m`.
        near: Option<String>,
        /// Metres around `near`, greater than 0 and at most 500000.
        radius_m: Option<f64>,
        /// `-deal_date` (default, newest first), `deal_date`, or `distance` (with
        /// `near`).
        sort: Option<Word<CompSorts>>,
        /// Page size, 1 to 100 (default 25).
        limit: Option<i64>,
        /// The `next_cursor` of the previous page, with the same filters and sort.
        cursor: Option<String>,
        /// Only these comps, by id, comma-separated (at most 100; retracted ones too
        /// unless `include_retracted=false`): a batch in one request. The page size
        /// defaults to their number.
        ids: Option<String>,
        /// `building`: each comp carries its building's summary (`building`).
        expand: Option<Word<Expansions>>,
        /// The `position` a command returned: waits up to 2 s until this read
        /// reflects every event up to it, else answers with `Projection-Lagging: true`.
        min_position: Option<u64>,
    }
}

/// The comp list's sorts.
#[derive(Debug)]
pub struct CompSorts;

impl Words for CompSorts {
    const NAME: &'static str = "CompSort";
    const ALL: &'static [&'static str] = CompSort::CHOICES;
}

/// What a comp can carry beside itself: its building (the one expansion there is).
#[derive(Debug)]
pub struct Expansions;

impl Words for Expansions {
    const NAME: &'static str = "Expansion";
    const ALL: &'static [&'static str] = &["building"];
}

/// `expand=building`: the comps of `read` (a page or one comp) with their buildings'
/// summaries, read in one batch as the organisation, and the answer's tag made anew.
async fn with_buildings(
    views: &Views,
    org_id: &str,
    read: Read,
    if_none_match: Option<&str>,
) -> Result<Read, ApiError> {
    let Read::Found { view, lagging } = read else {
        return Ok(read);
    };
    let internal = |error: serde_json::Error| ApiError::Internal(error.into());
    let mut body: Value = serde_json::from_str(&view.body).map_err(internal)?;
    let building_of = |comp: &Value| {
        comp["building_id"]
            .as_str()
            .and_then(|id| Uuid::parse_str(id).ok())
    };
    let mut ids: Vec<Uuid> = match body["items"].as_array() {
        Some(items) => items.iter().filter_map(building_of).collect(),
        None => building_of(&body).into_iter().collect(),
    };
    ids.sort();
    ids.dedup();
    let mut summaries = std::collections::HashMap::new();
    if !ids.is_empty() {
        let limit = ids.len() as i64;
        let filter = BuildingFilter {
            ids: Some(ids),
            ..BuildingFilter::default()
        };
        let sort = BuildingSort::Name(Direction::Ascending);
        let mut tx = views.read_as(org_id).await.map_err(query_error)?;
        let page = buildings::list(&mut *tx, org_id, &filter, sort, limit, None)
            .await
            .map_err(query_error)?;
        for summary in page.items {
            summaries.insert(
                summary.id.to_string(),
                serde_json::to_value(&summary).map_err(internal)?,
            );
        }
    }
    let mut expand = |comp: &mut Value| {
        let building = comp["building_id"]
            .as_str()
            .and_then(|id| summaries.get(id))
            .cloned()
            .unwrap_or(Value::Null);
        comp["building"] = building;
    };
    match body.get_mut("items").and_then(Value::as_array_mut) {
        Some(items) => items.iter_mut().for_each(&mut expand),
        None => expand(&mut body),
    }
    let view = CachedView::render(view.version, &body);
    Ok(conditional(view, lagging, if_none_match))
}

query_parameters! {
    /// What `GET /v1/comps/{id}` waits for and embeds.
    pub struct CompDetailQuery as "CompDetailParameters" {
        /// The `version` a command returned: waits up to 2 s for the read side to
        /// reflect it, else answers with `Projection-Lagging: true`.
        min_version: Option<u64>,
        /// The `position` a command returned: waits up to 2 s until this read
        /// reflects every event up to it, else answers with `Projection-Lagging: true`.
        min_position: Option<u64>,
        /// `building`: the comp carries its building's summary (`building`).
        expand: Option<Word<Expansions>>,
        /// An RFC 3339 instant: the comp as it was then, folded from the event log
        /// (`404` before it was recorded).
        as_of: Option<chrono::DateTime<chrono::Utc>>,
    }
}

#[derive(Debug, Default)]
pub struct CompQueriesApi;

#[OpenApi(tag = "ApiTags::Comps")]
impl CompQueriesApi {
    /// List comps
    ///
    /// Newest deal first by default. Filters: `building_id`, `kind` (`lease`, `sale`),
    /// deal dates `from`/`to` (inclusive), starting rent per square foot
    /// `rent_min`/`rent_max` (leases), `verified`, and `near=lat,lon` with `radius_m`
    /// (the comp's building within that many metres; nearest first). Retracted comps are
    /// left out unless `include_retracted=true`.
    #[oai(path = "/v1/comps", method = "get", operation_id = "list_comps")]
    async fn list(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        query: CompListQuery,
        /// The `ETag` of the copy the client holds: `304` while it is current.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
    ) -> Result<CompPageResponse, ProblemResponse> {
        auth.0.require(Scope::CompsRead)?;
        let CompListQuery {
            building_id,
            kind,
            from,
            to,
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
            expand,
            min_position,
        } = query;
        let expand = expand.is_some();
        // The expanded page has a tag of its own: compared after the expansion.
        let if_none_match = if_none_match.0.as_deref();
        let cached_if_none_match = if expand { None } else { if_none_match };
        let ids = parse_ids(ids.as_deref()).map_err(query_error)?;
        let limit =
            page_size(limit.or(ids.as_ref().map(|ids| ids.len() as i64))).map_err(query_error)?;
        let kind = kind.map(|kind| match kind {
            CompKind::Lease => "lease".to_owned(),
            CompKind::Sale => "sale".to_owned(),
        });
        ordered(("from", from.as_ref()), ("to", to.as_ref()))?;
        ordered(
            ("rent_min", rent_min.as_ref()),
            ("rent_max", rent_max.as_ref()),
        )?;
        let near = Near::parse(near.as_deref(), radius_m).map_err(query_error)?;
        let filter = CompFilter {
            building_id,
            kind,
            date_from: from.map(|d| d.0),
            date_to: to.map(|d| d.0),
            rent_min: rent_min.map(|r| r.0),
            rent_max: rent_max.map(|r| r.0),
            verified,
            include_retracted: include_retracted.unwrap_or(ids.is_some()),
            near,
            ids,
        };
        let sort = CompSort::parse(sort.map(|sort| sort.0), near.is_some()).map_err(query_error)?;
        let org_id = auth.0.org_id.as_str();
        // The cursors' key, and the page size.
        let key = format!("{}|{limit}", filter.key(sort));
        let page = state
            .views
            .list(
                org_id,
                ListRead {
                    list: "comps",
                    key: &key,
                    // Searches by place seldom repeat exactly: not cached.
                    cacheable: cursor.is_none() && filter.near.is_none(),
                    min_position,
                },
                cached_if_none_match,
                |mut tx| async move {
                    comps::list(&mut *tx, org_id, &filter, sort, limit, cursor.as_deref()).await
                },
            )
            .await?;
        if expand {
            return Ok(with_buildings(&state.views, org_id, page, if_none_match)
                .await?
                .into());
        }
        Ok(page.into())
    }

    /// Get a comp
    ///
    /// Retracted comps too (with their reason). `min_position=P` (or `min_version=N`)
    /// waits up to 2 s for the read side to reflect it; if it does not,
    /// `Projection-Lagging: true`. `as_of=<instant>` answers the comp as it was then.
    #[oai(path = "/v1/comps/:id", method = "get", operation_id = "get_comp")]
    async fn detail(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        /// The comp's id.
        id: Path<Uuid>,
        query: CompDetailQuery,
        /// The `ETag` of the copy the client holds: `304` while it is current.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
    ) -> Result<CompResponse, ProblemResponse> {
        let CompDetailQuery {
            min_version,
            min_position,
            expand,
            as_of,
        } = query;
        let expand = expand.is_some();
        as_of_alone(
            as_of.is_some(),
            &[
                ("min_version", min_version.is_some()),
                ("min_position", min_position.is_some()),
                ("expand", expand),
            ],
        )?;
        let if_none_match = if_none_match.0.as_deref();
        let cached_if_none_match = if expand { None } else { if_none_match };
        let detail = Detail::Comp(id.0);
        let views = &state.views;
        let read = match as_of {
            Some(at) => {
                views
                    .as_of(&auth.0, detail, at, cached_if_none_match)
                    .await?
            }
            None => {
                views
                    .detail(
                        &auth.0,
                        detail,
                        min_version,
                        min_position,
                        cached_if_none_match,
                    )
                    .await?
            }
        }
        .ok_or(ApiError::NotFound)?;
        if expand {
            let org_id = auth.0.org_id.as_str();
            let read = with_buildings(&state.views, org_id, read, if_none_match).await?;
            return Ok(read.into());
        }
        Ok(read.into())
    }
}
