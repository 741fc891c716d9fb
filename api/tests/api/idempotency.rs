//! `Idempotency-Key`: a retry returns the first result and appends nothing — also when
//! the first response was lost or the retries race; the same key with another body is
//! refused; keys belong to one organisation.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_retry_returns_the_first_result_and_appends_nothing() {
    let app = spawn_app().await;
    let key = [("idempotency-key", "register-1")];
    let first = app
        .call_as(
            &token(),
            Method::POST,
            "/v1/buildings",
            Some(&bodies::building()),
            &key,
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(first.header("idempotent-replayed"), None);
    let retry = app
        .call_as(
            &token(),
            Method::POST,
            "/v1/buildings",
            Some(&bodies::building()),
            &key,
        )
        .await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(retry.body, first.body, "same id, same version");
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.event_count().await, 1);
    let events = app.events_of(&first.id()).await;
    assert_eq!(events[0].3["idempotency_key"], json!("register-1"));
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused() {
    let app = spawn_app().await;
    let key = [("idempotency-key", "k")];
    app.call_as(
        &token(),
        Method::POST,
        "/v1/buildings",
        Some(&bodies::building()),
        &key,
    )
    .await;
    let mut other = bodies::building();
    other["name"] = json!("Another");
    let reply = app
        .call_as(&token(), Method::POST, "/v1/buildings", Some(&other), &key)
        .await;
    reply.assert_problem(422, "idempotency-key-reused");
    let elsewhere = app
        .call_as(
            &token(),
            Method::POST,
            "/v1/comps/sale",
            Some(&bodies::sale(&uuid::Uuid::new_v4().to_string())),
            &key,
        )
        .await;
    elsewhere.assert_problem(422, "idempotency-key-reused");
    assert_eq!(app.event_count().await, 1);
}

#[tokio::test]
async fn a_lost_response_is_answered_from_the_first_result() {
    let app = spawn_app().await;
    let building = app.register_building().await;
    let key = "lost-1";
    // The client gives up before the answer arrives; the command still commits.
    let impatient = app
        .request(Method::POST, "/v1/comps/lease")
        .bearer_auth(token())
        .header("idempotency-key", key)
        .json(&bodies::lease(&building))
        .timeout(Duration::from_millis(1))
        .send()
        .await;
    assert!(impatient.is_err(), "the first response is lost");
    let mut committed = false;
    for _ in 0..100 {
        if app.event_count().await == 2 {
            committed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(committed, "the first request committed");
    let retry = app
        .call_as(
            &token(),
            Method::POST,
            "/v1/comps/lease",
            Some(&bodies::lease(&building)),
            &[("idempotency-key", key)],
        )
        .await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.version(), 1);
    assert_eq!(app.events_of(&retry.id()).await.len(), 1);
    assert_eq!(app.event_count().await, 2);
}

#[tokio::test]
async fn racing_retries_append_once() {
    let app = spawn_app().await;
    let building = app.register_building().await;
    let body = json!({"submarket": "Midtown"});
    let path = format!("/v1/buildings/{building}");
    let token = token();
    let retries = (0..8).map(|_| {
        app.call_as(
            &token,
            Method::PATCH,
            &path,
            Some(&body),
            &[("idempotency-key", "race")],
        )
    });
    let replies = futures_util::future::join_all(retries).await;
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
        assert_eq!(reply.version(), 2);
    }
    assert_eq!(
        replies
            .iter()
            .filter(|r| r.header("idempotent-replayed").is_none())
            .count(),
        1,
        "exactly one request did the work"
    );
    assert_eq!(app.event_count().await, 2);
}

#[tokio::test]
async fn keys_belong_to_one_organisation() {
    let app = spawn_app().await;
    let key = [("idempotency-key", "shared-key")];
    let ours = app
        .call_as(
            &token(),
            Method::POST,
            "/v1/buildings",
            Some(&bodies::building()),
            &key,
        )
        .await;
    let rival = token_for(OTHER_ORG, "user_bob");
    let theirs = app
        .call_as(
            &rival,
            Method::POST,
            "/v1/buildings",
            Some(&bodies::building()),
            &key,
        )
        .await;
    assert_eq!(theirs.status, StatusCode::CREATED);
    assert_ne!(theirs.id(), ours.id());
    assert_eq!(theirs.header("idempotent-replayed"), None);
    assert_eq!(app.event_count().await, 2);
}

#[tokio::test]
async fn malformed_keys_are_refused() {
    let app = spawn_app().await;
    let long = "k".repeat(256);
    let reply = app
        .call_as(
            &token(),
            Method::POST,
            "/v1/buildings",
            Some(&bodies::building()),
            &[("idempotency-key", long.as_str())],
        )
        .await;
    assert_eq!(
        reply.assert_problem(400, "malformed-request"),
        ["Idempotency-Key"]
    );
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn a_key_is_bound_to_the_resource_its_path_names_in_any_spelling_of_its_id() {
    let app = spawn_app().await;
    let first = app.register_building().await;
    let second = app.register_building().await;
    let key = [("idempotency-key", "rename-1")];
    let body = json!({"name": "Renamed"});
    let renamed = app
        .call_as(
            &token(),
            Method::PATCH,
            &format!("/v1/buildings/{first}"),
            Some(&body),
            &key,
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{:#}", renamed.body);
    // The same id spelt in capitals is the same operation: the retry is answered.
    let retry = app
        .call_as(
            &token(),
            Method::PATCH,
            &format!("/v1/buildings/{}", first.to_uppercase()),
            Some(&body),
            &key,
        )
        .await;
    assert_eq!(retry.status, StatusCode::OK, "{:#}", retry.body);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    // The same key and body on another building is another request: refused.
    let events = app.event_count().await;
    let other = app
        .call_as(
            &token(),
            Method::PATCH,
            &format!("/v1/buildings/{second}"),
            Some(&body),
            &key,
        )
        .await;
    other.assert_problem(422, "idempotency-key-reused");
    assert_eq!(app.event_count().await, events, "nothing appended");
}
