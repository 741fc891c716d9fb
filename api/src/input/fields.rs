//! Raw request fields into domain values, every refusal collected in one pass.
//!
//! Each field parses to a [`Parsed`] value on its own, and [`AllParsed::all`] joins
//! them: the values when every field was accepted, else every field's refusals, in
//! the order the fields were given. A request type's `to_command` reads like its
//! command:
//!
//! ```text
//! let (name, floors) = (
//!     field("name", raw.name.as_str(), BuildingName::parse),
//!     optional("floors", raw.floors, Floors::parse),
//! )
//!     .all()?;
//! ```

use domain::values::{FieldErrors, InvalidValue};
use domain::Patch;
use poem_openapi::types::MaybeUndefined;

/// A field's value, or why it (or a part of it) was refused.
pub type Parsed<T> = Result<T, FieldErrors>;

/// A required field.
pub fn field<R, T>(
    name: &str,
    raw: R,
    parse: impl FnOnce(R) -> Result<T, InvalidValue>,
) -> Parsed<T> {
    parse(raw).map_err(|InvalidValue(message)| FieldErrors::single(name, message))
}

/// An optional field: `None` when absent.
pub fn optional<R, T>(
    name: &str,
    raw: Option<R>,
    parse: impl FnOnce(R) -> Result<T, InvalidValue>,
) -> Parsed<Option<T>> {
    raw.map(|raw| field(name, raw, parse)).transpose()
}

/// A PATCH field that cannot be cleared: absent leaves it (`None`), `null` is refused.
pub fn change<R, T>(
    name: &str,
    raw: MaybeUndefined<R>,
    parse: impl FnOnce(R) -> Result<T, InvalidValue>,
) -> Parsed<Option<T>> {
    match raw {
        MaybeUndefined::Undefined => Ok(None),
        MaybeUndefined::Null => Err(FieldErrors::single(name, "cannot be cleared")),
        MaybeUndefined::Value(raw) => field(name, raw, parse).map(Some),
    }
}

/// A PATCH field that may be cleared: absent keeps it, `null` clears it.
pub fn patch<R, T>(
    name: &str,
    raw: MaybeUndefined<R>,
    parse: impl FnOnce(R) -> Result<T, InvalidValue>,
) -> Parsed<Patch<T>> {
    match raw {
        MaybeUndefined::Undefined => Ok(Patch::Keep),
        MaybeUndefined::Null => Ok(Patch::Clear),
        MaybeUndefined::Value(raw) => field(name, raw, parse).map(Patch::Set),
    }
}

/// The fields of a nested object, named under `prefix` (`address` → `address.city`).
pub fn within<T>(prefix: &str, parsed: Parsed<T>) -> Parsed<T> {
    parsed.map_err(|errors| {
        let mut named = FieldErrors::default();
        for error in errors.iter() {
            named.push(format!("{prefix}.{}", error.field), error.message.clone());
        }
        named
    })
}

/// A tuple of [`Parsed`] fields, joined.
pub trait AllParsed {
    type Values;

    /// Every value, or every refusal of every field.
    fn all(self) -> Parsed<Self::Values>;
}

macro_rules! all_parsed {
    ($($value:ident),+) => {
        impl<$($value),+> AllParsed for ($(Parsed<$value>,)+) {
            type Values = ($($value,)+);

            #[allow(non_snake_case)]
            fn all(self) -> Parsed<Self::Values> {
                let ($($value,)+) = self;
                let mut errors = FieldErrors::default();
                $(
                    let $value = match $value {
                        Ok(value) => Some(value),
                        Err(refused) => {
                            errors.extend(refused);
                            None
                        }
                    };
                )+
                match ($($value,)+) {
                    ($(Some($value),)+) => Ok(($($value,)+)),
                    _ => Err(errors),
                }
            }
        }
    };
}

all_parsed!(A, B);
all_parsed!(A, B, C);
all_parsed!(A, B, C, D);
all_parsed!(A, B, C, D, E);
all_parsed!(A, B, C, D, E, F);
all_parsed!(A, B, C, D, E, F, G);
all_parsed!(A, B, C, D, E, F, G, H);
all_parsed!(A, B, C, D, E, F, G, H, I);
all_parsed!(A, B, C, D, E, F, G, H, I, J);
all_parsed!(A, B, C, D, E, F, G, H, I, J, K);
all_parsed!(A, B, C, D, E, F, G, H, I, J, K, L);
all_parsed!(A, B, C, D, E, F, G, H, I, J, K, L, M);
all_parsed!(A, B, C, D, E, F, G, H, I, J, K, L, M, N);
all_parsed!(A, B, C, D, E, F, G, H, I, J, K, L, M, N, O);
all_parsed!(A, B, C, D, E, F, G, H, I, J, K, L, M, N, O, P);

#[cfg(test)]
mod tests {
    use super::*;

    fn positive(raw: i64) -> Result<i64, InvalidValue> {
        if raw > 0 {
            Ok(raw)
        } else {
            Err(InvalidValue("must be greater than 0".into()))
        }
    }

    fn named(errors: FieldErrors) -> Vec<String> {
        errors.iter().map(|e| e.field.clone()).collect()
    }

    #[test]
    fn every_refused_field_is_collected_in_order() {
        let refused = (
            field("a", 0, positive),
            field("b", 2, positive),
            within(
                "c",
                (field("x", -1, positive), field("y", -2, positive)).all(),
            ),
            change("d", MaybeUndefined::<i64>::Null, positive),
        )
            .all()
            .expect_err("refused");
        assert_eq!(named(refused), ["a", "c.x", "c.y", "d"]);
    }

    #[test]
    fn accepted_fields_give_their_values() {
        let values = (
            field("a", 1, positive),
            optional("b", None::<i64>, positive),
            change("c", MaybeUndefined::Undefined, positive),
            patch("d", MaybeUndefined::<i64>::Null, positive),
            patch("e", MaybeUndefined::Value(5), positive),
        )
            .all()
            .expect("accepted");
        assert_eq!(values, (1, None, None, Patch::Clear, Patch::Set(5)));
    }
}
