//! The Comp aggregate: a lease or sale comparable tied to a building of the same
//! organisation. Record, amend, verify and retract; a retracted comp accepts nothing.
//!
//! Whether the building exists and is active is asked of [`BuildingDirectory`], which
//! the write side implements by loading the building from the event store — never from
//! a read model that may lag.

use std::sync::Arc;

use async_trait::async_trait;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::building::BuildingStatus;
use crate::error::DomainError;
use crate::values::{
    AllowancePsf, Area, BuildingId, CapRatePct, DealDate, EscalationPct, FieldErrors, LeaseType,
    Money, Months, OrgId, PartyName, Reason, RentPsf, Suite,
};
use crate::{Patch, Scoped};

/// The terms of a lease comp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseTerms {
    pub tenant: PartyName,
    pub suite: Option<Suite>,
    pub leased_area_sqft: Area,
    pub starting_rent_psf: RentPsf,
    pub lease_type: LeaseType,
    pub term_months: Months,
    pub commencement_date: DealDate,
    pub free_rent_months: Months,
    pub ti_allowance_psf: AllowancePsf,
    pub escalation_pct: EscalationPct,
}

impl LeaseTerms {
    /// Rules across fields: free rent must leave some paid months in the term.
    fn check(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::default();
        if self.free_rent_months >= self.term_months {
            errors.push("free_rent_months", "must be less than term_months");
        }
        errors.into_result()
    }
}

/// The terms of a sale comp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaleTerms {
    pub sale_price: Money,
    pub sale_date: DealDate,
    pub buyer: PartyName,
    pub seller: PartyName,
    pub cap_rate_pct: Option<CapRatePct>,
}

/// A partial amendment. `None` leaves a required field as it is; an optional field
/// takes a [`Patch`]. Lease fields apply to lease comps, sale fields to sale
/// comps; a field of the other kind is refused by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompChanges {
    pub tenant: Option<PartyName>,
    pub suite: Patch<Suite>,
    pub leased_area_sqft: Option<Area>,
    pub starting_rent_psf: Option<RentPsf>,
    pub lease_type: Option<LeaseType>,
    pub term_months: Option<Months>,
    pub commencement_date: Option<DealDate>,
    pub free_rent_months: Option<Months>,
    pub ti_allowance_psf: Option<AllowancePsf>,
    pub escalation_pct: Option<EscalationPct>,
    pub sale_price: Option<Money>,
    pub sale_date: Option<DealDate>,
    pub buyer: Option<PartyName>,
    pub seller: Option<PartyName>,
    pub cap_rate_pct: Patch<CapRatePct>,
}

impl CompChanges {
    fn lease_fields_given(&self) -> Vec<&'static str> {
        [
            ("tenant", self.tenant.is_some()),
            ("suite", self.suite.is_change()),
            ("leased_area_sqft", self.leased_area_sqft.is_some()),
            ("starting_rent_psf", self.starting_rent_psf.is_some()),
            ("lease_type", self.lease_type.is_some()),
            ("term_months", self.term_months.is_some()),
            ("commencement_date", self.commencement_date.is_some()),
            ("free_rent_months", self.free_rent_months.is_some()),
            ("ti_allowance_psf", self.ti_allowance_psf.is_some()),
            ("escalation_pct", self.escalation_pct.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }

    fn sale_fields_given(&self) -> Vec<&'static str> {
        [
            ("sale_price", self.sale_price.is_some()),
            ("sale_date", self.sale_date.is_some()),
            ("buyer", self.buyer.is_some()),
            ("seller", self.seller.is_some()),
            ("cap_rate_pct", self.cap_rate_pct.is_change()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }

    /// The terms after the change, or the fields that do not belong to this kind.
    fn applied_to(self, current: &CompTerms) -> Result<CompTerms, FieldErrors> {
        let (foreign, kind) = match current {
            CompTerms::Lease(_) => (self.sale_fields_given(), "lease"),
            CompTerms::Sale(_) => (self.lease_fields_given(), "sale"),
        };
        let mut errors = FieldErrors::default();
        for field in foreign {
            errors.push(field, format!("is not a field of a {kind} comp"));
        }
        if self == Self::default() {
            errors.push("body", "give at least one field to change");
        }
        errors.into_result()?;
        Ok(match current.clone() {
            CompTerms::Lease(c) => CompTerms::Lease(LeaseTerms {
                tenant: self.tenant.unwrap_or(c.tenant),
                suite: self.suite.applied_to(c.suite),
                leased_area_sqft: self.leased_area_sqft.unwrap_or(c.leased_area_sqft),
                starting_rent_psf: self.starting_rent_psf.unwrap_or(c.starting_rent_psf),
                lease_type: self.lease_type.unwrap_or(c.lease_type),
                term_months: self.term_months.unwrap_or(c.term_months),
                commencement_date: self.commencement_date.unwrap_or(c.commencement_date),
                free_rent_months: self.free_rent_months.unwrap_or(c.free_rent_months),
                ti_allowance_psf: self.ti_allowance_psf.unwrap_or(c.ti_allowance_psf),
                escalation_pct: self.escalation_pct.unwrap_or(c.escalation_pct),
            }),
            CompTerms::Sale(c) => CompTerms::Sale(SaleTerms {
                sale_price: self.sale_price.unwrap_or(c.sale_price),
                sale_date: self.sale_date.unwrap_or(c.sale_date),
                buyer: self.buyer.unwrap_or(c.buyer),
                seller: self.seller.unwrap_or(c.seller),
                cap_rate_pct: self.cap_rate_pct.applied_to(c.cap_rate_pct),
            }),
        })
    }
}

/// A comp's terms: a lease or a sale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CompTerms {
    Lease(LeaseTerms),
    Sale(SaleTerms),
}

impl CompTerms {
    fn check(&self) -> Result<(), FieldErrors> {
        match self {
            Self::Lease(lease) => lease.check(),
            Self::Sale(_) => Ok(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CompCommand {
    Record {
        building_id: BuildingId,
        terms: CompTerms,
    },
    Amend(CompChanges),
    Verify,
    Retract {
        reason: Reason,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CompEvent {
    LeaseCompRecorded {
        org_id: OrgId,
        building_id: BuildingId,
        #[serde(flatten)]
        terms: LeaseTerms,
    },
    SaleCompRecorded {
        org_id: OrgId,
        building_id: BuildingId,
        #[serde(flatten)]
        terms: SaleTerms,
    },
    /// Carries the complete terms after the amendment. An amended comp is no longer
    /// verified: what was checked has changed.
    CompAmended {
        terms: CompTerms,
    },
    CompVerified {},
    CompRetracted {
        reason: Reason,
    },
}

impl DomainEvent for CompEvent {
    fn event_type(&self) -> String {
        match self {
            Self::LeaseCompRecorded { .. } => "LeaseCompRecorded",
            Self::SaleCompRecorded { .. } => "SaleCompRecorded",
            Self::CompAmended { .. } => "CompAmended",
            Self::CompVerified {} => "CompVerified",
            Self::CompRetracted { .. } => "CompRetracted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// Answers whether a building exists in an organisation and takes comps.
#[async_trait]
pub trait BuildingDirectory: Send + Sync {
    /// `Ok(None)` when the building does not exist or belongs to another organisation;
    /// `Err` when the answer could not be had (a message for the logs).
    async fn status(
        &self,
        org_id: &OrgId,
        building_id: BuildingId,
    ) -> Result<Option<BuildingStatus>, String>;
}

/// What the Comp aggregate may ask of the outside world.
#[derive(Clone)]
pub struct CompServices {
    buildings: Arc<dyn BuildingDirectory>,
}

impl CompServices {
    pub fn new(buildings: Arc<dyn BuildingDirectory>) -> Self {
        Self { buildings }
    }

    async fn require_active_building(
        &self,
        org_id: &OrgId,
        building_id: BuildingId,
    ) -> Result<(), DomainError> {
        match self.buildings.status(org_id, building_id).await {
            Ok(Some(BuildingStatus::Active)) => Ok(()),
            Ok(Some(BuildingStatus::Archived)) => Err(DomainError::BuildingArchived),
            Ok(None) => Err(DomainError::UnknownBuilding),
            Err(cause) => Err(DomainError::Unavailable(cause)),
        }
    }
}

impl std::fmt::Debug for CompServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompServices").finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Comp {
    state: Option<CompState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CompState {
    org_id: OrgId,
    building_id: BuildingId,
    terms: CompTerms,
    verified: bool,
    retracted: bool,
}

impl Comp {
    /// The comp as `org_id` may change it: not another organisation's, not retracted.
    fn open_for(&self, org_id: &OrgId) -> Result<&CompState, DomainError> {
        match &self.state {
            Some(state) if &state.org_id == org_id => {
                if state.retracted {
                    Err(DomainError::CompRetracted)
                } else {
                    Ok(state)
                }
            }
            _ => Err(DomainError::NotFound),
        }
    }
}

impl Aggregate for Comp {
    const TYPE: &'static str = "comp";
    type Command = Scoped<CompCommand>;
    type Event = CompEvent;
    type Error = DomainError;
    type Services = CompServices;

    async fn handle(
        &mut self,
        Scoped { org_id, command }: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            CompCommand::Record { building_id, terms } => {
                if self.state.is_some() {
                    return Err(DomainError::AlreadyExists);
                }
                terms.check()?;
                services
                    .require_active_building(&org_id, building_id)
                    .await?;
                match terms {
                    CompTerms::Lease(terms) => CompEvent::LeaseCompRecorded {
                        org_id,
                        building_id,
                        terms,
                    },
                    CompTerms::Sale(terms) => CompEvent::SaleCompRecorded {
                        org_id,
                        building_id,
                        terms,
                    },
                }
            }
            CompCommand::Amend(changes) => {
                let state = self.open_for(&org_id)?;
                let terms = changes.applied_to(&state.terms)?;
                terms.check()?;
                if terms == state.terms {
                    return Ok(());
                }
                services
                    .require_active_building(&org_id, state.building_id)
                    .await?;
                CompEvent::CompAmended { terms }
            }
            CompCommand::Verify => {
                let state = self.open_for(&org_id)?;
                if state.verified {
                    return Err(DomainError::CompAlreadyVerified);
                }
                services
                    .require_active_building(&org_id, state.building_id)
                    .await?;
                CompEvent::CompVerified {}
            }
            // Retraction is allowed whatever the building's state: bad data must be
            // removable from an archived building too.
            CompCommand::Retract { reason } => {
                self.open_for(&org_id)?;
                CompEvent::CompRetracted { reason }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            CompEvent::LeaseCompRecorded {
                org_id,
                building_id,
                terms,
            } => self.state = Some(CompState::new(org_id, building_id, CompTerms::Lease(terms))),
            CompEvent::SaleCompRecorded {
                org_id,
                building_id,
                terms,
            } => self.state = Some(CompState::new(org_id, building_id, CompTerms::Sale(terms))),
            CompEvent::CompAmended { terms } => {
                if let Some(state) = &mut self.state {
                    state.terms = terms;
                    state.verified = false;
                }
            }
            CompEvent::CompVerified {} => {
                if let Some(state) = &mut self.state {
                    state.verified = true;
                }
            }
            CompEvent::CompRetracted { .. } => {
                if let Some(state) = &mut self.state {
                    state.retracted = true;
                }
            }
        }
    }
}

impl CompState {
    fn new(org_id: OrgId, building_id: BuildingId, terms: CompTerms) -> Self {
        Self {
            org_id,
            building_id,
            terms,
            verified: false,
            retracted: false,
        }
    }
}

#[cfg(test)]
mod tests;
