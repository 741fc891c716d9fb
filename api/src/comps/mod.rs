//! `/v1/comps`: the commands that record and change comps and the queries that read them.

mod commands;
mod queries;

pub use commands::CompsApi;
pub use queries::CompQueriesApi;
