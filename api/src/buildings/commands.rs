//! `/v1/buildings`: register, update details, relocate, archive, restore. Each body is
//! parsed once into domain values, naming every refused field; the Building aggregate
//! decides.

use domain::values::{
    Address, Area, BuildingClass, BuildingName, City, CountryCode, Floors, Location, PostalCode,
    PropertyType, Region, Street, Submarket, YearBuilt,
};
use domain::{BuildingCommand, BuildingDetails, BuildingDetailsPatch};
use poem_openapi::param::Path;
use poem_openapi::types::{Example, MaybeUndefined};
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use crate::command_endpoint::{
    Buildings, Command, CommandBody, CommandResponse, CreateResponse, NewCommand, ReasonRequest,
};
use crate::input::{
    change, field, optional, patch, within, AllParsed, Choice, Exact, JsonBody, Parsed,
};
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
#[oai(deny_unknown_fields, example)]
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
#[oai(deny_unknown_fields, example)]
pub struct UpdateBuildingRequest {
    pub name: MaybeUndefined<String>,
    pub property_type: MaybeUndefined<Choice<PropertyType>>,
    /// `null` clears it.
    #[oai(nullable)]
    pub building_class: MaybeUndefined<Choice<BuildingClass>>,
    pub rentable_area_sqft: MaybeUndefined<Exact>,
    /// `null` clears it.
    #[oai(nullable)]
    pub year_built: MaybeUndefined<i64>,
    /// `null` clears it.
    #[oai(nullable)]
    pub floors: MaybeUndefined<i64>,
    /// `null` clears it.
    #[oai(nullable)]
    pub submarket: MaybeUndefined<String>,
}

/// A new address, a new location, or both.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, example)]
pub struct RelocateBuildingRequest {
    pub address: Option<AddressInput>,
    pub location: Option<LocationInput>,
}

fn example_address() -> AddressInput {
    AddressInput {
        street: "1 Vanderbilt Ave".into(),
        city: "New York".into(),
        region: Some("NY".into()),
        postal_code: Some("10017".into()),
        country: "US".into(),
    }
}

/// Swagger UI's "Try it out" sends these as they are; `make test` proves they succeed.
impl Example for RegisterBuildingRequest {
    fn example() -> Self {
        Self {
            name: "One Vanderbilt".into(),
            address: example_address(),
            location: LocationInput {
                lat: 40.7527,
                lon: -73.9787,
            },
            property_type: Choice(PropertyType::Office),
            building_class: Some(Choice(BuildingClass::A)),
            rentable_area_sqft: Exact(1_750_000.into()),
            year_built: Some(2020),
            floors: Some(93),
            submarket: Some("Grand Central".into()),
        }
    }
}

impl Example for UpdateBuildingRequest {
    fn example() -> Self {
        Self {
            name: MaybeUndefined::Value("One Vanderbilt Avenue".into()),
            property_type: MaybeUndefined::Undefined,
            building_class: MaybeUndefined::Undefined,
            rentable_area_sqft: MaybeUndefined::Undefined,
            year_built: MaybeUndefined::Undefined,
            floors: MaybeUndefined::Value(93),
            submarket: MaybeUndefined::Null,
        }
    }
}

impl Example for RelocateBuildingRequest {
    fn example() -> Self {
        Self {
            address: Some(example_address()),
            location: Some(LocationInput {
                lat: 40.7528,
                lon: -73.9786,
            }),
        }
    }
}

fn parse_address(raw: &AddressInput) -> Parsed<Address> {
    let (street, city, region, postal_code, country) = (
        field("street", raw.street.as_str(), Street::parse),
        field("city", raw.city.as_str(), City::parse),
        optional("region", raw.region.as_deref(), Region::parse),
        optional("postal_code", raw.postal_code.as_deref(), PostalCode::parse),
        field("country", raw.country.as_str(), CountryCode::parse),
    )
        .all()?;
    Ok(Address {
        street,
        city,
        region,
        postal_code,
        country,
    })
}

fn parse_location(raw: &LocationInput) -> Parsed<Location> {
    let (lat, lon) = (
        field("lat", raw.lat, Location::parse_lat),
        field("lon", raw.lon, Location::parse_lon),
    )
        .all()?;
    field("lat", (lat, lon), |(lat, lon)| Location::new(lat, lon))
}

fn positive_area(raw: Exact) -> Result<Area, domain::values::InvalidValue> {
    Area::parse(raw.0)
}

impl CommandBody<BuildingCommand> for RegisterBuildingRequest {
    fn to_command(&self) -> Parsed<BuildingCommand> {
        let (name, address, location, rentable_area_sqft, year_built, floors, submarket) = (
            field("name", self.name.as_str(), BuildingName::parse),
            within("address", parse_address(&self.address)),
            within("location", parse_location(&self.location)),
            field("rentable_area_sqft", self.rentable_area_sqft, positive_area),
            optional("year_built", self.year_built, YearBuilt::parse),
            optional("floors", self.floors, Floors::parse),
            optional("submarket", self.submarket.as_deref(), Submarket::parse),
        )
            .all()?;
        Ok(BuildingCommand::Register {
            details: BuildingDetails {
                name,
                property_type: self.property_type.0,
                building_class: self.building_class.map(|c| c.0),
                rentable_area_sqft,
                year_built,
                floors,
                submarket,
            },
            address,
            location,
        })
    }
}

impl CommandBody<BuildingCommand> for UpdateBuildingRequest {
    fn to_command(&self) -> Parsed<BuildingCommand> {
        let (
            name,
            property_type,
            building_class,
            rentable_area_sqft,
            year_built,
            floors,
            submarket,
        ) = (
            change("name", self.name.as_deref(), BuildingName::parse),
            change("property_type", self.property_type, |c| Ok(c.0)),
            patch("building_class", self.building_class, |c| Ok(c.0)),
            change("rentable_area_sqft", self.rentable_area_sqft, positive_area),
            patch("year_built", self.year_built, YearBuilt::parse),
            patch("floors", self.floors, Floors::parse),
            patch("submarket", self.submarket.as_deref(), Submarket::parse),
        )
            .all()?;
        Ok(BuildingCommand::UpdateDetails(BuildingDetailsPatch {
            name,
            property_type,
            building_class,
            rentable_area_sqft,
            year_built,
            floors,
            submarket,
        }))
    }
}

impl CommandBody<BuildingCommand> for RelocateBuildingRequest {
    fn to_command(&self) -> Parsed<BuildingCommand> {
        let (address, location) = (
            within(
                "address",
                self.address.as_ref().map(parse_address).transpose(),
            ),
            within(
                "location",
                self.location.as_ref().map(parse_location).transpose(),
            ),
        )
            .all()?;
        Ok(BuildingCommand::Relocate { address, location })
    }
}

crate::command_endpoint::checked_by_its_command! {
    RegisterBuildingRequest => BuildingCommand,
    UpdateBuildingRequest => BuildingCommand,
    RelocateBuildingRequest => BuildingCommand,
}

#[derive(Debug, Default)]
pub struct BuildingsApi;

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
        command: NewCommand<Buildings>,
        body: JsonBody<RegisterBuildingRequest>,
    ) -> CreateResponse {
        command.create(body.0).await
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
    async fn update(
        &self,
        command: Command<Buildings>,
        /// The building's id.
        id: Path<Uuid>,
        body: JsonBody<UpdateBuildingRequest>,
    ) -> CommandResponse {
        command.change(id.0, body.0).await
    }

    /// Relocate a building
    ///
    /// Gives the building a new address, a new location, or both.
    #[oai(
        path = "/v1/buildings/:id/relocate",
        method = "post",
        operation_id = "relocate_building"
    )]
    async fn relocate(
        &self,
        command: Command<Buildings>,
        /// The building's id.
        id: Path<Uuid>,
        body: JsonBody<RelocateBuildingRequest>,
    ) -> CommandResponse {
        command.change(id.0, body.0).await
    }

    /// Archive a building
    ///
    /// An archived building accepts no changes but restore, and takes no new comps.
    #[oai(
        path = "/v1/buildings/:id/archive",
        method = "post",
        operation_id = "archive_building"
    )]
    async fn archive(
        &self,
        command: Command<Buildings>,
        /// The building's id.
        id: Path<Uuid>,
        body: JsonBody<ReasonRequest>,
    ) -> CommandResponse {
        command.change(id.0, body.0).await
    }

    /// Restore an archived building
    #[oai(
        path = "/v1/buildings/:id/restore",
        method = "post",
        operation_id = "restore_building"
    )]
    async fn restore(
        &self,
        command: Command<Buildings>,
        /// The building's id.
        id: Path<Uuid>,
    ) -> CommandResponse {
        command.send(id.0, BuildingCommand::Restore).await
    }
}
