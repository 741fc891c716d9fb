//! Market statistics by submarket × property type × quarter, from live comps.

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder};

use super::QueryError;

/// Most cells one answer holds; narrow the filters for more.
pub const MAX_CELLS: i64 = 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct MarketCellView {
    /// `null` for buildings without a submarket.
    pub submarket: Option<String>,
    pub property_type: String,
    /// `2026-Q1`.
    pub quarter: String,
    pub quarter_start: NaiveDate,
    pub lease_count: i32,
    pub leased_area_sqft: Option<Decimal>,
    pub avg_starting_rent_psf: Option<Decimal>,
    pub avg_effective_rent_psf: Option<Decimal>,
    pub sale_count: i32,
    pub sale_volume: Option<Decimal>,
    pub avg_price_psf: Option<Decimal>,
    pub avg_cap_rate_pct: Option<Decimal>,
}

#[derive(Debug, Clone, Default)]
pub struct MarketFilter {
    /// Case-insensitive equality.
    pub submarket: Option<String>,
    pub property_type: Option<String>,
    /// Quarters starting on or after (the quarter of this date).
    pub from: Option<NaiveDate>,
    /// Quarters starting on or before this date.
    pub to: Option<NaiveDate>,
}

/// `org_id`'s market cells, newest quarter first.
pub async fn stats(
    db: impl sqlx::PgExecutor<'_>,
    org_id: &str,
    filter: &MarketFilter,
) -> Result<Vec<MarketCellView>, QueryError> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT nullif(submarket, '') AS submarket, property_type,
                to_char(quarter_start, 'YYYY') || '-Q' || to_char(quarter_start, 'Q') AS quarter,
                quarter_start, lease_count, leased_area_sqft, avg_starting_rent_psf,
                avg_effective_rent_psf, sale_count, sale_volume, avg_price_psf, avg_cap_rate_pct
           FROM market_stats WHERE org_id = ",
    );
    qb.push_bind(org_id);
    if let Some(submarket) = &filter.submarket {
        qb.push(" AND lower(submarket) = lower(")
            .push_bind(submarket)
            .push(")");
    }
    if let Some(property_type) = &filter.property_type {
        qb.push(" AND property_type = ").push_bind(property_type);
    }
    if let Some(from) = filter.from {
        qb.push(" AND quarter_start >= ")
            .push_bind(quarter_start(from));
    }
    if let Some(to) = filter.to {
        qb.push(" AND quarter_start <= ").push_bind(to);
    }
    qb.push(" ORDER BY quarter_start DESC, submarket, property_type LIMIT ")
        .push_bind(MAX_CELLS);
    Ok(qb.build_query_as().fetch_all(db).await?)
}

/// The first day of `date`'s quarter.
pub fn quarter_start(date: NaiveDate) -> NaiveDate {
    let month = (date.month0() / 3) * 3 + 1;
    NaiveDate::from_ymd_opt(date.year(), month, 1).unwrap_or(date)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarters_start_in_january_april_july_october() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).expect("date");
        assert_eq!(quarter_start(d(2026, 2, 14)), d(2026, 1, 1));
        assert_eq!(quarter_start(d(2026, 6, 30)), d(2026, 4, 1));
        assert_eq!(quarter_start(d(2026, 12, 31)), d(2026, 10, 1));
    }
}
