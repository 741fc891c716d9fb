//! Sentry: a 5xx becomes an event carrying the request id, route and organisation,
//! with the build's release and the environment, and never the token.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use telemetry::sentry::{SentrySettings, RELEASE};

use crate::helpers::*;

#[tokio::test]
async fn a_server_error_becomes_a_sentry_event_without_the_token() {
    let transport = sentry::test::TestTransport::new();
    let settings = SentrySettings::from_lookup(
        |name| (name == "SENTRY_DSN").then(|| "https://public@sentry.prism.test/1".to_owned()),
        "test",
    )
    .expect("settings");
    let _sentry = telemetry::sentry::init(
        &settings,
        Some(Arc::new(Arc::clone(&transport)) as Arc<dyn sentry::TransportFactory>),
    )
    .expect("a client with a DSN");
    let app = spawn_app().await;
    // Break the read side under the api: its query fails, the answer is 503.
    sqlx::query("DROP TABLE buildings CASCADE")
        .execute(&app.pool)
        .await
        .expect("drop");
    let token = token();
    let reply = app
        .call_as(&token, Method::GET, "/v1/buildings", None, &[])
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let request_id = reply.header("x-request-id").expect("request id").to_owned();

    let events = transport.fetch_and_clear_events();
    let event = events
        .iter()
        .find(|e| e.tags.get("request_id") == Some(&request_id))
        .unwrap_or_else(|| panic!("no event for {request_id}: {events:#?}"));
    assert_eq!(event.level, sentry::Level::Error);
    assert_eq!(
        event.tags.get("route").map(String::as_str),
        Some("/v1/buildings")
    );
    assert_eq!(event.tags.get("org_id").map(String::as_str), Some(ORG));
    assert_eq!(
        event.tags.get("http.status").map(String::as_str),
        Some("503")
    );
    assert_eq!(event.release.as_deref(), Some(RELEASE));
    assert_eq!(event.environment.as_deref(), Some("test"));
    let serialised = serde_json::to_string(event).expect("json");
    assert!(!serialised.contains(&token), "the token reached Sentry");

    // A 4xx is the client's problem, not an event.
    app.call_as(&token, Method::GET, "/v1/buildings/not-a-uuid", None, &[])
        .await;
    let events = transport.fetch_and_clear_events();
    assert!(
        events
            .iter()
            .all(|e| e.tags.get("route").map(String::as_str) != Some("/v1/buildings/{id}")),
        "a 4xx was reported"
    );
}
