//! Who is calling: Clerk session tokens (RS256 JWTs) verified against Clerk's keys,
//! turned into an [`Actor`] — the user (`sub`), the organisation (`org_id`, or `o.id`
//! in Clerk's v2 tokens) every command and query is scoped to, and the token's scopes.
//!
//! Only RS256 is accepted, whatever the token's header claims; the key is chosen by
//! `kid`; `exp`/`nbf` are checked with a small leeway; `iss` must equal
//! `CLERK_ISSUER` when set; `azp`, when present, must be an authorised party.
//!
//! Keys come from one of three places ([`KeySource`]): Clerk's JWKS URL (production:
//! cached, refetched when a token names a `kid` not in the cache — key rotation needs
//! no restart — but at most once per `CLERK_JWKS_MIN_REFETCH_SECONDS`, so a stream of
//! made-up `kid`s cannot make Prism hammer Clerk), Clerk's PEM public key
//! (`CLERK_JWT_KEY`, networkless), or a JWKS file (development and tests only).
//!
//! A verified token is remembered until it expires ([`VerifiedTokens`]): an RS256
//! signature check costs hundreds of microseconds, a lookup well under one. Entries are
//! keyed by the SHA-256 of the whole token — never by a claim read before the
//! signature is checked — and forgotten when the key set changes.
//!
//! [`ScrapeGuard`] says who may scrape `/metrics`: in production, the holder of
//! `METRICS_SCRAPE_TOKEN` or of a token with `audit:read`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use domain::values::{OrgId, UserId};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use poem::http::header;
use poem::Request;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use telemetry::metrics::{bearer, ScrapeToken};

use crate::config::{AuthSettings, KeySetting, Secret};
use crate::problem::ApiError;

/// Seconds of clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 5;

/// How long one JWKS download may take.
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the cached JWKS is refreshed even when every `kid` is known, so that a
/// key Clerk withdrew stops verifying without a restart.
pub const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// What a token may be used for. With `STRICT_CLERK_SCOPES=true` a token must carry
/// each scope it uses; otherwise every organisation member has the `*:read` and
/// `*:write` scopes, but never `audit:read` or `projections:admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    BuildingsRead,
    BuildingsWrite,
    CompsRead,
    CompsWrite,
    AuditRead,
    ProjectionsAdmin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BuildingsRead => "buildings:read",
            Self::BuildingsWrite => "buildings:write",
            Self::CompsRead => "comps:read",
            Self::CompsWrite => "comps:write",
            Self::AuditRead => "audit:read",
            Self::ProjectionsAdmin => "projections:admin",
        }
    }

    /// The scopes an organisation member has without asking, when scopes are not strict.
    const MEMBER: [Scope; 4] = [
        Self::BuildingsRead,
        Self::BuildingsWrite,
        Self::CompsRead,
        Self::CompsWrite,
    ];
}

/// A bearer token verified earlier in the same request (by the rate limit, which
/// needs the caller), kept in the request's extensions with its actor: the operation's
/// own check ([`crate::bearer`]) takes it instead of verifying the token again.
#[derive(Debug, Clone)]
pub struct VerifiedBearer {
    pub token: String,
    pub actor: Actor,
}

/// The verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: UserId,
    pub org_id: OrgId,
    /// The scopes the caller has: the token's, plus the member scopes when scopes are
    /// not strict.
    pub scopes: Vec<String>,
}

impl Actor {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|s| s == scope.as_str())
    }

    /// Refuses (403, naming the scope) a caller without `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(scope.as_str()))
        }
    }
}

/// Why a token was refused; the text is safe to send to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
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
    /// Not the caller's fault: Clerk's keys could not be loaded (503).
    #[error("the keys that verify tokens are unavailable; retry shortly")]
    KeysUnavailable,
}

impl AuthRejected {
    /// A short stable name for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::AlgorithmNotAllowed => "algorithm",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "issuer",
            Self::UnauthorisedParty => "azp",
            Self::NoOrganisation => "no_organisation",
            Self::BadIdentity => "identity",
            Self::KeysUnavailable => "keys_unavailable",
        }
    }
}

impl From<AuthRejected> for ApiError {
    /// 401 `unauthenticated` naming the reason; 503 when the keys are unavailable.
    fn from(rejected: AuthRejected) -> Self {
        match rejected {
            AuthRejected::KeysUnavailable => Self::Unavailable(rejected.to_string()),
            _ => Self::Unauthenticated(rejected.to_string()),
        }
    }
}

#[derive(Debug, Deserialize)]
struct OrgClaim {
    id: String,
}

#[derive(Debug, Deserialize)]
struct ClerkClaims {
    sub: String,
    /// Required and checked by the validation; kept to know how long to remember it.
    exp: u64,
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

type KeyMap = Arc<HashMap<String, DecodingKey>>;

/// The RSA keys of a JWKS document, by `kid`; other key types are ignored.
fn rsa_keys(jwks: &JwkSet) -> HashMap<String, DecodingKey> {
    jwks.keys
        .iter()
        .filter(|jwk| matches!(jwk.algorithm, AlgorithmParameters::RSA(_)))
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            DecodingKey::from_jwk(jwk).ok().map(|key| (kid, key))
        })
        .collect()
}

/// Clerk's JWKS endpoint, cached.
pub struct RemoteJwks {
    url: String,
    client: reqwest::Client,
    keys: RwLock<KeyMap>,
    /// When the last download was tried; held while one runs, so downloads never overlap.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    min_refetch: Duration,
    /// Bumped whenever a download changes the key set (tokens verified under the old
    /// set are verified again), as told by the digest of the downloaded document.
    generation: AtomicU64,
    document: Mutex<[u8; 32]>,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("url", &self.url)
            .field("min_refetch", &self.min_refetch)
            .finish_non_exhaustive()
    }
}

impl RemoteJwks {
    fn new(url: String, min_refetch: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(JWKS_FETCH_TIMEOUT)
            .build()
            .context("cannot build the JWKS HTTP client")?;
        Ok(Self {
            url,
            client,
            keys: RwLock::new(Arc::default()),
            last_fetch: tokio::sync::Mutex::new(None),
            min_refetch,
            generation: AtomicU64::new(0),
            document: Mutex::new([0; 32]),
        })
    }

    fn cached(&self) -> KeyMap {
        self.keys
            .read()
            .map(|keys| Arc::clone(&keys))
            .unwrap_or_default()
    }

    /// The key set and the digest of the document it came in.
    async fn download(&self) -> anyhow::Result<(HashMap<String, DecodingKey>, [u8; 32])> {
        let body = self
            .client
            .get(&self.url)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let jwks: JwkSet = serde_json::from_slice(&body)?;
        let keys = rsa_keys(&jwks);
        anyhow::ensure!(!keys.is_empty(), "the JWKS holds no RSA key with a kid");
        Ok((keys, Sha256::digest(&body).into()))
    }

    /// Downloads the key set unless one was tried less than `min_refetch` ago (or
    /// `force`), replacing the cache on success. A failure keeps the old keys.
    async fn refresh(&self, force: bool) {
        let mut last = self.last_fetch.lock().await;
        if !force && last.is_some_and(|at| at.elapsed() < self.min_refetch) {
            return;
        }
        *last = Some(Instant::now());
        match self.download().await {
            Ok((keys, digest)) => {
                tracing::info!(kids = ?keys.keys().collect::<Vec<_>>(), "JWKS loaded");
                if let Ok(mut cached) = self.keys.write() {
                    *cached = Arc::new(keys);
                }
                if let Ok(mut document) = self.document.lock() {
                    if *document != digest {
                        *document = digest;
                        self.generation.fetch_add(1, Ordering::AcqRel);
                    }
                }
            }
            Err(error) => tracing::warn!(%error, url = %self.url, "cannot load the JWKS"),
        }
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, AuthRejected> {
        if let Some(key) = self.cached().get(kid) {
            return Ok(key.clone());
        }
        // Unknown: perhaps Clerk rotated its keys. Refetch, at most once per interval;
        // requests that waited for a download running meanwhile see its result.
        let before = self.cached();
        self.refresh(false).await;
        let after = self.cached();
        match after.get(kid) {
            Some(key) => Ok(key.clone()),
            None if after.is_empty() && Arc::ptr_eq(&before, &after) => {
                Err(AuthRejected::KeysUnavailable)
            }
            None => Err(AuthRejected::UnknownKey),
        }
    }
}

/// Where the keys that verify tokens come from.
#[derive(Debug)]
pub enum KeySource {
    /// Keys by `kid` (a JWKS file).
    Fixed(KeyMap),
    /// One PEM public key, whatever the `kid` (`CLERK_JWT_KEY`).
    Single(Box<DecodingKey>),
    /// Clerk's JWKS URL.
    Remote(RemoteJwks),
}

/// How many verified tokens are remembered at most; when full, expired ones go first,
/// then all (re-verifying a token is only slower, never wrong).
const VERIFIED_TOKENS: usize = 50_000;

/// Tokens already verified, by the SHA-256 of the token, with the actor they gave and
/// the Unix second until which they verify (`exp` plus the leeway). An entry also
/// remembers the key-set generation it was verified under: a key set that changed
/// (a rotation withdrew a key) invalidates it.
#[derive(Debug, Default)]
struct VerifiedTokens {
    entries: Mutex<HashMap<[u8; 32], (Actor, u64, u64)>>,
}

impl VerifiedTokens {
    fn digest(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    fn get(&self, digest: &[u8; 32], generation: u64, now: u64) -> Option<Actor> {
        let entries = self.entries.lock().ok()?;
        let (actor, until, verified_under) = entries.get(digest)?;
        (*until >= now && *verified_under == generation).then(|| actor.clone())
    }

    fn insert(&self, digest: [u8; 32], actor: Actor, until: u64, generation: u64, now: u64) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= VERIFIED_TOKENS {
            entries.retain(|_, (_, until, verified_under)| {
                *until >= now && *verified_under == generation
            });
            if entries.len() >= VERIFIED_TOKENS {
                entries.clear();
            }
        }
        entries.insert(digest, (actor, until, generation));
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Verifies tokens and builds the [`Actor`].
pub struct TokenVerifier {
    keys: KeySource,
    validation: Validation,
    authorized_parties: Vec<String>,
    strict_scopes: bool,
    verified: VerifiedTokens,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("keys", &self.keys)
            .field("strict_scopes", &self.strict_scopes)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Builds the verifier from the settings. A JWKS URL is downloaded once here; if
    /// that fails the api still starts and retries when the first token arrives.
    pub async fn from_settings(settings: &AuthSettings) -> anyhow::Result<Self> {
        let keys = match &settings.keys {
            KeySetting::JwksFile(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read CLERK_JWKS_FILE {}", path.display()))?;
                let jwks: JwkSet = serde_json::from_str(&text).with_context(|| {
                    format!("CLERK_JWKS_FILE {} is not a JWKS document", path.display())
                })?;
                let keys = rsa_keys(&jwks);
                anyhow::ensure!(
                    !keys.is_empty(),
                    "CLERK_JWKS_FILE holds no RSA key with a kid"
                );
                KeySource::Fixed(Arc::new(keys))
            }
            KeySetting::PublicKeyPem(pem) => KeySource::Single(Box::new(
                DecodingKey::from_rsa_pem(pem.as_bytes())
                    .context("CLERK_JWT_KEY is not an RSA public key in PEM")?,
            )),
            KeySetting::JwksUrl(url) => {
                let remote = RemoteJwks::new(url.clone(), settings.jwks_min_refetch)?;
                remote.refresh(true).await;
                KeySource::Remote(remote)
            }
        };
        Ok(Self::new(keys, settings))
    }

    pub fn new(keys: KeySource, settings: &AuthSettings) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = vec![Algorithm::RS256];
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        if let Some(issuer) = &settings.issuer {
            // A token without `iss` would otherwise pass the issuer check.
            validation.set_required_spec_claims(&["exp", "sub", "iss"]);
            validation.set_issuer(&[issuer]);
        }
        Self {
            keys,
            validation,
            authorized_parties: settings.authorized_parties.clone(),
            strict_scopes: settings.strict_scopes,
            verified: VerifiedTokens::default(),
        }
    }

    /// Refreshes a remote key set every [`JWKS_REFRESH_INTERVAL`] for as long as the
    /// verifier lives; nothing to do for fixed keys.
    pub fn spawn_refresh(self: &Arc<Self>) {
        if !matches!(self.keys, KeySource::Remote(_)) {
            return;
        }
        let verifier = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(JWKS_REFRESH_INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(verifier) = verifier.upgrade() else {
                    return;
                };
                if let KeySource::Remote(remote) = &verifier.keys {
                    remote.refresh(true).await;
                }
            }
        });
    }

    async fn key(&self, kid: Option<&str>) -> Result<DecodingKey, AuthRejected> {
        match (&self.keys, kid) {
            (KeySource::Single(key), _) => Ok((**key).clone()),
            (_, None) => Err(AuthRejected::UnknownKey),
            (KeySource::Fixed(keys), Some(kid)) => {
                keys.get(kid).cloned().ok_or(AuthRejected::UnknownKey)
            }
            (KeySource::Remote(remote), Some(kid)) => remote.key(kid).await,
        }
    }

    /// The key set's generation: it changes whenever the set does.
    fn key_generation(&self) -> u64 {
        match &self.keys {
            KeySource::Remote(remote) => remote.generation.load(Ordering::Acquire),
            KeySource::Fixed(_) | KeySource::Single(_) => 0,
        }
    }

    /// The caller a token names, once its signature and claims are verified; a token
    /// verified before is answered from memory until it expires.
    pub async fn verify(&self, token: &str) -> Result<Actor, AuthRejected> {
        let digest = VerifiedTokens::digest(token);
        let generation = self.key_generation();
        let now = unix_now();
        if let Some(actor) = self.verified.get(&digest, generation, now) {
            return Ok(actor);
        }
        let (actor, expires) = self.verify_signature(token).await?;
        self.verified.insert(
            digest,
            actor.clone(),
            expires + LEEWAY_SECONDS,
            generation,
            now,
        );
        Ok(actor)
    }

    /// Checks the signature and claims: the actor and the token's `exp`.
    async fn verify_signature(&self, token: &str) -> Result<(Actor, u64), AuthRejected> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthRejected::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(AuthRejected::AlgorithmNotAllowed);
        }
        let key = self.key(header.kid.as_deref()).await?;
        let claims = jsonwebtoken::decode::<ClerkClaims>(token, &key, &self.validation)
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
            if !self.authorized_parties.contains(azp) {
                return Err(AuthRejected::UnauthorisedParty);
            }
        }
        let org = claims
            .org_id
            .or(claims.o.map(|o| o.id))
            .ok_or(AuthRejected::NoOrganisation)?;
        let mut scopes: Vec<String> = claims
            .scope
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if !self.strict_scopes {
            for scope in Scope::MEMBER {
                if !scopes.iter().any(|s| s == scope.as_str()) {
                    scopes.push(scope.as_str().to_owned());
                }
            }
        }
        let actor = Actor {
            user_id: UserId::parse(&claims.sub).map_err(|_| AuthRejected::BadIdentity)?,
            org_id: OrgId::parse(&org).map_err(|_| AuthRejected::BadIdentity)?,
            scopes,
        };
        Ok((actor, claims.exp))
    }
}

/// Who may scrape: anyone, or (production) the scrape token's holder or an
/// `audit:read` token.
#[derive(Debug)]
pub struct ScrapeGuard {
    protected: bool,
    token: Option<ScrapeToken>,
}

impl ScrapeGuard {
    pub fn new(protected: bool, token: Option<&Secret>) -> Self {
        Self {
            protected,
            token: token.map(ScrapeToken::new),
        }
    }

    pub async fn admits(&self, request: &Request, verifier: &TokenVerifier) -> bool {
        if !self.protected {
            return true;
        }
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let Some(presented) = bearer(authorization) else {
            return false;
        };
        if self.token.as_ref().is_some_and(|t| t.matches(presented)) {
            return true;
        }
        verifier
            .verify(presented)
            .await
            .is_ok_and(|actor| actor.has(Scope::AuditRead))
    }
}
