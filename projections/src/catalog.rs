//! The `catalog` projection: buildings, comps (with derived rent metrics), per-building
//! comp statistics and market statistics. They are one projection — one checkpoint,
//! one transaction per batch — because the statistics are computed from the rows of
//! both aggregates and must always agree with them.
//!
//! A batch is applied set-wise, in a fixed number of statements whatever its size:
//! 1. three reads: the rows of the comps the batch touches, the facts of every comp of
//!    the buildings whose statistics may change, and those buildings' rows;
//! 2. the events folded in memory, in log order, onto those rows: an event applies
//!    when its row is exactly one version behind it, is skipped when the row already
//!    reflects it (re-delivery), and stops the projection when a version is missing;
//! 3. one write per table: changed buildings and comps upserted, building statistics
//!    recomputed from the building's comps, market cells moved by the difference
//!    between their comps' contributions before and after the batch (running totals,
//!    so a cell's cost does not grow with its size), cache views queued.
//!
//! Market totals are exact decimals with their trailing zeros trimmed, so any
//! batching of the same events gives the same rows.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use domain::values::TextEnum;
use domain::{BuildingEvent, CompEvent, CompTerms};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Deserialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::log::LoggedEvent;
use crate::projector::{Check, Fold, Projector, Target};
use crate::queries::market::quarter_start;
use crate::rent::{self, LeaseEconomics};
use crate::ProjectionError;

/// Deals within this many months before a building's latest lease count towards its
/// rent statistics.
pub const RENT_WINDOW_MONTHS: u32 = 24;

/// The `catalog` projector.
#[derive(Debug)]
pub struct Catalog;

#[async_trait::async_trait]
impl Projector for Catalog {
    fn name(&self) -> &'static str {
        "catalog"
    }

    fn lock_key(&self) -> i64 {
        0x5052_4a5f_4341_5431 // "PRJ_CAT1"
    }

    fn tables(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("buildings", "id"),
            ("comps", "id"),
            ("building_comp_stats", "building_id"),
            (
                "market_stats",
                "org_id, submarket, property_type, quarter_start",
            ),
        ]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[LoggedEvent],
        target: Target,
    ) -> Result<(), ProjectionError> {
        apply(conn, events, target).await
    }

    fn checks(&self) -> &'static [Check] {
        &CHECKS
    }

    fn folds(&self) -> &'static [Fold] {
        &FOLDS
    }

    fn feeds_cache(&self) -> bool {
        true
    }
}

/// Each comp as the log tells it: version, organisation, building, whether retracted.
/// Three checks read it: folded once (parsing every comp event's JSON is most of a
/// verification's time).
const FOLDS: [Fold; 1] = [Fold {
    name: "comp_fold",
    query: "SELECT aggregate_id, max(sequence) AS version,
                   min(metadata::jsonb ->> 'org_id') FILTER (WHERE sequence = 1) AS org_id,
                   min(payload::jsonb -> event_type ->> 'building_id') FILTER (WHERE sequence = 1) AS building_id,
                   bool_or(event_type = 'CompRetracted') AS retracted
              FROM events
             WHERE aggregate_type = 'comp' AND (transaction_id, position) <= ($1::text::xid8, $2)
             GROUP BY aggregate_id",
}];

const CHECKS: [Check; 4] = [
    Check {
        name: "buildings",
        expected: "WITH fold AS (
                SELECT aggregate_id, max(sequence) AS version,
                       min(metadata::jsonb ->> 'org_id') FILTER (WHERE sequence = 1) AS org_id,
                       coalesce((array_agg(event_type ORDER BY sequence DESC)
                                 FILTER (WHERE event_type IN ('BuildingArchived', 'BuildingRestored')))[1]
                                = 'BuildingArchived', false) AS archived
                  FROM events
                 WHERE aggregate_type = 'building' AND (transaction_id, position) <= ($1::text::xid8, $2)
                 GROUP BY aggregate_id)
            SELECT org_id, count(*)::bigint,
                   sum(('x' || left(md5(aggregate_id || '|' || version || '|' || archived), 15))::bit(60)::bigint)
              FROM fold GROUP BY org_id",
        actual: "SELECT org_id, count(*)::bigint,
                   sum(('x' || left(md5(id::text || '|' || version || '|' || archived), 15))::bit(60)::bigint)
              FROM buildings GROUP BY org_id",
    },
    Check {
        name: "comps",
        expected: "SELECT org_id, count(*)::bigint,
                   sum(('x' || left(md5(aggregate_id || '|' || version || '|' || building_id || '|' || retracted), 15))::bit(60)::bigint)
              FROM comp_fold GROUP BY org_id",
        actual: "SELECT org_id, count(*)::bigint,
                   sum(('x' || left(md5(id::text || '|' || version || '|' || building_id || '|' || retracted), 15))::bit(60)::bigint)
              FROM comps GROUP BY org_id",
    },
    Check {
        name: "building_comp_stats",
        expected: "WITH live AS (SELECT org_id, building_id, count(*) AS comps FROM comp_fold
                            WHERE NOT retracted GROUP BY org_id, building_id)
            SELECT org_id, count(*)::bigint,
                   sum(('x' || left(md5(building_id || '|' || comps), 15))::bit(60)::bigint)
              FROM live GROUP BY org_id",
        actual: "SELECT org_id, count(*)::bigint,
                   sum(('x' || left(md5(building_id::text || '|' || comp_count), 15))::bit(60)::bigint)
              FROM building_comp_stats GROUP BY org_id",
    },
    Check {
        name: "market_stats",
        expected: "SELECT org_id, count(*)::bigint, 0::numeric FROM comp_fold
             WHERE NOT retracted GROUP BY org_id",
        actual: "SELECT org_id, sum(lease_count + sale_count)::bigint, 0::numeric
              FROM market_stats GROUP BY org_id",
    },
];

/// A `buildings` row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct BuildingRow {
    id: Uuid,
    org_id: String,
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

const BUILDING_COLUMNS: &str = "id, org_id, version, name, street, city, region, postal_code,
    country, lat, lon, property_type, building_class, rentable_area_sqft, year_built, floors,
    submarket, archived, archive_reason, registered_at, updated_at";

/// A `comps` row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct CompRow {
    id: Uuid,
    org_id: String,
    building_id: Uuid,
    version: i64,
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

const COMP_COLUMNS: &str = "id, org_id, building_id, version, kind, deal_date, tenant, suite,
    leased_area_sqft, starting_rent_psf, lease_type, term_months, free_rent_months,
    ti_allowance_psf, escalation_pct, net_effective_rent_psf, sale_price, buyer, seller,
    cap_rate_pct, price_psf, verified, retracted, retract_reason, recorded_at, updated_at";

/// What the statistics need of a comp.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct CompFacts {
    id: Uuid,
    org_id: String,
    building_id: Uuid,
    kind: String,
    deal_date: NaiveDate,
    leased_area_sqft: Option<Decimal>,
    starting_rent_psf: Option<Decimal>,
    net_effective_rent_psf: Option<Decimal>,
    sale_price: Option<Decimal>,
    cap_rate_pct: Option<Decimal>,
    price_psf: Option<Decimal>,
    retracted: bool,
}

impl From<&CompRow> for CompFacts {
    fn from(row: &CompRow) -> Self {
        Self {
            id: row.id,
            org_id: row.org_id.clone(),
            building_id: row.building_id,
            kind: row.kind.clone(),
            deal_date: row.deal_date,
            leased_area_sqft: row.leased_area_sqft,
            starting_rent_psf: row.starting_rent_psf,
            net_effective_rent_psf: row.net_effective_rent_psf,
            sale_price: row.sale_price,
            cap_rate_pct: row.cap_rate_pct,
            price_psf: row.price_psf,
            retracted: row.retracted,
        }
    }
}

/// One market-statistics cell.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct MarketCell {
    org_id: String,
    submarket: String,
    property_type: String,
    quarter_start: NaiveDate,
}

/// A cell's counts and exact totals (or the difference a batch makes to them).
#[derive(Debug, Clone, Default, PartialEq)]
struct CellTotals {
    lease_count: i64,
    sale_count: i64,
    cap_rate_count: i64,
    leased_area: Decimal,
    starting_rent: Decimal,
    effective_rent: Decimal,
    sale_volume: Decimal,
    price_psf: Decimal,
    cap_rate: Decimal,
}

impl CellTotals {
    /// What a live comp adds to its cell.
    fn of(comp: &CompFacts) -> Self {
        let zero = Decimal::ZERO;
        if comp.kind == "lease" {
            Self {
                lease_count: 1,
                leased_area: comp.leased_area_sqft.unwrap_or(zero),
                starting_rent: comp.starting_rent_psf.unwrap_or(zero),
                effective_rent: comp.net_effective_rent_psf.unwrap_or(zero),
                ..Self::default()
            }
        } else {
            Self {
                sale_count: 1,
                cap_rate_count: i64::from(comp.cap_rate_pct.is_some()),
                sale_volume: comp.sale_price.unwrap_or(zero),
                price_psf: comp.price_psf.unwrap_or(zero),
                cap_rate: comp.cap_rate_pct.unwrap_or(zero),
                ..Self::default()
            }
        }
    }

    fn add(&mut self, other: &Self, sign: i64) {
        let factor = Decimal::from(sign);
        self.lease_count += sign * other.lease_count;
        self.sale_count += sign * other.sale_count;
        self.cap_rate_count += sign * other.cap_rate_count;
        self.leased_area += factor * other.leased_area;
        self.starting_rent += factor * other.starting_rent;
        self.effective_rent += factor * other.effective_rent;
        self.sale_volume += factor * other.sale_volume;
        self.price_psf += factor * other.price_psf;
        self.cap_rate += factor * other.cap_rate;
    }

    fn is_zero(&self) -> bool {
        *self == Self::default()
    }
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

/// An event of the catalog, decoded.
enum Change {
    Building(Uuid, BuildingEvent),
    Comp(Uuid, CompEvent),
}

/// The catalog's events of a batch, in log order; events of other aggregates are skipped.
fn decode(events: &[LoggedEvent]) -> Result<Vec<(&LoggedEvent, Change)>, ProjectionError> {
    let mut decoded = Vec::with_capacity(events.len());
    for event in events {
        let building = match event.aggregate_type.as_str() {
            "building" => true,
            "comp" => false,
            // Other aggregates are not part of the catalog.
            _ => continue,
        };
        if event.event_version != "1" {
            return Err(unapplicable(
                event,
                format!("unknown event version {}", event.event_version),
            ));
        }
        let id = aggregate_uuid(event)?;
        let payload = |e: serde_json::Error| unapplicable(event, format!("payload: {e}"));
        let change = if building {
            Change::Building(
                id,
                BuildingEvent::deserialize(&event.payload).map_err(payload)?,
            )
        } else {
            Change::Comp(id, CompEvent::deserialize(&event.payload).map_err(payload)?)
        };
        decoded.push((event, change));
    }
    Ok(decoded)
}

/// The verdict of a row's stored version on an event.
enum Order {
    Apply,
    AlreadyApplied,
}

fn order(table: &str, stored: Option<i64>, event: &LoggedEvent) -> Result<Order, ProjectionError> {
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

/// Rounds to cents, half away from zero, always with two places (as SQL's `round(x, 2)`).
fn cents(value: Decimal) -> Decimal {
    let mut rounded = value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(2);
    rounded
}

/// A sale's price per square foot of its building's rentable area.
fn price_psf(sale_price: Option<Decimal>, area: Decimal) -> Option<Decimal> {
    sale_price
        .and_then(|price| price.checked_div(area))
        .map(cents)
}

/// Sales whose price per square foot follows their building's new area.
type Repriced = Vec<(Uuid, Option<Decimal>)>;

/// The rows a batch reads, changes and writes.
#[derive(Debug, Default)]
struct Batch {
    /// Buildings as they are now (read, then changed by the batch's events).
    buildings: HashMap<Uuid, BuildingRow>,
    /// The same buildings as they were before the batch.
    buildings_before: HashMap<Uuid, BuildingRow>,
    /// The comps the batch's events touch, as they are now.
    comps: HashMap<Uuid, CompRow>,
    /// Every comp of the buildings whose statistics may change, before the batch.
    facts_before: HashMap<Uuid, CompFacts>,
    changed_buildings: BTreeSet<Uuid>,
    changed_comps: BTreeSet<Uuid>,
    /// Comps recorded by this batch: no reader can have cached them before it.
    new_comps: BTreeSet<Uuid>,
    /// Buildings whose area changed: their sales' price per square foot follows.
    resized: BTreeSet<Uuid>,
    /// Buildings whose comp statistics to recompute.
    stats: BTreeSet<Uuid>,
    /// Organisations whose first list pages change.
    orgs: BTreeSet<String>,
}

/// Applies a batch of events, in order, to the catalog's rows.
async fn apply(
    conn: &mut PgConnection,
    events: &[LoggedEvent],
    target: Target,
) -> Result<(), ProjectionError> {
    let changes = decode(events)?;
    if changes.is_empty() {
        return Ok(());
    }
    let mut batch = Batch::read(conn, &changes).await?;
    for (event, change) in &changes {
        match change {
            Change::Building(id, decoded) => batch.apply_building(event, *id, decoded)?,
            Change::Comp(id, decoded) => batch.apply_comp(event, *id, decoded)?,
        }
    }
    batch.write(conn, target).await
}

impl Batch {
    /// Reads every row the batch's events may change or depend on: three statements.
    async fn read(
        conn: &mut PgConnection,
        changes: &[(&LoggedEvent, Change)],
    ) -> Result<Self, ProjectionError> {
        let mut comp_ids = BTreeSet::new();
        let mut building_ids = BTreeSet::new();
        // Buildings all of whose comps matter: new comps join their statistics, and
        // changed details move their comps to other cells or change their prices.
        let mut with_comps = BTreeSet::new();
        for (_, change) in changes {
            match change {
                Change::Building(id, event) => {
                    building_ids.insert(*id);
                    if let BuildingEvent::BuildingDetailsUpdated { .. } = event {
                        with_comps.insert(*id);
                    }
                }
                Change::Comp(id, event) => {
                    comp_ids.insert(*id);
                    match event {
                        CompEvent::LeaseCompRecorded { building_id, .. }
                        | CompEvent::SaleCompRecorded { building_id, .. } => {
                            with_comps.insert(building_id.0);
                        }
                        _ => {}
                    }
                }
            }
        }
        let comp_ids: Vec<Uuid> = comp_ids.into_iter().collect();
        let comps: Vec<CompRow> = sqlx::query_as(&format!(
            "SELECT {COMP_COLUMNS} FROM comps WHERE id = ANY($1)"
        ))
        .bind(&comp_ids)
        .fetch_all(&mut *conn)
        .await?;
        with_comps.extend(comps.iter().map(|c| c.building_id));
        let with_comps: Vec<Uuid> = with_comps.into_iter().collect();
        let facts: Vec<CompFacts> = sqlx::query_as(
            "SELECT id, org_id, building_id, kind, deal_date, leased_area_sqft, starting_rent_psf,
                    net_effective_rent_psf, sale_price, cap_rate_pct, price_psf, retracted
               FROM comps WHERE building_id = ANY($1)",
        )
        .bind(&with_comps)
        .fetch_all(&mut *conn)
        .await?;
        building_ids.extend(with_comps);
        let building_ids: Vec<Uuid> = building_ids.into_iter().collect();
        let buildings: Vec<BuildingRow> = sqlx::query_as(&format!(
            "SELECT {BUILDING_COLUMNS} FROM buildings WHERE id = ANY($1)"
        ))
        .bind(&building_ids)
        .fetch_all(&mut *conn)
        .await?;
        let buildings: HashMap<Uuid, BuildingRow> =
            buildings.into_iter().map(|b| (b.id, b)).collect();
        Ok(Self {
            buildings_before: buildings.clone(),
            buildings,
            comps: comps.into_iter().map(|c| (c.id, c)).collect(),
            facts_before: facts.into_iter().map(|f| (f.id, f)).collect(),
            ..Self::default()
        })
    }

    fn apply_building(
        &mut self,
        event: &LoggedEvent,
        id: Uuid,
        decoded: &BuildingEvent,
    ) -> Result<(), ProjectionError> {
        let stored = self.buildings.get(&id).map(|b| b.version);
        if let Order::AlreadyApplied = order("buildings", stored, event)? {
            return Ok(());
        }
        let at = event.recorded_at;
        let version = event.sequence;
        if let BuildingEvent::BuildingRegistered {
            org_id,
            details,
            address,
            location,
        } = decoded
        {
            self.buildings.insert(
                id,
                BuildingRow {
                    id,
                    org_id: org_id.as_str().to_owned(),
                    version,
                    name: details.name.as_str().to_owned(),
                    street: address.street.as_str().to_owned(),
                    city: address.city.as_str().to_owned(),
                    region: address.region.as_ref().map(|r| r.as_str().to_owned()),
                    postal_code: address.postal_code.as_ref().map(|p| p.as_str().to_owned()),
                    country: address.country.as_str().to_owned(),
                    lat: location.lat(),
                    lon: location.lon(),
                    property_type: details.property_type.as_str().to_owned(),
                    building_class: details.building_class.map(|c| c.as_str().to_owned()),
                    rentable_area_sqft: details.rentable_area_sqft.value(),
                    year_built: details.year_built.map(|y| i32::from(y.value())),
                    floors: details.floors.map(|f| i32::from(f.value())),
                    submarket: details.submarket.as_ref().map(|s| s.as_str().to_owned()),
                    archived: false,
                    archive_reason: None,
                    registered_at: at,
                    updated_at: at,
                },
            );
        } else {
            let Some(row) = self.buildings.get_mut(&id) else {
                return Err(unapplicable(event, "no buildings row to change"));
            };
            match decoded {
                BuildingEvent::BuildingRegistered { .. } => {
                    return Err(unapplicable(event, "the building is already registered"));
                }
                BuildingEvent::BuildingDetailsUpdated { details } => {
                    row.name = details.name.as_str().to_owned();
                    row.property_type = details.property_type.as_str().to_owned();
                    row.building_class = details.building_class.map(|c| c.as_str().to_owned());
                    row.rentable_area_sqft = details.rentable_area_sqft.value();
                    row.year_built = details.year_built.map(|y| i32::from(y.value()));
                    row.floors = details.floors.map(|f| i32::from(f.value()));
                    row.submarket = details.submarket.as_ref().map(|s| s.as_str().to_owned());
                    self.resized.insert(id);
                }
                BuildingEvent::BuildingRelocated { address, location } => {
                    row.street = address.street.as_str().to_owned();
                    row.city = address.city.as_str().to_owned();
                    row.region = address.region.as_ref().map(|r| r.as_str().to_owned());
                    row.postal_code = address.postal_code.as_ref().map(|p| p.as_str().to_owned());
                    row.country = address.country.as_str().to_owned();
                    row.lat = location.lat();
                    row.lon = location.lon();
                }
                BuildingEvent::BuildingArchived { reason } => {
                    row.archived = true;
                    row.archive_reason = Some(reason.as_str().to_owned());
                }
                BuildingEvent::BuildingRestored {} => {
                    row.archived = false;
                    row.archive_reason = None;
                }
            }
            row.version = version;
            row.updated_at = at;
        }
        self.changed_buildings.insert(id);
        let org_id = event
            .meta("org_id")
            .ok_or_else(|| unapplicable(event, "the event's metadata names no organisation"))?;
        self.orgs.insert(org_id.to_owned());
        Ok(())
    }

    fn apply_comp(
        &mut self,
        event: &LoggedEvent,
        id: Uuid,
        decoded: &CompEvent,
    ) -> Result<(), ProjectionError> {
        let stored = self.comps.get(&id).map(|c| c.version);
        if let Order::AlreadyApplied = order("comps", stored, event)? {
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
                let row = recorded(
                    id,
                    org_id.as_str(),
                    building_id.0,
                    &CompTerms::Lease(terms.clone()),
                    version,
                    at,
                );
                self.comps.insert(id, row);
                self.new_comps.insert(id);
            }
            CompEvent::SaleCompRecorded {
                org_id,
                building_id,
                terms,
            } => {
                let row = recorded(
                    id,
                    org_id.as_str(),
                    building_id.0,
                    &CompTerms::Sale(terms.clone()),
                    version,
                    at,
                );
                self.comps.insert(id, row);
                self.new_comps.insert(id);
            }
            other => {
                let Some(row) = self.comps.get_mut(&id) else {
                    return Err(unapplicable(event, "no comps row to change"));
                };
                match other {
                    CompEvent::CompAmended { terms } => write_terms(row, terms),
                    CompEvent::CompVerified {} => row.verified = true,
                    CompEvent::CompRetracted { reason } => {
                        row.retracted = true;
                        row.retract_reason = Some(reason.as_str().to_owned());
                    }
                    CompEvent::LeaseCompRecorded { .. } | CompEvent::SaleCompRecorded { .. } => {
                        return Err(unapplicable(event, "the comp is already recorded"));
                    }
                }
                row.version = version;
                row.updated_at = at;
            }
        }
        let (building_id, org_id) = match self.comps.get(&id) {
            Some(row) => (row.building_id, row.org_id.clone()),
            None => return Err(unapplicable(event, "no comps row to change")),
        };
        if !self.buildings.contains_key(&building_id) {
            return Err(unapplicable(
                event,
                "the comp's building is not in the projection",
            ));
        }
        self.changed_comps.insert(id);
        self.stats.insert(building_id);
        self.orgs.insert(org_id);
        Ok(())
    }

    /// The facts of every comp of the read buildings after the batch, and the comps
    /// (not otherwise changed) whose price per square foot follows a new area.
    fn facts_after(&mut self) -> (HashMap<Uuid, CompFacts>, Repriced) {
        for row in self.comps.values_mut() {
            if row.kind == "sale" {
                if let Some(building) = self.buildings.get(&row.building_id) {
                    row.price_psf = price_psf(row.sale_price, building.rentable_area_sqft);
                }
            }
        }
        let mut facts = self.facts_before.clone();
        let mut repriced = Vec::new();
        for fact in facts.values_mut() {
            if fact.kind != "sale"
                || self.comps.contains_key(&fact.id)
                || !self.resized.contains(&fact.building_id)
            {
                continue;
            }
            let area = self
                .buildings
                .get(&fact.building_id)
                .map(|b| b.rentable_area_sqft);
            let price = area.and_then(|area| price_psf(fact.sale_price, area));
            if price != fact.price_psf {
                fact.price_psf = price;
                repriced.push((fact.id, price));
            }
        }
        for row in self.comps.values() {
            facts.insert(row.id, CompFacts::from(row));
        }
        (facts, repriced)
    }

    /// What the batch moves in each market cell: contributions after minus before.
    fn cell_deltas(&self, after: &HashMap<Uuid, CompFacts>) -> BTreeMap<MarketCell, CellTotals> {
        let mut deltas: BTreeMap<MarketCell, CellTotals> = BTreeMap::new();
        let sides = [
            (&self.facts_before, &self.buildings_before, -1),
            (after, &self.buildings, 1),
        ];
        for (facts, buildings, sign) in sides {
            for fact in facts.values().filter(|f| !f.retracted) {
                let Some(building) = buildings.get(&fact.building_id) else {
                    continue;
                };
                let cell = MarketCell {
                    org_id: fact.org_id.clone(),
                    submarket: building.submarket.clone().unwrap_or_default(),
                    property_type: building.property_type.clone(),
                    quarter_start: quarter_start(fact.deal_date),
                };
                deltas
                    .entry(cell)
                    .or_default()
                    .add(&CellTotals::of(fact), sign);
            }
        }
        deltas.retain(|_, delta| !delta.is_zero());
        deltas
    }

    /// Writes what the batch changed: at most eight statements.
    async fn write(
        mut self,
        conn: &mut PgConnection,
        target: Target,
    ) -> Result<(), ProjectionError> {
        let (facts, repriced) = self.facts_after();
        let deltas = self.cell_deltas(&facts);
        let buildings: Vec<&BuildingRow> = self
            .changed_buildings
            .iter()
            .filter_map(|id| self.buildings.get(id))
            .collect();
        upsert_buildings(conn, &buildings).await?;
        let comps: Vec<&CompRow> = self
            .changed_comps
            .iter()
            .filter_map(|id| self.comps.get(id))
            .collect();
        upsert_comps(conn, &comps).await?;
        reprice(conn, &repriced).await?;
        write_building_stats(conn, &self.stats, &facts).await?;
        move_market_cells(conn, &deltas).await?;
        match target {
            Target::Live => self.queue_cache_refresh(conn, &facts).await,
            Target::Shadow => Ok(()),
        }
    }

    /// Queues the cache views the batch changed, in its transaction. A request already
    /// queued is renewed, not skipped: if a refresh is reading it right now (row
    /// locked), this waits for that refresh and queues the view again, so the refresh
    /// that read the older rows is never the last one.
    ///
    /// Details created by this batch are not queued: a reader that looked for them
    /// before the batch committed found nothing, and nothing is cached for a view that
    /// is not found. (A bulk import would otherwise queue a mark for every new row.)
    async fn queue_cache_refresh(
        &self,
        conn: &mut PgConnection,
        facts: &HashMap<Uuid, CompFacts>,
    ) -> Result<(), ProjectionError> {
        let mut views: BTreeSet<(String, &'static str, String)> = BTreeSet::new();
        for id in self.changed_buildings.iter().chain(&self.stats) {
            if !self.buildings_before.contains_key(id) {
                continue;
            }
            if let Some(building) = self.buildings.get(id) {
                views.insert((building.org_id.clone(), "building", id.to_string()));
            }
        }
        for id in self.changed_comps.difference(&self.new_comps) {
            if let Some(comp) = self.comps.get(id) {
                views.insert((comp.org_id.clone(), "comp", id.to_string()));
            }
        }
        for fact in facts
            .values()
            .filter(|f| self.resized.contains(&f.building_id) && !self.new_comps.contains(&f.id))
        {
            views.insert((fact.org_id.clone(), "comp", fact.id.to_string()));
        }
        for org in &self.orgs {
            views.insert((org.clone(), "lists", org.clone()));
        }
        if views.is_empty() {
            return Ok(());
        }
        let mut orgs = Vec::with_capacity(views.len());
        let mut kinds = Vec::with_capacity(views.len());
        let mut ids = Vec::with_capacity(views.len());
        for (org, kind, id) in views {
            orgs.push(org);
            kinds.push(kind);
            ids.push(id);
        }
        sqlx::query(
            "INSERT INTO cache_refresh_outbox (org_id, view, view_id)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
             ON CONFLICT (view, view_id, org_id) DO UPDATE SET created_at = EXCLUDED.created_at",
        )
        .bind(&orgs)
        .bind(&kinds)
        .bind(&ids)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// A new comp's row: its terms, not yet verified.
fn recorded(
    id: Uuid,
    org_id: &str,
    building_id: Uuid,
    terms: &CompTerms,
    version: i64,
    at: DateTime<Utc>,
) -> CompRow {
    let mut row = CompRow {
        id,
        org_id: org_id.to_owned(),
        building_id,
        version,
        kind: String::new(),
        deal_date: NaiveDate::MIN,
        tenant: None,
        suite: None,
        leased_area_sqft: None,
        starting_rent_psf: None,
        lease_type: None,
        term_months: None,
        free_rent_months: None,
        ti_allowance_psf: None,
        escalation_pct: None,
        net_effective_rent_psf: None,
        sale_price: None,
        buyer: None,
        seller: None,
        cap_rate_pct: None,
        price_psf: None,
        verified: false,
        retracted: false,
        retract_reason: None,
        recorded_at: at,
        updated_at: at,
    };
    write_terms(&mut row, terms);
    row
}

/// A comp's complete terms and what is derived from them; new terms are not verified
/// (an amendment clears verification). A sale's price per square foot needs its
/// building's area and is set once the batch is folded.
fn write_terms(row: &mut CompRow, terms: &CompTerms) {
    match terms {
        CompTerms::Lease(lease) => {
            row.kind = "lease".into();
            row.deal_date = lease.commencement_date.value();
            row.tenant = Some(lease.tenant.as_str().to_owned());
            row.suite = lease.suite.as_ref().map(|s| s.as_str().to_owned());
            row.leased_area_sqft = Some(lease.leased_area_sqft.value());
            row.starting_rent_psf = Some(lease.starting_rent_psf.value());
            row.lease_type = Some(lease.lease_type.as_str().to_owned());
            row.term_months = Some(i32::from(lease.term_months.value()));
            row.free_rent_months = Some(i32::from(lease.free_rent_months.value()));
            row.ti_allowance_psf = Some(lease.ti_allowance_psf.value());
            row.escalation_pct = Some(lease.escalation_pct.value());
            row.net_effective_rent_psf = Some(rent::net_effective_rent_psf(&LeaseEconomics {
                starting_rent_psf: lease.starting_rent_psf.value(),
                term_months: u32::from(lease.term_months.value()),
                free_rent_months: u32::from(lease.free_rent_months.value()),
                ti_allowance_psf: lease.ti_allowance_psf.value(),
                escalation_pct: lease.escalation_pct.value(),
            }));
            row.sale_price = None;
            row.buyer = None;
            row.seller = None;
            row.cap_rate_pct = None;
            row.price_psf = None;
        }
        CompTerms::Sale(sale) => {
            row.kind = "sale".into();
            row.deal_date = sale.sale_date.value();
            row.sale_price = Some(sale.sale_price.value());
            row.buyer = Some(sale.buyer.as_str().to_owned());
            row.seller = Some(sale.seller.as_str().to_owned());
            row.cap_rate_pct = sale.cap_rate_pct.map(|c| c.value());
            row.tenant = None;
            row.suite = None;
            row.leased_area_sqft = None;
            row.starting_rent_psf = None;
            row.lease_type = None;
            row.term_months = None;
            row.free_rent_months = None;
            row.ti_allowance_psf = None;
            row.escalation_pct = None;
            row.net_effective_rent_psf = None;
        }
    }
    row.verified = false;
}

/// One column of a set of rows, for an `unnest` parameter.
fn column<R, T>(rows: &[&R], f: impl Fn(&R) -> T) -> Vec<T> {
    rows.iter().map(|r| f(r)).collect()
}

async fn upsert_buildings(
    conn: &mut PgConnection,
    rows: &[&BuildingRow],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO buildings (id, org_id, version, name, street, city, region, postal_code,
             country, lat, lon, location, property_type, building_class, rentable_area_sqft,
             year_built, floors, submarket, archived, archive_reason, registered_at, updated_at)
         SELECT u.id, u.org_id, u.version, u.name, u.street, u.city, u.region, u.postal_code,
                u.country, u.lat, u.lon, ST_SetSRID(ST_MakePoint(u.lon, u.lat), 4326)::geography,
                u.property_type, u.building_class, u.rentable_area_sqft, u.year_built, u.floors,
                u.submarket, u.archived, u.archive_reason, u.registered_at, u.updated_at
           FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[],
                       $7::text[], $8::text[], $9::text[], $10::float8[], $11::float8[],
                       $12::text[], $13::text[], $14::numeric[], $15::int[], $16::int[],
                       $17::text[], $18::bool[], $19::text[], $20::timestamptz[],
                       $21::timestamptz[])
                AS u(id, org_id, version, name, street, city, region, postal_code, country, lat,
                     lon, property_type, building_class, rentable_area_sqft, year_built, floors,
                     submarket, archived, archive_reason, registered_at, updated_at)
         ON CONFLICT (id) DO UPDATE
            SET org_id = EXCLUDED.org_id, version = EXCLUDED.version, name = EXCLUDED.name,
                street = EXCLUDED.street, city = EXCLUDED.city, region = EXCLUDED.region,
                postal_code = EXCLUDED.postal_code, country = EXCLUDED.country,
                lat = EXCLUDED.lat, lon = EXCLUDED.lon, location = EXCLUDED.location,
                property_type = EXCLUDED.property_type, building_class = EXCLUDED.building_class,
                rentable_area_sqft = EXCLUDED.rentable_area_sqft,
                year_built = EXCLUDED.year_built, floors = EXCLUDED.floors,
                submarket = EXCLUDED.submarket, archived = EXCLUDED.archived,
                archive_reason = EXCLUDED.archive_reason,
                registered_at = EXCLUDED.registered_at, updated_at = EXCLUDED.updated_at",
    )
    .bind(column(rows, |r| r.id))
    .bind(column(rows, |r| r.org_id.clone()))
    .bind(column(rows, |r| r.version))
    .bind(column(rows, |r| r.name.clone()))
    .bind(column(rows, |r| r.street.clone()))
    .bind(column(rows, |r| r.city.clone()))
    .bind(column(rows, |r| r.region.clone()))
    .bind(column(rows, |r| r.postal_code.clone()))
    .bind(column(rows, |r| r.country.clone()))
    .bind(column(rows, |r| r.lat))
    .bind(column(rows, |r| r.lon))
    .bind(column(rows, |r| r.property_type.clone()))
    .bind(column(rows, |r| r.building_class.clone()))
    .bind(column(rows, |r| r.rentable_area_sqft))
    .bind(column(rows, |r| r.year_built))
    .bind(column(rows, |r| r.floors))
    .bind(column(rows, |r| r.submarket.clone()))
    .bind(column(rows, |r| r.archived))
    .bind(column(rows, |r| r.archive_reason.clone()))
    .bind(column(rows, |r| r.registered_at))
    .bind(column(rows, |r| r.updated_at))
    .execute(conn)
    .await?;
    Ok(())
}

async fn upsert_comps(conn: &mut PgConnection, rows: &[&CompRow]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(&format!(
        "INSERT INTO comps ({COMP_COLUMNS})
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::bigint[], $5::text[],
                              $6::date[], $7::text[], $8::text[], $9::numeric[], $10::numeric[],
                              $11::text[], $12::int[], $13::int[], $14::numeric[], $15::numeric[],
                              $16::numeric[], $17::numeric[], $18::text[], $19::text[],
                              $20::numeric[], $21::numeric[], $22::bool[], $23::bool[],
                              $24::text[], $25::timestamptz[], $26::timestamptz[])
         ON CONFLICT (id) DO UPDATE
            SET org_id = EXCLUDED.org_id, building_id = EXCLUDED.building_id,
                version = EXCLUDED.version, kind = EXCLUDED.kind, deal_date = EXCLUDED.deal_date,
                tenant = EXCLUDED.tenant, suite = EXCLUDED.suite,
                leased_area_sqft = EXCLUDED.leased_area_sqft,
                starting_rent_psf = EXCLUDED.starting_rent_psf, lease_type = EXCLUDED.lease_type,
                term_months = EXCLUDED.term_months, free_rent_months = EXCLUDED.free_rent_months,
                ti_allowance_psf = EXCLUDED.ti_allowance_psf,
                escalation_pct = EXCLUDED.escalation_pct,
                net_effective_rent_psf = EXCLUDED.net_effective_rent_psf,
                sale_price = EXCLUDED.sale_price, buyer = EXCLUDED.buyer, seller = EXCLUDED.seller,
                cap_rate_pct = EXCLUDED.cap_rate_pct, price_psf = EXCLUDED.price_psf,
                verified = EXCLUDED.verified, retracted = EXCLUDED.retracted,
                retract_reason = EXCLUDED.retract_reason, recorded_at = EXCLUDED.recorded_at,
                updated_at = EXCLUDED.updated_at"
    ))
    .bind(column(rows, |r| r.id))
    .bind(column(rows, |r| r.org_id.clone()))
    .bind(column(rows, |r| r.building_id))
    .bind(column(rows, |r| r.version))
    .bind(column(rows, |r| r.kind.clone()))
    .bind(column(rows, |r| r.deal_date))
    .bind(column(rows, |r| r.tenant.clone()))
    .bind(column(rows, |r| r.suite.clone()))
    .bind(column(rows, |r| r.leased_area_sqft))
    .bind(column(rows, |r| r.starting_rent_psf))
    .bind(column(rows, |r| r.lease_type.clone()))
    .bind(column(rows, |r| r.term_months))
    .bind(column(rows, |r| r.free_rent_months))
    .bind(column(rows, |r| r.ti_allowance_psf))
    .bind(column(rows, |r| r.escalation_pct))
    .bind(column(rows, |r| r.net_effective_rent_psf))
    .bind(column(rows, |r| r.sale_price))
    .bind(column(rows, |r| r.buyer.clone()))
    .bind(column(rows, |r| r.seller.clone()))
    .bind(column(rows, |r| r.cap_rate_pct))
    .bind(column(rows, |r| r.price_psf))
    .bind(column(rows, |r| r.verified))
    .bind(column(rows, |r| r.retracted))
    .bind(column(rows, |r| r.retract_reason.clone()))
    .bind(column(rows, |r| r.recorded_at))
    .bind(column(rows, |r| r.updated_at))
    .execute(conn)
    .await?;
    Ok(())
}

/// New prices per square foot of sales the batch did not otherwise change.
async fn reprice(
    conn: &mut PgConnection,
    repriced: &[(Uuid, Option<Decimal>)],
) -> Result<(), sqlx::Error> {
    if repriced.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = repriced.iter().map(|r| r.0).collect();
    let prices: Vec<Option<Decimal>> = repriced.iter().map(|r| r.1).collect();
    sqlx::query(
        "UPDATE comps c SET price_psf = u.price_psf
           FROM unnest($1::uuid[], $2::numeric[]) AS u(id, price_psf)
          WHERE c.id = u.id",
    )
    .bind(&ids)
    .bind(&prices)
    .execute(conn)
    .await?;
    Ok(())
}

/// The first day of the month `months` before `date`'s month, plus `date`'s day (clamped).
fn months_before(date: NaiveDate, months: u32) -> NaiveDate {
    date.checked_sub_months(chrono::Months::new(months))
        .unwrap_or(NaiveDate::MIN)
}

/// One `building_comp_stats` row: count, and the average and median net effective
/// rent of the leases that commenced in the [`RENT_WINDOW_MONTHS`] up to the
/// building's latest lease.
#[derive(Debug)]
struct BuildingStats {
    building_id: Uuid,
    org_id: String,
    comp_count: i32,
    lease_count: i32,
    sale_count: i32,
    latest_comp_date: Option<NaiveDate>,
    window: Option<(NaiveDate, NaiveDate)>,
    window_count: i32,
    avg: Option<Decimal>,
    median: Option<Decimal>,
}

fn building_stats(building_id: Uuid, comps: &[&CompFacts]) -> Option<BuildingStats> {
    let org_id = comps.first()?.org_id.clone();
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let leases: Vec<&&CompFacts> = comps.iter().filter(|c| c.kind == "lease").collect();
    let latest_lease = leases.iter().map(|c| c.deal_date).max();
    let window = latest_lease.map(|end| (months_before(end, RENT_WINDOW_MONTHS), end));
    let rents: Vec<Decimal> = match window {
        Some((start, end)) => leases
            .iter()
            .filter(|c| c.deal_date > start && c.deal_date <= end)
            .filter_map(|c| c.net_effective_rent_psf)
            .collect(),
        None => Vec::new(),
    };
    Some(BuildingStats {
        building_id,
        org_id,
        comp_count: count(comps.len()),
        lease_count: count(leases.len()),
        sale_count: count(comps.len() - leases.len()),
        latest_comp_date: comps.iter().map(|c| c.deal_date).max(),
        window,
        window_count: count(rents.len()),
        avg: rent::mean(&rents),
        median: rent::median(&rents),
    })
}

/// Recomputes the statistics of `buildings` from their live comps; a building without
/// live comps has no row. Two statements.
async fn write_building_stats(
    conn: &mut PgConnection,
    buildings: &BTreeSet<Uuid>,
    facts: &HashMap<Uuid, CompFacts>,
) -> Result<(), sqlx::Error> {
    if buildings.is_empty() {
        return Ok(());
    }
    let mut live: HashMap<Uuid, Vec<&CompFacts>> = HashMap::new();
    for fact in facts
        .values()
        .filter(|f| !f.retracted && buildings.contains(&f.building_id))
    {
        live.entry(fact.building_id).or_default().push(fact);
    }
    let mut rows = Vec::new();
    let mut empty = Vec::new();
    for building in buildings {
        match live
            .get(building)
            .and_then(|comps| building_stats(*building, comps))
        {
            Some(stats) => rows.push(stats),
            None => empty.push(*building),
        }
    }
    if !empty.is_empty() {
        sqlx::query("DELETE FROM building_comp_stats WHERE building_id = ANY($1)")
            .bind(&empty)
            .execute(&mut *conn)
            .await?;
    }
    if rows.is_empty() {
        return Ok(());
    }
    let rows: Vec<&BuildingStats> = rows.iter().collect();
    sqlx::query(
        "INSERT INTO building_comp_stats (building_id, org_id, comp_count, lease_count,
             sale_count, latest_comp_date, rent_window_start, rent_window_end, rent_window_count,
             avg_effective_rent_psf, median_effective_rent_psf)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::int[], $5::int[],
                              $6::date[], $7::date[], $8::date[], $9::int[], $10::numeric[],
                              $11::numeric[])
         ON CONFLICT (building_id) DO UPDATE
            SET org_id = EXCLUDED.org_id, comp_count = EXCLUDED.comp_count,
                lease_count = EXCLUDED.lease_count, sale_count = EXCLUDED.sale_count,
                latest_comp_date = EXCLUDED.latest_comp_date,
                rent_window_start = EXCLUDED.rent_window_start,
                rent_window_end = EXCLUDED.rent_window_end,
                rent_window_count = EXCLUDED.rent_window_count,
                avg_effective_rent_psf = EXCLUDED.avg_effective_rent_psf,
                median_effective_rent_psf = EXCLUDED.median_effective_rent_psf",
    )
    .bind(column(&rows, |r| r.building_id))
    .bind(column(&rows, |r| r.org_id.clone()))
    .bind(column(&rows, |r| r.comp_count))
    .bind(column(&rows, |r| r.lease_count))
    .bind(column(&rows, |r| r.sale_count))
    .bind(column(&rows, |r| r.latest_comp_date))
    .bind(column(&rows, |r| r.window.map(|w| w.0)))
    .bind(column(&rows, |r| r.window.map(|w| w.1)))
    .bind(column(&rows, |r| r.window_count))
    .bind(column(&rows, |r| r.avg))
    .bind(column(&rows, |r| r.median))
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves each market cell by the batch's difference; a cell left without comps has no
/// row. Two statements.
async fn move_market_cells(
    conn: &mut PgConnection,
    deltas: &BTreeMap<MarketCell, CellTotals>,
) -> Result<(), sqlx::Error> {
    if deltas.is_empty() {
        return Ok(());
    }
    let cells: Vec<(&MarketCell, &CellTotals)> = deltas.iter().collect();
    let key = |f: fn(&MarketCell) -> String| cells.iter().map(|(c, _)| f(c)).collect::<Vec<_>>();
    let count = |f: fn(&CellTotals) -> i64| {
        cells
            .iter()
            .map(|(_, t)| i32::try_from(f(t)).unwrap_or(i32::MAX))
            .collect::<Vec<_>>()
    };
    let total = |f: fn(&CellTotals) -> Decimal| {
        cells
            .iter()
            .map(|(_, t)| f(t).normalize())
            .collect::<Vec<_>>()
    };
    let org_ids = key(|c| c.org_id.clone());
    let submarkets = key(|c| c.submarket.clone());
    let property_types = key(|c| c.property_type.clone());
    let quarters: Vec<NaiveDate> = cells.iter().map(|(c, _)| c.quarter_start).collect();
    sqlx::query(
        "INSERT INTO market_stats AS m (org_id, submarket, property_type, quarter_start,
             lease_count, sale_count, cap_rate_count, leased_area_total, starting_rent_total,
             effective_rent_total, sale_volume_total, price_psf_total, cap_rate_total)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::int[],
                              $6::int[], $7::int[], $8::numeric[], $9::numeric[],
                              $10::numeric[], $11::numeric[], $12::numeric[], $13::numeric[])
         ON CONFLICT (org_id, submarket, property_type, quarter_start) DO UPDATE
            SET lease_count = m.lease_count + EXCLUDED.lease_count,
                sale_count = m.sale_count + EXCLUDED.sale_count,
                cap_rate_count = m.cap_rate_count + EXCLUDED.cap_rate_count,
                leased_area_total = trim_scale(m.leased_area_total + EXCLUDED.leased_area_total),
                starting_rent_total = trim_scale(m.starting_rent_total + EXCLUDED.starting_rent_total),
                effective_rent_total = trim_scale(m.effective_rent_total + EXCLUDED.effective_rent_total),
                sale_volume_total = trim_scale(m.sale_volume_total + EXCLUDED.sale_volume_total),
                price_psf_total = trim_scale(m.price_psf_total + EXCLUDED.price_psf_total),
                cap_rate_total = trim_scale(m.cap_rate_total + EXCLUDED.cap_rate_total)",
    )
    .bind(&org_ids)
    .bind(&submarkets)
    .bind(&property_types)
    .bind(&quarters)
    .bind(count(|t| t.lease_count))
    .bind(count(|t| t.sale_count))
    .bind(count(|t| t.cap_rate_count))
    .bind(total(|t| t.leased_area))
    .bind(total(|t| t.starting_rent))
    .bind(total(|t| t.effective_rent))
    .bind(total(|t| t.sale_volume))
    .bind(total(|t| t.price_psf))
    .bind(total(|t| t.cap_rate))
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM market_stats m
          USING unnest($1::text[], $2::text[], $3::text[], $4::date[])
                AS k(org_id, submarket, property_type, quarter_start)
          WHERE m.org_id = k.org_id AND m.submarket = k.submarket
            AND m.property_type = k.property_type AND m.quarter_start = k.quarter_start
            AND m.lease_count = 0 AND m.sale_count = 0",
    )
    .bind(&org_ids)
    .bind(&submarkets)
    .bind(&property_types)
    .bind(&quarters)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(text: &str) -> Decimal {
        Decimal::from_str(text).expect("decimal")
    }

    #[test]
    fn prices_per_square_foot_round_half_away_from_zero_to_cents() {
        assert_eq!(
            price_psf(Some(d("25000000")), d("100000")),
            Some(d("250.00"))
        );
        assert_eq!(price_psf(Some(d("1")), d("8")), Some(d("0.13")));
        assert_eq!(price_psf(None, d("8")), None);
        assert_eq!(cents(d("2.5")).to_string(), "2.50");
    }

    #[test]
    fn a_cells_totals_cancel_out() {
        let lease = CompFacts {
            id: Uuid::nil(),
            org_id: "org".into(),
            building_id: Uuid::nil(),
            kind: "lease".into(),
            deal_date: NaiveDate::MIN,
            leased_area_sqft: Some(d("12500.5")),
            starting_rent_psf: Some(d("60")),
            net_effective_rent_psf: Some(d("50.00")),
            sale_price: None,
            cap_rate_pct: None,
            price_psf: None,
            retracted: false,
        };
        let mut totals = CellTotals::default();
        totals.add(&CellTotals::of(&lease), 1);
        assert_eq!(totals.lease_count, 1);
        assert_eq!(totals.leased_area, d("12500.5"));
        totals.add(&CellTotals::of(&lease), -1);
        assert!(totals.is_zero());
    }
}
