//! The read responses are the projections' views serialised by serde (and cached as
//! bytes); the OpenAPI document describes them with the api's own types. This proves
//! the two agree for every view: each read, with optional fields filled and empty,
//! matches its operation's documented schema — no undocumented field, no required
//! field missing, every type and nullability as documented.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{bodies, project_until, spawn_app, token_with_scopes, ORG, USER};

const READ_SCOPES: [&str; 4] = [
    "buildings:read",
    "comps:read",
    "audit:read",
    "projections:admin",
];

/// `schema`, or the schema it refers to.
fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap_or_default();
            &spec["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// Why `value` does not match `schema`, one line per mismatch, with its JSON path.
fn mismatches(spec: &Value, schema: &Value, value: &Value, path: &str, found: &mut Vec<String>) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or_default();
        let target = &spec["components"]["schemas"][name];
        assert!(!target.is_null(), "{path}: no schema {name}");
        return mismatches(spec, target, value, path, found);
    }
    if value.is_null() {
        if schema["nullable"] != true {
            found.push(format!("{path}: null, but not nullable"));
        }
        return;
    }
    if let Some(property) = schema["discriminator"]["propertyName"].as_str() {
        // A discriminated union: the value's own tag names its alternative.
        let tag = value[property].as_str().unwrap_or_default();
        match schema["discriminator"]["mapping"][tag].as_str() {
            Some(reference) => {
                let alternative = json!({ "$ref": reference });
                mismatches(spec, &alternative, value, path, found);
            }
            None => found.push(format!("{path}.{property}: {tag:?} names no alternative")),
        }
        return;
    }
    for keyword in ["anyOf", "oneOf"] {
        if let Some(alternatives) = schema[keyword].as_array() {
            let fits = alternatives.iter().any(|alternative| {
                let mut trial = Vec::new();
                mismatches(spec, alternative, value, path, &mut trial);
                trial.is_empty()
            });
            if !fits {
                found.push(format!(
                    "{path}: {value} matches no alternative of {keyword}"
                ));
            }
            return;
        }
    }
    if let Some(parts) = schema["allOf"].as_array() {
        // Objects in parts (a discriminated union's variant: its `kind` and its
        // fields) are one object: the properties of every part are documented.
        let resolved: Vec<&Value> = parts.iter().map(|part| resolve(spec, part)).collect();
        if resolved.len() > 1 && resolved.iter().all(|part| part["type"] == "object") {
            let mut merged = json!({"type": "object", "properties": {}, "required": []});
            for part in resolved {
                for (name, property) in part["properties"].as_object().into_iter().flatten() {
                    merged["properties"][name] = property.clone();
                }
                for name in part["required"].as_array().into_iter().flatten() {
                    merged["required"]
                        .as_array_mut()
                        .expect("list")
                        .push(name.clone());
                }
            }
            return mismatches(spec, &merged, value, path, found);
        }
        // A described or nullable reference: the parts say what the value is.
        for part in parts {
            mismatches(spec, part, value, path, found);
        }
        return;
    }
    let fits = match schema["type"].as_str() {
        Some("object") => {
            let Some(object) = value.as_object() else {
                found.push(format!("{path}: not an object"));
                return;
            };
            let properties = schema["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let required = schema["required"].as_array().cloned().unwrap_or_default();
            for (name, property) in &properties {
                match object.get(name) {
                    Some(field) => {
                        mismatches(spec, property, field, &format!("{path}.{name}"), found)
                    }
                    None if required.contains(&json!(name)) => {
                        found.push(format!("{path}.{name}: required, not sent"))
                    }
                    None => {}
                }
            }
            for name in object.keys() {
                if !properties.contains_key(name) {
                    found.push(format!("{path}.{name}: sent, not documented"));
                }
            }
            true
        }
        Some("array") => {
            for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                mismatches(spec, &schema["items"], item, &format!("{path}[{i}]"), found);
            }
            value.is_array()
        }
        Some("string") => {
            value.is_string()
                && schema["enum"]
                    .as_array()
                    .is_none_or(|choices| choices.contains(value))
        }
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !fits {
        found.push(format!("{path}: {value} is not a {}", schema["type"]));
    }
}

/// The documented schema of `operation_id`'s 200 answer.
fn answer_schema<'a>(spec: &'a Value, operation_id: &str) -> &'a Value {
    let operation = spec["paths"]
        .as_object()
        .into_iter()
        .flat_map(|paths| paths.values())
        .filter_map(Value::as_object)
        .flat_map(|methods| methods.values())
        .find(|operation| operation["operationId"] == operation_id)
        .unwrap_or_else(|| panic!("no operation {operation_id}"));
    operation["responses"]["200"]["content"]
        .as_object()
        .and_then(|content| content.values().next())
        .map(|media| &media["schema"])
        .unwrap_or_else(|| panic!("{operation_id} documents no 200 body"))
}

#[tokio::test]
async fn every_read_answers_exactly_as_documented() {
    let app = spawn_app().await;
    let spec: Value = serde_json::from_str(&api::spec::document()).expect("the document");

    // Every optional field filled: the building, a lease and a sale in it.
    let full = app.register_building().await;
    let lease = app.record_lease(&full).await;
    let sale = app
        .call(Method::POST, "/v1/comps/sale", Some(&bodies::sale(&full)))
        .await
        .id();
    // Every optional field left out.
    let mut bare_building = bodies::building();
    for field in ["building_class", "year_built", "floors", "submarket"] {
        bare_building.as_object_mut().expect("body").remove(field);
    }
    for field in ["region", "postal_code"] {
        bare_building["address"]
            .as_object_mut()
            .expect("address")
            .remove(field);
    }
    let bare = app
        .call(Method::POST, "/v1/buildings", Some(&bare_building))
        .await
        .id();
    let mut bare_lease = bodies::lease(&bare);
    bare_lease.as_object_mut().expect("body").remove("suite");
    let bare_lease = app
        .call(Method::POST, "/v1/comps/lease", Some(&bare_lease))
        .await
        .id();
    let mut bare_sale = bodies::sale(&bare);
    bare_sale
        .as_object_mut()
        .expect("body")
        .remove("cap_rate_pct");
    let bare_sale = app
        .call(Method::POST, "/v1/comps/sale", Some(&bare_sale))
        .await
        .id();
    app.call(
        Method::POST,
        &format!("/v1/comps/{bare_sale}/retract"),
        Some(&json!({"reason": "duplicate"})),
    )
    .await;
    app.call(
        Method::POST,
        &format!("/v1/buildings/{bare}/archive"),
        Some(&json!({"reason": "demolished"})),
    )
    .await;
    let expected = app.event_count().await;
    let reader = token_with_scopes(ORG, USER, &READ_SCOPES);
    project_until(&app.pool, || async {
        let audit = app
            .call_as(&reader, Method::GET, "/v1/audit?limit=100", None, &[])
            .await;
        audit.body["items"]
            .as_array()
            .is_some_and(|items| items.len() as i64 == expected)
    })
    .await;

    let reads = [
        ("get_building", format!("/v1/buildings/{full}")),
        ("get_building", format!("/v1/buildings/{bare}")),
        ("list_buildings", "/v1/buildings".to_owned()),
        ("list_buildings", "/v1/buildings?limit=1".to_owned()),
        ("list_buildings", "/v1/buildings?archived=true".to_owned()),
        (
            "list_buildings",
            "/v1/buildings?near=40.75,-73.98&radius_m=5000".to_owned(),
        ),
        ("building_history", format!("/v1/buildings/{full}/history")),
        ("get_comp", format!("/v1/comps/{lease}")),
        ("get_comp", format!("/v1/comps/{sale}")),
        ("get_comp", format!("/v1/comps/{bare_lease}")),
        ("get_comp", format!("/v1/comps/{bare_sale}")),
        ("list_comps", "/v1/comps?include_retracted=true".to_owned()),
        ("list_comps", "/v1/comps?limit=1".to_owned()),
        ("list_comps", "/v1/comps?expand=building".to_owned()),
        ("get_comp", format!("/v1/comps/{lease}?expand=building")),
        (
            "list_comps",
            "/v1/comps?near=40.75,-73.98&radius_m=5000".to_owned(),
        ),
        ("market_stats", "/v1/market/stats".to_owned()),
        ("audit_log", "/v1/audit".to_owned()),
        ("audit_log", "/v1/audit?limit=1".to_owned()),
        ("list_projections", "/v1/admin/projections".to_owned()),
    ];
    let mut found = Vec::new();
    for (operation, path) in &reads {
        let reply = app.call_as(&reader, Method::GET, path, None, &[]).await;
        assert_eq!(reply.status, 200, "{path}: {:?}", reply.body);
        let schema = answer_schema(&spec, operation);
        mismatches(&spec, schema, &reply.body, path, &mut found);
    }
    assert!(found.is_empty(), "{found:#?}");

    // `expand=building` embeds the comp's building, as the building's own list shows it,
    // under a tag of its own that revalidates.
    let expanded = app
        .call_as(
            &reader,
            Method::GET,
            &format!("/v1/comps/{lease}?expand=building"),
            None,
            &[],
        )
        .await;
    let listed = app
        .call_as(
            &reader,
            Method::GET,
            &format!("/v1/buildings?ids={full}"),
            None,
            &[],
        )
        .await;
    assert_eq!(expanded.body["building"], listed.body["items"][0]);
    let plain = app
        .call_as(
            &reader,
            Method::GET,
            &format!("/v1/comps/{lease}"),
            None,
            &[],
        )
        .await;
    assert!(plain.body.get("building").is_none());
    assert_ne!(expanded.header("etag"), plain.header("etag"));
    let etag = expanded.header("etag").expect("etag").to_owned();
    let revalidated = app
        .call_as(
            &reader,
            Method::GET,
            &format!("/v1/comps/{lease}?expand=building"),
            None,
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(revalidated.status, 304);
    let refused = app
        .call_as(&reader, Method::GET, "/v1/comps?expand=tenant", None, &[])
        .await;
    assert_eq!(refused.assert_problem(400, "malformed-request"), ["expand"]);

    // The comparison itself can fail: a field the document does not name is found.
    let mut sent = app
        .call(Method::GET, &format!("/v1/comps/{lease}"), None)
        .await
        .body;
    sent["undocumented"] = json!(1);
    sent.as_object_mut().expect("comp").remove("version");
    let mut caught = Vec::new();
    mismatches(
        &spec,
        answer_schema(&spec, "get_comp"),
        &sent,
        "comp",
        &mut caught,
    );
    assert_eq!(
        caught,
        [
            "comp.version: required, not sent",
            "comp.undocumented: sent, not documented"
        ]
    );
}

/// The example of `operation_id`'s request body, as the document gives it.
fn body_example(spec: &Value, operation_id: &str) -> Value {
    let operation = spec["paths"]
        .as_object()
        .into_iter()
        .flat_map(|paths| paths.values())
        .filter_map(Value::as_object)
        .flat_map(|methods| methods.values())
        .find(|operation| operation["operationId"] == operation_id)
        .unwrap_or_else(|| panic!("no operation {operation_id}"));
    let reference = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("{operation_id} has no body"));
    let name = reference.rsplit('/').next().unwrap_or_default();
    let example = spec["components"]["schemas"][name]["example"].clone();
    assert!(example.is_object(), "{name} has no example");
    example
}

#[tokio::test]
async fn every_request_body_example_succeeds_as_sent() {
    let app = spawn_app().await;
    let spec: Value = serde_json::from_str(&api::spec::document()).expect("the document");
    // Every operation with a body is tried below, once.
    let with_bodies: Vec<String> = spec["paths"]
        .as_object()
        .into_iter()
        .flat_map(|paths| paths.values())
        .filter_map(Value::as_object)
        .flat_map(|methods| methods.values())
        .filter(|operation| operation.get("requestBody").is_some())
        .filter_map(|operation| operation["operationId"].as_str().map(str::to_owned))
        .collect();
    let mut tried = Vec::new();
    let mut send = |operation: &'static str, method: Method, path: String, body: Value| {
        tried.push(operation.to_owned());
        let app = &app;
        async move {
            let reply = app.call(method, &path, Some(&body)).await;
            assert!(
                reply.status.is_success(),
                "{operation}'s example was refused: {:#}",
                reply.body
            );
            reply
        }
    };
    let building = send(
        "register_building",
        Method::POST,
        "/v1/buildings".into(),
        body_example(&spec, "register_building"),
    )
    .await
    .id();
    let at = |suffix: &str| format!("/v1/buildings/{building}{suffix}");
    send(
        "update_building",
        Method::PATCH,
        at(""),
        body_example(&spec, "update_building"),
    )
    .await;
    send(
        "relocate_building",
        Method::POST,
        at("/relocate"),
        body_example(&spec, "relocate_building"),
    )
    .await;
    // The comps' examples name a building: the only field replaced.
    let mut lease = body_example(&spec, "record_lease_comp");
    lease["building_id"] = json!(building);
    let comp = send(
        "record_lease_comp",
        Method::POST,
        "/v1/comps/lease".into(),
        lease,
    )
    .await
    .id();
    let mut sale = body_example(&spec, "record_sale_comp");
    sale["building_id"] = json!(building);
    send(
        "record_sale_comp",
        Method::POST,
        "/v1/comps/sale".into(),
        sale,
    )
    .await;
    send(
        "amend_comp",
        Method::PATCH,
        format!("/v1/comps/{comp}"),
        body_example(&spec, "amend_comp"),
    )
    .await;
    send(
        "retract_comp",
        Method::POST,
        format!("/v1/comps/{comp}/retract"),
        body_example(&spec, "retract_comp"),
    )
    .await;
    send(
        "archive_building",
        Method::POST,
        at("/archive"),
        body_example(&spec, "archive_building"),
    )
    .await;
    let mut with_bodies = with_bodies;
    tried.sort();
    with_bodies.sort();
    assert_eq!(tried, with_bodies, "every operation with a body was tried");
}

/// A value of a bound's keyword: at the bound (`at`) or just beyond it.
fn bounded_value(keyword: &str, bound: &Value, at: bool) -> Option<Value> {
    let number = bound.as_f64();
    let whole = |n: f64| {
        if n.fract() == 0.0 {
            json!(n as i64)
        } else {
            json!(n)
        }
    };
    Some(match (keyword, at) {
        ("minimum", true) => whole(number?),
        ("minimum", false) => whole(number? - 1.0),
        ("maximum", true) => whole(number?),
        ("maximum", false) => whole(number? + 1.0),
        ("minLength", true) => json!("x".repeat(bound.as_u64()? as usize)),
        ("minLength", false) => json!("x".repeat(bound.as_u64()? as usize - 1)),
        ("maxLength", true) => json!("x".repeat(bound.as_u64()? as usize)),
        ("maxLength", false) => json!("x".repeat(bound.as_u64()? as usize + 1)),
        ("pattern", true) => json!("k"),
        ("pattern", false) => json!("with space"),
        _ => return None,
    })
}

#[tokio::test]
async fn every_bound_the_document_states_is_enforced_by_the_server() {
    use api::bounds::{bounds, Place};
    let app = spawn_app().await;
    let spec: Value = serde_json::from_str(&api::spec::document()).expect("the document");
    let building = app.register_building().await;
    let lease = app.record_lease(&building).await;
    let sale = app
        .call(
            Method::POST,
            "/v1/comps/sale",
            Some(&bodies::sale(&building)),
        )
        .await
        .id();
    let mut checked = 0;
    for (place, keywords) in bounds() {
        for (keyword, bound) in keywords.as_object().expect("keywords") {
            if keyword == "exclusiveMinimum" {
                continue;
            }
            // `exclusiveMinimum`: the minimum itself is beyond the bound.
            let exclusive = keyword == "minimum" && keywords["exclusiveMinimum"] == true;
            for at in [true, false] {
                if exclusive && at {
                    continue;
                }
                let value = if exclusive {
                    bound.clone()
                } else {
                    bounded_value(keyword, bound, at)
                        .unwrap_or_else(|| panic!("{place:?}: no test value for {keyword}"))
                };
                // The request, and the field name a refusal must give.
                let (method, path, body, headers, field) = match place {
                    Place::Property { schema, property } => {
                        let (method, path, mut body, prefix) = match schema {
                            "LocationInput" | "AddressInput" | "RegisterBuildingRequest" => (
                                Method::POST,
                                "/v1/buildings".to_owned(),
                                body_example(&spec, "register_building"),
                                match schema {
                                    "LocationInput" => "location.",
                                    "AddressInput" => "address.",
                                    _ => "",
                                },
                            ),
                            "UpdateBuildingRequest" => (
                                Method::PATCH,
                                format!("/v1/buildings/{building}"),
                                json!({}),
                                "",
                            ),
                            "RecordLeaseCompRequest" => {
                                let mut body = body_example(&spec, "record_lease_comp");
                                body["building_id"] = json!(building);
                                (Method::POST, "/v1/comps/lease".to_owned(), body, "")
                            }
                            "RecordSaleCompRequest" => {
                                let mut body = body_example(&spec, "record_sale_comp");
                                body["building_id"] = json!(building);
                                (Method::POST, "/v1/comps/sale".to_owned(), body, "")
                            }
                            "AmendCompRequest" => {
                                let comp = if ["buyer", "seller"].contains(&property) {
                                    &sale
                                } else {
                                    &lease
                                };
                                (Method::PATCH, format!("/v1/comps/{comp}"), json!({}), "")
                            }
                            // A building of its own: archived when the reason is taken.
                            "ReasonRequest" => {
                                let archived = app.register_building().await;
                                let path = format!("/v1/buildings/{archived}/archive");
                                (Method::POST, path, json!({}), "")
                            }
                            other => panic!("no request carries {other}: add it here"),
                        };
                        match prefix.strip_suffix('.') {
                            Some(parent) => body[parent][property] = value,
                            None => body[property] = value,
                        }
                        // Free rent is bounded by the term too: the longest term lets
                        // it reach its own bound.
                        if property == "free_rent_months" {
                            body["term_months"] = json!(600);
                        }
                        (
                            method,
                            path,
                            Some(body),
                            vec![],
                            format!("{prefix}{property}"),
                        )
                    }
                    Place::Parameter("Idempotency-Key") => {
                        let key = value.as_str().expect("a key").to_owned();
                        let body = body_example(&spec, "register_building");
                        let headers = vec![("Idempotency-Key".to_owned(), key)];
                        (
                            Method::POST,
                            "/v1/buildings".to_owned(),
                            Some(body),
                            headers,
                            "Idempotency-Key".to_owned(),
                        )
                    }
                    Place::Parameter(name) => {
                        let near = if name == "radius_m" {
                            "near=40.75,-73.98&"
                        } else {
                            ""
                        };
                        let path = format!("/v1/buildings?{near}{name}={value}");
                        (Method::GET, path, None, vec![], name.to_owned())
                    }
                };
                let headers: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_str()))
                    .collect();
                let token = crate::helpers::token();
                let reply = app
                    .call_as(&token, method, &path, body.as_ref(), &headers)
                    .await;
                let named: Vec<&str> = reply.body["errors"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|error| error["field"].as_str())
                    .collect();
                let what = format!("{place:?} {keyword} {bound} (at the bound: {at})");
                if at {
                    assert!(
                        !named.contains(&field.as_str()),
                        "{what}: refused at the bound: {:#}",
                        reply.body
                    );
                } else {
                    assert!(
                        reply.status.is_client_error() && named.contains(&field.as_str()),
                        "{what}: not refused naming {field}: {} {:#}",
                        reply.status,
                        reply.body
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 40, "only {checked} checks");
}
