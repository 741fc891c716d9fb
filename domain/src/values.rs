//! Value types that can only hold valid values.
//!
//! Each type is built through `parse` (or `new`), which returns [`InvalidValue`] with a
//! message fit for a client; past the edge a `RentPsf` is always positive and a
//! `CountryCode` is always an assigned ISO 3166-1 alpha-2 code, so the aggregates never
//! re-check them. Serialisation of every type is transparent; decimals are written as
//! strings so the event log keeps them exact.

use std::borrow::Cow;
use std::fmt;

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a raw value was refused; the message is written for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub Cow<'static, str>);

impl InvalidValue {
    fn new(message: impl Into<Cow<'static, str>>) -> Self {
        Self(message.into())
    }
}

/// One refused field, named by its JSON path (`address.country`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Collects every refused field of one request, so a client learns all of them at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    /// Keeps the value, or records why `field` was refused.
    pub fn check<T>(&mut self, field: &str, parsed: Result<T, InvalidValue>) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(InvalidValue(message)) => {
                self.push(field, message);
                None
            }
        }
    }

    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Adds `other`'s refusals after these.
    pub fn extend(&mut self, other: FieldErrors) {
        self.0.extend(other.0);
    }

    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut errors = Self::default();
        errors.push(field, message);
        errors
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.0.iter()
    }

    /// `Ok(())` when nothing was refused.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

/// Clerk organisation id (`org_…`): the tenant every command and query is scoped to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrgId(String);

/// Clerk user id (`user_…`), the `sub` of the token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(String);

fn parse_identifier(raw: &str, what: &str) -> Result<String, InvalidValue> {
    let valid = !raw.is_empty()
        && raw.len() <= 128
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'|'));
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(InvalidValue::new(format!(
            "{what} must be 1 to 128 characters of letters, digits, '_', '-', '.', '|'"
        )))
    }
}

impl OrgId {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        parse_identifier(raw, "organisation id").map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl UserId {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        parse_identifier(raw, "user id").map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id (UUID v7), so inserts stay local in btree indexes.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// Aggregate id of a building.
    BuildingId
);
id_type!(
    /// Aggregate id of a comp.
    CompId
);

/// Text a person typed: trimmed, not empty, no control characters, bounded.
fn parse_text(raw: &str, max_chars: usize) -> Result<String, InvalidValue> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(InvalidValue::new("must not be empty"));
    }
    if trimmed.chars().count() > max_chars {
        return Err(InvalidValue::new(format!(
            "must be at most {max_chars} characters"
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(InvalidValue::new("must not contain control characters"));
    }
    Ok(trimmed.to_owned())
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const MAX_CHARS: usize = $max;

            pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
                parse_text(raw, $max).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

text_type!(
    /// A building's name.
    BuildingName,
    200
);
text_type!(
    /// A street line of an address.
    Street,
    200
);
text_type!(
    /// A city.
    City,
    100
);
text_type!(
    /// A state, province or county.
    Region,
    100
);
text_type!(
    /// A postal code, as written locally.
    PostalCode,
    20
);
text_type!(
    /// A market's submarket (e.g. "Midtown South").
    Submarket,
    100
);
text_type!(
    /// A party to a lease or sale: tenant, buyer or seller.
    PartyName,
    200
);
text_type!(
    /// A suite or unit designation.
    Suite,
    50
);
text_type!(
    /// Why a building was archived or a comp retracted.
    Reason,
    500
);

/// ISO 3166-1 alpha-2 codes officially assigned (249), sorted for binary search.
const ISO_3166_ALPHA2: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// An assigned ISO 3166-1 alpha-2 country code, upper case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CountryCode(String);

impl CountryCode {
    /// Accepts either case (`us`, `US`) and stores upper case.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let upper = raw.trim().to_ascii_uppercase();
        if ISO_3166_ALPHA2.binary_search(&upper.as_str()).is_ok() {
            Ok(Self(upper))
        } else {
            Err(InvalidValue::new(
                "must be an ISO 3166-1 alpha-2 country code, e.g. US or GB",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A postal address. Region and postal code are optional: not every country has them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub street: Street,
    pub city: City,
    pub region: Option<Region>,
    pub postal_code: Option<PostalCode>,
    pub country: CountryCode,
}

/// A WGS 84 point. Latitude −90..90, longitude −180..180.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Location {
    lat: f64,
    lon: f64,
}

impl Location {
    /// Latitudes are −`MAX_LAT`..`MAX_LAT` degrees.
    pub const MAX_LAT: f64 = 90.0;
    /// Longitudes are −`MAX_LON`..`MAX_LON` degrees.
    pub const MAX_LON: f64 = 180.0;

    pub fn parse_lat(lat: f64) -> Result<f64, InvalidValue> {
        if lat.is_finite() && (-Self::MAX_LAT..=Self::MAX_LAT).contains(&lat) {
            Ok(lat)
        } else {
            Err(InvalidValue::new("latitude must be between -90 and 90"))
        }
    }

    pub fn parse_lon(lon: f64) -> Result<f64, InvalidValue> {
        if lon.is_finite() && (-Self::MAX_LON..=Self::MAX_LON).contains(&lon) {
            Ok(lon)
        } else {
            Err(InvalidValue::new("longitude must be between -180 and 180"))
        }
    }

    pub fn new(lat: f64, lon: f64) -> Result<Self, InvalidValue> {
        Ok(Self {
            lat: Self::parse_lat(lat)?,
            lon: Self::parse_lon(lon)?,
        })
    }

    pub fn lat(&self) -> f64 {
        self.lat
    }

    pub fn lon(&self) -> f64 {
        self.lon
    }
}

/// An enumeration with stable wire names (`mixed_use`, `nnn`), so the edge can offer
/// and parse every variant without repeating the list.
pub trait TextEnum: Copy + Send + Sync + 'static {
    /// The type's name in API schemas.
    const NAME: &'static str;
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;
    fn parse(raw: &str) -> Result<Self, InvalidValue>;
}

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl TextEnum for $name {
            const NAME: &'static str = stringify!($name);
            const ALL: &'static [$name] = &[$($name::$variant),+];

            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            fn parse(raw: &str) -> Result<Self, InvalidValue> {
                match raw {
                    $($text => Ok($name::$variant),)+
                    _ => Err(InvalidValue::new(concat!("must be one of:", $(" ", $text),+))),
                }
            }
        }
    };
}

string_enum!(
    /// What a building is used for.
    PropertyType {
        Office => "office",
        Industrial => "industrial",
        Retail => "retail",
        Multifamily => "multifamily",
        MixedUse => "mixed_use",
        Hospitality => "hospitality",
        Land => "land",
    }
);

string_enum!(
    /// Market grade of a building.
    BuildingClass {
        A => "A",
        B => "B",
        C => "C",
    }
);

string_enum!(
    /// Who pays operating expenses under a lease.
    LeaseType {
        Gross => "gross",
        ModifiedGross => "modified_gross",
        Net => "net",
        TripleNet => "nnn",
    }
);

/// Decimals carry at most this many places; more is a typing error, not precision.
pub const MAX_DECIMAL_PLACES: u32 = 4;

fn parse_decimal(
    raw: Decimal,
    min: Decimal,
    min_inclusive: bool,
    max: Decimal,
) -> Result<Decimal, InvalidValue> {
    let normalized = raw.normalize();
    if normalized.scale() > MAX_DECIMAL_PLACES {
        return Err(InvalidValue::new(format!(
            "must have at most {MAX_DECIMAL_PLACES} decimal places"
        )));
    }
    let above_min = if min_inclusive {
        normalized >= min
    } else {
        normalized > min
    };
    if !above_min || normalized > max {
        let lower = if min_inclusive {
            "at least"
        } else {
            "greater than"
        };
        return Err(InvalidValue::new(format!(
            "must be {lower} {min} and at most {max}"
        )));
    }
    Ok(normalized)
}

macro_rules! decimal_type {
    ($(#[$doc:meta])* $name:ident, min: $min:expr, inclusive: $incl:expr, max: $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Decimal);

        impl $name {
            pub fn parse(raw: Decimal) -> Result<Self, InvalidValue> {
                parse_decimal(raw, Decimal::from($min), $incl, Decimal::from($max)).map(Self)
            }

            pub fn value(self) -> Decimal {
                self.0
            }
        }
    };
}

decimal_type!(
    /// An area in square feet, greater than zero.
    Area, min: 0, inclusive: false, max: 100_000_000
);
decimal_type!(
    /// Rent per square foot per year, greater than zero.
    RentPsf, min: 0, inclusive: false, max: 100_000
);
decimal_type!(
    /// A per-square-foot allowance (tenant improvements), zero or more.
    AllowancePsf, min: 0, inclusive: true, max: 100_000
);
decimal_type!(
    /// A price in the deal's currency, greater than zero.
    Money, min: 0, inclusive: false, max: 1_000_000_000_000i64
);
decimal_type!(
    /// Annual rent escalation in percent, 0 to 100.
    EscalationPct, min: 0, inclusive: true, max: 100
);
decimal_type!(
    /// Capitalisation rate in percent, greater than 0 and at most 100.
    CapRatePct, min: 0, inclusive: false, max: 100
);

/// Year a building was completed: 1600 to 2100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct YearBuilt(u16);

impl YearBuilt {
    pub const MIN: u16 = 1600;
    pub const MAX: u16 = 2100;

    pub fn parse(raw: i64) -> Result<Self, InvalidValue> {
        match u16::try_from(raw) {
            Ok(year) if (Self::MIN..=Self::MAX).contains(&year) => Ok(Self(year)),
            _ => Err(InvalidValue::new("must be a year from 1600 to 2100")),
        }
    }

    pub fn value(self) -> u16 {
        self.0
    }
}

/// Floors above ground: 1 to 300.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Floors(u16);

impl Floors {
    pub const MIN: u16 = 1;
    pub const MAX: u16 = 300;

    pub fn parse(raw: i64) -> Result<Self, InvalidValue> {
        match u16::try_from(raw) {
            Ok(floors) if (Self::MIN..=Self::MAX).contains(&floors) => Ok(Self(floors)),
            _ => Err(InvalidValue::new("must be from 1 to 300")),
        }
    }

    pub fn value(self) -> u16 {
        self.0
    }
}

/// A count of months within a lease: `parse_term` takes 1 to 600 (fifty years),
/// `parse_free_rent` 0 to 600 (the aggregate checks it against the term).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Months(u16);

impl Months {
    /// The longest term, and the most free rent: fifty years.
    pub const MAX: u16 = 600;

    pub fn parse_term(raw: i64) -> Result<Self, InvalidValue> {
        match u16::try_from(raw) {
            Ok(months) if (1..=Self::MAX).contains(&months) => Ok(Self(months)),
            _ => Err(InvalidValue::new("must be from 1 to 600 months")),
        }
    }

    pub fn parse_free_rent(raw: i64) -> Result<Self, InvalidValue> {
        match u16::try_from(raw) {
            Ok(months) if months <= Self::MAX => Ok(Self(months)),
            _ => Err(InvalidValue::new("must be from 0 to 600 months")),
        }
    }

    pub fn value(self) -> u16 {
        self.0
    }
}

/// A deal date (commencement or sale): years 1900 to 2100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DealDate(NaiveDate);

impl DealDate {
    pub fn parse(raw: NaiveDate) -> Result<Self, InvalidValue> {
        if (1900..=2100).contains(&raw.year()) {
            Ok(Self(raw))
        } else {
            Err(InvalidValue::new(
                "must be a date in the years 1900 to 2100",
            ))
        }
    }

    pub fn value(self) -> NaiveDate {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).expect("test decimal")
    }

    #[test]
    fn country_codes_are_checked_against_the_iso_list() {
        assert!(ISO_3166_ALPHA2.windows(2).all(|w| w[0] < w[1]), "sorted");
        assert_eq!(CountryCode::parse("gb").map(|c| c.0), Ok("GB".to_owned()));
        assert!(CountryCode::parse("XX").is_err());
        assert!(CountryCode::parse("USA").is_err());
    }

    #[test]
    fn decimals_are_bounded_and_keep_their_exact_value() {
        assert_eq!(
            RentPsf::parse(dec("42.50")).map(|r| r.value()),
            Ok(dec("42.5"))
        );
        assert!(RentPsf::parse(Decimal::ZERO).is_err());
        assert!(AllowancePsf::parse(Decimal::ZERO).is_ok());
        assert!(RentPsf::parse(dec("1.00001")).is_err(), "five places");
        assert!(EscalationPct::parse(dec("100.01")).is_err());
        assert!(Area::parse(dec("-1")).is_err());
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(
            BuildingName::parse("  One Vanderbilt ").map(|n| n.0),
            Ok("One Vanderbilt".into())
        );
        assert!(BuildingName::parse("   ").is_err());
        assert!(BuildingName::parse(&"x".repeat(201)).is_err());
        assert!(Suite::parse("12\u{0}").is_err());
    }

    #[test]
    fn locations_reject_out_of_range_and_non_finite_coordinates() {
        assert!(Location::new(40.7, -73.9).is_ok());
        assert!(Location::new(90.1, 0.0).is_err());
        assert!(Location::new(0.0, -180.5).is_err());
        assert!(Location::new(f64::NAN, 0.0).is_err());
    }

    #[test]
    fn small_integers_have_sane_ranges() {
        assert!(YearBuilt::parse(1599).is_err());
        assert!(YearBuilt::parse(2024).is_ok());
        assert!(Floors::parse(0).is_err());
        assert!(Months::parse_term(0).is_err());
        assert!(Months::parse_free_rent(0).is_ok());
        assert!(DealDate::parse(NaiveDate::from_ymd_opt(1899, 12, 31).expect("date")).is_err());
    }

    #[test]
    fn enums_parse_their_wire_names() {
        assert_eq!(PropertyType::parse("mixed_use"), Ok(PropertyType::MixedUse));
        assert_eq!(LeaseType::parse("nnn"), Ok(LeaseType::TripleNet));
        assert!(BuildingClass::parse("a").is_err());
        assert_eq!(PropertyType::ALL.len(), 7);
    }
}
