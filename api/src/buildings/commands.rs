//! `/v1/buildings`: register, update details, relocate, archive, restore. Each body is
//! parsed once into domain values, naming every refused field; the Building aggregate
//! decides.

use std::sync::Arc;

use domain::values::{
    Address, Area, BuildingClass, BuildingId, BuildingName, City, CountryCode, FieldErrors, Floors,
    Location, PostalCode, PropertyType, Reason, Region, Street, Submarket, YearBuilt,
};
use domain::{BuildingCommand, BuildingDetails, BuildingDetailsPatch};
use poem::web::Data;
use poem_openapi::param::{Header, Path};
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use crate::auth::Scope;
use crate::bearer::BearerAuth;
use crate::command_endpoint::{CommandAccepted, CommandRequest};
use crate::input::{
    change, change_or_clear, optional, required, Choice, Exact, JsonBody, ParsedOr, ReasonRequest,
};
use crate::problem::{ApiError, ProblemResponse};
use crate::request_id::RequestId;
use crate::state::AppState;
use crate::tags::ApiTags;

/// A postal address.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct AddressInput {
    pub street: String,
    pub city: String,
    /// State, province or county, where the country has one.
    pub region: Option<String>,
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2 code, e.g. `US`.
    pub country: String,
}

/// A WGS 84 point.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct LocationInput {
    /// Latitude, −90 to 90.
    pub lat: f64,
    /// Longitude, −180 to 180.
    pub lon: f64,
}

/// A building to register.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct RegisterBuildingRequest {
    pub name: String,
    pub address: AddressInput,
    pub location: LocationInput,
    pub property_type: Choice<PropertyType>,
    pub building_class: Option<Choice<BuildingClass>>,
    /// Rentable area in square feet, greater than 0.
    pub rentable_area_sqft: Exact,
    /// 1600 to 2100.
    pub year_built: Option<i64>,
    /// Floors above ground, 1 to 300.
    pub floors: Option<i64>,
    pub submarket: Option<String>,
}

/// The details to change; absent fields stay as they are, `null` clears an optional one.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateBuildingRequest {
    pub name: MaybeUndefined<String>,
    pub property_type: MaybeUndefined<Choice<PropertyType>>,
    pub building_class: MaybeUndefined<Choice<BuildingClass>>,
    pub rentable_area_sqft: MaybeUndefined<Exact>,
    pub year_built: MaybeUndefined<i64>,
    pub floors: MaybeUndefined<i64>,
    pub submarket: MaybeUndefined<String>,
}

/// A new address, a new location, or both.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct RelocateBuildingRequest {
    pub address: Option<AddressInput>,
    pub location: Option<LocationInput>,
}

fn parse_address(errors: &mut FieldErrors, prefix: &str, raw: &AddressInput) -> Option<Address> {
    let at = |field: &str| format!("{prefix}.{field}");
    let street = required(errors, &at("street"), raw.street.as_str(), Street::parse);
    let city = required(errors, &at("city"), raw.city.as_str(), City::parse);
    let region = optional(errors, &at("region"), raw.region.as_deref(), Region::parse);
    let postal_code = optional(
        errors,
        &at("postal_code"),
        raw.postal_code.as_deref(),
        PostalCode::parse,
    );
    let country = required(
        errors,
        &at("country"),
        raw.country.as_str(),
        CountryCode::parse,
    );
    Some(Address {
        street: street?,
        city: city?,
        region: region?,
        postal_code: postal_code?,
        country: country?,
    })
}

fn parse_location(errors: &mut FieldErrors, prefix: &str, raw: &LocationInput) -> Option<Location> {
    let lat = required(
        errors,
        &format!("{prefix}.lat"),
        raw.lat,
        Location::parse_lat,
    );
    let lon = required(
        errors,
        &format!("{prefix}.lon"),
        raw.lon,
        Location::parse_lon,
    );
    Location::new(lat?, lon?).ok()
}

fn positive_area(raw: Exact) -> Result<Area, domain::values::InvalidValue> {
    Area::parse(raw.0)
}

impl RegisterBuildingRequest {
    fn to_command(&self) -> Result<BuildingCommand, FieldErrors> {
        let mut errors = FieldErrors::default();
        let name = required(&mut errors, "name", self.name.as_str(), BuildingName::parse);
        let address = parse_address(&mut errors, "address", &self.address);
        let location = parse_location(&mut errors, "location", &self.location);
        let area = required(
            &mut errors,
            "rentable_area_sqft",
            self.rentable_area_sqft,
            positive_area,
        );
        let year_built = optional(&mut errors, "year_built", self.year_built, YearBuilt::parse);
        let floors = optional(&mut errors, "floors", self.floors, Floors::parse);
        let submarket = optional(
            &mut errors,
            "submarket",
            self.submarket.as_deref(),
            Submarket::parse,
        );
        let parsed = (|| {
            Some(BuildingCommand::Register {
                details: BuildingDetails {
                    name: name?,
                    property_type: self.property_type.0,
                    building_class: self.building_class.map(|c| c.0),
                    rentable_area_sqft: area?,
                    year_built: year_built?,
                    floors: floors?,
                    submarket: submarket?,
                },
                address: address?,
                location: location?,
            })
        })();
        errors.into_result()?;
        parsed.ok_or_default()
    }
}

impl UpdateBuildingRequest {
    fn to_command(&self) -> Result<BuildingCommand, FieldErrors> {
        let mut errors = FieldErrors::default();
        let name = change(
            &mut errors,
            "name",
            self.name.as_deref(),
            BuildingName::parse,
        );
        let property_type = change(
            &mut errors,
            "property_type",
            self.property_type,
            |c| Ok(c.0),
        );
        let building_class =
            change_or_clear(&mut errors, "building_class", self.building_class, |c| {
                Ok(c.0)
            });
        let area = change(
            &mut errors,
            "rentable_area_sqft",
            self.rentable_area_sqft,
            positive_area,
        );
        let year_built =
            change_or_clear(&mut errors, "year_built", self.year_built, YearBuilt::parse);
        let floors = change_or_clear(&mut errors, "floors", self.floors, Floors::parse);
        let submarket = change_or_clear(
            &mut errors,
            "submarket",
            self.submarket.as_deref(),
            Submarket::parse,
        );
        let parsed = (|| {
            Some(BuildingCommand::UpdateDetails(BuildingDetailsPatch {
                name: name?,
                property_type: property_type?,
                building_class: building_class?,
                rentable_area_sqft: area?,
                year_built: year_built?,
                floors: floors?,
                submarket: submarket?,
            }))
        })();
        errors.into_result()?;
        parsed.ok_or_default()
    }
}

impl RelocateBuildingRequest {
    fn to_command(&self) -> Result<BuildingCommand, FieldErrors> {
        let mut errors = FieldErrors::default();
        let address = match &self.address {
            Some(raw) => parse_address(&mut errors, "address", raw).map(Some),
            None => Some(None),
        };
        let location = match &self.location {
            Some(raw) => parse_location(&mut errors, "location", raw).map(Some),
            None => Some(None),
        };
        errors.into_result()?;
        Some(BuildingCommand::Relocate {
            address: address.flatten(),
            location: location.flatten(),
        })
        .ok_or_default()
    }
}

#[derive(Debug, Default)]
pub struct BuildingsApi;

const BUILDINGS: &str = "/v1/buildings";

#[OpenApi(tag = "ApiTags::Buildings")]
impl BuildingsApi {
    /// Register a building
    ///
    /// Records a new building for the caller's organisation. Send an
    /// `Idempotency-Key` so that a retry returns the first result instead of
    /// registering twice.
    #[oai(
        path = "/v1/buildings",
        method = "post",
        operation_id = "register_building"
    )]
    async fn register(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        request_id: Data<&RequestId>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        body: JsonBody<RegisterBuildingRequest>,
    ) -> Result<CommandAccepted, ProblemResponse> {
        let id = BuildingId::new();
        CommandRequest::new(
            auth.0,
            Scope::BuildingsWrite,
            &request_id,
            idempotency_key.0.as_deref(),
            None,
            format!("POST {BUILDINGS}"),
        )
        .with_body(&body.0)
        .run(BUILDINGS, |context| async move {
            let command = body.0.to_command().map_err(ApiError::from)?;
            state.write.new_building(id, command, &context).await
        })
        .await
    }

    /// Update a building's details
    ///
    /// Changes the given fields; absent fields stay, `null` clears an optional one.
    /// `If-Match: "<version>"` makes the change conditional on the version read.
    #[oai(
        path = "/v1/buildings/:id",
        method = "patch",
        operation_id = "update_building"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn update(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        request_id: Data<&RequestId>,
        id: Path<Uuid>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
        body: JsonBody<UpdateBuildingRequest>,
    ) -> Result<CommandAccepted, ProblemResponse> {
        let operation = format!("PATCH {BUILDINGS}/{}", id.0);
        CommandRequest::new(
            auth.0,
            Scope::BuildingsWrite,
            &request_id,
            idempotency_key.0.as_deref(),
            if_match.0.as_deref(),
            operation,
        )
        .with_body(&body.0)
        .run(BUILDINGS, |context| async move {
            let command = body.0.to_command().map_err(ApiError::from)?;
            state
                .write
                .building(BuildingId(id.0), command, &context)
                .await
        })
        .await
    }

    /// Relocate a building
    ///
    /// Gives the building a new address, a new location, or both.
    #[oai(
        path = "/v1/buildings/:id/relocate",
        method = "post",
        operation_id = "relocate_building"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn relocate(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        request_id: Data<&RequestId>,
        id: Path<Uuid>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
        body: JsonBody<RelocateBuildingRequest>,
    ) -> Result<CommandAccepted, ProblemResponse> {
        let operation = format!("POST {BUILDINGS}/{}/relocate", id.0);
        CommandRequest::new(
            auth.0,
            Scope::BuildingsWrite,
            &request_id,
            idempotency_key.0.as_deref(),
            if_match.0.as_deref(),
            operation,
        )
        .with_body(&body.0)
        .run(BUILDINGS, |context| async move {
            let command = body.0.to_command().map_err(ApiError::from)?;
            state
                .write
                .building(BuildingId(id.0), command, &context)
                .await
        })
        .await
    }

    /// Archive a building
    ///
    /// An archived building accepts no changes but restore, and takes no new comps.
    #[oai(
        path = "/v1/buildings/:id/archive",
        method = "post",
        operation_id = "archive_building"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn archive(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        request_id: Data<&RequestId>,
        id: Path<Uuid>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
        body: JsonBody<ReasonRequest>,
    ) -> Result<CommandAccepted, ProblemResponse> {
        let operation = format!("POST {BUILDINGS}/{}/archive", id.0);
        CommandRequest::new(
            auth.0,
            Scope::BuildingsWrite,
            &request_id,
            idempotency_key.0.as_deref(),
            if_match.0.as_deref(),
            operation,
        )
        .with_body(&body.0)
        .run(BUILDINGS, |context| async move {
            let reason =
                Reason::parse(&body.0.reason).map_err(|e| FieldErrors::single("reason", e.0))?;
            state
                .write
                .building(
                    BuildingId(id.0),
                    BuildingCommand::Archive { reason },
                    &context,
                )
                .await
        })
        .await
    }

    /// Restore an archived building
    #[oai(
        path = "/v1/buildings/:id/restore",
        method = "post",
        operation_id = "restore_building"
    )]
    async fn restore(
        &self,
        auth: BearerAuth,
        state: Data<&Arc<AppState>>,
        request_id: Data<&RequestId>,
        id: Path<Uuid>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
    ) -> Result<CommandAccepted, ProblemResponse> {
        let operation = format!("POST {BUILDINGS}/{}/restore", id.0);
        CommandRequest::new(
            auth.0,
            Scope::BuildingsWrite,
            &request_id,
            idempotency_key.0.as_deref(),
            if_match.0.as_deref(),
            operation,
        )
        .run(BUILDINGS, |context| async move {
            state
                .write
                .building(BuildingId(id.0), BuildingCommand::Restore, &context)
                .await
        })
        .await
    }
}
