//! The documented shapes of read responses. The bodies themselves are the projections'
//! views serialised by serde (and cached as bytes); these types give them their OpenAPI
//! schema. Decimals are strings (`"85.50"`), dates `YYYY-MM-DD`, times RFC 3339,
//! enumerations their wire names (the same schemas as on input).

use chrono::{DateTime, Utc};
use domain::values::{BuildingClass, LeaseType, PropertyType};
use poem_openapi::{Enum, Object, Union};
use uuid::Uuid;

use crate::input::{Choice, DecimalText, IsoDate};

/// Which kind of comp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum CompKind {
    Lease,
    Sale,
}

/// Which kind of aggregate an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum AggregateType {
    Building,
    Comp,
}

#[derive(Debug, Object)]
pub struct AddressOut {
    pub street: String,
    pub city: String,
    #[oai(nullable)]
    pub region: Option<String>,
    #[oai(nullable)]
    pub postal_code: Option<String>,
    pub country: String,
}

#[derive(Debug, Object)]
pub struct LocationOut {
    pub lat: f64,
    pub lon: f64,
}

/// A building as lists show it.
#[derive(Debug, Object)]
pub struct BuildingOut {
    pub id: Uuid,
    /// The building's version this row reflects.
    pub version: i64,
    pub name: String,
    pub address: AddressOut,
    pub location: LocationOut,
    pub property_type: Choice<PropertyType>,
    #[oai(nullable)]
    pub building_class: Option<Choice<BuildingClass>>,
    pub rentable_area_sqft: DecimalText,
    #[oai(nullable)]
    pub year_built: Option<i32>,
    #[oai(nullable)]
    pub floors: Option<i32>,
    #[oai(nullable)]
    pub submarket: Option<String>,
    pub archived: bool,
    #[oai(nullable)]
    pub archive_reason: Option<String>,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Metres from `near`, in lists asked for near a point.
    #[oai(nullable)]
    pub distance_m: Option<f64>,
}

/// Net effective rents of the leases that commenced in the 24 months up to the
/// building's latest lease.
#[derive(Debug, Object)]
pub struct RentWindowOut {
    pub start: IsoDate,
    pub end: IsoDate,
    pub lease_count: i32,
    #[oai(nullable)]
    pub avg_effective_rent_psf: Option<DecimalText>,
    #[oai(nullable)]
    pub median_effective_rent_psf: Option<DecimalText>,
}

/// The building's live (not retracted) comps in numbers.
#[derive(Debug, Object)]
pub struct CompStatsOut {
    pub comp_count: i32,
    pub lease_count: i32,
    pub sale_count: i32,
    #[oai(nullable)]
    pub latest_comp_date: Option<IsoDate>,
    #[oai(nullable)]
    pub rent_window: Option<RentWindowOut>,
}

/// A building with its comp statistics.
#[derive(Debug, Object)]
pub struct BuildingDetailOut {
    #[oai(flatten)]
    pub building: BuildingOut,
    pub comp_stats: CompStatsOut,
}

#[derive(Debug, Object)]
pub struct BuildingPageOut {
    pub items: Vec<BuildingOut>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

/// A lease comp's terms (decimals as strings) and its net effective rent.
#[derive(Debug, Object)]
pub struct LeaseOut {
    pub tenant: String,
    #[oai(nullable)]
    pub suite: Option<String>,
    pub leased_area_sqft: DecimalText,
    pub starting_rent_psf: DecimalText,
    pub lease_type: Choice<LeaseType>,
    pub term_months: i32,
    pub commencement_date: IsoDate,
    pub free_rent_months: i32,
    pub ti_allowance_psf: DecimalText,
    pub escalation_pct: DecimalText,
    /// Derived (docs/read-side.md): rent paid over the term less TI, per year.
    pub net_effective_rent_psf: DecimalText,
}

/// A sale comp's terms (decimals as strings) and its price per square foot.
#[derive(Debug, Object)]
pub struct SaleOut {
    pub sale_price: DecimalText,
    pub sale_date: IsoDate,
    pub buyer: String,
    pub seller: String,
    #[oai(nullable)]
    pub cap_rate_pct: Option<DecimalText>,
    /// Derived: sale price over the building's rentable area.
    #[oai(nullable)]
    pub price_psf: Option<DecimalText>,
}

/// What every comp carries, lease or sale.
#[derive(Debug, Object)]
pub struct CompFields {
    pub id: Uuid,
    pub version: i64,
    pub building_id: Uuid,
    /// Commencement date of a lease, sale date of a sale.
    pub deal_date: IsoDate,
    pub verified: bool,
    pub retracted: bool,
    #[oai(nullable)]
    pub retract_reason: Option<String>,
    pub recorded_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Metres from `near` to the comp's building, in lists asked for near a point.
    #[oai(nullable)]
    pub distance_m: Option<f64>,
    /// With `expand=building`: the comp's building as lists show it.
    #[oai(nullable)]
    pub building: Option<BuildingOut>,
}

/// A lease comp: its terms are in `lease`.
#[derive(Debug, Object)]
pub struct LeaseCompOut {
    #[oai(flatten)]
    pub comp: CompFields,
    pub lease: LeaseOut,
}

/// A sale comp: its terms are in `sale`.
#[derive(Debug, Object)]
pub struct SaleCompOut {
    #[oai(flatten)]
    pub comp: CompFields,
    pub sale: SaleOut,
}

/// A comp: `kind` says which it is, and so whether its terms are in `lease` or in
/// `sale`.
#[derive(Debug, Union)]
#[oai(discriminator_name = "kind", one_of)]
pub enum CompOut {
    #[oai(mapping = "lease")]
    Lease(LeaseCompOut),
    #[oai(mapping = "sale")]
    Sale(SaleCompOut),
}

#[derive(Debug, Object)]
pub struct CompPageOut {
    pub items: Vec<CompOut>,
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

/// One submarket × property type × quarter.
#[derive(Debug, Object)]
pub struct MarketCellOut {
    /// `null` for buildings without a submarket.
    #[oai(nullable)]
    pub submarket: Option<String>,
    pub property_type: Choice<PropertyType>,
    /// `2026-Q1`.
    pub quarter: String,
    pub quarter_start: IsoDate,
    pub lease_count: i32,
    #[oai(nullable)]
    pub leased_area_sqft: Option<DecimalText>,
    #[oai(nullable)]
    pub avg_starting_rent_psf: Option<DecimalText>,
    #[oai(nullable)]
    pub avg_effective_rent_psf: Option<DecimalText>,
    pub sale_count: i32,
    #[oai(nullable)]
    pub sale_volume: Option<DecimalText>,
    #[oai(nullable)]
    pub avg_price_psf: Option<DecimalText>,
    #[oai(nullable)]
    pub avg_cap_rate_pct: Option<DecimalText>,
}

#[derive(Debug, Object)]
pub struct MarketStatsOut {
    pub items: Vec<MarketCellOut>,
}

/// One event: who did what, when.
#[derive(Debug, Object)]
pub struct AuditEntryOut {
    /// The event's place in the global log.
    pub position: i64,
    pub aggregate_type: AggregateType,
    pub aggregate_id: String,
    /// The aggregate's version after the event.
    pub version: i64,
    pub event_type: String,
    pub event_version: String,
    #[oai(nullable)]
    pub user_id: Option<String>,
    #[oai(nullable)]
    pub request_id: Option<String>,
    pub recorded_at: DateTime<Utc>,
    /// The event's data (docs/events.md).
    pub payload: serde_json::Value,
}

#[derive(Debug, Object)]
pub struct AuditPageOut {
    pub items: Vec<AuditEntryOut>,
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}
