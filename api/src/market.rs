//! `/v1/market/stats`: market statistics by submarket × property type × quarter.

use std::sync::Arc;

use domain::values::{PropertyType, TextEnum};
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::{ApiResponse, OpenApi};
use projections::queries::market::{self, MarketCellView, MarketFilter};
use serde::Serialize;

use crate::auth::Scope;
use crate::bearer::BearerAuth;
use crate::input::{Choice, IsoDate};
use crate::problem::ProblemResponse;
use crate::read_types::MarketStatsOut;
use crate::state::AppState;
use crate::tags::ApiTags;
use crate::views::{ordered, query_error, JsonView};

#[derive(Debug, ApiResponse)]
pub enum MarketStatsResponse {
    /// The cells, newest quarter first (at most 1000; narrow the filters for more).
    #[oai(status = 200)]
    Ok(JsonView<MarketStatsOut>),
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
        /// Only this submarket (case-insensitive).
        submarket: Query<Option<String>>,
        /// Only this property type.
        property_type: Query<Option<Choice<PropertyType>>>,
        /// The first quarter: the one containing this date.
        from: Query<Option<IsoDate>>,
        /// The last quarter: the one containing this date; not before `from`.
        to: Query<Option<IsoDate>>,
    ) -> Result<MarketStatsResponse, ProblemResponse> {
        ordered(("from", from.0.as_ref()), ("to", to.0.as_ref()))?;
        let filter = MarketFilter {
            submarket: submarket.0.filter(|s| !s.trim().is_empty()),
            property_type: property_type.0.map(|c| c.0.as_str().to_owned()),
            from: from.0.map(|d| d.0),
            to: to.0.map(|d| d.0),
        };
        auth.0.require(Scope::CompsRead)?;
        let org_id = auth.0.org_id.as_str();
        let mut tx = state.views.read_as(org_id).await.map_err(query_error)?;
        let items = market::stats(&mut *tx, org_id, &filter)
            .await
            .map_err(query_error)?;
        Ok(MarketStatsResponse::Ok(JsonView::serialize(&Cells {
            items,
        })?))
    }
}
