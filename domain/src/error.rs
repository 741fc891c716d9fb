//! What can go wrong in business terms. The api maps each variant to one HTTP status
//! and one stable problem type, in one place.

use crate::values::FieldErrors;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Fields that are valid alone but not together, or a command with nothing in it.
    #[error("invalid fields: {0}")]
    InvalidFields(FieldErrors),
    /// The aggregate does not exist, or belongs to another organisation (never revealed).
    #[error("not found")]
    NotFound,
    /// The aggregate id is already taken.
    #[error("already exists")]
    AlreadyExists,
    /// An archived building accepts nothing but restore.
    #[error("the building is archived")]
    BuildingArchived,
    /// Restore of a building that is not archived.
    #[error("the building is not archived")]
    BuildingNotArchived,
    /// A comp names a building that does not exist in the organisation.
    #[error("the building does not exist")]
    UnknownBuilding,
    /// A retracted comp accepts nothing further.
    #[error("the comp is retracted")]
    CompRetracted,
    /// Verify of a comp that is already verified.
    #[error("the comp is already verified")]
    CompAlreadyVerified,
    /// A service the aggregate asked (e.g. the building directory) failed; not the
    /// client's fault, safe to retry.
    #[error("a dependency failed: {0}")]
    Unavailable(String),
}

impl From<FieldErrors> for DomainError {
    fn from(errors: FieldErrors) -> Self {
        Self::InvalidFields(errors)
    }
}
