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

/// A stand-in for Grafana Alloy's OTLP/HTTP receiver: counts trace exports.
async fn collector() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(String, usize)>>>,
) {
    use poem::listener::{Acceptor, Listener};
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&received);
    let endpoint = poem::Route::new().at(
        "/v1/traces",
        poem::post(poem::endpoint::make(move |request: poem::Request| {
            let seen = std::sync::Arc::clone(&seen);
            async move {
                let content_type = request.content_type().unwrap_or_default().to_owned();
                let body = request.into_body().into_bytes().await.unwrap_or_default();
                seen.lock().expect("lock").push((content_type, body.len()));
                poem::Response::builder().body(Vec::<u8>::new())
            }
        })),
    );
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .expect("bind");
    let port = acceptor.local_addr()[0]
        .as_socket_addr()
        .expect("socket")
        .port();
    tokio::spawn(async move {
        let _ = poem::Server::new_with_acceptor(acceptor)
            .run(endpoint)
            .await;
    });
    (format!("http://127.0.0.1:{port}"), received)
}

#[tokio::test]
async fn traces_are_exported_over_otlp_when_an_endpoint_is_set() {
    let (endpoint, received) = collector().await;
    let db = testkit::TestDatabase::migrated().await;
    let redis = testkit::TestNamespace::new();
    let mut api = api_process(
        db.url(),
        redis.url(),
        redis.name(),
        // Request spans are INFO: the filter must let them through to the exporter.
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("RUST_LOG", "info".to_owned()),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let base = api.base.clone();
    let reply = client
        .post(format!("{base}/v1/buildings"))
        .bearer_auth(token())
        .json(&bodies::building())
        .send()
        .await
        .expect("register");
    assert_eq!(reply.status(), StatusCode::CREATED);
    // SIGTERM: the api stops gracefully and flushes its spans.
    api.terminate().await;
    let exports = received.lock().expect("lock").clone();
    assert!(
        exports
            .iter()
            .any(|(content_type, bytes)| content_type == "application/x-protobuf" && *bytes > 0),
        "no OTLP export arrived: {exports:?}"
    );
}
