//! The attack matrix: every way a token can be wrong is refused with 401 (a problem
//! body, `WWW-Authenticate`) and appends nothing; keys come from a JWKS endpoint the
//! test serves, which Prism refetches on an unknown `kid` at most once per interval;
//! rotated keys verify without a restart.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

const KID: &str = "clerk-key-1";

fn sign(claims: &Value, key: &std::path::Path, kid: &str) -> String {
    let pem = std::fs::read(key).expect("key");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&pem).expect("pem"),
    )
    .expect("sign")
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Claims of a good Clerk v1 session token.
fn claims() -> Value {
    json!({
        "sub": USER, "org_id": ORG, "iss": ISSUER, "azp": ORIGIN,
        "iat": now(), "nbf": now() - 5, "exp": now() + 600,
    })
}

fn with(mut claims: Value, changes: Value) -> Value {
    for (name, value) in changes.as_object().expect("object") {
        if value.is_null() {
            claims.as_object_mut().expect("object").remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// An app verifying against the test's JWKS endpoint.
async fn app_with_jwks(jwks: &JwksServer, extra: &[(&str, Option<&str>)]) -> TestApp {
    let mut settings = vec![
        ("CLERK_JWKS_FILE", None),
        ("CLERK_JWKS_URL", Some(jwks.url.as_str())),
    ];
    settings.extend_from_slice(extra);
    spawn_app_with(&settings).await
}

async fn register(app: &TestApp, token: &str) -> Reply {
    app.call_as(
        token,
        Method::POST,
        "/v1/buildings",
        Some(&bodies::building()),
        &[],
    )
    .await
}

#[tokio::test]
async fn every_forged_or_invalid_token_is_refused_and_appends_nothing() {
    let jwks = JwksServer::start(jwks_of(&[(&signing_key(), KID)])).await;
    let app = app_with_jwks(&jwks, &[("CLERK_JWKS_MIN_REFETCH_SECONDS", Some("2"))]).await;

    // The control: a good token registers a building.
    let good = sign(&claims(), &signing_key(), KID);
    assert_eq!(register(&app, &good).await.status, StatusCode::CREATED);
    let events = app.event_count().await;

    let missing = app
        .send(
            app.request(Method::POST, "/v1/buildings")
                .json(&bodies::building()),
        )
        .await;
    missing.assert_problem(401, "unauthenticated");
    assert_eq!(
        missing.header("www-authenticate"),
        Some("Bearer realm=\"prism\"")
    );

    // The HMAC secret an attacker would try: the public key's own PEM bytes.
    let public_pem = public_pem();
    let hs256 = {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(KID.into());
        jsonwebtoken::encode(
            &header,
            &claims(),
            &jsonwebtoken::EncodingKey::from_secret(public_pem.as_bytes()),
        )
        .expect("hs256")
    };
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": KID})),
        b64(&claims())
    );
    let tampered = {
        let parts: Vec<&str> = good.split('.').collect();
        let forged = with(claims(), json!({"org_id": OTHER_ORG}));
        format!("{}.{}.{}", parts[0], b64(&forged), parts[2])
    };
    let cases: Vec<(&str, String)> = vec![
        ("not a JWT", "not-a-jwt".into()),
        ("alg none", alg_none),
        ("HS256 keyed with the public key", hs256),
        (
            "unknown key",
            sign(&claims(), &attacker_key(), "attacker-key"),
        ),
        (
            "another key under the known kid",
            sign(&claims(), &attacker_key(), KID),
        ),
        ("tampered payload", tampered),
        (
            "expired",
            sign(
                &with(claims(), json!({"exp": now() - 120})),
                &signing_key(),
                KID,
            ),
        ),
        (
            "not yet valid",
            sign(
                &with(claims(), json!({"nbf": now() + 300})),
                &signing_key(),
                KID,
            ),
        ),
        (
            "wrong issuer",
            sign(
                &with(claims(), json!({"iss": "https://clerk.evil.example"})),
                &signing_key(),
                KID,
            ),
        ),
        (
            "no issuer",
            sign(&with(claims(), json!({"iss": null})), &signing_key(), KID),
        ),
        (
            "unauthorised party",
            sign(
                &with(claims(), json!({"azp": "https://evil.example"})),
                &signing_key(),
                KID,
            ),
        ),
        (
            "no organisation",
            sign(
                &with(claims(), json!({"org_id": null})),
                &signing_key(),
                KID,
            ),
        ),
        (
            "no subject",
            sign(&with(claims(), json!({"sub": null})), &signing_key(), KID),
        ),
        (
            "no expiry",
            sign(&with(claims(), json!({"exp": null})), &signing_key(), KID),
        ),
    ];
    for (case, token) in &cases {
        let reply = register(&app, token).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{case}: {:#}",
            reply.body
        );
        reply.assert_problem(401, "unauthenticated");
        // Reads are refused the same way.
        let read = app
            .call_as(token, Method::GET, "/v1/buildings", None, &[])
            .await;
        assert_eq!(read.status, StatusCode::UNAUTHORIZED, "{case} (read)");
    }
    assert_eq!(app.event_count().await, events, "a refused token appended");

    // Made-up kids cannot make Prism hammer the JWKS endpoint: after the start-up
    // fetch and the interval, the first unknown kid refetches once; the next 19, sent
    // within the interval, do not.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let before = jwks.fetches();
    for n in 0..20 {
        let reply = register(&app, &sign(&claims(), &attacker_key(), &format!("kid-{n}"))).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        jwks.fetches() - before,
        1,
        "JWKS downloads for 20 unknown kids"
    );
}

#[tokio::test]
async fn rotated_keys_verify_without_a_restart() {
    let jwks = JwksServer::start(jwks_of(&[(&signing_key(), KID)])).await;
    let app = app_with_jwks(&jwks, &[("CLERK_JWKS_MIN_REFETCH_SECONDS", Some("1"))]).await;
    let old = sign(&claims(), &signing_key(), KID);
    assert_eq!(register(&app, &old).await.status, StatusCode::CREATED);

    // Clerk rotates: a new key under a new kid, the old one withdrawn.
    jwks.publish(jwks_of(&[(&attacker_key(), "clerk-key-2")]));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let new = sign(&claims(), &attacker_key(), "clerk-key-2");
    let reply = register(&app, &new).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    let reply = register(&app, &old).await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "a withdrawn key still verifies"
    );
    assert_eq!(app.event_count().await, 2);
}

#[tokio::test]
async fn clerk_v2_tokens_name_the_organisation_under_o() {
    let app = spawn_app().await;
    let v2 = sign(
        &with(
            claims(),
            json!({"org_id": null, "o": {"id": ORG, "rol": "admin"}}),
        ),
        &signing_key(),
        "prism-dev",
    );
    let reply = register(&app, &v2).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    assert_eq!(app.events_of(&reply.id()).await[0].3["org_id"], json!(ORG));
}

/// The test key's public half in PEM, as Clerk shows it for `CLERK_JWT_KEY`.
fn public_pem() -> String {
    let pem = std::process::Command::new("openssl")
        .args(["rsa", "-pubout", "-in"])
        .arg(signing_key())
        .output()
        .expect("openssl");
    assert!(pem.status.success(), "openssl rsa -pubout");
    String::from_utf8(pem.stdout).expect("utf-8")
}

#[tokio::test]
async fn a_pem_public_key_verifies_without_a_network() {
    let pem = public_pem();
    let app = spawn_app_with(&[
        ("CLERK_JWKS_FILE", None),
        ("CLERK_JWT_KEY", Some(pem.as_str())),
    ])
    .await;
    let reply = register(&app, &sign(&claims(), &signing_key(), "any-kid")).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    let reply = register(&app, &sign(&claims(), &attacker_key(), "any-kid")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}
