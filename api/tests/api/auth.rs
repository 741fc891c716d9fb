//! Tokens (first cut; the identity issue adds remote JWKS and scopes): no token or a
//! bad one is 401 with a problem body, and nothing is appended.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

fn sign(claims: serde_json::Value, key: &std::path::Path, kid: &str) -> String {
    let pem = std::fs::read(key).expect("key");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&pem).expect("pem"),
    )
    .expect("sign")
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

#[tokio::test]
async fn commands_need_a_valid_token() {
    let app = spawn_app().await;
    let missing = app
        .send(
            app.request(Method::POST, "/v1/buildings")
                .json(&building_body()),
        )
        .await;
    missing.assert_problem(401, "unauthenticated");
    assert_eq!(
        missing.header("www-authenticate"),
        Some("Bearer realm=\"prism\"")
    );

    let valid = json!({"sub": USER, "org_id": ORG, "exp": now() + 600});
    let cases = [
        ("garbage", "not-a-jwt".to_owned()),
        (
            "attacker's key",
            sign(valid.clone(), &attacker_key(), "prism-dev"),
        ),
        (
            "unknown kid",
            sign(valid.clone(), &signing_key(), "other-kid"),
        ),
        (
            "expired",
            sign(
                json!({"sub": USER, "org_id": ORG, "exp": now() - 120}),
                &signing_key(),
                "prism-dev",
            ),
        ),
        (
            "not yet valid",
            sign(
                json!({"sub": USER, "org_id": ORG, "exp": now() + 600, "nbf": now() + 300}),
                &signing_key(),
                "prism-dev",
            ),
        ),
        (
            "no organisation",
            sign(
                json!({"sub": USER, "exp": now() + 600}),
                &signing_key(),
                "prism-dev",
            ),
        ),
        (
            "no subject",
            sign(
                json!({"org_id": ORG, "exp": now() + 600}),
                &signing_key(),
                "prism-dev",
            ),
        ),
        (
            "unauthorised party",
            sign(
                json!({"sub": USER, "org_id": ORG, "exp": now() + 600, "azp": "https://evil.example"}),
                &signing_key(),
                "prism-dev",
            ),
        ),
    ];
    for (case, token) in cases {
        let reply = app
            .call_as(
                &token,
                Method::POST,
                "/v1/buildings",
                Some(&building_body()),
                &[],
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{case}: {:#}",
            reply.body
        );
        reply.assert_problem(401, "unauthenticated");
    }
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn clerk_v2_tokens_name_the_organisation_under_o() {
    let app = spawn_app().await;
    let v2 = sign(
        json!({"sub": USER, "o": {"id": ORG, "rol": "admin"}, "exp": now() + 600, "azp": "https://app.prism.test"}),
        &signing_key(),
        "prism-dev",
    );
    let reply = app
        .call_as(
            &v2,
            Method::POST,
            "/v1/buildings",
            Some(&building_body()),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    assert_eq!(app.events_of(&reply.id()).await[0].3["org_id"], json!(ORG));
}
