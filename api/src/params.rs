//! Parameter groups: one extractor standing for several parameters, so that a handler
//! takes its query (a list's filters, sort and page) or its headers (a command's
//! `Idempotency-Key` and `If-Match`) as one value.
//!
//! poem-openapi documents one parameter per extractor. A group is documented as one
//! parameter whose schema is an object named `…Parameters`, registered with
//! [`register_group`]; [`write_out_groups`] replaces each such parameter in the
//! OpenAPI document by one parameter per property — what OpenAPI's `form` style with
//! `explode` means for an object anyway — so the committed and served document lists
//! every parameter as clients expect. [`query_parameters!`] declares a query group.

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use serde_json::{json, Value};

/// The suffix of every group schema's name.
pub const GROUP_SUFFIX: &str = "Parameters";

/// One parameter of a group.
#[derive(Debug)]
pub struct GroupMember {
    pub name: &'static str,
    pub schema: MetaSchemaRef,
    pub description: Option<&'static str>,
    pub required: bool,
}

/// Registers group `name` (ending in [`GROUP_SUFFIX`]) with its members, in order.
pub fn register_group(registry: &mut Registry, name: &'static str, members: Vec<GroupMember>) {
    debug_assert!(name.ends_with(GROUP_SUFFIX), "{name}");
    registry.create_schema::<GroupMember, _>(name.to_owned(), |_| {
        let required = members
            .iter()
            .filter(|member| member.required)
            .map(|member| member.name)
            .collect();
        let properties = members
            .into_iter()
            .enumerate()
            .map(|(position, member)| {
                // A wrapper unwrapped by `write_out_groups`: a description beside a
                // `$ref` is ignored by OpenAPI 3.0, and a JSON object keeps no order,
                // so the title carries the member's position.
                let schema = MetaSchemaRef::Inline(Box::new(MetaSchema {
                    title: Some(position.to_string()),
                    description: member.description,
                    all_of: vec![member.schema],
                    ..MetaSchema::ANY
                }));
                (member.name, schema)
            })
            .collect();
        MetaSchema {
            properties,
            required,
            ..MetaSchema::new("object")
        }
    });
}

/// Replaces, in an OpenAPI document, every parameter whose schema is a group by the
/// group's members (same location), lists path parameters first, and drops the
/// groups' schemas.
pub fn write_out_groups(spec: &mut Value) {
    let schemas = spec
        .pointer("/components/schemas")
        .cloned()
        .unwrap_or_default();
    let group_of = |parameter: &Value| {
        parameter
            .pointer("/schema/$ref")
            .and_then(Value::as_str)
            .and_then(|reference| reference.rsplit('/').next())
            .filter(|name| name.ends_with(GROUP_SUFFIX))
            .and_then(|name| schemas.get(name))
    };
    for operation in operations_mut(spec) {
        let Some(parameters) = operation
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        let mut written_out: Vec<Value> = parameters
            .drain(..)
            .flat_map(|parameter| match group_of(&parameter) {
                Some(group) => members_of(group, &parameter["in"]),
                None => vec![parameter],
            })
            .collect();
        // The path's parameters first, whatever the order of the handler's arguments
        // (a command's group comes first there, so that its caller is verified first).
        written_out.sort_by_key(|parameter| parameter["in"] != "path");
        *parameters = written_out;
    }
    if let Some(components) = spec
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        components.retain(|name, _| !name.ends_with(GROUP_SUFFIX));
    }
}

/// Every operation of an OpenAPI document (`paths.<path>.<method>`), to change it.
pub fn operations_mut(spec: &mut Value) -> impl Iterator<Item = &mut Value> {
    spec.get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|path| path.values_mut())
}

fn members_of(group: &Value, location: &Value) -> Vec<Value> {
    let required: Vec<&str> = group["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let Some(properties) = group["properties"].as_object() else {
        return Vec::new();
    };
    let mut members: Vec<(&String, &Value)> = properties.iter().collect();
    members.sort_by_key(|(_, property)| {
        property["title"]
            .as_str()
            .and_then(|position| position.parse::<usize>().ok())
    });
    members
        .into_iter()
        .map(|(name, property)| {
            let schema = property["allOf"]
                .get(0)
                .cloned()
                .unwrap_or_else(|| property.clone());
            let mut parameter = json!({
                "deprecated": false,
                "explode": true,
                "in": location,
                "name": name,
                "required": required.contains(&name.as_str()),
                "schema": schema,
            });
            if let Some(description) = property.get("description") {
                parameter["description"] = description.clone();
            }
            parameter
        })
        .collect()
}

/// A field's doc comment as a parameter's description (`None` when it has none).
pub fn doc_text(doc: &'static str) -> Option<&'static str> {
    let text = doc.trim();
    (!text.is_empty()).then_some(text)
}

/// The query's `name=value` pairs, decoded.
pub fn query_pairs(request: &poem::Request) -> Vec<(String, String)> {
    request.params().unwrap_or_default()
}

/// Parses every value of query parameter `name` as poem-openapi's `Query<T>` does.
pub fn parse_query<T: poem_openapi::types::ParseFromParameter>(
    pairs: &[(String, String)],
    name: &'static str,
) -> poem::Result<T> {
    let values = pairs
        .iter()
        .filter(|(key, _)| key == name)
        .map(|(_, value)| value.as_str());
    T::parse_from_parameters(values).map_err(|error| {
        poem_openapi::error::ParseParamError {
            name,
            reason: error.into_message(),
        }
        .into()
    })
}

/// Declares a group of query parameters: a struct with one field per parameter, taken
/// by a handler as one extractor and documented as separate parameters (doc comments
/// become their descriptions).
///
/// ```text
/// query_parameters! {
///     /// What `GET /v1/audit` filters by.
///     pub struct AuditQuery as "AuditQueryParameters" {
///         /// `building` or `comp`.
///         aggregate_type: Option<String>,
///     }
/// }
/// ```
macro_rules! query_parameters {
    (
        $(#[doc = $doc:literal])*
        pub struct $name:ident as $schema:literal {
            $(
                $(#[doc = $field_doc:literal])*
                $field:ident: $ty:ty,
            )+
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug)]
        pub struct $name {
            $(
                $(#[doc = $field_doc])*
                pub $field: $ty,
            )+
        }

        impl<'a> poem_openapi::ApiExtractor<'a> for $name {
            const TYPES: &'static [poem_openapi::ApiExtractorType] =
                &[poem_openapi::ApiExtractorType::Parameter];
            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut poem_openapi::registry::Registry) {
                $(<$ty as poem_openapi::types::Type>::register(registry);)+
                $crate::params::register_group(registry, $schema, vec![$(
                    $crate::params::GroupMember {
                        name: stringify!($field),
                        schema: <$ty as poem_openapi::types::Type>::schema_ref(),
                        description: $crate::params::doc_text(concat!($($field_doc, "\n"),*)),
                        required: <$ty as poem_openapi::types::Type>::IS_REQUIRED,
                    },
                )+]);
            }

            fn param_in() -> Option<poem_openapi::registry::MetaParamIn> {
                Some(poem_openapi::registry::MetaParamIn::Query)
            }

            fn param_schema_ref() -> Option<poem_openapi::registry::MetaSchemaRef> {
                Some(poem_openapi::registry::MetaSchemaRef::Reference($schema.to_owned()))
            }

            async fn from_request(
                request: &'a poem::Request,
                _: &mut poem::RequestBody,
                _: poem_openapi::ExtractParamOptions<()>,
            ) -> poem::Result<Self> {
                let pairs = $crate::params::query_pairs(request);
                Ok(Self {
                    $($field: $crate::params::parse_query(&pairs, stringify!($field))?,)+
                })
            }
        }
    };
}

pub(crate) use query_parameters;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_parameter_is_written_out_as_its_members() {
        let mut spec = json!({
            "paths": {"/a": {"get": {"parameters": [
                {"in": "query", "name": "filters", "schema": {"$ref": "#/components/schemas/AParameters"}},
                {"in": "header", "name": "If-None-Match", "schema": {"type": "string"}}
            ]}}},
            "components": {"schemas": {
                "AParameters": {"type": "object", "required": ["b"], "properties": {
                    "b": {"allOf": [{"$ref": "#/components/schemas/Kind"}], "title": "1"},
                    "a": {"allOf": [{"type": "string"}], "description": "The a.", "title": "0"}
                }},
                "Kind": {"type": "string", "enum": ["x"]}
            }}
        });
        write_out_groups(&mut spec);
        let parameters = &spec["paths"]["/a"]["get"]["parameters"];
        assert_eq!(parameters[0]["name"], "a");
        assert_eq!(parameters[0]["in"], "query");
        assert_eq!(parameters[0]["description"], "The a.");
        assert_eq!(parameters[0]["schema"], json!({"type": "string"}));
        assert_eq!(parameters[0]["required"], false);
        assert_eq!(parameters[1]["name"], "b");
        assert_eq!(parameters[1]["required"], true);
        assert_eq!(parameters[1]["schema"]["$ref"], "#/components/schemas/Kind");
        assert_eq!(parameters[2]["name"], "If-None-Match");
        assert!(spec["components"]["schemas"].get("AParameters").is_none());
        assert!(spec["components"]["schemas"].get("Kind").is_some());
    }
}
