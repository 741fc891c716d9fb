//! `/v1/buildings`: the commands that change buildings and the queries that read them.

mod commands;
mod queries;

pub use commands::BuildingsApi;
pub use queries::BuildingQueriesApi;
