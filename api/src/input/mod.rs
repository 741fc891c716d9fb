//! How request input is read, by concern:
//! - `body`: [`JsonBody`], a JSON body checked against its schema, every bad field named;
//! - `scalars`: [`Exact`] decimals, [`IsoDate`] dates and [`Choice`] enumerations;
//! - `fields`: raw fields into domain values ([`field`], [`optional`], [`change`],
//!   [`patch`]), every refusal collected in one pass ([`AllParsed`]).

mod body;
mod fields;
mod scalars;

pub use body::{BodyRejected, DomainChecked, JsonBody};
pub use fields::{change, field, optional, patch, within, AllParsed, Parsed};
pub use scalars::{Choice, DecimalText, Exact, IsoDate, Word, Words};
