//! Comp commands: record (lease and sale), amend, verify, retract; the building
//! checks made against the event store; every refusal appends nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn record_lease_and_sale_comps_for_a_building() {
    let app = spawn_app().await;
    let building = app.register_building().await;
    let lease = app
        .call(
            Method::POST,
            "/v1/comps/lease",
            Some(&bodies::lease(&building)),
        )
        .await;
    assert_eq!(lease.status, StatusCode::CREATED, "{:#}", lease.body);
    assert_eq!(lease.version(), 1);
    assert_eq!(
        lease.header("location"),
        Some(format!("/v1/comps/{}", lease.id()).as_str())
    );
    let recorded = &app.events_of(&lease.id()).await[0];
    assert_eq!(recorded.0, "LeaseCompRecorded");
    let payload = &recorded.2["LeaseCompRecorded"];
    assert_eq!(payload["building_id"], json!(building));
    assert_eq!(
        payload["starting_rent_psf"],
        json!("85.5"),
        "a JSON number arrives exactly"
    );
    assert_eq!(payload["ti_allowance_psf"], json!("95"));
    assert_eq!(payload["lease_type"], json!("gross"));

    let sale = app
        .call(
            Method::POST,
            "/v1/comps/sale",
            Some(&bodies::sale(&building)),
        )
        .await;
    assert_eq!(sale.status, StatusCode::CREATED, "{:#}", sale.body);
    let sold = &app.events_of(&sale.id()).await[0];
    assert_eq!(sold.0, "SaleCompRecorded");
    assert_eq!(sold.2["SaleCompRecorded"]["cap_rate_pct"], json!("5.25"));
}

#[tokio::test]
async fn lease_defaults_apply_and_bad_values_are_named() {
    let app = spawn_app().await;
    let building = app.register_building().await;
    let minimal = json!({
        "building_id": building, "tenant": "Initech", "leased_area_sqft": 5000,
        "starting_rent_psf": "42", "lease_type": "nnn", "term_months": 36,
        "commencement_date": "2025-03-01"
    });
    let reply = app
        .call(Method::POST, "/v1/comps/lease", Some(&minimal))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    let payload = &app.events_of(&reply.id()).await[0].2["LeaseCompRecorded"];
    assert_eq!(payload["free_rent_months"], json!(0));
    assert_eq!(payload["escalation_pct"], json!("0"));

    let mut bad = bodies::lease(&building);
    bad["tenant"] = json!("");
    bad["starting_rent_psf"] = json!(0);
    bad["term_months"] = json!(0);
    bad["escalation_pct"] = json!("150");
    bad["commencement_date"] = json!("1850-01-01");
    let refused = app.call(Method::POST, "/v1/comps/lease", Some(&bad)).await;
    assert_eq!(
        refused.assert_problem(422, "validation-failed"),
        [
            "tenant",
            "starting_rent_psf",
            "term_months",
            "commencement_date",
            "escalation_pct"
        ]
    );
    let mut free_rent = bodies::lease(&building);
    free_rent["free_rent_months"] = json!(120);
    let refused = app
        .call(Method::POST, "/v1/comps/lease", Some(&free_rent))
        .await;
    assert_eq!(
        refused.assert_problem(422, "validation-failed"),
        ["free_rent_months"]
    );
    let mut date = bodies::lease(&building);
    date["commencement_date"] = json!("2026-02-30");
    let refused = app.call(Method::POST, "/v1/comps/lease", Some(&date)).await;
    assert_eq!(
        refused.assert_problem(400, "malformed-request"),
        ["commencement_date"]
    );
    assert_eq!(app.event_count().await, 2);
}

#[tokio::test]
async fn comps_need_an_active_building_of_the_same_organisation() {
    let app = spawn_app().await;
    let building = app.register_building().await;
    let unknown = app
        .call(
            Method::POST,
            "/v1/comps/lease",
            Some(&bodies::lease(&uuid::Uuid::new_v4().to_string())),
        )
        .await;
    assert_eq!(
        unknown.assert_problem(422, "unknown-building"),
        ["building_id"]
    );

    let rival = token_for(OTHER_ORG, "user_mallory");
    let foreign = app
        .call_as(
            &rival,
            Method::POST,
            "/v1/comps/sale",
            Some(&bodies::sale(&building)),
            &[],
        )
        .await;
    foreign.assert_problem(422, "unknown-building");

    app.call(
        Method::POST,
        &format!("/v1/buildings/{building}/archive"),
        Some(&json!({"reason": "demolished"})),
    )
    .await;
    let archived = app
        .call(
            Method::POST,
            "/v1/comps/lease",
            Some(&bodies::lease(&building)),
        )
        .await;
    archived.assert_problem(409, "building-archived");
    assert_eq!(app.event_count().await, 2, "registered and archived only");
}

#[tokio::test]
async fn amend_changes_terms_and_refuses_fields_of_the_other_kind() {
    let app = spawn_app().await;
    let building = app.register_building().await;
    let comp = app.record_lease(&building).await;
    let path = format!("/v1/comps/{comp}");
    let amended = app
        .call(
            Method::PATCH,
            &path,
            Some(&json!({"starting_rent_psf": "90.25", "suite": null})),
        )
        .await;
    assert_eq!(amended.status, StatusCode::OK, "{:#}", amended.body);
    assert_eq!(amended.version(), 2);
    let terms = &app.events_of(&comp).await[1].2["CompAmended"]["terms"];
    assert_eq!(terms["kind"], json!("lease"));
    assert_eq!(terms["starting_rent_psf"], json!("90.25"));
    assert_eq!(terms["suite"], json!(null));

    let wrong_kind = app
        .call(
            Method::PATCH,
            &path,
            Some(&json!({"sale_price": 1000, "buyer": "x"})),
        )
        .await;
    assert_eq!(
        wrong_kind.assert_problem(422, "validation-failed"),
        ["sale_price", "buyer"]
    );
    let too_short = app
        .call(Method::PATCH, &path, Some(&json!({"term_months": 3})))
        .await;
    assert_eq!(
        too_short.assert_problem(422, "validation-failed"),
        ["free_rent_months"]
    );
    assert_eq!(app.event_count().await, 3);
}

#[tokio::test]
async fn verify_once_then_amend_needs_verifying_again() {
    let app = spawn_app().await;
    let building = app.register_building().await;
    let comp = app.record_lease(&building).await;
    let verify = format!("/v1/comps/{comp}/verify");
    let first = app.call(Method::POST, &verify, None).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.version(), 2);
    let twice = app.call(Method::POST, &verify, None).await;
    twice.assert_problem(409, "comp-already-verified");
    app.call(
        Method::PATCH,
        &format!("/v1/comps/{comp}"),
        Some(&json!({"tenant": "Globex Corp"})),
    )
    .await;
    let again = app.call(Method::POST, &verify, None).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.version(), 4);
}

#[tokio::test]
async fn a_retracted_comp_accepts_nothing_further() {
    let app = spawn_app().await;
    let building = app.register_building().await;
    let comp = app.record_lease(&building).await;
    let retract = app
        .call(
            Method::POST,
            &format!("/v1/comps/{comp}/retract"),
            Some(&json!({"reason": "duplicate"})),
        )
        .await;
    assert_eq!(retract.status, StatusCode::OK);
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/v1/comps/{comp}"),
            Some(json!({"tenant": "x"})),
        ),
        (Method::POST, format!("/v1/comps/{comp}/verify"), None),
        (
            Method::POST,
            format!("/v1/comps/{comp}/retract"),
            Some(json!({"reason": "again"})),
        ),
    ] {
        app.call(method, &path, body.as_ref())
            .await
            .assert_problem(409, "comp-retracted");
    }
    assert_eq!(app.event_count().await, 3);
}

#[tokio::test]
async fn another_organisations_comp_is_not_found() {
    let app = spawn_app().await;
    let building = app.register_building().await;
    let comp = app.record_lease(&building).await;
    let rival = token_for(OTHER_ORG, "user_mallory");
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/v1/comps/{comp}"),
            Some(json!({"tenant": "x"})),
        ),
        (Method::POST, format!("/v1/comps/{comp}/verify"), None),
        (
            Method::POST,
            format!("/v1/comps/{comp}/retract"),
            Some(json!({"reason": "x"})),
        ),
    ] {
        app.call_as(&rival, method, &path, body.as_ref(), &[])
            .await
            .assert_problem(404, "not-found");
    }
    assert_eq!(app.event_count().await, 2);
}
