//! The OpenAPI service ([`openapi`]: every operation) and its document as served and
//! committed.
//!
//! poem-openapi writes one `paths` entry per API type, so a path served by two types
//! (the commands and the queries of `/v1/buildings`) appears twice in its JSON, and
//! every JSON reader keeps only the last: `POST /v1/buildings` vanished from Swagger
//! UI and from clients' generators. [`document`] re-reads the JSON merging duplicate
//! keys, so each path holds all its operations. A parameter group (an extractor
//! standing for several parameters, `crate::params`) is written out here too.

use poem_openapi::{LicenseObject, OpenApiService, ServerObject};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::admin::AdminApi;
use crate::audit::AuditApi;
use crate::buildings::{BuildingQueriesApi, BuildingsApi};
use crate::comps::{CompQueriesApi, CompsApi};
use crate::market::MarketApi;
use crate::ops::OpsApi;

/// Every operation group, in the order the document lists them.
type Apis = (
    BuildingsApi,
    BuildingQueriesApi,
    CompsApi,
    CompQueriesApi,
    MarketApi,
    AuditApi,
    AdminApi,
    OpsApi,
);

/// The OpenAPI service: every operation, documented.
pub fn openapi() -> OpenApiService<Apis, ()> {
    OpenApiService::new(Apis::default(), "Prism API", env!("CARGO_PKG_VERSION"))
        .server(ServerObject::new("/").description("this server"))
        .license(LicenseObject::new("Proprietary"))
        .description(
            "Commercial real estate data: buildings and lease/sale comparables. \
         Commands are event-sourced; every response to a command carries the \
         aggregate's id, its new version and the log position of its last event; \
         reads come from projections the worker \
         builds from the event log (pass a command's `position` as `min_position` to \
         read your own write). \
         Errors are application/problem+json; their types are listed in docs/errors.md.",
        )
}

/// A JSON value read with duplicate object keys merged (objects recursively; for
/// anything else the last value wins).
struct Merged(Value);

fn merge_into(target: &mut Map<String, Value>, key: String, value: Value) {
    match (target.get_mut(&key), value) {
        (Some(Value::Object(existing)), Value::Object(more)) => {
            for (k, v) in more {
                merge_into(existing, k, v);
            }
        }
        (_, value) => {
            target.insert(key, value);
        }
    }
}

struct MergingVisitor;

impl<'de> Visitor<'de> for MergingVisitor {
    type Value = Merged;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Merged, E> {
        Ok(Merged(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Merged, E> {
        Ok(Merged(Value::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Merged, E> {
        Ok(Merged(Value::from(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Merged, E> {
        Ok(Merged(Value::from(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Merged, E> {
        Ok(Merged(Value::String(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Merged, E> {
        Ok(Merged(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<Merged, E> {
        Ok(Merged(Value::Null))
    }

    fn visit_none<E>(self) -> Result<Merged, E> {
        Ok(Merged(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Merged, A::Error> {
        let mut items = Vec::new();
        while let Some(Merged(item)) = seq.next_element::<Merged>()? {
            items.push(item);
        }
        Ok(Merged(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Merged, A::Error> {
        let mut object = Map::new();
        while let Some((key, Merged(value))) = map.next_entry::<String, Merged>()? {
            merge_into(&mut object, key, value);
        }
        Ok(Merged(Value::Object(object)))
    }
}

impl<'de> Deserialize<'de> for Merged {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MergingVisitor)
    }
}

/// The OpenAPI document of every operation.
pub fn document() -> String {
    render(&openapi().spec())
}

/// The document as served and committed, from poem-openapi's `raw` one: duplicate
/// paths merged, parameter groups written out, the input's bounds stated, what the edge does for every operation
/// documented on each, nullable references typed; pretty-printed.
pub fn render(raw: &str) -> String {
    match serde_json::from_str::<Merged>(raw) {
        Ok(Merged(mut value)) => {
            crate::params::write_out_groups(&mut value);
            // Every bound's place is there (a test holds the list to the document).
            let _unplaced = crate::bounds::state_bounds(&mut value);
            document_the_edge(&mut value);
            keep_possible_statuses(&mut value);
            declare_edge_headers(&mut value);
            type_nullable_references(&mut value);
            serde_json::to_string_pretty(&value).unwrap_or_else(|_| raw.to_owned())
        }
        Err(_) => raw.to_owned(),
    }
}

/// What the edge does for every operation, on each: a query parameter the operation
/// does not read is a `400` (so every operation can answer one), and an operation
/// that names no security scheme is public (`security: []`, said explicitly).
fn document_the_edge(spec: &mut Value) {
    let operations = crate::params::operations_mut(spec).filter_map(Value::as_object_mut);
    for operation in operations {
        if let Some(responses) = operation
            .get_mut("responses")
            .and_then(Value::as_object_mut)
        {
            responses.entry("400").or_insert_with(|| {
                serde_json::json!({
                    "description": "The request is malformed: a query parameter this operation does not read.",
                    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
                })
            });
        }
        operation
            .entry("security")
            .or_insert_with(|| Value::Array(Vec::new()));
    }
}

/// Each operation declares only the statuses it can answer. Every operation shares
/// the problem responses poem-openapi gives them all: a read parses no body (no `409`,
/// `415`, `422`; `413` stays, the edge limits any request's body), and an operation
/// whose path names no resource (a list, a creation) answers no `404`. (Which success a
/// command answers, `201` or `200`, its response type says.)
fn keep_possible_statuses(spec: &mut Value) {
    let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, methods) in paths.iter_mut() {
        let names_one = path.contains('{');
        let operations = methods
            .as_object_mut()
            .into_iter()
            .flat_map(|methods| methods.iter_mut());
        for (method, operation) in operations {
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            let reads = method == "get";
            for status in ["409", "415", "422"].iter().filter(|_| reads) {
                responses.remove(*status);
            }
            if !names_one {
                responses.remove("404");
            }
        }
    }
}

/// The edge's headers on every answer, declared on each response: `X-Request-Id`
/// always, and under `/v1/` the rate limit's `RateLimit` and `RateLimit-Policy` (on
/// every answer it counted; absent while the limiter is off or unreachable).
fn declare_edge_headers(spec: &mut Value) {
    let header = |description: &str| {
        serde_json::json!({
            "description": description,
            "required": false,
            "schema": {"type": "string"}
        })
    };
    let declared = serde_json::json!({
        "RequestId": header(
            "The request's id: the client's `X-Request-Id` when well-formed, else one made \
             by the server. Problems carry it as `request_id`; the logs and traces too.",
        ),
        "RateLimit": header(
            "The rate limit's state after this request (IETF RateLimit header fields): \
             `\"default\";r=<requests left>;t=<seconds until the window resets>`.",
        ),
        "RateLimitPolicy": header(
            "The rate limit's policy: `\"default\";q=<requests per window>;w=<window in seconds>`.",
        ),
    });
    if let Some(components) = spec.get_mut("components").and_then(Value::as_object_mut) {
        components.insert("headers".into(), declared);
    }
    let reference =
        |name: &str| serde_json::json!({"$ref": format!("#/components/headers/{name}")});
    let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, methods) in paths.iter_mut() {
        let limited = path.starts_with("/v1/");
        let responses = methods
            .as_object_mut()
            .into_iter()
            .flat_map(|methods| methods.values_mut())
            .filter_map(|operation| operation.get_mut("responses"))
            .filter_map(Value::as_object_mut)
            .flat_map(|responses| responses.values_mut())
            .filter_map(Value::as_object_mut);
        for response in responses {
            let headers = response
                .entry("headers")
                .or_insert_with(|| Value::Object(Default::default()));
            let Some(headers) = headers.as_object_mut() else {
                continue;
            };
            // poem-openapi writes names in capitals (`ETAG`): as the server sends them.
            *headers = std::mem::take(headers)
                .into_iter()
                .map(|(name, header)| (header_case(&name), header))
                .collect();
            headers.insert("X-Request-Id".into(), reference("RequestId"));
            if limited {
                headers.insert("RateLimit".into(), reference("RateLimit"));
                headers.insert("RateLimit-Policy".into(), reference("RateLimitPolicy"));
            }
        }
    }
}

/// A header's name as it is usually written: `ETAG` → `ETag`, `RETRY-AFTER` →
/// `Retry-After`.
fn header_case(name: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "etag" => "ETag".into(),
        "www-authenticate" => "WWW-Authenticate".into(),
        lower => lower
            .split('-')
            .map(|part| {
                let mut chars = part.chars();
                chars
                    .next()
                    .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("-"),
    }
}

/// poem-openapi writes a described reference as `allOf: [$ref, {description}]`, and a
/// nullable one as `allOf: [$ref, {nullable: true}]` with `nullable` beside it and no
/// `type`, which OpenAPI 3.0 leaves without meaning (`nullable` applies to a `type`):
/// the annotations move beside the `allOf`, which keeps the reference alone, and a
/// nullable one gets its referenced schema's type.
fn type_nullable_references(spec: &mut Value) {
    let schemas = spec
        .pointer("/components/schemas")
        .cloned()
        .unwrap_or_default();
    fn walk(value: &mut Value, schemas: &Value) {
        match value {
            Value::Object(object) => {
                // `allOf: [$ref, {description}]` (a described reference): the
                // description moves beside the `allOf`, which keeps the reference
                // alone, so generated types read `Ref`, not `Ref & unknown`.
                let annotations_only = |part: &Value| {
                    part.as_object().is_some_and(|part| {
                        !part.contains_key("$ref")
                            && part.keys().all(|key| {
                                matches!(key.as_str(), "description" | "nullable" | "title")
                            })
                    })
                };
                let described_reference = object
                    .get("allOf")
                    .and_then(Value::as_array)
                    .is_some_and(|parts| {
                        parts.len() > 1
                            && parts
                                .iter()
                                .filter(|part| part.get("$ref").is_some())
                                .count()
                                == 1
                            && parts
                                .iter()
                                .filter(|part| part.get("$ref").is_none())
                                .all(annotations_only)
                    });
                if described_reference {
                    let parts = object["allOf"].as_array().cloned().unwrap_or_default();
                    for part in parts.iter().filter(|part| part.get("$ref").is_none()) {
                        for (key, value) in part.as_object().into_iter().flatten() {
                            object.entry(key.clone()).or_insert_with(|| value.clone());
                        }
                    }
                    let reference: Vec<Value> = parts
                        .into_iter()
                        .filter(|part| part.get("$ref").is_some())
                        .collect();
                    object.insert("allOf".into(), Value::Array(reference));
                }
                // A nullable `anyOf` of types (an exact decimal: a string or a number):
                // each alternative is nullable instead.
                let nullable_alternatives = object.get("nullable") == Some(&Value::Bool(true))
                    && !object.contains_key("type")
                    && object.get("anyOf").is_some_and(Value::is_array);
                if nullable_alternatives {
                    object.remove("nullable");
                    for alternative in object["anyOf"].as_array_mut().into_iter().flatten() {
                        if let Some(alternative) = alternative.as_object_mut() {
                            if alternative.contains_key("type") {
                                alternative.insert("nullable".into(), Value::Bool(true));
                            }
                        }
                    }
                }
                let nullable_reference = object.get("nullable") == Some(&Value::Bool(true))
                    && !object.contains_key("type")
                    && object.contains_key("allOf");
                if nullable_reference {
                    let parts = object["allOf"].as_array().cloned().unwrap_or_default();
                    let reference = parts.iter().find_map(|part| part.get("$ref").cloned());
                    if let Some(reference) = reference {
                        let name = reference.as_str().and_then(|r| r.rsplit('/').next());
                        let ty = name
                            .and_then(|name| schemas.get(name))
                            .and_then(|schema| schema.get("type"))
                            .cloned()
                            .unwrap_or_else(|| Value::from("object"));
                        object.insert("type".into(), ty);
                        object.insert(
                            "allOf".into(),
                            Value::Array(vec![serde_json::json!({"$ref": reference})]),
                        );
                    }
                }
                for child in object.values_mut() {
                    walk(child, schemas);
                }
            }
            Value::Array(items) => {
                for item in items {
                    walk(item, schemas);
                }
            }
            _ => {}
        }
    }
    walk(spec, &schemas);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bound_has_its_place_in_the_document() {
        let Merged(mut value) = serde_json::from_str(&openapi().spec()).expect("json");
        crate::params::write_out_groups(&mut value);
        assert_eq!(crate::bounds::state_bounds(&mut value), []);
    }

    #[test]
    fn each_operation_declares_only_the_statuses_it_can_answer() {
        let spec: Value = serde_json::from_str(&document()).expect("json");
        let statuses = |path: &str, method: &str| -> Vec<String> {
            spec["paths"][path][method]["responses"]
                .as_object()
                .map(|responses| responses.keys().cloned().collect())
                .unwrap_or_default()
        };
        let register = statuses("/v1/buildings", "post");
        assert!(register.contains(&"201".into()) && !register.contains(&"200".into()));
        let update = statuses("/v1/buildings/{id}", "patch");
        assert!(update.contains(&"200".into()) && !update.contains(&"201".into()));
        let list = statuses("/v1/buildings", "get");
        for impossible in ["404", "409", "415", "422"] {
            assert!(!list.contains(&impossible.into()), "{impossible}: {list:?}");
        }
        assert!(statuses("/v1/buildings/{id}", "get").contains(&"404".into()));
        let headers = &spec["paths"]["/v1/buildings"]["get"]["responses"]["200"]["headers"];
        for name in ["X-Request-Id", "RateLimit", "RateLimit-Policy", "ETag"] {
            assert!(headers.get(name).is_some(), "{name} not declared");
        }
    }

    #[test]
    fn duplicate_paths_keep_every_operation() {
        let merged = render(
            r#"{"paths": {"/a": {"get": {"x": 1}}, "/a": {"post": {"y": [1, {"z": null}]}}}}"#,
        );
        let value: Value = serde_json::from_str(&merged).expect("json");
        assert_eq!(value["paths"]["/a"]["get"]["x"], 1);
        assert_eq!(value["paths"]["/a"]["post"]["y"][1]["z"], Value::Null);
        let spec: Value = serde_json::from_str(&document()).expect("json");
        let buildings = spec["paths"]["/v1/buildings"].as_object().expect("path");
        assert!(buildings.contains_key("get") && buildings.contains_key("post"));
        assert!(spec["paths"]["/v1/comps/{id}"]
            .as_object()
            .is_some_and(|ops| ops.contains_key("patch")));
    }
}
