//! Building reads: the filtered, sorted, cursor-paginated list (with `near` and `bbox`
//! through PostGIS) and the detail with the building's comp statistics.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::cursor::{fingerprint, Cursor};
use super::{
    page_end, push_distance, push_keyset, push_within, BoundingBox, Direction, Near, Page,
    QueryError, SortKey, CATALOG_STAMP_SQL,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddressView {
    pub street: String,
    pub city: String,
    pub region: Option<String>,
    pub postal_code: Option<String>,
    pub country: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LocationView {
    pub lat: f64,
    pub lon: f64,
}

/// A building as lists show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildingSummary {
    pub id: Uuid,
    /// The aggregate version this row reflects.
    pub version: i64,
    pub name: String,
    pub address: AddressView,
    pub location: LocationView,
    pub property_type: String,
    pub building_class: Option<String>,
    pub rentable_area_sqft: Decimal,
    pub year_built: Option<i32>,
    pub floors: Option<i32>,
    pub submarket: Option<String>,
    pub archived: bool,
    pub archive_reason: Option<String>,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Metres from `near`, when the list was asked for near a point.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub distance_m: Option<f64>,
}

/// Net effective rents of the leases that commenced in the 24 months up to the
/// building's latest lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RentWindowView {
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub lease_count: i32,
    pub avg_effective_rent_psf: Option<Decimal>,
    pub median_effective_rent_psf: Option<Decimal>,
}

/// A building's live (not retracted) comps in numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompStatsView {
    pub comp_count: i32,
    pub lease_count: i32,
    pub sale_count: i32,
    pub latest_comp_date: Option<NaiveDate>,
    pub rent_window: Option<RentWindowView>,
}

/// A building with its comp statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildingView {
    #[serde(flatten)]
    pub building: BuildingSummary,
    pub comp_stats: CompStatsView,
}

/// How the list is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildingSort {
    Name(Direction),
    RegisteredAt(Direction),
    RentableArea(Direction),
    /// Nearest first; only with `near`.
    Distance,
}

impl BuildingSort {
    /// Every `sort` the list takes.
    pub const CHOICES: &'static [&'static str] = &[
        "name",
        "-name",
        "registered_at",
        "-registered_at",
        "rentable_area_sqft",
        "-rentable_area_sqft",
        "distance",
    ];

    pub fn parse(raw: Option<&str>, near: bool) -> Result<Self, QueryError> {
        let Some(raw) = raw else {
            return Ok(if near {
                Self::Distance
            } else {
                Self::Name(Direction::Ascending)
            });
        };
        let (direction, field) = Direction::split(raw);
        match field {
            "name" => Ok(Self::Name(direction)),
            "registered_at" => Ok(Self::RegisteredAt(direction)),
            "rentable_area_sqft" => Ok(Self::RentableArea(direction)),
            "distance" if direction == Direction::Ascending && near => Ok(Self::Distance),
            "distance" => Err(QueryError::invalid(
                "sort",
                "distance needs near and radius_m, nearest first",
            )),
            _ => Err(QueryError::invalid(
                "sort",
                format!("must be one of: {}", Self::CHOICES.join(", ")),
            )),
        }
    }

    fn key(self) -> SortKey {
        let (expression, sql_type, direction) = match self {
            Self::Name(d) => ("b.name", "text", d),
            Self::RegisteredAt(d) => ("b.registered_at", "timestamptz", d),
            // The area as float8: its comparisons are leakproof, so the keyset stays an
            // index condition under row-level security (migration 000010).
            Self::RentableArea(d) => ("b.rentable_area_order", "float8", d),
            Self::Distance => ("b.distance_m", "float8", Direction::Ascending),
        };
        SortKey {
            expression,
            sql_type,
            direction,
        }
    }
}

/// The building list's parameters, validated.
#[derive(Debug, Clone, Default)]
pub struct BuildingFilter {
    pub property_type: Option<String>,
    pub building_class: Option<String>,
    /// Case-insensitive equality.
    pub city: Option<String>,
    /// Case-insensitive equality.
    pub submarket: Option<String>,
    /// `None` and `Some(false)`: active buildings only; `Some(true)`: archived only.
    pub archived: Option<bool>,
    /// Words to find in the name or address (case-insensitive substring).
    pub text: Option<String>,
    pub near: Option<Near>,
    pub bbox: Option<BoundingBox>,
    /// Only these buildings (archived ones too unless `archived` says otherwise).
    pub ids: Option<Vec<Uuid>>,
}

impl BuildingFilter {
    /// The list's parameters as a key — of its cursors' fingerprint and its cached first
    /// pages: every field, in a fixed order, as JSON (strings escaped, absent values
    /// `null`), never `Debug` output, whose form may change with any release.
    /// Destructured, so a new filter field does not compile until it is part of the key.
    pub fn key(&self, sort: BuildingSort) -> String {
        let BuildingFilter {
            property_type,
            building_class,
            city,
            submarket,
            archived,
            text,
            near,
            bbox,
            ids,
        } = self;
        let sort = match sort {
            BuildingSort::Name(direction) => direction.key("name"),
            BuildingSort::RegisteredAt(direction) => direction.key("registered_at"),
            BuildingSort::RentableArea(direction) => direction.key("rentable_area_sqft"),
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
            ids.as_ref()
                .map(|ids| ids.iter().map(Uuid::to_string).collect::<Vec<_>>())
        ])
        .to_string()
    }
}

#[derive(Debug, sqlx::FromRow)]
struct BuildingRow {
    id: Uuid,
    version: i64,
    name: String,
    street: String,
    city: String,
    region: Option<String>,
    postal_code: Option<String>,
    country: String,
    lat: f64,
    lon: f64,
    property_type: String,
    building_class: Option<String>,
    rentable_area_sqft: Decimal,
    year_built: Option<i32>,
    floors: Option<i32>,
    submarket: Option<String>,
    archived: bool,
    archive_reason: Option<String>,
    registered_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl BuildingRow {
    fn summary(self, distance_m: Option<f64>) -> BuildingSummary {
        BuildingSummary {
            id: self.id,
            version: self.version,
            name: self.name,
            address: AddressView {
                street: self.street,
                city: self.city,
                region: self.region,
                postal_code: self.postal_code,
                country: self.country,
            },
            location: LocationView {
                lat: self.lat,
                lon: self.lon,
            },
            property_type: self.property_type,
            building_class: self.building_class,
            rentable_area_sqft: self.rentable_area_sqft,
            year_built: self.year_built,
            floors: self.floors,
            submarket: self.submarket,
            archived: self.archived,
            archive_reason: self.archive_reason,
            registered_at: self.registered_at,
            updated_at: self.updated_at,
            distance_m,
        }
    }
}

const BUILDING_COLUMNS: &str = "b.id, b.version, b.name, b.street, b.city, b.region, b.postal_code,
    b.country, b.lat, b.lon, b.property_type, b.building_class, b.rentable_area_sqft,
    b.year_built, b.floors, b.submarket, b.archived, b.archive_reason, b.registered_at,
    b.updated_at";

#[derive(Debug, sqlx::FromRow)]
struct ListRow {
    #[sqlx(flatten)]
    building: BuildingRow,
    distance_m: Option<f64>,
    sort_key: Option<String>,
}

/// Escapes `%`, `_` and `\` for a LIKE pattern.
pub(crate) fn like_pattern(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 2);
    escaped.push('%');
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(ch);
    }
    escaped.push('%');
    escaped
}

/// A page of `org_id`'s buildings.
/// The list's query (after `prefix`) and the fingerprint its cursors carry.
fn list_query<'q>(
    prefix: &'q str,
    org_id: &'q str,
    filter: &'q BuildingFilter,
    sort: BuildingSort,
    limit: i64,
    cursor: Option<&str>,
) -> Result<(QueryBuilder<'q, Postgres>, String), QueryError> {
    let query_fingerprint = fingerprint(&filter.key(sort));
    let after = cursor
        .map(|raw| Cursor::decode(raw, &query_fingerprint))
        .transpose()?;

    if let (Some(near), BuildingSort::Distance, None, None, None) =
        (filter.near, sort, &filter.text, filter.bbox, &filter.ids)
    {
        let qb = nearest_query(prefix, org_id, filter, near, after.as_ref(), limit)?;
        return Ok((qb, query_fingerprint));
    }
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(prefix);
    qb.push("SELECT * FROM (SELECT ");
    qb.push(BUILDING_COLUMNS);
    push_distance(&mut qb, filter.near, "b.location");
    qb.push(", b.rentable_area_order FROM buildings b WHERE b.org_id = ")
        .push_bind(org_id);
    push_within(&mut qb, filter.near, "b.id");
    if let Some(bbox) = filter.bbox {
        // The viewport's buildings through the point's GIST index (migration 000010).
        qb.push(" AND b.id = ANY (ARRAY(SELECT id FROM prism_buildings_in_box(")
            .push_bind(bbox.min_lon)
            .push(", ")
            .push_bind(bbox.min_lat)
            .push(", ")
            .push_bind(bbox.max_lon)
            .push(", ")
            .push_bind(bbox.max_lat)
            .push(")))");
    }
    if let Some(text) = &filter.text {
        // Every word a substring of the name or address, through the trigram index
        // (migration 000010).
        let words: Vec<String> = text
            .split_whitespace()
            .map(|word| like_pattern(&word.to_lowercase()))
            .collect();
        qb.push(" AND b.id = ANY (ARRAY(SELECT id FROM prism_buildings_matching(")
            .push_bind(words)
            .push(")))");
    }
    if let Some(ids) = &filter.ids {
        qb.push(" AND b.id = ANY (")
            .push_bind(ids.clone())
            .push(")");
    }
    match (filter.archived, &filter.ids) {
        // Fetched by id: archived or not, unless asked.
        (None, Some(_)) => {}
        (archived, _) => {
            qb.push(" AND b.archived = ")
                .push_bind(archived.unwrap_or(false));
        }
    }
    if let Some(property_type) = &filter.property_type {
        qb.push(" AND b.property_type = ").push_bind(property_type);
    }
    if let Some(class) = &filter.building_class {
        qb.push(" AND b.building_class = ").push_bind(class);
    }
    if let Some(city) = &filter.city {
        qb.push(" AND lower(b.city) = lower(")
            .push_bind(city)
            .push(")");
    }
    if let Some(submarket) = &filter.submarket {
        qb.push(" AND lower(b.submarket) = lower(")
            .push_bind(submarket)
            .push(")");
    }
    push_keyset(&mut qb, "b", sort.key(), after.as_ref(), limit)?;
    Ok((qb, query_fingerprint))
}

/// A nearest-first page (a map) without text or box filters: the page's ids and
/// distances from `prism_buildings_nearest` (migration 000010), which reads the
/// candidates within the radius once, then those rows by primary key under row-level
/// security.
fn nearest_query<'q>(
    prefix: &'q str,
    org_id: &'q str,
    filter: &'q BuildingFilter,
    near: Near,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<QueryBuilder<'q, Postgres>, QueryError> {
    let invalid = || QueryError::invalid("cursor", "is not a cursor this API issued");
    let after = after
        .map(|cursor| {
            let distance = cursor
                .key
                .as_deref()
                .and_then(|key| key.parse::<f64>().ok())
                .ok_or_else(invalid)?;
            let id = Uuid::parse_str(&cursor.id).map_err(|_| invalid())?;
            Ok::<_, QueryError>((distance, id))
        })
        .transpose()?;
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(prefix);
    qb.push("SELECT ");
    qb.push(BUILDING_COLUMNS);
    qb.push(
        ", n.distance_m, b.rentable_area_order, (n.distance_m)::text AS sort_key
         FROM prism_buildings_nearest(",
    );
    qb.push_bind(near.lat)
        .push(", ")
        .push_bind(near.lon)
        .push(", ")
        .push_bind(near.radius_m)
        .push(", ")
        .push_bind(filter.archived.unwrap_or(false))
        .push(", ")
        .push_bind(filter.property_type.clone())
        .push(", ")
        .push_bind(filter.building_class.clone())
        .push(", ")
        .push_bind(filter.city.clone())
        .push(", ")
        .push_bind(filter.submarket.clone())
        .push(", ")
        .push_bind(after.map(|a| a.0))
        .push(", ")
        .push_bind(after.map(|a| a.1))
        .push(", ")
        .push_bind(i32::try_from(limit + 1).unwrap_or(i32::MAX))
        .push(") n JOIN buildings b ON b.id = n.id WHERE b.org_id = ")
        .push_bind(org_id)
        .push(" ORDER BY n.distance_m, n.id");
    Ok(qb)
}

/// The plan Postgres picks for the list query (the tests assert that it uses its
/// indexes under row-level security).
#[cfg(feature = "testing")]
pub async fn explain(
    db: impl sqlx::PgExecutor<'_>,
    org_id: &str,
    filter: &BuildingFilter,
    sort: BuildingSort,
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
    filter: &BuildingFilter,
    sort: BuildingSort,
    limit: i64,
    cursor: Option<&str>,
) -> Result<Page<BuildingSummary>, QueryError> {
    let (mut qb, query_fingerprint) = list_query("", org_id, filter, sort, limit, cursor)?;

    let mut rows: Vec<ListRow> = qb.build_query_as().fetch_all(db).await?;
    let next_cursor = page_end(&mut rows, limit, |last| {
        Cursor {
            key: last.sort_key.clone(),
            id: last.building.id.to_string(),
            query: query_fingerprint.clone(),
        }
        .encode()
    });
    Ok(Page {
        items: rows
            .into_iter()
            .map(|row| row.building.summary(row.distance_m))
            .collect(),
        next_cursor,
    })
}

#[derive(Debug, sqlx::FromRow)]
struct DetailRow {
    #[sqlx(flatten)]
    building: BuildingRow,
    comp_count: Option<i32>,
    lease_count: Option<i32>,
    sale_count: Option<i32>,
    latest_comp_date: Option<NaiveDate>,
    rent_window_start: Option<NaiveDate>,
    rent_window_end: Option<NaiveDate>,
    rent_window_count: Option<i32>,
    avg_effective_rent_psf: Option<Decimal>,
    median_effective_rent_psf: Option<Decimal>,
    stamp: Option<String>,
}

/// One building of `org_id` with its comp statistics, and the catalog stamp it was read at.
pub async fn detail(
    db: impl sqlx::PgExecutor<'_>,
    org_id: &str,
    id: Uuid,
) -> Result<Option<(BuildingView, String)>, sqlx::Error> {
    let row: Option<DetailRow> = sqlx::query_as(&format!(
        "SELECT {BUILDING_COLUMNS}, s.comp_count, s.lease_count, s.sale_count, s.latest_comp_date,
                s.rent_window_start, s.rent_window_end, s.rent_window_count,
                s.avg_effective_rent_psf, s.median_effective_rent_psf,
                {CATALOG_STAMP_SQL} AS stamp
           FROM buildings b LEFT JOIN building_comp_stats s ON s.building_id = b.id
          WHERE b.id = $1 AND b.org_id = $2"
    ))
    .bind(id)
    .bind(org_id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|row| {
        let rent_window = match (row.rent_window_start, row.rent_window_end) {
            (Some(start), Some(end)) => Some(RentWindowView {
                start,
                end,
                lease_count: row.rent_window_count.unwrap_or(0),
                avg_effective_rent_psf: row.avg_effective_rent_psf,
                median_effective_rent_psf: row.median_effective_rent_psf,
            }),
            _ => None,
        };
        let view = BuildingView {
            building: row.building.summary(None),
            comp_stats: CompStatsView {
                comp_count: row.comp_count.unwrap_or(0),
                lease_count: row.lease_count.unwrap_or(0),
                sale_count: row.sale_count.unwrap_or(0),
                latest_comp_date: row.latest_comp_date,
                rent_window,
            },
        };
        (view, row.stamp.unwrap_or_default())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }

    #[test]
    fn distance_sort_needs_near() {
        assert_eq!(
            BuildingSort::parse(None, true).ok(),
            Some(BuildingSort::Distance)
        );
        assert!(BuildingSort::parse(Some("distance"), false).is_err());
        assert_eq!(
            BuildingSort::parse(Some("-registered_at"), false).ok(),
            Some(BuildingSort::RegisteredAt(Direction::Descending))
        );
        assert!(BuildingSort::parse(Some("height"), false).is_err());
    }
}

#[cfg(test)]
mod key_tests {
    use super::*;
    use crate::queries::{BoundingBox, Direction, Near};

    fn filter() -> BuildingFilter {
        BuildingFilter {
            property_type: Some("office".into()),
            city: Some("Austin".into()),
            ..BuildingFilter::default()
        }
    }

    #[test]
    fn the_key_is_stable_for_equal_parameters_and_differs_for_others() {
        let sort = BuildingSort::Name(Direction::Ascending);
        let key = filter().key(sort);
        assert_eq!(key, filter().key(sort));
        assert_eq!(
            key, r#"["office",null,"Austin",null,null,null,null,null,"name",null]"#,
            "the encoding is explicit and stays as it is"
        );
        let others = [
            BuildingFilter::default().key(sort),
            filter().key(BuildingSort::Name(Direction::Descending)),
            filter().key(BuildingSort::RegisteredAt(Direction::Ascending)),
            BuildingFilter {
                city: Some("Austin\",null".into()),
                ..filter()
            }
            .key(sort),
            BuildingFilter {
                city: None,
                submarket: Some("Austin".into()),
                ..filter()
            }
            .key(sort),
            BuildingFilter {
                archived: Some(false),
                ..filter()
            }
            .key(sort),
            BuildingFilter {
                ids: Some(vec![Uuid::from_u128(7)]),
                ..filter()
            }
            .key(sort),
            BuildingFilter {
                near: Some(Near {
                    lat: 30.27,
                    lon: -97.74,
                    radius_m: 500.0,
                }),
                ..filter()
            }
            .key(BuildingSort::Distance),
            BuildingFilter {
                bbox: Some(BoundingBox {
                    min_lon: -97.8,
                    min_lat: 30.2,
                    max_lon: -97.7,
                    max_lat: 30.3,
                }),
                ..filter()
            }
            .key(sort),
        ];
        for (n, other) in others.iter().enumerate() {
            assert_ne!(&key, other, "case {n}");
            for (m, another) in others.iter().enumerate().skip(n + 1) {
                assert_ne!(other, another, "cases {n} and {m}");
            }
        }
    }
}
