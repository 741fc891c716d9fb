//! Scalars as the API reads and writes them: exact decimals, `YYYY-MM-DD` dates and
//! domain enumerations by their wire names.

use std::borrow::Cow;
use std::str::FromStr;

use chrono::NaiveDate;
use domain::values::TextEnum;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{
    ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type,
};
use rust_decimal::Decimal;
use serde_json::Value;

/// The parts of poem-openapi's `Type` that are the same for every scalar here.
macro_rules! scalar_type_common {
    () => {
        const IS_REQUIRED: bool = true;
        type RawValueType = Self;
        type RawElementValueType = Self;

        fn as_raw_value(&self) -> Option<&Self::RawValueType> {
            Some(self)
        }

        fn raw_element_iter<'a>(
            &'a self,
        ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
            Box::new(self.as_raw_value().into_iter())
        }
    };
}

/// An exact decimal. Accepted as a JSON string (`"85.50"`) or number (`85.5`);
/// numbers are read from their decimal text, never through a binary float, so up to
/// 15 significant digits arrive exactly (send strings beyond that). Always written
/// as a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Exact(pub Decimal);

const EXACT_DESCRIPTION: &str = "an exact decimal, as a JSON number or string";
const EXACT_PARSE_ERROR: &str = "must be a decimal number, as a JSON number or string";

impl Type for Exact {
    scalar_type_common!();

    fn name() -> Cow<'static, str> {
        "exact_decimal".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            description: Some(EXACT_DESCRIPTION),
            any_of: vec![
                MetaSchemaRef::Reference(DECIMAL.to_owned()),
                MetaSchemaRef::Inline(Box::new(MetaSchema::new("number"))),
            ],
            ..MetaSchema::ANY
        }))
    }

    fn register(registry: &mut Registry) {
        register_decimal(registry);
    }
}

/// The one schema of a decimal as the API writes it (and accepts it as a string).
const DECIMAL: &str = "Decimal";

fn register_decimal(registry: &mut Registry) {
    registry.create_schema::<DecimalText, _>(DECIMAL.to_owned(), |_| MetaSchema {
        description: Some("An exact decimal number, as a string: `\"85.50\"`."),
        pattern: Some(r"^-?[0-9]+(\.[0-9]+)?$".to_owned()),
        example: Some(Value::from("85.50")),
        ..MetaSchema::new_with_format("string", "decimal")
    });
}

/// A decimal in a read response: the projections write it as a string; this type
/// documents it as the one [`DECIMAL`] schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecimalText(pub String);

impl Type for DecimalText {
    scalar_type_common!();

    fn name() -> Cow<'static, str> {
        DECIMAL.into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference(DECIMAL.to_owned())
    }

    fn register(registry: &mut Registry) {
        register_decimal(registry);
    }
}

impl ParseFromJSON for DecimalText {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(text)) => Ok(Self(text)),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl ToJSON for DecimalText {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

impl ParseFromJSON for Exact {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(text)) => Decimal::from_str(text.trim())
                .map(Self)
                .map_err(|_| ParseError::custom(EXACT_PARSE_ERROR)),
            // serde_json prints a float with the shortest text that reads back the
            // same, i.e. the digits the client wrote.
            Some(Value::Number(number)) => Decimal::from_str(&number.to_string())
                .or_else(|_| Decimal::from_scientific(&number.to_string()))
                .map(Self)
                .map_err(|_| ParseError::custom(EXACT_PARSE_ERROR)),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl ParseFromParameter for Exact {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Decimal::from_str(value.trim())
            .map(Self)
            .map_err(|_| ParseError::custom(EXACT_PARSE_ERROR))
    }
}

impl ToJSON for Exact {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.to_string()))
    }
}

/// A calendar date as `YYYY-MM-DD` (OpenAPI `format: date`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IsoDate(pub NaiveDate);

pub(super) const ISO_DATE_FORMAT: &str = "%Y-%m-%d";

fn parse_iso_date(text: &str) -> ParseResult<IsoDate> {
    NaiveDate::parse_from_str(text, ISO_DATE_FORMAT)
        .map(IsoDate)
        .map_err(|_| ParseError::custom("must be a date as YYYY-MM-DD"))
}

impl Type for IsoDate {
    scalar_type_common!();

    fn name() -> Cow<'static, str> {
        "date".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "date")))
    }
}

impl ParseFromJSON for IsoDate {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(text)) => parse_iso_date(&text),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl ParseFromParameter for IsoDate {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        parse_iso_date(value)
    }
}

impl ToJSON for IsoDate {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.format(ISO_DATE_FORMAT).to_string()))
    }
}

/// A fixed list of words a query parameter takes (a sort, an expansion), named in the
/// OpenAPI document as an enumeration of its own.
pub trait Words: Send + Sync + 'static {
    /// The schema's name.
    const NAME: &'static str;
    const ALL: &'static [&'static str];
}

/// One of `W`'s words.
#[derive(Debug)]
pub struct Word<W>(pub &'static str, std::marker::PhantomData<W>);

impl<W: Words> Type for Word<W> {
    scalar_type_common!();

    fn name() -> Cow<'static, str> {
        W::NAME.into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference(W::NAME.to_owned())
    }

    fn register(registry: &mut Registry) {
        registry.create_schema::<Self, _>(W::NAME.to_owned(), |_| MetaSchema {
            enum_items: W::ALL.iter().map(|word| Value::from(*word)).collect(),
            ..MetaSchema::new("string")
        });
    }
}

impl<W: Words> ParseFromParameter for Word<W> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        W::ALL
            .iter()
            .find(|word| **word == value)
            .map(|word| Self(word, std::marker::PhantomData))
            .ok_or_else(|| ParseError::custom(format!("must be one of: {}", W::ALL.join(", "))))
    }
}

impl<W: Words> ParseFromJSON for Word<W> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(text)) => Self::parse_from_parameter(&text),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl<W: Words> ToJSON for Word<W> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::from(self.0))
    }
}

/// A domain enumeration offered by its wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice<E>(pub E);

impl<E: TextEnum> Type for Choice<E> {
    scalar_type_common!();

    fn name() -> Cow<'static, str> {
        E::NAME.into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference(E::NAME.to_owned())
    }

    fn register(registry: &mut Registry) {
        registry.create_schema::<Self, _>(E::NAME.to_owned(), |_| MetaSchema {
            enum_items: E::ALL.iter().map(|e| Value::from(e.as_str())).collect(),
            ..MetaSchema::new("string")
        });
    }
}

impl<E: TextEnum> ParseFromJSON for Choice<E> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(text)) => E::parse(&text)
                .map(Self)
                .map_err(|e| ParseError::custom(e.0)),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl<E: TextEnum> ParseFromParameter for Choice<E> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        E::parse(value)
            .map(Self)
            .map_err(|e| ParseError::custom(e.0))
    }
}

impl<E: TextEnum> ToJSON for Choice<E> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::from(self.0.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decimals_arrive_exactly_from_numbers_and_strings() {
        let from_number = Exact::parse_from_json(Some(json!(0.1))).expect("number");
        assert_eq!(from_number.0.to_string(), "0.1");
        let from_string = Exact::parse_from_json(Some(json!("85.50"))).expect("string");
        assert_eq!(from_string.0.to_string(), "85.50");
        assert!(Exact::parse_from_json(Some(json!("eighty"))).is_err());
    }
}
