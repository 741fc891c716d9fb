//! `/v1/market/stats`: market statistics by submarket × property type × quarter.

use std::sync::Arc;

use domain::values::{PropertyType, TextEnum};
use poem::web::Data;
use poem_openapi::{ApiResponse, OpenApi};
use projections::queries::market::{self, MarketCellView, MarketFilter};
use projections::Projection;
use serde::Serialize;

use crate::auth::Scope;
use crate::bearer::BearerAuth;
use crate::input::{Choice, IsoDate};
use crate::params::query_parameters;
use crate::problem::ProblemResponse;
use crate::read_types::MarketStatsOut;
use crate::state::AppState;
use crate::tags::ApiTags;
use crate::views::{ordered, query_error, JsonView};

#[derive(Debug, ApiResponse)]
pub enum MarketStatsResponse {
    /// The cells, newest quarter first (at most 1000; narrow the filters for more).
    #[oai(status = 200)]
    Ok(
        JsonView<MarketStatsOut>,
        /// `true` when the statistics had not reached `min_position` in time.
        #[oai(header = "Projection-Lagging")]
        Option<String>,
    ),
}

query_parameters! {
    /// What `GET /v1/market/stats` filters by.
    pub struct MarketStatsQuery as "MarketStatsParameters" {
        /// Only this submarket (case-insensitive).
        submarket: Option<String>,
        /// Only this property type.
        property_type: Option<Choice<PropertyType>>,
        /// The first quarter: the one containing this date.
        from: Option<IsoDate>,
        /// The last quarter: the one containing this date; not before `from`.
        to: Option<IsoDate>,
        /// The `position` a command returned: waits up to 2 s until the statistics
        /// reflect every event up to it, else answers with `Projection-Lagging: true`.
        min_position: Option<u64>,
    }
}

#[derive(Serialize)]
struct Cells {
    items: Vec<MarketCellView>,
}

#[derive(Debug, Default)]
pub struct MarketApi;

#[OpenApi(tag = "ApiTags::Market")]
impl MarketApi {
    /// Market statistics
    ///
    /// Per submarket, property type and quarter of the deal date, over live (not
    /// retracted) comps: lease count, leased area, average starting and net effective
    /// rent; sale count, volume, average price per square foot and cap rate.
    /// `from`/`to` bound the quarters (dates; the quarter containing `from` is included).
    #[oai(
        path = "/v1/market/stats",
        method = "get",
        operation_id = "market_stats"
    )]
    async fn stats(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        query: MarketStatsQuery,
    ) -> Result<MarketStatsResponse, ProblemResponse> {
        let MarketStatsQuery {
            submarket,
            property_type,
            from,
            to,
            min_position,
        } = query;
        ordered(("from", from.as_ref()), ("to", to.as_ref()))?;
        let filter = MarketFilter {
            submarket: submarket.filter(|s| !s.trim().is_empty()),
            property_type: property_type.map(|c| c.0.as_str().to_owned()),
            from: from.map(|d| d.0),
            to: to.map(|d| d.0),
        };
        auth.0.require(Scope::CompsRead)?;
        let org_id = auth.0.org_id.as_str();
        let (mut tx, freshness) = state
            .views
            .read_after(org_id, Projection::CATALOG, min_position)
            .await?;
        let items = market::stats(&mut *tx, org_id, &filter)
            .await
            .map_err(query_error)?;
        Ok(MarketStatsResponse::Ok(
            JsonView::serialize(&Cells { items })?,
            freshness.header(),
        ))
    }
}
