//! The edge: security headers, the body limit, the per-client rate limit in Redis
//! (keyed by `CF-Connecting-IP` only when Cloudflare's headers are trusted), CORS on
//! refusals, and `ENV=production` refusing to start with unsafe settings.

use std::process::{Command, Stdio};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    for path in ["/health", "/v1/buildings", "/no/such/route"] {
        let reply = app.send(app.request(Method::GET, path)).await;
        assert_eq!(
            reply.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(reply.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            reply.header("referrer-policy"),
            Some("no-referrer"),
            "{path}"
        );
        assert_eq!(
            reply.header("content-security-policy"),
            Some("default-src 'none'; frame-ancestors 'none'"),
            "{path}"
        );
        // HSTS is for production, behind TLS.
        assert_eq!(reply.header("strict-transport-security"), None);
    }
    // Swagger UI runs its own scripts: no content policy there.
    let docs = app.send(app.request(Method::GET, "/docs")).await;
    assert_eq!(docs.status, StatusCode::OK);
    assert_eq!(docs.header("content-security-policy"), None);
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_whether_sized_or_chunked() {
    let app = spawn_app_with(&[("MAX_REQUEST_BODY_BYTES", Some("2048"))]).await;
    let mut big = bodies::building();
    big["name"] = json!("x".repeat(4096));
    let reply = app.call(Method::POST, "/v1/buildings", Some(&big)).await;
    reply.assert_problem(413, "payload-too-large");

    // The same bytes streamed without a Content-Length.
    let bytes = serde_json::to_vec(&big).expect("json");
    let stream = futures_util::stream::iter(
        bytes
            .chunks(512)
            .map(|chunk| Ok::<_, std::io::Error>(chunk.to_vec()))
            .collect::<Vec<_>>(),
    );
    let reply = app
        .send(
            app.request(Method::POST, "/v1/buildings")
                .bearer_auth(token())
                .header("content-type", "application/json")
                .body(reqwest::Body::wrap_stream(stream)),
        )
        .await;
    reply.assert_problem(413, "payload-too-large");
    assert_eq!(app.event_count().await, 0);

    // A small chunked body still goes through.
    let small = serde_json::to_vec(&bodies::building()).expect("json");
    let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(small)]);
    let reply = app
        .send(
            app.request(Method::POST, "/v1/buildings")
                .bearer_auth(token())
                .header("content-type", "application/json")
                .body(reqwest::Body::wrap_stream(stream)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
}

#[tokio::test]
async fn each_client_is_rate_limited_by_its_cloudflare_address_when_trusted() {
    let app = spawn_app_with(&[
        ("RATE_LIMIT_PER_MINUTE", Some("5")),
        ("TRUST_CLOUDFLARE_HEADERS", Some("true")),
    ])
    .await;
    // Before a token verifies, a client is its address (here: no token at all).
    let from = |ip: &'static str| {
        app.request(Method::GET, "/v1/buildings")
            .header("cf-connecting-ip", ip)
    };
    for _ in 0..5 {
        assert_eq!(
            app.send(from("203.0.113.7")).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let limited = app.send(from("203.0.113.7")).await;
    limited.assert_problem(429, "rate-limited");
    let retry_after: u64 = limited
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    // Another client is unaffected; probes are never limited.
    assert_eq!(
        app.send(from("198.51.100.1")).await.status,
        StatusCode::UNAUTHORIZED
    );
    let health = app
        .send(
            app.request(Method::GET, "/health")
                .header("cf-connecting-ip", "203.0.113.7"),
        )
        .await;
    assert_eq!(health.status, StatusCode::OK);
    // A refusal the SPA can read: CORS headers on the 429.
    let cors = app.send(from("203.0.113.7").header("origin", ORIGIN)).await;
    assert_eq!(cors.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(cors.header("access-control-allow-origin"), Some(ORIGIN));
}

#[tokio::test]
async fn cloudflare_headers_are_ignored_unless_trusted() {
    let app = spawn_app_with(&[("RATE_LIMIT_PER_MINUTE", Some("3"))]).await;
    // A client (without a token) inventing a new address per request is still one
    // socket address.
    let mut statuses = Vec::new();
    for n in 0..4 {
        let reply = app
            .send(
                app.request(Method::GET, "/v1/buildings")
                    .header("cf-connecting-ip", format!("192.0.2.{n}")),
            )
            .await;
        statuses.push(reply.status.as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
}

#[tokio::test]
async fn refusals_inside_cors_carry_cors_headers() {
    let app = spawn_app().await;
    let reply = app
        .send(
            app.request(Method::GET, "/v1/buildings")
                .header("origin", ORIGIN),
        )
        .await;
    reply.assert_problem(401, "unauthenticated");
    assert_eq!(reply.header("access-control-allow-origin"), Some(ORIGIN));
}

#[test]
fn production_refuses_to_start_with_unsafe_settings_and_names_them() {
    let run = |vars: &[(&str, &str)]| {
        let output = Command::new(env!("CARGO_BIN_EXE_prism-api"))
            .env_clear()
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("prism-api runs");
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (status, stderr) = run(&[
        ("ENV", "production"),
        ("PORT", "0"),
        ("DATABASE_URL", "postgres://prism:hunter2@127.0.0.1:1/prism"),
        ("REDIS_URL", "redis://:sesame@127.0.0.1:1"),
        ("CLERK_ISSUER", ISSUER),
        ("CLERK_JWKS_FILE", "/tmp/jwks.json"),
        ("ALLOWED_ORIGINS", "*"),
        ("METRICS_SCRAPE_TOKEN", "short"),
    ]);
    assert!(!status.success(), "started: {stderr}");
    for named in [
        "STRICT_CLERK_SCOPES",
        "METRICS_SCRAPE_TOKEN",
        "CLERK_JWKS_FILE",
        "ALLOWED_ORIGINS",
        "CLERK_JWKS_URL",
    ] {
        assert!(stderr.contains(named), "{named} not named: {stderr}");
    }
    for secret in ["hunter2", "sesame"] {
        assert!(
            !stderr.contains(secret),
            "a secret in the message: {stderr}"
        );
    }
    let (status, stderr) = run(&[("ENV", "production")]);
    assert!(!status.success());
    for named in [
        "DATABASE_URL",
        "REDIS_URL",
        "CLERK_ISSUER",
        "CLERK_JWKS_URL",
    ] {
        assert!(stderr.contains(named), "{named} not named: {stderr}");
    }
}

#[tokio::test]
async fn the_rate_limit_lets_requests_through_while_redis_is_unreachable() {
    let app = spawn_app_with(&[
        ("RATE_LIMIT_PER_MINUTE", Some("2")),
        ("REDIS_URL", Some("redis://127.0.0.1:1")),
    ])
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let reply = app.call(Method::GET, "/v1/buildings", None).await;
        statuses.push(reply.status.as_u16());
    }
    // Serving beats refusing everyone: no 429 without a counter to consult.
    assert_eq!(statuses, [200, 200, 200, 200, 200]);
}

#[tokio::test]
async fn what_the_document_does_not_offer_is_refused_by_name() {
    let app = spawn_app().await;
    // A typo is not a filter silently ignored: every unknown parameter is named.
    let reply = app
        .call(
            Method::GET,
            "/v1/buildings?type=office&limit=5&colour=red",
            None,
        )
        .await;
    assert_eq!(
        reply.assert_problem(400, "malformed-request"),
        ["type", "colour"]
    );
    let detail = reply.body["detail"].as_str().expect("detail");
    assert!(detail.contains("property_type"), "{detail}");
    // Known parameters pass.
    let known = app
        .call(
            Method::GET,
            "/v1/buildings?property_type=office&limit=5",
            None,
        )
        .await;
    assert_eq!(known.status, 200, "{:#}", known.body);
    // A range that ends before it starts is refused, not answered with an empty page.
    let inverted = app
        .call(Method::GET, "/v1/comps?from=2026-02-01&to=2026-01-01", None)
        .await;
    assert_eq!(
        inverted.assert_problem(400, "malformed-request"),
        ["from", "to"]
    );
    let inverted = app
        .call(Method::GET, "/v1/comps?rent_min=90&rent_max=50.5", None)
        .await;
    assert_eq!(
        inverted.assert_problem(400, "malformed-request"),
        ["rent_min", "rent_max"]
    );
    let inverted = app
        .call(
            Method::GET,
            "/v1/market/stats?from=2026-02-01&to=2026-01-01",
            None,
        )
        .await;
    assert_eq!(
        inverted.assert_problem(400, "malformed-request"),
        ["from", "to"]
    );
    let same_day = app
        .call(Method::GET, "/v1/comps?from=2026-01-01&to=2026-01-01", None)
        .await;
    assert_eq!(same_day.status, 200, "{:#}", same_day.body);
    // A method the path does not have: 405 with `Allow`.
    let reply = app.call(Method::DELETE, "/v1/buildings", None).await;
    reply.assert_problem(405, "method-not-allowed");
    assert_eq!(reply.header("allow"), Some("GET, POST"));
    // A body that is not JSON: 415 says what to send.
    let reply = app
        .send(
            app.request(Method::POST, "/v1/buildings")
                .bearer_auth(token())
                .header("content-type", "text/plain")
                .body("name=x"),
        )
        .await;
    reply.assert_problem(415, "unsupported-media-type");
    assert!(reply.body["detail"]
        .as_str()
        .is_some_and(|detail| detail.contains("application/json")));
}

#[tokio::test]
async fn a_problem_raised_in_a_handler_names_the_request_s_id() {
    let app = spawn_app().await;
    let missing = "01a211de-85b1-74e2-ab37-c248cf58d5fa";
    let reply = app
        .call_as(
            &token(),
            Method::GET,
            &format!("/v1/buildings/{missing}"),
            None,
            &[("x-request-id", "req-404")],
        )
        .await;
    reply.assert_problem(404, "not-found");
    assert_eq!(reply.body["request_id"], "req-404");
    let refused = app
        .call_as(
            &token(),
            Method::POST,
            "/v1/buildings",
            Some(&json!({"name": ""})),
            &[("x-request-id", "req-400")],
        )
        .await;
    assert_eq!(refused.body["request_id"], "req-400", "{:#}", refused.body);
}

#[tokio::test]
async fn once_its_token_verifies_a_client_is_its_user_and_sees_its_budget() {
    let app = spawn_app_with(&[("RATE_LIMIT_PER_MINUTE", Some("4"))]).await;
    let alice = token_for(ORG, "user_alice");
    let bob = token_for(ORG, "user_bob");
    let list = |token: &str| {
        app.request(Method::GET, "/v1/buildings")
            .bearer_auth(token)
            .header("origin", ORIGIN)
    };
    // Every answer says what is left; the headers are readable cross-origin.
    let first = app.send(list(&alice)).await;
    assert_eq!(first.status, StatusCode::OK, "{:#}", first.body);
    assert_eq!(
        first.header("ratelimit-policy"),
        Some("\"default\";q=4;w=60")
    );
    let remaining = |reply: &Reply| -> u64 {
        let header = reply.header("ratelimit").expect("RateLimit");
        let field = header
            .split(';')
            .find_map(|part| part.strip_prefix("r="))
            .expect("r=");
        field.parse().expect("remaining")
    };
    assert_eq!(remaining(&first), 3);
    let exposed = first
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("ratelimit") && exposed.contains("ratelimit-policy"),
        "{exposed}"
    );
    // A revalidation answered 304 is not counted.
    let etag = first.header("etag").expect("etag").to_owned();
    let revalidated = app.send(list(&alice).header("if-none-match", &etag)).await;
    assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);
    assert_eq!(remaining(&revalidated), 3);
    for left in [2, 1, 0] {
        let reply = app.send(list(&alice)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(remaining(&reply), left);
    }
    let limited = app.send(list(&alice)).await;
    limited.assert_problem(429, "rate-limited");
    assert_eq!(remaining(&limited), 0);
    assert!(limited.header("retry-after").is_some());
    // Another user from the same address has a budget of their own.
    let other = app.send(list(&bob)).await;
    assert_eq!(other.status, StatusCode::OK, "{:#}", other.body);
    assert_eq!(remaining(&other), 3);
}
