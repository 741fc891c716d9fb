//! JSON request bodies that report every bad field at once.
//!
//! poem-openapi's own `Json<T>` stops at the first type error and does not say which
//! field; [`JsonBody`] first checks the whole document against `T`'s OpenAPI schema,
//! naming each field by its path (`address.country`), then lets poem-openapi parse it.
//! When the schema refuses fields, the domain still judges the others: the body is
//! repaired (a bad optional field left out, a bad required one given a placeholder)
//! and its [`DomainChecked::refusals`] join the answer, except those about a repaired
//! field — so one answer names every mistake, of type and of value alike.

use std::any::TypeId;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{OnceLock, RwLock};

use chrono::NaiveDate;
use domain::values::FieldErrors;
use poem::{FromRequest, Request, RequestBody};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use rust_decimal::Decimal;
use serde_json::Value;

use super::scalars::ISO_DATE_FORMAT;

/// A request body that could not be read; carries every refused field.
#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct BodyRejected {
    pub detail: String,
    pub errors: FieldErrors,
}

impl poem::error::ResponseError for BodyRejected {
    fn status(&self) -> poem::http::StatusCode {
        poem::http::StatusCode::BAD_REQUEST
    }
}

/// What the domain refuses in a body that matches its schema: its command's refusals.
pub trait DomainChecked {
    fn refusals(&self) -> Option<FieldErrors>;
}

/// A JSON request body of type `T`, checked field by field against `T`'s schema.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: Type> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        essence.eq_ignore_ascii_case("application/json")
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: ParseFromJSON + DomainChecked + 'static> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let bytes = Vec::<u8>::from_request(request, body).await?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| BodyRejected {
            detail: format!("the body is not valid JSON: {e}"),
            errors: FieldErrors::default(),
        })?;
        let mut errors = FieldErrors::default();
        check_value(
            &value,
            &T::schema_ref(),
            registry_of::<T>(),
            "",
            &mut errors,
        );
        if !errors.is_empty() {
            add_domain_refusals::<T>(&value, &mut errors);
            return Err(BodyRejected {
                detail: "the body does not match the schema".into(),
                errors,
            }
            .into());
        }
        T::parse_from_json(Some(value)).map(Self).map_err(|e| {
            BodyRejected {
                detail: e.into_message(),
                errors: FieldErrors::default(),
            }
            .into()
        })
    }
}

poem_openapi::impl_apirequest_for_payload!(JsonBody<T>, T: ParseFromJSON + DomainChecked + 'static);

/// Adds to the schema's refusals (`errors`) what the domain refuses in the rest of
/// `value`: the body repaired, parsed and checked; a refusal about a field the schema
/// refused (or one within or around it) is left out, being about a placeholder.
fn add_domain_refusals<T: ParseFromJSON + DomainChecked + 'static>(
    value: &Value,
    errors: &mut FieldErrors,
) {
    let Some(repaired) = repaired(value, &T::schema_ref(), registry_of::<T>()) else {
        return;
    };
    let Some(refusals) = T::parse_from_json(Some(repaired))
        .ok()
        .and_then(|body| body.refusals())
    else {
        return;
    };
    let refused: Vec<String> = errors.iter().map(|e| e.field.clone()).collect();
    let within = |inner: &str, outer: &str| {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    };
    let overlaps = |a: &str, b: &str| within(a, b) || within(b, a);
    for refusal in refusals.iter() {
        if !refused.iter().any(|field| overlaps(field, &refusal.field)) {
            errors.push(refusal.field.clone(), refusal.message.clone());
        }
    }
}

/// The schema of `schema`, looked up when it is a reference.
fn resolve<'a>(schema: &'a MetaSchemaRef, registry: &'a Registry) -> Option<&'a MetaSchema> {
    match schema {
        MetaSchemaRef::Inline(schema) => Some(schema),
        MetaSchemaRef::Reference(name) => registry.schemas.get(name),
    }
}

/// `value` (an object of `schema`) with each property the schema refuses left out
/// when optional, repaired when it is an object, else replaced by a placeholder, and
/// each missing required property given one; unknown properties left out. `None`
/// when `value` is not an object or a placeholder cannot be made.
fn repaired(value: &Value, schema: &MetaSchemaRef, registry: &Registry) -> Option<Value> {
    repaired_object(value.as_object()?, resolve(schema, registry)?, registry, 0)
}

/// How deep a repair goes: bodies nest two levels; a schema that refers to itself
/// would otherwise recurse without end.
const REPAIR_DEPTH: usize = 8;

fn repaired_object(
    object: &serde_json::Map<String, Value>,
    schema: &MetaSchema,
    registry: &Registry,
    depth: usize,
) -> Option<Value> {
    if depth > REPAIR_DEPTH {
        return None;
    }
    let mut out = serde_json::Map::new();
    for (name, property) in &schema.properties {
        let required = schema.required.contains(name);
        let repaired_value = match object.get(*name) {
            None | Some(Value::Null) if required => placeholder(property, registry, depth + 1)?,
            // Absent stays absent; null stays null (a PATCH's "clear").
            None => continue,
            Some(Value::Null) => Value::Null,
            Some(field) => {
                let mut refused = FieldErrors::default();
                check_value(field, property, registry, "", &mut refused);
                if refused.is_empty() {
                    field.clone()
                } else if let Some(inner) = field
                    .is_object()
                    .then(|| {
                        let schema = resolve(property, registry)?;
                        repaired_object(field.as_object()?, schema, registry, depth + 1)
                    })
                    .flatten()
                {
                    inner
                } else if required {
                    placeholder(property, registry, depth + 1)?
                } else {
                    continue;
                }
            }
        };
        out.insert((*name).to_owned(), repaired_value);
    }
    Some(Value::Object(out))
}

/// A value `schema` accepts (for a repaired body; never seen by anyone).
fn placeholder(schema: &MetaSchemaRef, registry: &Registry, depth: usize) -> Option<Value> {
    if depth > REPAIR_DEPTH {
        return None;
    }
    let schema = resolve(schema, registry)?;
    if let Some(first) = schema.any_of.first().or(schema.one_of.first()) {
        return placeholder(first, registry, depth + 1);
    }
    if let Some(first) = schema.all_of.first() {
        return placeholder(first, registry, depth + 1);
    }
    if let Some(item) = schema.enum_items.first() {
        return Some(item.clone());
    }
    Some(match (schema.ty, schema.format) {
        ("string", Some("uuid")) => Value::from(uuid::Uuid::nil().to_string()),
        ("string", Some("date")) => Value::from("2000-01-01"),
        ("string", Some("decimal")) => Value::from("1"),
        ("string", _) => Value::from("x"),
        ("integer" | "number", _) => Value::from(1),
        ("boolean", _) => Value::from(false),
        ("object", _) => repaired_object(&serde_json::Map::new(), schema, registry, depth)?,
        ("array", _) => Value::Array(Vec::new()),
        _ => return None,
    })
}

/// The schemas `T` refers to, built once per body type.
fn registry_of<T: Type + 'static>() -> &'static Registry {
    static REGISTRIES: OnceLock<RwLock<HashMap<TypeId, &'static Registry>>> = OnceLock::new();
    let registries = REGISTRIES.get_or_init(Default::default);
    let id = TypeId::of::<T>();
    if let Some(registry) = registries.read().ok().and_then(|map| map.get(&id).copied()) {
        return registry;
    }
    let mut registry = Registry::new();
    T::register(&mut registry);
    // One registry per body type, kept for the life of the process.
    let registry: &'static Registry = Box::leak(Box::new(registry));
    if let Ok(mut map) = registries.write() {
        map.insert(id, registry);
    }
    registry
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

fn field_name(path: &str) -> &str {
    if path.is_empty() {
        "body"
    } else {
        path
    }
}

/// Checks `value` against `schema`, recording each mismatch under its path.
fn check_value(
    value: &Value,
    schema: &MetaSchemaRef,
    registry: &Registry,
    path: &str,
    errors: &mut FieldErrors,
) {
    let schema: &MetaSchema = match schema {
        MetaSchemaRef::Inline(schema) => schema,
        MetaSchemaRef::Reference(name) => match registry.schemas.get(name) {
            Some(schema) => schema,
            None => return,
        },
    };
    let alternatives = if schema.any_of.is_empty() {
        &schema.one_of
    } else {
        &schema.any_of
    };
    if !alternatives.is_empty() {
        let fits = alternatives.iter().any(|alternative| {
            let mut trial = FieldErrors::default();
            check_value(value, alternative, registry, path, &mut trial);
            trial.is_empty()
        });
        if !fits {
            let expected: Vec<String> = alternatives
                .iter()
                .map(|alternative| describe(alternative, registry))
                .collect();
            errors.push(
                field_name(path),
                format!("must be {}", expected.join(" or ")),
            );
        }
        return;
    }
    for part in &schema.all_of {
        check_value(value, part, registry, path, errors);
    }
    match schema.ty {
        "object" => check_object(value, schema, registry, path, errors),
        "array" => match (value.as_array(), &schema.items) {
            (Some(items), Some(item_schema)) => {
                for (i, item) in items.iter().enumerate() {
                    check_value(item, item_schema, registry, &format!("{path}[{i}]"), errors);
                }
            }
            (Some(_), None) => {}
            (None, _) => errors.push(field_name(path), "must be an array"),
        },
        "string" => check_string(value, schema, path, errors),
        "integer" if value.as_i64().is_none() && value.as_u64().is_none() => {
            errors.push(field_name(path), "must be an integer");
        }
        "number" if !value.is_number() => errors.push(field_name(path), "must be a number"),
        "boolean" if !value.is_boolean() => {
            errors.push(field_name(path), "must be true or false");
        }
        _ => {}
    }
}

/// "a string (decimal)", "a number", "a Foo object": what a schema accepts, in words.
fn describe(schema: &MetaSchemaRef, registry: &Registry) -> String {
    let (name, schema) = match schema {
        MetaSchemaRef::Inline(schema) => (None, Some(&**schema)),
        MetaSchemaRef::Reference(name) => (Some(name.as_str()), registry.schemas.get(name)),
    };
    match (schema.map(|s| (s.ty, s.format)), name) {
        (Some(("object", _)), Some(name)) => format!("a {name} object"),
        (Some((ty, Some(format))), _) => format!("a {ty} ({format})"),
        (Some((ty, None)), _) if !ty.is_empty() => format!("a {ty}"),
        _ => "another type".to_owned(),
    }
}

fn check_object(
    value: &Value,
    schema: &MetaSchema,
    registry: &Registry,
    path: &str,
    errors: &mut FieldErrors,
) {
    let Some(object) = value.as_object() else {
        errors.push(field_name(path), "must be an object");
        return;
    };
    for required in &schema.required {
        if object.get(*required).is_none_or(Value::is_null) {
            errors.push(join(path, required), "is required");
        }
    }
    // In the schema's field order, so errors read like the document's definition.
    for (name, field_schema) in &schema.properties {
        match object.get(*name) {
            // A null optional field means "absent" (or "clear" in a PATCH).
            None | Some(Value::Null) => {}
            Some(field_value) => check_value(
                field_value,
                field_schema,
                registry,
                &join(path, name),
                errors,
            ),
        }
    }
    for name in object.keys() {
        if !schema
            .properties
            .iter()
            .any(|(property, _)| property == name)
        {
            errors.push(join(path, name), "is not a known field");
        }
    }
}

fn check_string(value: &Value, schema: &MetaSchema, path: &str, errors: &mut FieldErrors) {
    let Some(text) = value.as_str() else {
        errors.push(field_name(path), "must be a string");
        return;
    };
    if !schema.enum_items.is_empty() && !schema.enum_items.contains(value) {
        let choices: Vec<String> = schema
            .enum_items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect();
        errors.push(
            field_name(path),
            format!("must be one of: {}", choices.join(", ")),
        );
        return;
    }
    let well_formed = match schema.format {
        Some("uuid") => uuid::Uuid::parse_str(text).is_ok(),
        Some("date") => NaiveDate::parse_from_str(text, ISO_DATE_FORMAT).is_ok(),
        Some("decimal") => Decimal::from_str(text).is_ok(),
        _ => true,
    };
    if !well_formed {
        let expected = match schema.format {
            Some("uuid") => "must be a UUID",
            Some("date") => "must be a date as YYYY-MM-DD",
            _ => "must be a decimal number",
        };
        errors.push(field_name(path), expected);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Exact;
    use poem_openapi::Object;
    use serde_json::json;

    #[derive(Debug, Object)]
    struct Inner {
        country: String,
    }

    #[derive(Debug, Object)]
    struct Outer {
        name: String,
        count: i64,
        inner: Inner,
        price: Exact,
        note: Option<String>,
    }

    fn errors_for(value: Value) -> Vec<(String, String)> {
        let mut errors = FieldErrors::default();
        check_value(
            &value,
            &Outer::schema_ref(),
            registry_of::<Outer>(),
            "",
            &mut errors,
        );
        errors
            .iter()
            .map(|e| (e.field.clone(), e.message.clone()))
            .collect()
    }

    #[test]
    fn every_bad_field_is_named_by_its_path() {
        let errors = errors_for(json!({
            "name": 7, "count": "x", "inner": {"country": false}, "price": true, "extra": 1
        }));
        let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            ["name", "count", "inner.country", "price", "extra"],
            "{errors:?}"
        );
    }

    #[test]
    fn missing_and_null_required_fields_are_named() {
        let errors = errors_for(json!({"name": null, "count": 1, "price": "1.5", "note": null}));
        let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["name", "inner"]);
    }

    #[test]
    fn a_valid_document_has_no_errors() {
        assert!(errors_for(json!({
            "name": "x", "count": 2, "inner": {"country": "US"}, "price": 85.5
        }))
        .is_empty());
    }
}
