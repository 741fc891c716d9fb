//! The Building aggregate: a property an organisation tracks, with its address and
//! location. Register, update details, relocate, archive and restore; an archived
//! building accepts nothing but restore.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::values::{
    Address, Area, BuildingClass, BuildingName, FieldErrors, Floors, Location, OrgId, PropertyType,
    Reason, Submarket, YearBuilt,
};
use crate::{Patch, Scoped};

/// What describes a building apart from where it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildingDetails {
    pub name: BuildingName,
    pub property_type: PropertyType,
    pub building_class: Option<BuildingClass>,
    pub rentable_area_sqft: Area,
    pub year_built: Option<YearBuilt>,
    pub floors: Option<Floors>,
    pub submarket: Option<Submarket>,
}

/// A partial update of [`BuildingDetails`]. `None` leaves a required field as it is;
/// an optional field takes a [`Patch`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildingDetailsPatch {
    pub name: Option<BuildingName>,
    pub property_type: Option<PropertyType>,
    pub building_class: Patch<BuildingClass>,
    pub rentable_area_sqft: Option<Area>,
    pub year_built: Patch<YearBuilt>,
    pub floors: Patch<Floors>,
    pub submarket: Patch<Submarket>,
}

impl BuildingDetailsPatch {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn applied_to(self, current: &BuildingDetails) -> BuildingDetails {
        let current = current.clone();
        BuildingDetails {
            name: self.name.unwrap_or(current.name),
            property_type: self.property_type.unwrap_or(current.property_type),
            building_class: self.building_class.applied_to(current.building_class),
            rentable_area_sqft: self
                .rentable_area_sqft
                .unwrap_or(current.rentable_area_sqft),
            year_built: self.year_built.applied_to(current.year_built),
            floors: self.floors.applied_to(current.floors),
            submarket: self.submarket.applied_to(current.submarket),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum BuildingCommand {
    Register {
        details: BuildingDetails,
        address: Address,
        location: Location,
    },
    UpdateDetails(BuildingDetailsPatch),
    /// New address and/or location; at least one.
    Relocate {
        address: Option<Address>,
        location: Option<Location>,
    },
    Archive {
        reason: Reason,
    },
    Restore,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BuildingEvent {
    BuildingRegistered {
        org_id: OrgId,
        #[serde(flatten)]
        details: BuildingDetails,
        address: Address,
        location: Location,
    },
    /// Carries the complete details after the update, so a reader needs no earlier state.
    BuildingDetailsUpdated {
        #[serde(flatten)]
        details: BuildingDetails,
    },
    BuildingRelocated {
        address: Address,
        location: Location,
    },
    BuildingArchived {
        reason: Reason,
    },
    BuildingRestored {},
}

impl DomainEvent for BuildingEvent {
    fn event_type(&self) -> String {
        match self {
            Self::BuildingRegistered { .. } => "BuildingRegistered",
            Self::BuildingDetailsUpdated { .. } => "BuildingDetailsUpdated",
            Self::BuildingRelocated { .. } => "BuildingRelocated",
            Self::BuildingArchived { .. } => "BuildingArchived",
            Self::BuildingRestored {} => "BuildingRestored",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// The state commands are decided against; `None` until registered.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Building {
    state: Option<BuildingState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct BuildingState {
    org_id: OrgId,
    details: BuildingDetails,
    address: Address,
    location: Location,
    archived: bool,
}

impl Building {
    /// The building as `org_id` may see it: another organisation's building is not found.
    fn owned_by(&self, org_id: &OrgId) -> Result<&BuildingState, DomainError> {
        match &self.state {
            Some(state) if &state.org_id == org_id => Ok(state),
            _ => Err(DomainError::NotFound),
        }
    }

    /// Whether `org_id` may attach comps to this building: `None` if it is not theirs.
    pub fn status_for(&self, org_id: &OrgId) -> Option<BuildingStatus> {
        self.owned_by(org_id).ok().map(|state| {
            if state.archived {
                BuildingStatus::Archived
            } else {
                BuildingStatus::Active
            }
        })
    }
}

/// Whether a building takes new comps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildingStatus {
    Active,
    Archived,
}

impl Aggregate for Building {
    const TYPE: &'static str = "building";
    type Command = Scoped<BuildingCommand>;
    type Event = BuildingEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        Scoped { org_id, command }: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            BuildingCommand::Register {
                details,
                address,
                location,
            } => {
                if self.state.is_some() {
                    return Err(DomainError::AlreadyExists);
                }
                BuildingEvent::BuildingRegistered {
                    org_id,
                    details,
                    address,
                    location,
                }
            }
            BuildingCommand::UpdateDetails(patch) => {
                let state = self.owned_by(&org_id)?;
                ensure_active(state)?;
                if patch.is_empty() {
                    return Err(
                        FieldErrors::single("body", "give at least one field to change").into(),
                    );
                }
                let details = patch.applied_to(&state.details);
                if details == state.details {
                    return Ok(());
                }
                BuildingEvent::BuildingDetailsUpdated { details }
            }
            BuildingCommand::Relocate { address, location } => {
                let state = self.owned_by(&org_id)?;
                ensure_active(state)?;
                if address.is_none() && location.is_none() {
                    return Err(
                        FieldErrors::single("body", "give an address, a location or both").into(),
                    );
                }
                let address = address.unwrap_or_else(|| state.address.clone());
                let location = location.unwrap_or(state.location);
                if address == state.address && location == state.location {
                    return Ok(());
                }
                BuildingEvent::BuildingRelocated { address, location }
            }
            BuildingCommand::Archive { reason } => {
                ensure_active(self.owned_by(&org_id)?)?;
                BuildingEvent::BuildingArchived { reason }
            }
            BuildingCommand::Restore => {
                if !self.owned_by(&org_id)?.archived {
                    return Err(DomainError::BuildingNotArchived);
                }
                BuildingEvent::BuildingRestored {}
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            BuildingEvent::BuildingRegistered {
                org_id,
                details,
                address,
                location,
            } => {
                self.state = Some(BuildingState {
                    org_id,
                    details,
                    address,
                    location,
                    archived: false,
                });
            }
            BuildingEvent::BuildingDetailsUpdated { details } => {
                if let Some(state) = &mut self.state {
                    state.details = details;
                }
            }
            BuildingEvent::BuildingRelocated { address, location } => {
                if let Some(state) = &mut self.state {
                    state.address = address;
                    state.location = location;
                }
            }
            BuildingEvent::BuildingArchived { .. } => {
                if let Some(state) = &mut self.state {
                    state.archived = true;
                }
            }
            BuildingEvent::BuildingRestored {} => {
                if let Some(state) = &mut self.state {
                    state.archived = false;
                }
            }
        }
    }
}

fn ensure_active(state: &BuildingState) -> Result<(), DomainError> {
    if state.archived {
        Err(DomainError::BuildingArchived)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
