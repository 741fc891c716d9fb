//! Who is calling: Clerk session tokens (RS256 JWTs) verified against a JWKS, turned
//! into an [`Actor`] — the user (`sub`), the organisation (`org_id`, or `o.id` in
//! Clerk's v2 tokens) every command and query is scoped to, and the token's scopes.
//!
//! Only RS256 is accepted, whatever the token's header claims; the key is chosen by
//! `kid`; `exp`/`nbf` are checked with a small leeway; `iss` must equal
//! `CLERK_ISSUER` when set; `azp`, when present, must be an authorised party.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use domain::values::{OrgId, UserId};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::SecurityScheme;
use serde::Deserialize;

use crate::config::AuthSettings;

/// Seconds of clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 5;

/// The verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: UserId,
    pub org_id: OrgId,
    pub scopes: Vec<String>,
}

/// Why a token was refused; the text is safe to send to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthRejected {
    #[error("the token is malformed")]
    Malformed,
    #[error("only RS256 tokens are accepted")]
    AlgorithmNotAllowed,
    #[error("the token's signing key is not known")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token was issued to an unauthorised party")]
    UnauthorisedParty,
    #[error("the token names no organisation; select an organisation and sign in again")]
    NoOrganisation,
    #[error("the token's subject or organisation is not a valid id")]
    BadIdentity,
}

impl poem::error::ResponseError for AuthRejected {
    fn status(&self) -> poem::http::StatusCode {
        poem::http::StatusCode::UNAUTHORIZED
    }
}

#[derive(Debug, Deserialize)]
struct OrgClaim {
    id: String,
}

#[derive(Debug, Deserialize)]
struct ClerkClaims {
    sub: String,
    #[serde(default)]
    org_id: Option<String>,
    /// Clerk session token v2 nests the organisation: `"o": {"id": …}`.
    #[serde(default)]
    o: Option<OrgClaim>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    azp: Option<String>,
}

/// Verifies tokens against a fixed set of keys.
pub struct TokenVerifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
    authorized_parties: Vec<String>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Builds the verifier from the settings (today: the JWKS file).
    pub fn from_settings(settings: &AuthSettings) -> anyhow::Result<Self> {
        let path = settings
            .jwks_file
            .as_deref()
            .context("CLERK_JWKS_FILE is required")?;
        Self::new(read_jwks(path)?, settings)
    }

    pub fn new(jwks: JwkSet, settings: &AuthSettings) -> anyhow::Result<Self> {
        let mut keys = HashMap::new();
        for jwk in &jwks.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid, key);
            }
        }
        anyhow::ensure!(!keys.is_empty(), "the JWKS holds no usable key with a kid");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = vec![Algorithm::RS256];
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        if let Some(issuer) = &settings.issuer {
            validation.set_issuer(&[issuer]);
        }
        Ok(Self {
            keys,
            validation,
            authorized_parties: settings.authorized_parties.clone(),
        })
    }

    pub fn verify(&self, token: &str) -> Result<Actor, AuthRejected> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthRejected::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(AuthRejected::AlgorithmNotAllowed);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.get(kid))
            .ok_or(AuthRejected::UnknownKey)?;
        let claims = jsonwebtoken::decode::<ClerkClaims>(token, key, &self.validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::ExpiredSignature => AuthRejected::Expired,
                    K::ImmatureSignature => AuthRejected::NotYetValid,
                    K::InvalidIssuer => AuthRejected::WrongIssuer,
                    K::InvalidSignature => AuthRejected::BadSignature,
                    K::InvalidAlgorithm => AuthRejected::AlgorithmNotAllowed,
                    _ => AuthRejected::Malformed,
                }
            })?
            .claims;
        if let Some(azp) = &claims.azp {
            if !self.authorized_parties.is_empty() && !self.authorized_parties.contains(azp) {
                return Err(AuthRejected::UnauthorisedParty);
            }
        }
        let org = claims
            .org_id
            .or(claims.o.map(|o| o.id))
            .ok_or(AuthRejected::NoOrganisation)?;
        Ok(Actor {
            user_id: UserId::parse(&claims.sub).map_err(|_| AuthRejected::BadIdentity)?,
            org_id: OrgId::parse(&org).map_err(|_| AuthRejected::BadIdentity)?,
            scopes: claims
                .scope
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
        })
    }
}

fn read_jwks(path: &Path) -> anyhow::Result<JwkSet> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read CLERK_JWKS_FILE {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("CLERK_JWKS_FILE {} is not a JWKS document", path.display()))
}

/// Scopes that are never implied: a token must carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    AuditRead,
    ProjectionsAdmin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuditRead => "audit:read",
            Self::ProjectionsAdmin => "projections:admin",
        }
    }
}

/// Refuses (403) an actor whose token does not carry `scope`.
pub fn require_scope(actor: &Actor, scope: Scope) -> Result<(), crate::problem::ApiError> {
    if actor.scopes.iter().any(|s| s == scope.as_str()) {
        Ok(())
    } else {
        Err(crate::problem::ApiError::Forbidden(scope.as_str()))
    }
}

/// A Clerk session token in `Authorization: Bearer …`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "verify_bearer")]
pub struct BearerAuth(pub Actor);

async fn verify_bearer(request: &Request, bearer: Bearer) -> poem::Result<Actor> {
    let verifier = request.data::<Arc<TokenVerifier>>().ok_or_else(|| {
        poem::Error::from_string(
            "no token verifier",
            poem::http::StatusCode::INTERNAL_SERVER_ERROR,
        )
    })?;
    verifier.verify(&bearer.token).map_err(|rejected| {
        tracing::info!(auth.failure = %rejected, "token refused");
        poem::Error::from(rejected)
    })
}
