//! Prism's write-side domain: what buildings and comps are, which commands they accept
//! and which events they record. Pure decisions — no IO, no SQL, no runtime; the api
//! drives these aggregates through cqrs-es and stores their events with postgres-es.
//!
//! Layout:
//! - `values`: value types that cannot hold an invalid value (`Area`, `RentPsf`, …) and
//!   `FieldErrors`, which names every refused field of a request;
//! - `building`: the Building aggregate, its commands and events;
//! - `comp`: the Comp aggregate (lease and sale comparables) and the
//!   `BuildingDirectory` service it asks whether a building takes comps;
//! - `error`: `DomainError`, what can go wrong in business terms;
//! - `patch`: `Patch`, what a partial update does to an optional field.

mod building;
mod comp;
mod error;
mod patch;
pub mod values;

pub use building::{
    Building, BuildingCommand, BuildingDetails, BuildingDetailsPatch, BuildingEvent, BuildingStatus,
};
pub use comp::{
    BuildingDirectory, Comp, CompChanges, CompCommand, CompEvent, CompServices, CompTerms,
    LeaseTerms, SaleTerms,
};
pub use error::DomainError;
pub use patch::Patch;

/// A command as issued within one organisation: the aggregate refuses (as not found)
/// anything that belongs to another.
#[derive(Debug, Clone, PartialEq)]
pub struct Scoped<C> {
    pub org_id: values::OrgId,
    pub command: C,
}
