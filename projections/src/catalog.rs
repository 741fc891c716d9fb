//! The `catalog` projection: buildings, comps (with derived rent metrics), per-building
//! comp statistics and market statistics. They are one projection — one checkpoint,
//! one transaction per batch — because the statistics are computed from the rows of
//! both aggregates and must always agree with them.
//!
//! Rows of one aggregate are written only by that aggregate's next event: an event
//! applies when the row's `version` is exactly one behind it, is skipped when the row
//! already reflects it (re-delivery), and stops the projection when a version is
//! missing. Statistics are recomputed at the end of the batch from the rows, for the
//! buildings and market cells the batch touched, so they do not depend on batching.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use domain::values::TextEnum;
use domain::{BuildingDetails, BuildingEvent, CompEvent, CompTerms, LeaseTerms, SaleTerms};
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::log::LoggedEvent;
use crate::rent::{self, LeaseEconomics};
use crate::ProjectionError;

/// Deals within this many months before a building's latest lease count towards its
/// rent statistics.
pub const RENT_WINDOW_MONTHS: u32 = 24;

/// One market-statistics cell.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct MarketCell {
    org_id: String,
    submarket: String,
    property_type: String,
    quarter_start: NaiveDate,
}

/// Whose market cells to mark.
#[derive(Debug, Clone, Copy)]
enum Cells {
    OfComp(Uuid),
    /// Every comp of the building.
    OfBuilding(Uuid),
}

/// A comp's building and market cell, as `touch_cells` finds them.
#[derive(Debug, sqlx::FromRow)]
struct CompCell {
    org_id: String,
    building_id: Uuid,
    submarket: String,
    property_type: String,
    quarter_start: NaiveDate,
}

/// What a batch touched, to recompute and to refresh in the cache once it is applied.
#[derive(Debug, Default)]
pub struct CatalogBatch {
    buildings: BTreeSet<Uuid>,
    /// Buildings whose area may have changed: their sales' price per square foot.
    resized: BTreeSet<Uuid>,
    stats: BTreeSet<Uuid>,
    comps: BTreeSet<Uuid>,
    cells: BTreeSet<MarketCell>,
    orgs: BTreeSet<String>,
}

/// The verdict of an aggregate row's version on an event.
enum Order {
    Apply,
    AlreadyApplied,
}

fn unapplicable(event: &LoggedEvent, reason: impl Into<String>) -> ProjectionError {
    ProjectionError::Unapplicable {
        position: event.position,
        event_type: event.event_type.clone(),
        reason: reason.into(),
    }
}

fn aggregate_uuid(event: &LoggedEvent) -> Result<Uuid, ProjectionError> {
    Uuid::parse_str(&event.aggregate_id)
        .map_err(|_| unapplicable(event, "the aggregate id is not a UUID"))
}

/// Checks the stored version of `table`'s row `id` against the event's sequence.
async fn order(
    conn: &mut PgConnection,
    table: &str,
    id: Uuid,
    event: &LoggedEvent,
) -> Result<Order, ProjectionError> {
    let stored: Option<i64> =
        sqlx::query_scalar(&format!("SELECT version FROM {table} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    match stored {
        None if event.sequence == 1 => Ok(Order::Apply),
        None => Err(unapplicable(
            event,
            format!(
                "no {table} row for version {} to follow",
                event.sequence - 1
            ),
        )),
        Some(version) if version >= event.sequence => Ok(Order::AlreadyApplied),
        Some(version) if version == event.sequence - 1 => Ok(Order::Apply),
        Some(version) => Err(unapplicable(
            event,
            format!(
                "{table} row is at version {version}; versions before {} are missing",
                event.sequence
            ),
        )),
    }
}

impl CatalogBatch {
    /// Applies one event to the rows.
    pub async fn apply(
        &mut self,
        conn: &mut PgConnection,
        event: &LoggedEvent,
    ) -> Result<(), ProjectionError> {
        if event.event_version != "1" {
            return Err(unapplicable(
                event,
                format!("unknown event version {}", event.event_version),
            ));
        }
        match event.aggregate_type.as_str() {
            "building" => {
                let decoded: BuildingEvent = serde_json::from_value(event.payload.clone())
                    .map_err(|e| unapplicable(event, format!("payload: {e}")))?;
                self.apply_building(conn, event, decoded).await
            }
            "comp" => {
                let decoded: CompEvent = serde_json::from_value(event.payload.clone())
                    .map_err(|e| unapplicable(event, format!("payload: {e}")))?;
                self.apply_comp(conn, event, decoded).await
            }
            // Other aggregates are not part of the catalog.
            _ => Ok(()),
        }
    }

    async fn apply_building(
        &mut self,
        conn: &mut PgConnection,
        event: &LoggedEvent,
        decoded: BuildingEvent,
    ) -> Result<(), ProjectionError> {
        let id = aggregate_uuid(event)?;
        if let Order::AlreadyApplied = order(conn, "buildings", id, event).await? {
            return Ok(());
        }
        let at = event.recorded_at;
        let version = event.sequence;
        match decoded {
            BuildingEvent::BuildingRegistered {
                org_id,
                details,
                address,
                location,
            } => {
                sqlx::query(
                    "INSERT INTO buildings (id, org_id, version, name, street, city, region,
                         postal_code, country, lat, lon, location, property_type, building_class,
                         rentable_area_sqft, year_built, floors, submarket, registered_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
                         ST_SetSRID(ST_MakePoint($11, $10), 4326)::geography,
                         $12, $13, $14, $15, $16, $17, $18, $18)",
                )
                .bind(id)
                .bind(org_id.as_str())
                .bind(version)
                .bind(details.name.as_str())
                .bind(address.street.as_str())
                .bind(address.city.as_str())
                .bind(address.region.as_ref().map(|r| r.as_str()))
                .bind(address.postal_code.as_ref().map(|p| p.as_str()))
                .bind(address.country.as_str())
                .bind(location.lat())
                .bind(location.lon())
                .bind(details.property_type.as_str())
                .bind(details.building_class.map(TextEnum::as_str))
                .bind(details.rentable_area_sqft.value())
                .bind(details.year_built.map(|y| i32::from(y.value())))
                .bind(details.floors.map(|f| i32::from(f.value())))
                .bind(details.submarket.as_ref().map(|s| s.as_str()))
                .bind(at)
                .execute(&mut *conn)
                .await?;
            }
            BuildingEvent::BuildingDetailsUpdated { details } => {
                self.touch_cells(conn, Cells::OfBuilding(id)).await?;
                update_details(conn, id, version, &details, at).await?;
                self.touch_cells(conn, Cells::OfBuilding(id)).await?;
                self.resized.insert(id);
                self.stats.insert(id);
            }
            BuildingEvent::BuildingRelocated { address, location } => {
                sqlx::query(
                    "UPDATE buildings
                        SET street = $3, city = $4, region = $5, postal_code = $6, country = $7,
                            lat = $8, lon = $9,
                            location = ST_SetSRID(ST_MakePoint($9, $8), 4326)::geography,
                            version = $2, updated_at = $10
                      WHERE id = $1",
                )
                .bind(id)
                .bind(version)
                .bind(address.street.as_str())
                .bind(address.city.as_str())
                .bind(address.region.as_ref().map(|r| r.as_str()))
                .bind(address.postal_code.as_ref().map(|p| p.as_str()))
                .bind(address.country.as_str())
                .bind(location.lat())
                .bind(location.lon())
                .bind(at)
                .execute(&mut *conn)
                .await?;
            }
            BuildingEvent::BuildingArchived { reason } => {
                sqlx::query(
                    "UPDATE buildings SET archived = true, archive_reason = $3, version = $2,
                            updated_at = $4
                      WHERE id = $1",
                )
                .bind(id)
                .bind(version)
                .bind(reason.as_str())
                .bind(at)
                .execute(&mut *conn)
                .await?;
            }
            BuildingEvent::BuildingRestored {} => {
                sqlx::query(
                    "UPDATE buildings SET archived = false, archive_reason = NULL, version = $2,
                            updated_at = $3
                      WHERE id = $1",
                )
                .bind(id)
                .bind(version)
                .bind(at)
                .execute(&mut *conn)
                .await?;
            }
        }
        self.buildings.insert(id);
        let org_id = event
            .meta("org_id")
            .ok_or_else(|| unapplicable(event, "the event's metadata names no organisation"))?;
        self.orgs.insert(org_id.to_owned());
        Ok(())
    }

    async fn apply_comp(
        &mut self,
        conn: &mut PgConnection,
        event: &LoggedEvent,
        decoded: CompEvent,
    ) -> Result<(), ProjectionError> {
        let id = aggregate_uuid(event)?;
        if let Order::AlreadyApplied = order(conn, "comps", id, event).await? {
            return Ok(());
        }
        let at = event.recorded_at;
        let version = event.sequence;
        match decoded {
            CompEvent::LeaseCompRecorded {
                org_id,
                building_id,
                terms,
            } => {
                insert_comp(conn, id, org_id.as_str(), building_id.0, version, at).await?;
                write_terms(conn, id, version, &CompTerms::Lease(terms), at).await?;
            }
            CompEvent::SaleCompRecorded {
                org_id,
                building_id,
                terms,
            } => {
                insert_comp(conn, id, org_id.as_str(), building_id.0, version, at).await?;
                write_terms(conn, id, version, &CompTerms::Sale(terms), at).await?;
            }
            CompEvent::CompAmended { terms } => {
                self.touch_cells(conn, Cells::OfComp(id)).await?;
                write_terms(conn, id, version, &terms, at).await?;
            }
            CompEvent::CompVerified {} => {
                sqlx::query(
                    "UPDATE comps SET verified = true, version = $2, updated_at = $3 WHERE id = $1",
                )
                .bind(id)
                .bind(version)
                .bind(at)
                .execute(&mut *conn)
                .await?;
            }
            CompEvent::CompRetracted { reason } => {
                sqlx::query(
                    "UPDATE comps SET retracted = true, retract_reason = $3, version = $2,
                            updated_at = $4
                      WHERE id = $1",
                )
                .bind(id)
                .bind(version)
                .bind(reason.as_str())
                .bind(at)
                .execute(&mut *conn)
                .await?;
            }
        }
        let Some(cell) = self.touch_cells(conn, Cells::OfComp(id)).await?.pop() else {
            return Err(unapplicable(
                event,
                "the comp's building is not in the projection",
            ));
        };
        self.comps.insert(id);
        self.stats.insert(cell.building_id);
        self.buildings.insert(cell.building_id);
        self.orgs.insert(cell.org_id);
        Ok(())
    }

    /// Marks the market cells the comps are in now (call before and after a change
    /// that may move them); returns one row per cell.
    async fn touch_cells(
        &mut self,
        conn: &mut PgConnection,
        which: Cells,
    ) -> Result<Vec<CompCell>, ProjectionError> {
        let (comp, building) = match which {
            Cells::OfComp(id) => (Some(id), None),
            Cells::OfBuilding(id) => (None, Some(id)),
        };
        let found: Vec<CompCell> = sqlx::query_as(
            "SELECT DISTINCT c.org_id, c.building_id, coalesce(b.submarket, '') AS submarket,
                    b.property_type, date_trunc('quarter', c.deal_date)::date AS quarter_start
               FROM comps c JOIN buildings b ON b.id = c.building_id
              WHERE c.id = $1 OR b.id = $2",
        )
        .bind(comp)
        .bind(building)
        .fetch_all(conn)
        .await?;
        self.cells.extend(found.iter().map(|found| MarketCell {
            org_id: found.org_id.clone(),
            submarket: found.submarket.clone(),
            property_type: found.property_type.clone(),
            quarter_start: found.quarter_start,
        }));
        Ok(found)
    }

    /// Recomputes what the batch's events affect, and queues the cache views to
    /// refresh; runs in the batch's transaction, after its last event.
    pub async fn finish(self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        let resized: Vec<Uuid> = self.resized.iter().copied().collect();
        let comps: Vec<Uuid> = self.comps.iter().copied().collect();
        // Sale price per square foot of the building's current rentable area: for the
        // sales the batch wrote and every sale of a building whose area may have changed.
        sqlx::query(
            "UPDATE comps c
                SET price_psf = round(c.sale_price / b.rentable_area_sqft, 2)
               FROM buildings b
              WHERE c.building_id = b.id AND c.kind = 'sale'
                AND (c.id = ANY($1) OR b.id = ANY($2))
                AND c.price_psf IS DISTINCT FROM round(c.sale_price / b.rentable_area_sqft, 2)",
        )
        .bind(&comps)
        .bind(&resized)
        .execute(&mut *conn)
        .await?;
        for building in &self.stats {
            recompute_building_stats(conn, *building).await?;
        }
        for cell in &self.cells {
            recompute_market_cell(conn, cell).await?;
        }
        let buildings: Vec<Uuid> = self.buildings.iter().copied().collect();
        let orgs: Vec<String> = self.orgs.into_iter().collect();
        // A request already queued is renewed, not skipped: if a refresh is reading it
        // right now (row locked), this waits for that refresh to finish and queues the
        // view again, so the refresh that read the older rows is never the last one.
        sqlx::query(
            "INSERT INTO cache_refresh_outbox (org_id, view, view_id)
             SELECT org_id, 'building', id::text FROM buildings WHERE id = ANY($1)
             UNION
             SELECT org_id, 'comp', id::text FROM comps WHERE id = ANY($2) OR building_id = ANY($3)
             UNION
             SELECT org, 'lists', org FROM unnest($4::text[]) AS org
             ON CONFLICT (view, view_id, org_id) DO UPDATE SET created_at = EXCLUDED.created_at",
        )
        .bind(&buildings)
        .bind(&comps)
        .bind(&resized)
        .bind(&orgs)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// Empties the catalog's tables (a rebuild, inside its transaction). `DELETE`, not
/// `TRUNCATE`: readers keep seeing the old rows until the rebuild commits.
pub async fn clear(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    for table in ["market_stats", "building_comp_stats", "comps", "buildings"] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn update_details(
    conn: &mut PgConnection,
    id: Uuid,
    version: i64,
    details: &BuildingDetails,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE buildings
            SET name = $3, property_type = $4, building_class = $5, rentable_area_sqft = $6,
                year_built = $7, floors = $8, submarket = $9, version = $2, updated_at = $10
          WHERE id = $1",
    )
    .bind(id)
    .bind(version)
    .bind(details.name.as_str())
    .bind(details.property_type.as_str())
    .bind(details.building_class.map(TextEnum::as_str))
    .bind(details.rentable_area_sqft.value())
    .bind(details.year_built.map(|y| i32::from(y.value())))
    .bind(details.floors.map(|f| i32::from(f.value())))
    .bind(details.submarket.as_ref().map(|s| s.as_str()))
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

async fn insert_comp(
    conn: &mut PgConnection,
    id: Uuid,
    org_id: &str,
    building_id: Uuid,
    version: i64,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    // The terms are written next by `write_terms`; `kind` and `deal_date` are set there.
    sqlx::query(
        "INSERT INTO comps (id, org_id, building_id, version, kind, deal_date, recorded_at, updated_at)
         VALUES ($1, $2, $3, $4, 'lease', '1900-01-01', $5, $5)",
    )
    .bind(id)
    .bind(org_id)
    .bind(building_id)
    .bind(version)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes a comp's complete terms and what is derived from them; new terms are not
/// verified (an amendment clears verification).
async fn write_terms(
    conn: &mut PgConnection,
    id: Uuid,
    version: i64,
    terms: &CompTerms,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    match terms {
        CompTerms::Lease(lease) => write_lease(conn, id, version, lease, at).await,
        CompTerms::Sale(sale) => write_sale(conn, id, version, sale, at).await,
    }
}

async fn write_lease(
    conn: &mut PgConnection,
    id: Uuid,
    version: i64,
    lease: &LeaseTerms,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    let ner = rent::net_effective_rent_psf(&LeaseEconomics {
        starting_rent_psf: lease.starting_rent_psf.value(),
        term_months: u32::from(lease.term_months.value()),
        free_rent_months: u32::from(lease.free_rent_months.value()),
        ti_allowance_psf: lease.ti_allowance_psf.value(),
        escalation_pct: lease.escalation_pct.value(),
    });
    sqlx::query(
        "UPDATE comps
            SET kind = 'lease', deal_date = $3, tenant = $4, suite = $5, leased_area_sqft = $6,
                starting_rent_psf = $7, lease_type = $8, term_months = $9,
                free_rent_months = $10, ti_allowance_psf = $11, escalation_pct = $12,
                net_effective_rent_psf = $13,
                sale_price = NULL, buyer = NULL, seller = NULL, cap_rate_pct = NULL,
                price_psf = NULL, verified = false, version = $2, updated_at = $14
          WHERE id = $1",
    )
    .bind(id)
    .bind(version)
    .bind(lease.commencement_date.value())
    .bind(lease.tenant.as_str())
    .bind(lease.suite.as_ref().map(|s| s.as_str()))
    .bind(lease.leased_area_sqft.value())
    .bind(lease.starting_rent_psf.value())
    .bind(lease.lease_type.as_str())
    .bind(i32::from(lease.term_months.value()))
    .bind(i32::from(lease.free_rent_months.value()))
    .bind(lease.ti_allowance_psf.value())
    .bind(lease.escalation_pct.value())
    .bind(ner)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

async fn write_sale(
    conn: &mut PgConnection,
    id: Uuid,
    version: i64,
    sale: &SaleTerms,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    // Price per square foot needs the building's area: computed in `finish`.
    sqlx::query(
        "UPDATE comps
            SET kind = 'sale', deal_date = $3, sale_price = $4, buyer = $5, seller = $6,
                cap_rate_pct = $7,
                tenant = NULL, suite = NULL, leased_area_sqft = NULL, starting_rent_psf = NULL,
                lease_type = NULL, term_months = NULL, free_rent_months = NULL,
                ti_allowance_psf = NULL, escalation_pct = NULL, net_effective_rent_psf = NULL,
                verified = false, version = $2, updated_at = $8
          WHERE id = $1",
    )
    .bind(id)
    .bind(version)
    .bind(sale.sale_date.value())
    .bind(sale.sale_price.value())
    .bind(sale.buyer.as_str())
    .bind(sale.seller.as_str())
    .bind(sale.cap_rate_pct.map(|c| c.value()))
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The first day of the month `months` before `date`'s month, plus `date`'s day (clamped).
fn months_before(date: NaiveDate, months: u32) -> NaiveDate {
    date.checked_sub_months(chrono::Months::new(months))
        .unwrap_or(NaiveDate::MIN)
}

/// Count, and the average and median net effective rent of the leases that commenced
/// in the [`RENT_WINDOW_MONTHS`] up to the building's latest lease; a building
/// without live comps has no row.
async fn recompute_building_stats(
    conn: &mut PgConnection,
    building: Uuid,
) -> Result<(), sqlx::Error> {
    let comps: Vec<(String, String, NaiveDate, Option<Decimal>)> = sqlx::query_as(
        "SELECT org_id, kind, deal_date, net_effective_rent_psf
           FROM comps WHERE building_id = $1 AND NOT retracted",
    )
    .bind(building)
    .fetch_all(&mut *conn)
    .await?;
    let Some(org_id) = comps.first().map(|c| c.0.clone()) else {
        sqlx::query("DELETE FROM building_comp_stats WHERE building_id = $1")
            .bind(building)
            .execute(conn)
            .await?;
        return Ok(());
    };
    let lease_count = comps.iter().filter(|c| c.1 == "lease").count();
    let latest_comp_date = comps.iter().map(|c| c.2).max();
    let latest_lease = comps.iter().filter(|c| c.1 == "lease").map(|c| c.2).max();
    let window = latest_lease.map(|end| (months_before(end, RENT_WINDOW_MONTHS), end));
    let rents: Vec<Decimal> = match window {
        Some((start, end)) => comps
            .iter()
            .filter(|c| c.1 == "lease" && c.2 > start && c.2 <= end)
            .filter_map(|c| c.3)
            .collect(),
        None => Vec::new(),
    };
    sqlx::query(
        "INSERT INTO building_comp_stats (building_id, org_id, comp_count, lease_count,
             sale_count, latest_comp_date, rent_window_start, rent_window_end, rent_window_count,
             avg_effective_rent_psf, median_effective_rent_psf)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (building_id) DO UPDATE
            SET comp_count = EXCLUDED.comp_count, lease_count = EXCLUDED.lease_count,
                sale_count = EXCLUDED.sale_count, latest_comp_date = EXCLUDED.latest_comp_date,
                rent_window_start = EXCLUDED.rent_window_start,
                rent_window_end = EXCLUDED.rent_window_end,
                rent_window_count = EXCLUDED.rent_window_count,
                avg_effective_rent_psf = EXCLUDED.avg_effective_rent_psf,
                median_effective_rent_psf = EXCLUDED.median_effective_rent_psf",
    )
    .bind(building)
    .bind(org_id)
    .bind(i32::try_from(comps.len()).unwrap_or(i32::MAX))
    .bind(i32::try_from(lease_count).unwrap_or(i32::MAX))
    .bind(i32::try_from(comps.len() - lease_count).unwrap_or(i32::MAX))
    .bind(latest_comp_date)
    .bind(window.map(|w| w.0))
    .bind(window.map(|w| w.1))
    .bind(i32::try_from(rents.len()).unwrap_or(i32::MAX))
    .bind(rent::mean(&rents))
    .bind(rent::median(&rents))
    .execute(conn)
    .await?;
    Ok(())
}

/// Recomputes one market cell from the live comps in it; an empty cell has no row.
async fn recompute_market_cell(
    conn: &mut PgConnection,
    cell: &MarketCell,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM market_stats
          WHERE org_id = $1 AND submarket = $2 AND property_type = $3 AND quarter_start = $4",
    )
    .bind(&cell.org_id)
    .bind(&cell.submarket)
    .bind(&cell.property_type)
    .bind(cell.quarter_start)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO market_stats (org_id, submarket, property_type, quarter_start, lease_count,
             leased_area_sqft, avg_starting_rent_psf, avg_effective_rent_psf, sale_count,
             sale_volume, avg_price_psf, avg_cap_rate_pct)
         SELECT $1, $2, $3, $4,
                count(*) FILTER (WHERE c.kind = 'lease'),
                sum(c.leased_area_sqft),
                round(avg(c.starting_rent_psf), 2),
                round(avg(c.net_effective_rent_psf), 2),
                count(*) FILTER (WHERE c.kind = 'sale'),
                sum(c.sale_price),
                round(avg(c.price_psf), 2),
                round(avg(c.cap_rate_pct), 2)
           FROM comps c JOIN buildings b ON b.id = c.building_id
          WHERE c.org_id = $1 AND coalesce(b.submarket, '') = $2 AND b.property_type = $3
            AND c.deal_date >= $4 AND c.deal_date < ($4::date + interval '3 months')
            AND NOT c.retracted
         HAVING count(*) > 0",
    )
    .bind(&cell.org_id)
    .bind(&cell.submarket)
    .bind(&cell.property_type)
    .bind(cell.quarter_start)
    .execute(conn)
    .await?;
    Ok(())
}
