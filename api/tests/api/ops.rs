//! Operations endpoints and the served OpenAPI document.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn health_and_readiness_answer_without_a_token() {
    let app = spawn_app().await;
    let health = app.send(app.request(Method::GET, "/health")).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body, json!({"status": "ok"}));
    let ready = app.send(app.request(Method::GET, "/ready")).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["status"], json!("ready"));
}

#[tokio::test]
async fn readiness_fails_while_a_migration_is_missing() {
    let app = spawn_app().await;
    sqlx::query("DELETE FROM seaql_migrations WHERE version = 'm20261124_000005_roles'")
        .execute(&app.pool)
        .await
        .expect("forget a migration");
    let ready = app.send(app.request(Method::GET, "/ready")).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["checks"][0]["name"], json!("postgres"));
    assert_eq!(ready.body["checks"][0]["ok"], json!(false));
    assert_eq!(
        ready.body["checks"][0]["detail"],
        json!("1 migration(s) not applied")
    );
}

#[tokio::test]
async fn readiness_holds_when_the_database_is_ahead_of_this_build() {
    // A rolling deploy: the new release migrated; this (older) instance still serves.
    let app = spawn_app().await;
    sqlx::query(
        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m20991231_000001_future', 0)",
    )
    .execute(&app.pool)
    .await
    .expect("a newer migration");
    let ready = app.send(app.request(Method::GET, "/ready")).await;
    assert_eq!(ready.status, StatusCode::OK, "{:#}", ready.body);
}

#[tokio::test]
async fn the_spec_and_swagger_ui_are_served() {
    let app = spawn_app().await;
    let spec = app.send(app.request(Method::GET, "/openapi.json")).await;
    assert_eq!(spec.status, StatusCode::OK);
    let served: serde_json::Value = spec.body;
    let built: serde_json::Value = serde_json::from_str(&api::spec::document()).expect("spec");
    assert_eq!(served, built);
    // Every operation, including those sharing a path with another API type's.
    for (path, method) in [
        ("/v1/buildings", "get"),
        ("/v1/buildings", "post"),
        ("/v1/buildings/{id}", "get"),
        ("/v1/buildings/{id}", "patch"),
        ("/v1/comps/{id}", "patch"),
        ("/v1/comps/lease", "post"),
        ("/v1/comps/{id}/retract", "post"),
        ("/v1/admin/projections/{name}/rebuilds", "post"),
        ("/v1/admin/rebuilds", "get"),
        ("/v1/admin/rebuilds/{id}", "get"),
        ("/v1/admin/rebuilds/{id}", "delete"),
    ] {
        assert!(
            served["paths"][path].get(method).is_some(),
            "{method} {path} is documented"
        );
    }
    let operations: usize = served["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|item| item.as_object().map_or(0, |ops| ops.len()))
        .sum();
    assert_eq!(operations, 25);
    let docs = app.send(app.request(Method::GET, "/docs")).await;
    assert_eq!(docs.status, StatusCode::OK);
    let html = docs.body.as_str().unwrap_or_default();
    assert!(html.contains("register_building") && html.contains("list_buildings"));
    let unknown = app.send(app.request(Method::GET, "/v1/nothing-here")).await;
    unknown.assert_problem(404, "not-found");
}

#[tokio::test]
async fn cors_preflight_allows_the_spa_origin_only() {
    let app = spawn_app().await;
    let preflight = |origin: &'static str| {
        app.request(Method::OPTIONS, "/v1/buildings")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type,idempotency-key",
            )
    };
    let allowed = app.send(preflight("https://app.prism.test")).await;
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.prism.test")
    );
    let refused = app.send(preflight("https://evil.example")).await;
    assert_ne!(
        refused.header("access-control-allow-origin"),
        Some("https://evil.example")
    );
    refused.assert_problem(403, "cross-origin-refused");
}

#[tokio::test]
async fn the_bundled_swagger_ui_may_call_the_api_from_its_own_origin() {
    let app = spawn_app().await;
    let reply = app
        .call_as(
            &token(),
            Method::POST,
            "/v1/buildings",
            Some(&bodies::building()),
            &[("origin", app.address.as_str())],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    let foreign = app
        .call_as(
            &token(),
            Method::POST,
            "/v1/buildings",
            Some(&bodies::building()),
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_ne!(
        foreign.header("access-control-allow-origin"),
        Some("https://evil.example")
    );
    assert_eq!(
        app.event_count().await,
        1,
        "a foreign origin's request is refused"
    );
}
