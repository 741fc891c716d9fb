//! Building commands: each success path and each refusal, with the event store
//! checked — a refused command appends nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn register_returns_id_version_and_location_and_records_the_event_with_metadata() {
    let app = spawn_app().await;
    let reply = app
        .call_as(
            &token(),
            Method::POST,
            "/v1/buildings",
            Some(&bodies::building()),
            &[("x-request-id", "req-42")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let id = reply.id();
    assert_eq!(reply.version(), 1);
    assert_eq!(
        reply.header("location"),
        Some(format!("/v1/buildings/{id}").as_str())
    );
    assert_eq!(reply.header("etag"), Some("\"1\""));
    assert_eq!(reply.header("x-request-id"), Some("req-42"));

    let events = app.events_of(&id).await;
    assert_eq!(events.len(), 1);
    let (event_type, sequence, payload, metadata) = &events[0];
    assert_eq!(event_type, "BuildingRegistered");
    assert_eq!(*sequence, 1);
    let registered = &payload["BuildingRegistered"];
    assert_eq!(registered["org_id"], json!(ORG));
    assert_eq!(
        registered["rentable_area_sqft"],
        json!("1750000"),
        "decimals stored exactly"
    );
    assert_eq!(registered["address"]["country"], json!("US"));
    assert_eq!(metadata["org_id"], json!(ORG));
    assert_eq!(metadata["user_id"], json!(USER));
    assert_eq!(metadata["request_id"], json!("req-42"));
    assert!(metadata["recorded_at"].is_string());
}

#[tokio::test]
async fn register_with_bad_values_names_every_field_and_appends_nothing() {
    let app = spawn_app().await;
    let mut body = bodies::building();
    body["name"] = json!("  ");
    body["address"]["country"] = json!("XX");
    body["location"]["lat"] = json!(91);
    body["rentable_area_sqft"] = json!("0");
    body["year_built"] = json!(1066);
    let reply = app.call(Method::POST, "/v1/buildings", Some(&body)).await;
    let fields = reply.assert_problem(422, "validation-failed");
    assert_eq!(
        fields,
        [
            "name",
            "address.country",
            "location.lat",
            "rentable_area_sqft",
            "year_built"
        ]
    );
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn register_with_wrong_types_and_unknown_fields_is_a_400_naming_each_field() {
    let app = spawn_app().await;
    let mut body = bodies::building();
    body["name"] = json!(42);
    body["address"]["city"] = json!(["New York"]);
    body["property_type"] = json!("castle");
    body["rentable_area_sqft"] = json!("lots");
    body["colour"] = json!("blue");
    body.as_object_mut().expect("object").remove("location");
    let reply = app.call(Method::POST, "/v1/buildings", Some(&body)).await;
    let mut fields = reply.assert_problem(400, "malformed-request");
    fields.sort();
    assert_eq!(
        fields,
        [
            "address.city",
            "colour",
            "location",
            "name",
            "property_type",
            "rentable_area_sqft"
        ]
    );
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn a_body_with_mistakes_of_type_and_of_value_gets_one_answer_naming_all_of_them() {
    let app = spawn_app().await;
    let mut body = bodies::building();
    // Two the schema refuses (a type, an unknown field), three the domain refuses.
    body["floors"] = json!("ninety");
    body["colour"] = json!("blue");
    body["address"]["country"] = json!("XX");
    body["location"]["lat"] = json!(91);
    body["year_built"] = json!(1066);
    let reply = app.call(Method::POST, "/v1/buildings", Some(&body)).await;
    let mut fields = reply.assert_problem(400, "malformed-request");
    fields.sort();
    assert_eq!(
        fields,
        [
            "address.country",
            "colour",
            "floors",
            "location.lat",
            "year_built"
        ],
        "{:#}",
        reply.body
    );
    // A required field of the wrong type is given a placeholder to judge the rest,
    // and nothing is said about the placeholder.
    let mut body = bodies::building();
    body["name"] = json!(42);
    body["location"] = json!("here");
    body["rentable_area_sqft"] = json!("0");
    let reply = app.call(Method::POST, "/v1/buildings", Some(&body)).await;
    let mut fields = reply.assert_problem(400, "malformed-request");
    fields.sort();
    assert_eq!(
        fields,
        ["location", "name", "rentable_area_sqft"],
        "{:#}",
        reply.body
    );
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn unreadable_json_and_other_media_types_are_refused() {
    let app = spawn_app().await;
    let broken = app
        .send(
            app.request(Method::POST, "/v1/buildings")
                .bearer_auth(token())
                .header("content-type", "application/json")
                .body("{\"name\": "),
        )
        .await;
    broken.assert_problem(400, "malformed-request");
    let form = app
        .send(
            app.request(Method::POST, "/v1/buildings")
                .bearer_auth(token())
                .header("content-type", "application/x-www-form-urlencoded")
                .body("name=x"),
        )
        .await;
    form.assert_problem(415, "unsupported-media-type");
    let bad_id = app
        .call(
            Method::PATCH,
            "/v1/buildings/not-a-uuid",
            Some(&json!({"name": "x"})),
        )
        .await;
    bad_id.assert_problem(400, "malformed-request");
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn update_changes_the_given_fields_and_clears_optional_ones() {
    let app = spawn_app().await;
    let id = app.register_building().await;
    let path = format!("/v1/buildings/{id}");
    let reply = app
        .call(
            Method::PATCH,
            &path,
            Some(&json!({"name": "The Vanderbilt", "building_class": null})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
    assert_eq!(reply.version(), 2);
    assert_eq!(reply.header("etag"), Some("\"2\""));
    let events = app.events_of(&id).await;
    let updated = &events[1].2["BuildingDetailsUpdated"];
    assert_eq!(updated["name"], json!("The Vanderbilt"));
    assert_eq!(updated["building_class"], json!(null));
    assert_eq!(updated["floors"], json!(93), "untouched fields stay");
}

#[tokio::test]
async fn an_update_that_changes_nothing_appends_nothing() {
    let app = spawn_app().await;
    let id = app.register_building().await;
    let reply = app
        .call(
            Method::PATCH,
            &format!("/v1/buildings/{id}"),
            Some(&json!({"name": "One Vanderbilt"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.version(), 1);
    assert_eq!(app.event_count().await, 1);
}

#[tokio::test]
async fn update_refusals_append_nothing() {
    let app = spawn_app().await;
    let id = app.register_building().await;
    let path = format!("/v1/buildings/{id}");
    let empty = app.call(Method::PATCH, &path, Some(&json!({}))).await;
    assert_eq!(empty.assert_problem(422, "validation-failed"), ["body"]);
    let cleared = app
        .call(Method::PATCH, &path, Some(&json!({"name": null})))
        .await;
    assert_eq!(cleared.assert_problem(422, "validation-failed"), ["name"]);
    let bad = app
        .call(
            Method::PATCH,
            &path,
            Some(&json!({"floors": 0, "rentable_area_sqft": -5})),
        )
        .await;
    assert_eq!(
        bad.assert_problem(422, "validation-failed"),
        ["rentable_area_sqft", "floors"]
    );
    assert_eq!(app.event_count().await, 1);
}

#[tokio::test]
async fn if_match_guards_updates() {
    let app = spawn_app().await;
    let id = app.register_building().await;
    let path = format!("/v1/buildings/{id}");
    let body = json!({"submarket": "Midtown"});
    let stale = app
        .call_as(
            &token(),
            Method::PATCH,
            &path,
            Some(&body),
            &[("if-match", "\"7\"")],
        )
        .await;
    stale.assert_problem(409, "version-conflict");
    assert_eq!(stale.body["current_version"], json!(1));
    assert_eq!(app.event_count().await, 1);

    let fresh = app
        .call_as(
            &token(),
            Method::PATCH,
            &path,
            Some(&body),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(fresh.status, StatusCode::OK);
    assert_eq!(fresh.version(), 2);

    let malformed = app
        .call_as(
            &token(),
            Method::PATCH,
            &path,
            Some(&body),
            &[("if-match", "*")],
        )
        .await;
    assert_eq!(
        malformed.assert_problem(400, "malformed-request"),
        ["If-Match"]
    );
    assert_eq!(app.event_count().await, 2);
}

#[tokio::test]
async fn relocate_moves_the_building_and_refuses_an_empty_move() {
    let app = spawn_app().await;
    let id = app.register_building().await;
    let path = format!("/v1/buildings/{id}/relocate");
    let moved = app
        .call(
            Method::POST,
            &path,
            Some(&json!({"location": {"lat": 40.7484, "lon": -73.9857}})),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:#}", moved.body);
    assert_eq!(moved.version(), 2);
    let relocated = &app.events_of(&id).await[1].2["BuildingRelocated"];
    assert_eq!(relocated["location"]["lat"], json!(40.7484));
    assert_eq!(relocated["address"]["street"], json!("1 Vanderbilt Ave"));

    let empty = app.call(Method::POST, &path, Some(&json!({}))).await;
    empty.assert_problem(422, "validation-failed");
    let bad = app
        .call(
            Method::POST,
            &path,
            Some(&json!({"address": {"street": "", "city": "NYC", "country": "US"}})),
        )
        .await;
    assert_eq!(
        bad.assert_problem(422, "validation-failed"),
        ["address.street"]
    );
    assert_eq!(app.event_count().await, 2);
}

#[tokio::test]
async fn an_archived_building_accepts_only_restore() {
    let app = spawn_app().await;
    let id = app.register_building().await;
    let archive = app
        .call(
            Method::POST,
            &format!("/v1/buildings/{id}/archive"),
            Some(&json!({"reason": "sold"})),
        )
        .await;
    assert_eq!(archive.status, StatusCode::OK);
    assert_eq!(archive.version(), 2);

    let update = app
        .call(
            Method::PATCH,
            &format!("/v1/buildings/{id}"),
            Some(&json!({"name": "x"})),
        )
        .await;
    update.assert_problem(409, "building-archived");
    let again = app
        .call(
            Method::POST,
            &format!("/v1/buildings/{id}/archive"),
            Some(&json!({"reason": "sold"})),
        )
        .await;
    again.assert_problem(409, "building-archived");
    assert_eq!(app.event_count().await, 2);

    let restore = app
        .call(Method::POST, &format!("/v1/buildings/{id}/restore"), None)
        .await;
    assert_eq!(restore.status, StatusCode::OK);
    assert_eq!(restore.version(), 3);
    let restore_again = app
        .call(Method::POST, &format!("/v1/buildings/{id}/restore"), None)
        .await;
    restore_again.assert_problem(409, "building-not-archived");
    let reason = app
        .call(
            Method::POST,
            &format!("/v1/buildings/{id}/archive"),
            Some(&json!({"reason": ""})),
        )
        .await;
    assert_eq!(reason.assert_problem(422, "validation-failed"), ["reason"]);
    assert_eq!(app.event_count().await, 3);
}

#[tokio::test]
async fn unknown_and_other_organisations_buildings_are_not_found() {
    let app = spawn_app().await;
    let id = app.register_building().await;
    let rival = token_for(OTHER_ORG, "user_mallory");
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/v1/buildings/{id}"),
            Some(json!({"name": "Mine now"})),
        ),
        (
            Method::POST,
            format!("/v1/buildings/{id}/relocate"),
            Some(json!({"location": {"lat": 0, "lon": 0}})),
        ),
        (
            Method::POST,
            format!("/v1/buildings/{id}/archive"),
            Some(json!({"reason": "x"})),
        ),
        (Method::POST, format!("/v1/buildings/{id}/restore"), None),
    ] {
        let reply = app.call_as(&rival, method, &path, body.as_ref(), &[]).await;
        reply.assert_problem(404, "not-found");
    }
    let unknown = app
        .call(
            Method::PATCH,
            &format!("/v1/buildings/{}", uuid::Uuid::new_v4()),
            Some(&json!({"name": "x"})),
        )
        .await;
    unknown.assert_problem(404, "not-found");
    assert_eq!(app.event_count().await, 1);
}

#[tokio::test]
async fn a_batch_of_buildings_and_comps_comes_by_ids_within_the_organisation() {
    let app = spawn_app().await;
    let first = app.register_building().await;
    let archived = app.register_building().await;
    let not_asked = app.register_building().await;
    app.call(
        Method::POST,
        &format!("/v1/buildings/{archived}/archive"),
        Some(&json!({"reason": "sold"})),
    )
    .await;
    let lease = app.record_lease(&first).await;
    let retracted = app.record_lease(&first).await;
    app.call(
        Method::POST,
        &format!("/v1/comps/{retracted}/retract"),
        Some(&json!({"reason": "duplicate"})),
    )
    .await;
    let theirs = app.register_building_as(&token_for(OTHER_ORG, USER)).await;
    let expected = app.event_count().await;
    project_until(&app.pool, || async {
        let audit = app
            .call_as(
                &token_with_scopes(ORG, USER, &["audit:read"]),
                Method::GET,
                "/v1/audit?limit=100",
                None,
                &[],
            )
            .await;
        audit.body["items"].as_array().map(Vec::len).unwrap_or(0) as i64 >= expected - 1
    })
    .await;
    let ids_of = |reply: &Reply| -> Vec<String> {
        let mut ids: Vec<String> = reply.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| item["id"].as_str().expect("id").to_owned())
            .collect();
        ids.sort();
        ids
    };
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    // Archived ones too; another organisation's and unknown ids are simply absent.
    let unknown = "01a211de-85b1-74e2-ab37-c248cf58d5fa";
    let batch = app
        .call(
            Method::GET,
            &format!("/v1/buildings?ids={first},{archived},{theirs},{unknown},{first}"),
            None,
        )
        .await;
    assert_eq!(batch.status, 200, "{:#}", batch.body);
    assert_eq!(
        ids_of(&batch),
        sorted(vec![first.clone(), archived.clone()])
    );
    assert!(!ids_of(&batch).contains(&not_asked));
    let active_only = app
        .call(
            Method::GET,
            &format!("/v1/buildings?ids={first},{archived}&archived=false"),
            None,
        )
        .await;
    assert_eq!(ids_of(&active_only), vec![first.clone()]);
    let comps = app
        .call(
            Method::GET,
            &format!("/v1/comps?ids={lease},{retracted}"),
            None,
        )
        .await;
    assert_eq!(
        ids_of(&comps),
        sorted(vec![lease.clone(), retracted.clone()])
    );
    // A bad id, or more than a page's worth, is refused by name.
    let bad = app
        .call(Method::GET, "/v1/buildings?ids=not-a-uuid", None)
        .await;
    assert_eq!(bad.assert_problem(400, "malformed-request"), ["ids"]);
    let many: Vec<String> = (0..101u128)
        .map(|n| uuid::Uuid::from_u128(n + 1).to_string())
        .collect();
    let too_many = app
        .call(
            Method::GET,
            &format!("/v1/comps?ids={}", many.join(",")),
            None,
        )
        .await;
    assert_eq!(too_many.assert_problem(400, "malformed-request"), ["ids"]);
}
