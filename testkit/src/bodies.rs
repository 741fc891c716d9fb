//! The canonical request bodies the suites, benches and load tools send. Tests assert
//! figures that follow from them (a starting rent of 85.5, a net effective rent of
//! 50.00, a sale at 250.00 a square foot), so change a value only together with those
//! assertions.

use serde_json::{json, Value};

/// A building with every optional field set: One Vanderbilt.
pub fn building() -> Value {
    json!({
        "name": "One Vanderbilt",
        "address": {"street": "1 Vanderbilt Ave", "city": "New York", "region": "NY",
                    "postal_code": "10017", "country": "US"},
        "location": {"lat": 40.7527, "lon": -73.9787},
        "property_type": "office",
        "building_class": "A",
        "rentable_area_sqft": 1750000,
        "year_built": 2020,
        "floors": 93,
        "submarket": "Grand Central"
    })
}

/// A plainer office building named `name` at (`lat`, `lon`), in the submarket
/// "Midtown": what system tests, benches and seeds register many of.
pub fn building_at(name: &str, lat: f64, lon: f64) -> Value {
    json!({
        "name": name,
        "address": {"street": "1 Main St", "city": "New York", "region": "NY",
                    "postal_code": "10017", "country": "US"},
        "location": {"lat": lat, "lon": lon},
        "property_type": "office",
        "building_class": "A",
        "rentable_area_sqft": 100000,
        "submarket": "Midtown"
    })
}

/// A lease comp in `building_id` with every optional field set (a starting rent of
/// 85.5 a square foot).
pub fn lease(building_id: &str) -> Value {
    json!({
        "building_id": building_id,
        "tenant": "Globex",
        "suite": "12A",
        "leased_area_sqft": "12500",
        "starting_rent_psf": 85.5,
        "lease_type": "gross",
        "term_months": 120,
        "commencement_date": "2026-01-01",
        "free_rent_months": 6,
        "ti_allowance_psf": "95.00",
        "escalation_pct": 3
    })
}

/// A lease comp in `building_id` whose derived figures come out round: 60 a square
/// foot, 12 of 120 months free, 40 of allowance, no escalation — a net effective rent
/// of 50.00. It commences on 2026-02-01.
pub fn round_lease(building_id: &str) -> Value {
    json!({
        "building_id": building_id,
        "tenant": "Globex",
        "leased_area_sqft": "12500",
        "starting_rent_psf": "60",
        "lease_type": "gross",
        "term_months": 120,
        "commencement_date": "2026-02-01",
        "free_rent_months": 12,
        "ti_allowance_psf": "40",
        "escalation_pct": 0
    })
}

/// A sale comp of `building_id`: 25,000,000 (250.00 a square foot of a
/// [`building_at`]), closed 2025-06-30, a cap rate of 5.25.
pub fn sale(building_id: &str) -> Value {
    json!({
        "building_id": building_id,
        "sale_price": "25000000",
        "sale_date": "2025-06-30",
        "buyer": "Initech REIT",
        "seller": "Hooli Holdings",
        "cap_rate_pct": "5.25"
    })
}
