//! The operation groups of the OpenAPI document.

/// Operation groups in the OpenAPI document.
#[derive(Debug, poem_openapi::Tags)]
pub enum ApiTags {
    /// Buildings: register, update, relocate, archive, restore; list, read, history.
    Buildings,
    /// Lease and sale comparables: record, amend, verify, retract; list and read.
    Comps,
    /// Market statistics by submarket, property type and quarter.
    Market,
    /// The audit log (scope `audit:read`).
    Audit,
    /// Projection state and rebuilds (scope `projections:admin`).
    Admin,
    /// Health and readiness.
    Operations,
}
