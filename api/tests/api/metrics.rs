//! `/metrics` after known traffic: exact counters labelled by route template (never a
//! raw path), domain counters, process and runtime series; protection in production;
//! `/ready` turning 503 while Redis is down and 200 when it is back.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::{metric as value, PrivateRedis};

use crate::helpers::*;

async fn scrape(app: &TestApp, token: Option<&str>) -> (StatusCode, String) {
    let mut request = app.request(Method::GET, "/metrics");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("scrape");
    (response.status(), response.text().await.expect("text"))
}

#[tokio::test]
async fn known_traffic_gives_exact_counters_by_route_template() {
    let app = spawn_app().await;
    let id = app.register_building().await;
    for _ in 0..2 {
        let reply = app
            .call(Method::GET, &format!("/v1/comps/{id}"), None)
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
    }
    let invalid = app
        .call(Method::POST, "/v1/buildings", Some(&json!({"name": ""})))
        .await;
    assert!(invalid.status.is_client_error());
    let invalid_status = invalid.status.as_u16();
    app.send(app.request(Method::GET, "/wp-login.php")).await;
    app.call_as("not-a-jwt", Method::GET, "/v1/buildings", None, &[])
        .await;

    let (status, text) = scrape(&app, None).await;
    assert_eq!(status, StatusCode::OK);
    let expected = [
        (
            r#"http_requests_total{method="POST",path="/v1/buildings",status="201"}"#.to_owned(),
            1.0,
        ),
        (
            r#"http_requests_total{method="GET",path="/v1/comps/{id}",status="404"}"#.to_owned(),
            2.0,
        ),
        (
            format!(
                r#"http_requests_total{{method="POST",path="/v1/buildings",status="{invalid_status}"}}"#
            ),
            1.0,
        ),
        (
            r#"http_requests_total{method="GET",path="unmatched",status="404"}"#.to_owned(),
            1.0,
        ),
        (
            r#"http_requests_total{method="GET",path="/v1/buildings",status="401"}"#.to_owned(),
            1.0,
        ),
        (
            r#"prism_commands_total{command="register_building",outcome="accepted"}"#.to_owned(),
            1.0,
        ),
        (
            r#"prism_commands_total{command="register_building",outcome="rejected"}"#.to_owned(),
            1.0,
        ),
        (
            r#"prism_auth_failures_total{reason="malformed"}"#.to_owned(),
            1.0,
        ),
        (
            r#"prism_cache_requests_total{view="comp",outcome="miss"}"#.to_owned(),
            2.0,
        ),
        (
            r#"http_request_duration_seconds_count{method="GET",path="/v1/comps/{id}",status="404"}"#
                .to_owned(),
            2.0,
        ),
    ];
    for (series, count) in &expected {
        assert_eq!(value(&text, series), Some(*count), "{series}\n{text}");
    }
    // Buckets from 5 ms to 5 s; sizes recorded.
    for le in ["0.005", "5"] {
        let bucket = format!(
            r#"http_request_duration_seconds_bucket{{method="POST",path="/v1/buildings",status="201",le="{le}"}}"#
        );
        assert!(value(&text, &bucket).is_some(), "{bucket}");
    }
    let sizes = r#"http_request_size_bytes_sum{method="POST",path="/v1/buildings",status="201"}"#;
    assert!(
        value(&text, sizes).is_some_and(|bytes| bytes > 100.0),
        "{sizes}"
    );
    let sizes = r#"http_response_size_bytes_sum{method="POST",path="/v1/buildings",status="201"}"#;
    assert!(
        value(&text, sizes).is_some_and(|bytes| bytes > 10.0),
        "{sizes}"
    );
    // Never a raw path.
    assert!(!text.contains(&id), "a raw id in a label");
    assert!(!text.contains("wp-login"));
    for series in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds_total",
        "tokio_alive_tasks",
        "tokio_workers",
    ] {
        assert!(value(&text, series).is_some(), "{series} missing");
    }
}

#[tokio::test]
async fn production_scrapes_need_the_scrape_token_or_audit_read() {
    const SCRAPE_TOKEN: &str = "n7Qe2VxK9pL4sT8wZ1cR6yB3mH5jD0aF";
    let jwks = JwksServer::start(jwks_of(&[(&signing_key(), "prism-dev")])).await;
    let app = spawn_app_with(&[
        ("ENV", Some("production")),
        ("CLERK_JWKS_FILE", None),
        ("CLERK_JWKS_URL", Some(jwks.url.as_str())),
        ("STRICT_CLERK_SCOPES", Some("true")),
        ("METRICS_SCRAPE_TOKEN", Some(SCRAPE_TOKEN)),
    ])
    .await;
    let (status, _) = scrape(&app, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = scrape(&app, Some("n7Qe2VxK9pL4sT8wZ1cR6yB3mH5jD0aX")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let reader = token_with_scopes(ORG, USER, &["buildings:read"]);
    let (status, _) = scrape(&app, Some(&reader)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, text) = scrape(&app, Some(SCRAPE_TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("http_requests_total"));
    let auditor = token_with_scopes(ORG, USER, &["audit:read"]);
    let (status, _) = scrape(&app, Some(&auditor)).await;
    assert_eq!(status, StatusCode::OK);
    // Production answers carry HSTS.
    let reply = app.send(app.request(Method::GET, "/health")).await;
    assert!(reply.header("strict-transport-security").is_some());
}

async fn readiness(app: &TestApp) -> (StatusCode, serde_json::Value) {
    let reply = app.send(app.request(Method::GET, "/ready")).await;
    (reply.status, reply.body)
}

async fn wait_for_readiness(app: &TestApp, wanted: StatusCode) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = readiness(app).await;
        if status == wanted {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/ready stayed {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn ready_is_503_while_redis_is_down_and_200_when_it_is_back() {
    let mut redis = PrivateRedis::start();
    let url = redis.url.clone();
    let app = spawn_app_with(&[("REDIS_URL", Some(url.as_str()))]).await;
    wait_for_readiness(&app, StatusCode::OK).await;
    redis.stop();
    let body = wait_for_readiness(&app, StatusCode::SERVICE_UNAVAILABLE).await;
    let failing: Vec<&str> = body["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|check| check["ok"] == json!(false))
        .map(|check| check["name"].as_str().expect("name"))
        .collect();
    assert_eq!(failing, ["redis"], "{body}");
    // Commands still work without Redis (nothing to wake the worker with).
    let reply = app
        .call(Method::POST, "/v1/buildings", Some(&bodies::building()))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    redis.restart();
    wait_for_readiness(&app, StatusCode::OK).await;
}
