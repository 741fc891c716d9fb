//! Comp reads: the filtered, cursor-paginated list (by building, kind, deal date, rent,
//! verification, or near a point through the building's location) and the detail.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::cursor::{fingerprint, Cursor};
use super::{
    page_end, push_distance, push_keyset, push_within, Direction, Near, Page, QueryError, SortKey,
    CATALOG_STAMP_SQL,
};

/// A lease comp's terms and what is derived from them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseView {
    pub tenant: String,
    pub suite: Option<String>,
    pub leased_area_sqft: Decimal,
    pub starting_rent_psf: Decimal,
    pub lease_type: String,
    pub term_months: i32,
    pub commencement_date: NaiveDate,
    pub free_rent_months: i32,
    pub ti_allowance_psf: Decimal,
    pub escalation_pct: Decimal,
    /// Derived: see docs/read-side.md.
    pub net_effective_rent_psf: Decimal,
}

/// A sale comp's terms and what is derived from them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaleView {
    pub sale_price: Decimal,
    pub sale_date: NaiveDate,
    pub buyer: String,
    pub seller: String,
    pub cap_rate_pct: Option<Decimal>,
    /// Derived: sale price over the building's rentable area.
    pub price_psf: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompView {
    pub id: Uuid,
    pub version: i64,
    pub building_id: Uuid,
    /// `lease` or `sale`.
    pub kind: String,
    /// Commencement date of a lease, sale date of a sale.
    pub deal_date: NaiveDate,
    /// A lease's terms; absent for a sale.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lease: Option<LeaseView>,
    /// A sale's terms; absent for a lease.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sale: Option<SaleView>,
    pub verified: bool,
    pub retracted: bool,
    pub retract_reason: Option<String>,
    pub recorded_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Metres from `near` to the comp's building, when asked for near a point.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub distance_m: Option<f64>,
}

#[derive(Debug, sqlx::FromRow)]
struct CompRow {
    id: Uuid,
    version: i64,
    building_id: Uuid,
    kind: String,
    deal_date: NaiveDate,
    tenant: Option<String>,
    suite: Option<String>,
    leased_area_sqft: Option<Decimal>,
    starting_rent_psf: Option<Decimal>,
    lease_type: Option<String>,
    term_months: Option<i32>,
    free_rent_months: Option<i32>,
    ti_allowance_psf: Option<Decimal>,
    escalation_pct: Option<Decimal>,
    net_effective_rent_psf: Option<Decimal>,
    sale_price: Option<Decimal>,
    buyer: Option<String>,
    seller: Option<String>,
    cap_rate_pct: Option<Decimal>,
    price_psf: Option<Decimal>,
    verified: bool,
    retracted: bool,
    retract_reason: Option<String>,
    recorded_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl CompRow {
    fn view(self, distance_m: Option<f64>) -> CompView {
        let lease = (self.kind == "lease").then(|| LeaseView {
            tenant: self.tenant.unwrap_or_default(),
            suite: self.suite,
            leased_area_sqft: self.leased_area_sqft.unwrap_or_default(),
            starting_rent_psf: self.starting_rent_psf.unwrap_or_default(),
            lease_type: self.lease_type.unwrap_or_default(),
            term_months: self.term_months.unwrap_or_default(),
            commencement_date: self.deal_date,
            free_rent_months: self.free_rent_months.unwrap_or_default(),
            ti_allowance_psf: self.ti_allowance_psf.unwrap_or_default(),
            escalation_pct: self.escalation_pct.unwrap_or_default(),
            net_effective_rent_psf: self.net_effective_rent_psf.unwrap_or_default(),
        });
        let sale = (self.kind == "sale").then(|| SaleView {
            sale_price: self.sale_price.unwrap_or_default(),
            sale_date: self.deal_date,
            buyer: self.buyer.unwrap_or_default(),
            seller: self.seller.unwrap_or_default(),
            cap_rate_pct: self.cap_rate_pct,
            price_psf: self.price_psf,
        });
        CompView {
            id: self.id,
            version: self.version,
            building_id: self.building_id,
            kind: self.kind,
            deal_date: self.deal_date,
            lease,
            sale,
            verified: self.verified,
            retracted: self.retracted,
            retract_reason: self.retract_reason,
            recorded_at: self.recorded_at,
            updated_at: self.updated_at,
            distance_m,
        }
    }
}

const COMP_COLUMNS: &str = "c.id, c.version, c.building_id, c.kind, c.deal_date, c.tenant, c.suite,
    c.leased_area_sqft, c.starting_rent_psf, c.lease_type, c.term_months, c.free_rent_months,
    c.ti_allowance_psf, c.escalation_pct, c.net_effective_rent_psf, c.sale_price, c.buyer,
    c.seller, c.cap_rate_pct, c.price_psf, c.verified, c.retracted, c.retract_reason,
    c.recorded_at, c.updated_at";

/// How the comp list is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompSort {
    DealDate(Direction),
    /// Nearest first; only with `near`.
    Distance,
}

impl CompSort {
    /// Every `sort` the list takes.
    pub const CHOICES: &'static [&'static str] = &["-deal_date", "deal_date", "distance"];

    pub fn parse(raw: Option<&str>, near: bool) -> Result<Self, QueryError> {
        match raw {
            None if near => Ok(Self::Distance),
            None => Ok(Self::DealDate(Direction::Descending)),
            Some("deal_date") => Ok(Self::DealDate(Direction::Ascending)),
            Some("-deal_date") => Ok(Self::DealDate(Direction::Descending)),
            Some("distance") if near => Ok(Self::Distance),
            Some("distance") => Err(QueryError::invalid(
                "sort",
                "distance needs near and radius_m",
            )),
            Some(_) => Err(QueryError::invalid(
                "sort",
                "must be one of: deal_date, -deal_date, distance",
            )),
        }
    }

    fn key(self) -> SortKey {
        let (expression, sql_type, direction) = match self {
            Self::DealDate(d) => ("c.deal_date", "date", d),
            Self::Distance => ("c.distance_m", "float8", Direction::Ascending),
        };
        SortKey {
            expression,
            sql_type,
            direction,
        }
    }
}

/// The comp list's parameters, validated.
#[derive(Debug, Clone, Default)]
pub struct CompFilter {
    pub building_id: Option<Uuid>,
    /// `lease` or `sale`.
    pub kind: Option<String>,
    /// Deal date on or after.
    pub date_from: Option<NaiveDate>,
    /// Deal date on or before.
    pub date_to: Option<NaiveDate>,
    /// Starting rent per square foot at least (leases only).
    pub rent_min: Option<Decimal>,
    /// Starting rent per square foot at most (leases only).
    pub rent_max: Option<Decimal>,
    pub verified: Option<bool>,
    /// Retracted comps are left out unless asked for.
    pub include_retracted: bool,
    pub near: Option<Near>,
    /// Only these comps.
    pub ids: Option<Vec<Uuid>>,
}

/// A page of `org_id`'s comps.
impl CompFilter {
    /// The list's parameters as a key — of its cursors' fingerprint and its cached first
    /// pages: every field, in a fixed order, as JSON (strings escaped, absent values
    /// `null`, decimals and dates as their text), never `Debug` output. Destructured, so
    /// a new filter field does not compile until it is part of the key.
    pub fn key(&self, sort: CompSort) -> String {
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
            ids,
        } = self;
        let sort = match sort {
            CompSort::DealDate(direction) => direction.key("deal_date"),
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
            ids.as_ref()
                .map(|ids| ids.iter().map(Uuid::to_string).collect::<Vec<_>>())
        ])
        .to_string()
    }
}

/// The list's query (after `prefix`) and the fingerprint its cursors carry.
fn list_query<'q>(
    prefix: &'q str,
    org_id: &'q str,
    filter: &'q CompFilter,
    sort: CompSort,
    limit: i64,
    cursor: Option<&str>,
) -> Result<(QueryBuilder<'q, Postgres>, String), QueryError> {
    let query_fingerprint = fingerprint(&filter.key(sort));
    let after = cursor
        .map(|raw| Cursor::decode(raw, &query_fingerprint))
        .transpose()?;

    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(prefix);
    qb.push("SELECT * FROM (SELECT ");
    qb.push(COMP_COLUMNS);
    push_distance(&mut qb, filter.near, "b.location");
    qb.push(" FROM comps c");
    if filter.near.is_some() {
        // The comp's building gives its distance.
        qb.push(" JOIN buildings b ON b.id = c.building_id");
    }
    qb.push(" WHERE c.org_id = ").push_bind(org_id);
    push_within(&mut qb, filter.near, "c.building_id");
    if let Some(building_id) = filter.building_id {
        qb.push(" AND c.building_id = ").push_bind(building_id);
    }
    if let Some(ids) = &filter.ids {
        qb.push(" AND c.id = ANY (")
            .push_bind(ids.clone())
            .push(")");
    }
    if let Some(kind) = &filter.kind {
        qb.push(" AND c.kind = ").push_bind(kind);
    }
    if let Some(from) = filter.date_from {
        qb.push(" AND c.deal_date >= ").push_bind(from);
    }
    if let Some(to) = filter.date_to {
        qb.push(" AND c.deal_date <= ").push_bind(to);
    }
    if let Some(min) = filter.rent_min {
        qb.push(" AND c.starting_rent_psf >= ").push_bind(min);
    }
    if let Some(max) = filter.rent_max {
        qb.push(" AND c.starting_rent_psf <= ").push_bind(max);
    }
    if let Some(verified) = filter.verified {
        qb.push(" AND c.verified = ").push_bind(verified);
    }
    if !filter.include_retracted {
        qb.push(" AND NOT c.retracted");
    }
    push_keyset(&mut qb, "c", sort.key(), after.as_ref(), limit)?;
    Ok((qb, query_fingerprint))
}

/// The plan Postgres picks for the list query (the tests assert that it uses its
/// indexes under row-level security).
#[cfg(feature = "testing")]
pub async fn explain(
    db: impl sqlx::PgExecutor<'_>,
    org_id: &str,
    filter: &CompFilter,
    sort: CompSort,
    limit: i64,
    cursor: Option<&str>,
) -> Result<serde_json::Value, QueryError> {
    let (mut qb, _) = list_query(
        "EXPLAIN (FORMAT JSON) ",
        org_id,
        filter,
        sort,
        limit,
        cursor,
    )?;
    Ok(qb.build_query_scalar().fetch_one(db).await?)
}

pub async fn list(
    db: impl sqlx::PgExecutor<'_>,
    org_id: &str,
    filter: &CompFilter,
    sort: CompSort,
    limit: i64,
    cursor: Option<&str>,
) -> Result<Page<CompView>, QueryError> {
    let (mut qb, query_fingerprint) = list_query("", org_id, filter, sort, limit, cursor)?;

    #[derive(sqlx::FromRow)]
    struct ListRow {
        #[sqlx(flatten)]
        comp: CompRow,
        distance_m: Option<f64>,
        sort_key: Option<String>,
    }
    let mut rows: Vec<ListRow> = qb.build_query_as().fetch_all(db).await?;
    let next_cursor = page_end(&mut rows, limit, |last| {
        Cursor {
            key: last.sort_key.clone(),
            id: last.comp.id.to_string(),
            query: query_fingerprint.clone(),
        }
        .encode()
    });
    Ok(Page {
        items: rows
            .into_iter()
            .map(|row| row.comp.view(row.distance_m))
            .collect(),
        next_cursor,
    })
}

/// One comp of `org_id` (retracted ones too), and the catalog stamp it was read at.
pub async fn detail(
    db: impl sqlx::PgExecutor<'_>,
    org_id: &str,
    id: Uuid,
) -> Result<Option<(CompView, String)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct DetailRow {
        #[sqlx(flatten)]
        comp: CompRow,
        stamp: Option<String>,
    }
    let row: Option<DetailRow> = sqlx::query_as(&format!(
        "SELECT {COMP_COLUMNS}, {CATALOG_STAMP_SQL} AS stamp
           FROM comps c WHERE c.id = $1 AND c.org_id = $2"
    ))
    .bind(id)
    .bind(org_id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|row| (row.comp.view(None), row.stamp.unwrap_or_default())))
}

#[cfg(test)]
mod key_tests {
    use rust_decimal::Decimal;

    use super::*;
    use crate::queries::{Direction, Near};

    fn filter() -> CompFilter {
        CompFilter {
            kind: Some("lease".into()),
            date_from: chrono::NaiveDate::from_ymd_opt(2025, 1, 1),
            rent_min: Some(Decimal::new(4250, 2)),
            ..CompFilter::default()
        }
    }

    #[test]
    fn the_key_is_stable_for_equal_parameters_and_differs_for_others() {
        let sort = CompSort::DealDate(Direction::Descending);
        let key = filter().key(sort);
        assert_eq!(key, filter().key(sort));
        assert_eq!(
            key,
            r#"[null,"lease","2025-01-01",null,"42.50",null,null,false,null,"-deal_date",null]"#,
            "the encoding is explicit and stays as it is"
        );
        let others = [
            CompFilter::default().key(sort),
            filter().key(CompSort::DealDate(Direction::Ascending)),
            CompFilter {
                building_id: Some(Uuid::from_u128(7)),
                ..filter()
            }
            .key(sort),
            CompFilter {
                kind: Some("sale".into()),
                ..filter()
            }
            .key(sort),
            CompFilter {
                date_from: None,
                date_to: chrono::NaiveDate::from_ymd_opt(2025, 1, 1),
                ..filter()
            }
            .key(sort),
            CompFilter {
                rent_min: None,
                rent_max: Some(Decimal::new(4250, 2)),
                ..filter()
            }
            .key(sort),
            CompFilter {
                verified: Some(true),
                ..filter()
            }
            .key(sort),
            CompFilter {
                include_retracted: true,
                ..filter()
            }
            .key(sort),
            CompFilter {
                ids: Some(vec![Uuid::from_u128(7)]),
                ..filter()
            }
            .key(sort),
            CompFilter {
                near: Some(Near {
                    lat: 30.27,
                    lon: -97.74,
                    radius_m: 500.0,
                }),
                ..filter()
            }
            .key(CompSort::Distance),
        ];
        for (n, other) in others.iter().enumerate() {
            assert_ne!(&key, other, "case {n}");
            for (m, another) in others.iter().enumerate().skip(n + 1) {
                assert_ne!(other, another, "cases {n} and {m}");
            }
        }
    }
}
