//! The bounds the server enforces on input, stated in the OpenAPI document: ranges of
//! numbers, lengths of text, the form of a key. The domain's values and the queries'
//! parsers are what enforce them (with a problem naming the field); this list only
//! says so, from their own constants, so that a client can check before it sends.
//! A test sends, for each bound, a value at it (not refused for that field) and one
//! beyond it (refused, naming the field): `api/tests/api/contract.rs`.

use domain::values::{
    BuildingName, City, Floors, Location, Months, PartyName, PostalCode, Reason, Region, Street,
    Submarket, Suite, YearBuilt,
};
use projections::queries::{MAX_PAGE_SIZE, MAX_RADIUS_M};
use serde_json::{json, Value};

use crate::commands::Idempotency;

/// Where a bound applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A property of a request body's schema.
    Property {
        schema: &'static str,
        property: &'static str,
    },
    /// Every parameter of this name (query or header), on every operation.
    Parameter(&'static str),
}

fn range(min: impl Into<Value>, max: impl Into<Value>) -> Value {
    json!({ "minimum": min.into(), "maximum": max.into() })
}

fn text(max_chars: usize) -> Value {
    json!({ "minLength": 1, "maxLength": max_chars })
}

/// Every bound, with the JSON Schema keywords that state it.
pub fn bounds() -> Vec<(Place, Value)> {
    let property = |schema, property| Place::Property { schema, property };
    let mut bounds = vec![
        (
            property("LocationInput", "lat"),
            range(-Location::MAX_LAT, Location::MAX_LAT),
        ),
        (
            property("LocationInput", "lon"),
            range(-Location::MAX_LON, Location::MAX_LON),
        ),
        (property("AddressInput", "street"), text(Street::MAX_CHARS)),
        (property("AddressInput", "city"), text(City::MAX_CHARS)),
        (property("AddressInput", "region"), text(Region::MAX_CHARS)),
        (
            property("AddressInput", "postal_code"),
            text(PostalCode::MAX_CHARS),
        ),
        (property("ReasonRequest", "reason"), text(Reason::MAX_CHARS)),
        (
            property("RecordSaleCompRequest", "buyer"),
            text(PartyName::MAX_CHARS),
        ),
        (
            property("RecordSaleCompRequest", "seller"),
            text(PartyName::MAX_CHARS),
        ),
        (Place::Parameter("limit"), range(1, MAX_PAGE_SIZE)),
        (
            Place::Parameter("radius_m"),
            json!({ "minimum": 0, "exclusiveMinimum": true, "maximum": MAX_RADIUS_M }),
        ),
        (
            Place::Parameter("Idempotency-Key"),
            json!({ "minLength": 1, "maxLength": Idempotency::MAX_LEN, "pattern": "^[!-~]+$" }),
        ),
    ];
    for schema in ["RegisterBuildingRequest", "UpdateBuildingRequest"] {
        bounds.extend([
            (property(schema, "name"), text(BuildingName::MAX_CHARS)),
            (property(schema, "submarket"), text(Submarket::MAX_CHARS)),
            (
                property(schema, "year_built"),
                range(YearBuilt::MIN, YearBuilt::MAX),
            ),
            (property(schema, "floors"), range(Floors::MIN, Floors::MAX)),
        ]);
    }
    for schema in ["RecordLeaseCompRequest", "AmendCompRequest"] {
        bounds.extend([
            (property(schema, "tenant"), text(PartyName::MAX_CHARS)),
            (property(schema, "suite"), text(Suite::MAX_CHARS)),
            (property(schema, "term_months"), range(1, Months::MAX)),
            // Less than the term, which is at most `Months::MAX`.
            (
                property(schema, "free_rent_months"),
                range(0, Months::MAX - 1),
            ),
        ]);
    }
    bounds.extend([
        (
            property("AmendCompRequest", "buyer"),
            text(PartyName::MAX_CHARS),
        ),
        (
            property("AmendCompRequest", "seller"),
            text(PartyName::MAX_CHARS),
        ),
    ]);
    bounds
}

/// Writes every bound into `spec` (the keywords join the property's or parameter's
/// schema); gives the places the document lacks (a mistake in this list, which a test
/// of the document catches).
pub fn state_bounds(spec: &mut Value) -> Vec<Place> {
    let mut unplaced = Vec::new();
    for (place, keywords) in bounds() {
        let Value::Object(keywords) = keywords else {
            continue;
        };
        let mut targets: Vec<&mut Value> = match place {
            Place::Property { schema, property } => spec
                .pointer_mut(&format!(
                    "/components/schemas/{schema}/properties/{property}"
                ))
                .into_iter()
                .collect(),
            Place::Parameter(name) => crate::params::operations_mut(spec)
                .filter_map(|operation| operation.get_mut("parameters"))
                .filter_map(Value::as_array_mut)
                .flat_map(|parameters| parameters.iter_mut())
                .filter(|parameter| parameter["name"] == name)
                .filter_map(|parameter| parameter.get_mut("schema"))
                .collect(),
        };
        if targets.is_empty() {
            unplaced.push(place);
        }
        for target in &mut targets {
            if let Some(schema) = target.as_object_mut() {
                schema.extend(keywords.clone());
            }
        }
    }
    unplaced
}
