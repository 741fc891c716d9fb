//! The test signing keys (`testkit/fixtures/`), their JWKS and tokens shaped like
//! Clerk's session tokens, signed with them. An api trusts them through
//! `CLERK_JWKS_FILE` ([`jwks_file`]), which production refuses.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// The issuer test apis expect (`CLERK_ISSUER`); every test token carries it.
pub const ISSUER: &str = "https://clerk.prism.test";
/// The `kid` the test key is published under (that of `prism-api dev` keys).
pub const KID: &str = "prism-dev";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// The key test tokens are signed with (RSA, PEM).
pub fn signing_key() -> PathBuf {
    fixture("test-signing-key.pem")
}

/// Another RSA key, which no test api trusts: an attacker's.
pub fn attacker_key() -> PathBuf {
    fixture("other-signing-key.pem")
}

fn encoding_key(pem: &Path) -> EncodingKey {
    let bytes = std::fs::read(pem).unwrap_or_else(|e| panic!("{}: {e}", pem.display()));
    EncodingKey::from_rsa_pem(&bytes).expect("an RSA private key in PEM")
}

/// A JWKS publishing the public half of each private key in `keys` under its `kid`.
pub fn jwks_of(keys: &[(&Path, &str)]) -> Value {
    let keys = keys
        .iter()
        .map(|(pem, kid)| {
            let mut jwk = Jwk::from_encoding_key(&encoding_key(pem), Algorithm::RS256)
                .expect("a JWK of the key");
            jwk.common.key_id = Some((*kid).to_owned());
            jwk
        })
        .collect();
    serde_json::to_value(JwkSet { keys }).expect("JWKS as JSON")
}

/// The JWKS of the test key (under [`KID`]), written once per process: what test apis
/// get as `CLERK_JWKS_FILE`.
pub fn jwks_file() -> &'static Path {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("prism-test-jwks-{}.json", std::process::id()));
        let jwks = jwks_of(&[(&signing_key(), KID)]);
        std::fs::write(&path, serde_json::to_vec(&jwks).expect("json")).expect("write JWKS");
        path
    })
}

/// A token for `user` in `org` carrying `scopes`, signed with the test key, issued by
/// [`ISSUER`], valid for ten minutes.
pub fn token(org: &str, user: &str, scopes: &[&str]) -> String {
    token_valid_for(org, user, scopes, 600)
}

/// [`token`] valid for `seconds`.
pub fn token_valid_for(org: &str, user: &str, scopes: &[&str], seconds: u64) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({
        "sub": user,
        "org_id": org,
        "scope": scopes.join(" "),
        "iss": ISSUER,
        "iat": now,
        "nbf": now,
        "exp": now + seconds,
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(KID.to_owned());
    jsonwebtoken::encode(&header, &claims, &encoding_key(&signing_key())).expect("a token")
}
