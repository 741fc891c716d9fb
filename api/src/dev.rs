//! Development helpers behind `prism-api dev …`: publish a local signing key as a JWKS
//! (for `CLERK_JWKS_FILE`) and mint tokens shaped like Clerk's session tokens, so a
//! newcomer can call the API from Swagger UI without a Clerk account. Production
//! refuses `CLERK_JWKS_FILE`, so these tokens are worthless there.

use std::path::Path;

use anyhow::Context;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

/// The `kid` development keys are published under.
pub const DEV_KID: &str = "prism-dev";

fn signing_key(private_key_pem: &Path) -> anyhow::Result<EncodingKey> {
    let pem = std::fs::read(private_key_pem)
        .with_context(|| format!("cannot read the signing key {}", private_key_pem.display()))?;
    EncodingKey::from_rsa_pem(&pem).context("the signing key is not an RSA private key in PEM")
}

/// The JWKS (public half) of the RSA key in `private_key_pem`.
pub fn jwks(private_key_pem: &Path) -> anyhow::Result<JwkSet> {
    let mut jwk = Jwk::from_encoding_key(&signing_key(private_key_pem)?, Algorithm::RS256)?;
    jwk.common.key_id = Some(DEV_KID.to_owned());
    Ok(JwkSet { keys: vec![jwk] })
}

/// What a development token says.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub user_id: String,
    pub org_id: String,
    pub scopes: Vec<String>,
    pub issuer: Option<String>,
    pub ttl_seconds: u64,
}

/// A token signed with the key in `private_key_pem`, shaped like a Clerk v1 session token.
pub fn token(private_key_pem: &Path, request: &TokenRequest) -> anyhow::Result<String> {
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = json!({
        "sub": request.user_id,
        "org_id": request.org_id,
        "scope": request.scopes.join(" "),
        "iat": now,
        "nbf": now,
        "exp": now + request.ttl_seconds,
    });
    if let Some(issuer) = &request.issuer {
        claims["iss"] = json!(issuer);
    }
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(DEV_KID.to_owned());
    Ok(jsonwebtoken::encode(
        &header,
        &claims,
        &signing_key(private_key_pem)?,
    )?)
}
