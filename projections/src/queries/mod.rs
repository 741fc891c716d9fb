//! The reads the api serves, from the read models only. Each query takes the caller's
//! organisation and filters by it; row-level security is the second lock on the same
//! door. Views are plain serde types: the api sends their JSON as it is, and the
//! cache stores exactly those bytes.

pub mod as_of;
pub mod audit;
pub mod buildings;
pub mod comps;
pub mod cursor;
pub mod market;

use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, QueryBuilder, Transaction};
use uuid::Uuid;

use cursor::Cursor;

/// Opens a read transaction as `org_id`: role `prism_app` and `prism.org_id` set for
/// this transaction only, so the read models' row-level security shows nothing of
/// another organisation even to a query that forgets its filter. One round trip
/// beyond `BEGIN`; dropping the transaction ends it.
pub async fn begin_as(
    pool: &PgPool,
    org_id: &str,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "SELECT set_config('role', 'prism_app', true), set_config('prism.org_id', $1, true)",
    )
    .bind(org_id)
    .execute(&mut *tx)
    .await?;
    Ok(tx)
}

/// Largest page any list returns.
pub const MAX_PAGE_SIZE: i64 = 100;
/// Page size when none is asked for.
pub const DEFAULT_PAGE_SIZE: i64 = 25;

/// Why a query could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A parameter is not acceptable; the api answers 400 naming it.
    #[error("{field} {message}")]
    Invalid { field: String, message: String },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The log holds an event the projector cannot fold (a history read; a bug).
    #[error("history: {0}")]
    History(String),
}

impl QueryError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// One page of a list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The page size asked for, bounded.
pub fn page_size(limit: Option<i64>) -> Result<i64, QueryError> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        Some(_) => Err(QueryError::invalid(
            "limit",
            format!("must be between 1 and {MAX_PAGE_SIZE}"),
        )),
    }
}

/// `ids=<uuid>,<uuid>,…`: the items to fetch in one request, at most a page's worth,
/// each once.
pub fn parse_ids(raw: Option<&str>) -> Result<Option<Vec<Uuid>>, QueryError> {
    let Some(raw) = raw else { return Ok(None) };
    let mut ids: Vec<Uuid> = Vec::new();
    for part in raw
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        let id = Uuid::parse_str(part)
            .map_err(|_| QueryError::invalid("ids", format!("{part:?} is not a UUID")))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let count = i64::try_from(ids.len()).unwrap_or(i64::MAX);
    if !(1..=MAX_PAGE_SIZE).contains(&count) {
        return Err(QueryError::invalid(
            "ids",
            format!("must name 1 to {MAX_PAGE_SIZE} ids, separated by commas"),
        ));
    }
    Ok(Some(ids))
}

/// A point and a radius: `near=lat,lon` with `radius_m`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Near {
    pub lat: f64,
    pub lon: f64,
    pub radius_m: f64,
}

/// Largest search radius: 500 km.
pub const MAX_RADIUS_M: f64 = 500_000.0;

fn coordinate(field: &str, raw: &str, limit: f64) -> Result<f64, QueryError> {
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && v.abs() <= limit)
        .ok_or_else(|| {
            QueryError::invalid(field, format!("must be a number from -{limit} to {limit}"))
        })
}

impl Near {
    /// Parses `near` (`lat,lon`) and `radius_m`; either without the other is refused.
    pub fn parse(near: Option<&str>, radius_m: Option<f64>) -> Result<Option<Self>, QueryError> {
        let (near, radius_m) = match (near, radius_m) {
            (None, None) => return Ok(None),
            (Some(_), None) => {
                return Err(QueryError::invalid("radius_m", "is required with near"))
            }
            (None, Some(_)) => {
                return Err(QueryError::invalid("near", "is required with radius_m"))
            }
            (Some(near), Some(radius)) => (near, radius),
        };
        let Some((lat, lon)) = near.split_once(',') else {
            return Err(QueryError::invalid(
                "near",
                "must be lat,lon, e.g. 40.75,-73.98",
            ));
        };
        let lat = coordinate("near", lat, 90.0)?;
        let lon = coordinate("near", lon, 180.0)?;
        if !(radius_m.is_finite() && radius_m > 0.0 && radius_m <= MAX_RADIUS_M) {
            return Err(QueryError::invalid(
                "radius_m",
                format!("must be greater than 0 and at most {MAX_RADIUS_M}"),
            ));
        }
        Ok(Some(Self { lat, lon, radius_m }))
    }
}

/// A map viewport: `bbox=min_lon,min_lat,max_lon,max_lat`. A box whose west edge is
/// east of its east edge crosses the antimeridian.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundingBox {
    pub min_lon: f64,
    pub min_lat: f64,
    pub max_lon: f64,
    pub max_lat: f64,
}

impl BoundingBox {
    pub fn parse(raw: Option<&str>) -> Result<Option<Self>, QueryError> {
        let Some(raw) = raw else { return Ok(None) };
        let parts: Vec<&str> = raw.split(',').collect();
        let [min_lon, min_lat, max_lon, max_lat] = parts.as_slice() else {
            return Err(QueryError::invalid(
                "bbox",
                "must be min_lon,min_lat,max_lon,max_lat",
            ));
        };
        let bbox = Self {
            min_lon: coordinate("bbox", min_lon, 180.0)?,
            min_lat: coordinate("bbox", min_lat, 90.0)?,
            max_lon: coordinate("bbox", max_lon, 180.0)?,
            max_lat: coordinate("bbox", max_lat, 90.0)?,
        };
        if bbox.min_lat > bbox.max_lat {
            return Err(QueryError::invalid(
                "bbox",
                "min_lat must not be above max_lat",
            ));
        }
        Ok(Some(bbox))
    }
}

/// Which way a list is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Ascending,
    Descending,
}

impl Direction {
    /// The sort as its query parameter spells it (`name`, `-name`): in list keys.
    pub fn key(self, field: &str) -> String {
        match self {
            Self::Ascending => field.to_owned(),
            Self::Descending => format!("-{field}"),
        }
    }

    /// `name` → ascending, `-name` → descending.
    fn split(raw: &str) -> (Self, &str) {
        match raw.strip_prefix('-') {
            Some(rest) => (Self::Descending, rest),
            None => (Self::Ascending, raw),
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Self::Ascending => "ASC",
            Self::Descending => "DESC",
        }
    }

    fn after(self) -> &'static str {
        match self {
            Self::Ascending => ">",
            Self::Descending => "<",
        }
    }
}

/// The keyset plumbing building and comp lists share. A list query is
/// `SELECT * FROM (SELECT … FROM … b …) <alias>, LATERAL (<sort key>) k WHERE <after
/// cursor> ORDER BY <key>, id LIMIT <limit + 1>`; the extra row says whether there is a
/// next page.
///
/// ` AND <building id> = ANY (ARRAY(SELECT id FROM prism_buildings_within(…)))`: the
/// buildings within the radius, found with the GIST index by a security-definer
/// function that keeps to the transaction's organisation (migration 000010) — as
/// `prism_app`, a plain `ST_DWithin` could not use the index under row-level security
/// — and then looked up by primary key.
pub(crate) fn push_within(
    qb: &mut QueryBuilder<'_, Postgres>,
    near: Option<Near>,
    building_id: &str,
) {
    if let Some(near) = near {
        qb.push(format_args!(
            " AND {building_id} = ANY (ARRAY(SELECT id FROM prism_buildings_within("
        ))
        .push_bind(near.lat)
        .push(", ")
        .push_bind(near.lon)
        .push(", ")
        .push_bind(near.radius_m)
        .push(")))");
    }
}

/// `, ST_Distance(<location>, <near>, false) AS distance_m` (NULL without `near`): on
/// the sphere, as the nearest-first index order measures (migration 000012).
pub(crate) fn push_distance(
    qb: &mut QueryBuilder<'_, Postgres>,
    near: Option<Near>,
    location: &str,
) {
    match near {
        Some(near) => {
            qb.push(format_args!(
                ", ST_Distance({location}, ST_SetSRID(ST_MakePoint("
            ))
            .push_bind(near.lon)
            .push(", ")
            .push_bind(near.lat)
            .push("), 4326)::geography, false) AS distance_m");
        }
        None => {
            qb.push(", NULL::float8 AS distance_m");
        }
    }
}

/// The sort key of a list: an expression over the outer alias, its SQL type, and the
/// direction.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SortKey {
    pub expression: &'static str,
    pub sql_type: &'static str,
    pub direction: Direction,
}

/// Closes the inner query as `alias`, selects its sort key as text (for the cursor),
/// keeps rows strictly after `after`, orders by (key, id) and asks for one row more
/// than `limit`.
pub(crate) fn push_keyset(
    qb: &mut QueryBuilder<'_, Postgres>,
    alias: &str,
    key: SortKey,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<(), QueryError> {
    let SortKey {
        expression,
        sql_type,
        direction,
    } = key;
    qb.push(format_args!(
        ") {alias}, LATERAL (SELECT ({expression})::text AS sort_key) k"
    ));
    if let Some(after) = after {
        let id = Uuid::parse_str(&after.id)
            .map_err(|_| QueryError::invalid("cursor", "is not a cursor this API issued"))?;
        qb.push(format_args!(
            " WHERE ({expression}, {alias}.id) {} (",
            direction.after()
        ))
        .push_bind(after.key.clone())
        .push(format_args!("::{sql_type}, "))
        .push_bind(id)
        .push(")");
    }
    let order = direction.sql();
    qb.push(format_args!(
        " ORDER BY {expression} {order}, {alias}.id {order} LIMIT "
    ))
    .push_bind(limit + 1);
    Ok(())
}

/// Trims the look-ahead row and makes the next cursor from the last row kept.
pub(crate) fn page_end<T>(
    rows: &mut Vec<T>,
    limit: i64,
    cursor: impl Fn(&T) -> String,
) -> Option<String> {
    if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(cursor)
    } else {
        None
    }
}

/// Where the catalog projection stands: compared by the cache so that an older read
/// never replaces a newer one. Zero-padded text of (transaction id, position), which
/// sorts as the log's order.
pub(crate) const CATALOG_STAMP_SQL: &str =
    "(SELECT lpad(transaction_id::text, 20, '0') || lpad(position::text, 20, '0')
     FROM projection_checkpoints WHERE name = 'catalog')";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_needs_a_point_and_a_sane_radius() {
        let near = Near::parse(Some("40.75,-73.98"), Some(500.0)).expect("valid");
        assert_eq!(
            near,
            Some(Near {
                lat: 40.75,
                lon: -73.98,
                radius_m: 500.0
            })
        );
        assert!(Near::parse(Some("40.75"), Some(500.0)).is_err());
        assert!(Near::parse(Some("91,0"), Some(500.0)).is_err());
        assert!(Near::parse(Some("40,0"), None).is_err());
        assert!(Near::parse(Some("40,0"), Some(0.0)).is_err());
        assert!(Near::parse(None, None).expect("absent").is_none());
    }

    #[test]
    fn a_bounding_box_has_four_coordinates() {
        assert!(BoundingBox::parse(Some("-74.1,40.6,-73.8,40.9"))
            .expect("valid")
            .is_some());
        assert!(BoundingBox::parse(Some("-74.1,40.6,-73.8")).is_err());
        assert!(BoundingBox::parse(Some("-74.1,41,-73.8,40")).is_err());
    }

    #[test]
    fn page_sizes_are_bounded() {
        assert_eq!(page_size(None).ok(), Some(DEFAULT_PAGE_SIZE));
        assert!(page_size(Some(0)).is_err());
        assert!(page_size(Some(MAX_PAGE_SIZE + 1)).is_err());
    }
}
